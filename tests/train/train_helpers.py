"""Small generated classification data and stand-in models for the training tests."""
from __future__ import annotations

import torch
from torch import nn


def make_blobs(n: int = 384, classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (n, 1, 8, 8) whose class is a bright 4x4 quadrant plus noise: easy but not trivial."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = 0.3 * torch.randn(n, 1, 8, 8, generator=g)
    for k in range(classes):
        r, c = divmod(k, 2)
        x[y == k, 0, 4 * r:4 * r + 4, 4 * c:4 * c + 4] += 1.0
    return x, y


def small_cnn(classes: int = 4, *, dropout: float = 0.0) -> nn.Sequential:
    """A plain-torch stand-in CNN for 8x8x1 inputs."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 8, 4, 4)
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(8 * 4 * 4, classes),  # (N, 128) -> (N, K)
    )

