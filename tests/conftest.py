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


def random_batch(rng, batch, obs_dim, act_dim):
    """A sample_batch()-shaped dict of random transitions."""
    acts = rng.uniform(-1, 1, size=(batch, act_dim)).astype(np.float32)
    return {
        "obs": rng.normal(size=(batch, obs_dim)).astype(np.float32),
        "next_obs": rng.normal(size=(batch, obs_dim)).astype(np.float32),
        "acts": acts.reshape(-1) if act_dim == 1 else acts,
        "rews": rng.normal(size=batch).astype(np.float32),
        "done": (rng.uniform(size=batch) < 0.2).astype(np.float32),
    }
