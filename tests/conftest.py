"""Shared fixtures. A test session on a broken build fails loudly: see test_extension_built."""

import numpy as np
import pytest
import torch

CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def _seed_torch():
    """Every test starts from the same global RNG state, whatever ran before it."""
    torch.manual_seed(0)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


from fastsac.agreement import random_batch  # noqa: E402,F401  (shared with fastsac check)
