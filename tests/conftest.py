"""Test-suite fixtures: keep torch to one thread (2-core machine that may be training)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The test machine has 2 cores and may be training: keep torch to one thread."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
