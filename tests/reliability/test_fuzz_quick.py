"""Quick fuzzing of every untrusted-input reader (the 100,000-input runs are
``python -m bench.reliability.fuzz``): Hypothesis draws the mutation seed and shrinks it, each
reader may only accept the input or raise its documented clean error."""
from __future__ import annotations

import logging
import random
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.reliability.fuzz import TARGETS, fuzz_target, mutate


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("name", sorted(TARGETS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**64 - 1))
def test_reader_accepts_or_raises_its_clean_error(name, seed, workdir):
    if name == "serve":
        pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
    target = TARGETS[name]
    folder = workdir / name.replace("/", "-")
    folder.mkdir(exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            target.run(random.Random(seed), folder)
        except target.clean:
            pass
        finally:
            logging.disable(logging.NOTSET)


def test_the_fuzz_loop_counts_and_classifies(tmp_path):
    result = fuzz_target(TARGETS["idx"], 50, seed=3, work=tmp_path)
    assert result.inputs == 50 == result.accepted + result.clean_errors
    assert result.clean_errors > 0 and not result.crashes


@given(data=st.binary(max_size=200), seed=st.integers(0, 2**32))
def test_mutate_is_deterministic_and_bounded(data, seed):
    once, again = mutate(data, random.Random(seed)), mutate(data, random.Random(seed))
    assert once == again
    assert len(once) <= len(data) + 4 * 256  # at most 4 edits, each adding <= 256 bytes
