"""``TrainConfig.tune_allocator``: freed tensor memory stays in the process, so a training loop
stops page-faulting fresh memory every step (that the loss curve stays identical is in
test_speed_switches.py).

The page-fault test runs in a fresh Python process: the setting is process-wide and the test
workers may have tuned malloc already. No timing assertions (the speed-up is in bench/RESULTS.md).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cnnkit.train import TrainConfig

glibc_linux = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="mallopt tuning exists only on Linux with glibc")

_FAULTS = r"""
import json, resource, torch
from torch import nn
from cnnkit.train.allocator import keep_freed_memory

torch.manual_seed(0)
torch.set_num_threads(1)  # one thread, one malloc arena
net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                    nn.Linear(5408, 256), nn.ReLU(), nn.Linear(256, 10))
opt = torch.optim.Adam(net.parameters())
# batch 512: the first conv's output (512 x 32 x 26 x 26 floats, 44 MB) is above glibc's
# largest dynamic mmap threshold (32 MB), so by default it is mmapped afresh every step
x, y = torch.rand(512, 1, 28, 28), torch.randint(0, 10, (512,))

def faults_of_training_steps(steps=3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def least_faults(windows=2):
    # the fewest faults of two 3-step windows: a heap that still grows now and then (a
    # buffer that lands on fresh pages once) shows in one window, not in a steady state
    return min(faults_of_training_steps() for _ in range(windows))

faults_of_training_steps(3)  # warm-up: first-call allocations, optimizer state
default = least_faults()
applied = keep_freed_memory()
faults_of_training_steps(3)  # the heap grows once to hold a step's buffers
tuned = least_faults()
print(json.dumps({"default": default, "tuned": tuned, "applied": applied}))
"""


@glibc_linux
def test_tuned_allocator_stops_the_page_faults_of_a_training_loop():
    out = subprocess.run([sys.executable, "-c", _FAULTS], capture_output=True, text=True,
                         check=True, timeout=120)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not result["applied"]:
        pytest.skip("this libc is not glibc or refused mallopt: nothing to tune")
    # by default every step faults in its buffers afresh; with reuse, nearly none
    assert result["default"] > 10_000, result
    assert result["tuned"] < result["default"] / 20, result


def test_keep_freed_memory_is_idempotent_and_never_raises():
    from cnnkit.train.allocator import keep_freed_memory
    first = keep_freed_memory()
    assert keep_freed_memory() is first


def test_allocator_switch_is_a_config_field_with_a_cli_flag():
    assert TrainConfig().tune_allocator is True
    assert "page-fault" in TrainConfig.field_docs()["tune_allocator"]
    from cnnkit.cli import build_parser
    args = build_parser().parse_args(["train", "--no-tune-allocator"])
    assert args.tune_allocator is False
