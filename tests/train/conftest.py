"""Fixtures of the training tests (helpers live in train_helpers.py)."""
from __future__ import annotations

import pytest
from train_helpers import make_blobs


@pytest.fixture
def blobs():
    return make_blobs()
