"""bench/results.py and bench/fashion_fast.py report the same mean ± std for the same seeds."""
from __future__ import annotations

import statistics

from bench import results
from bench._common import mean_std_percent


def test_mean_std_percent_is_the_sample_std_over_seeds():
    seeds = [0.9415, 0.9404, 0.9415]  # fashion-fast's three 18-epoch seeds
    assert mean_std_percent(seeds) == f"94.11 ± {100 * statistics.stdev(seeds):.2f}" == "94.11 ± 0.06"
    assert mean_std_percent([0.5]) == "50.00 ± 0.00"


def test_a_results_row_says_met_only_when_mean_and_every_seeds_time_are_within_target():
    runs = [{"accuracy": a, "time_s": t} for a, t in ((0.9415, 145.0), (0.9404, 140.0),
                                                      (0.9415, 161.0))]
    row = results.summarise("fashion-fast", runs, None)
    assert row[2] == "94.11 ± 0.06 %" and row[3] == "94.04 %"
    assert row[4] == "149 s (max 161)" and row[7] == "yes"
    slow = runs[:2] + [{"accuracy": 0.9415, "time_s": 181.0}]
    assert results.summarise("fashion-fast", slow, None)[7] == "NO"  # one seed over 3 min
    low = [{"accuracy": 0.939, "time_s": 100.0}] * 3
    assert results.summarise("fashion-fast", low, 15)[7] == "NO"
    assert results.summarise("fashion-fast", low, 15)[-1].endswith("--epochs 15`")
