"""The autograd variant of the update (fastsac.autograd_update, kept to measure the explicit
backward against) lands where the reference lands, like the explicit one."""

import pytest
import torch

from fastsac.agreement import run_twins, twin_agents
from fastsac.autograd_update import make_autograd_update


@pytest.mark.parametrize("hidden_sizes", [(64,), (32, 16, 8)])
def test_autograd_variant_agrees_with_reference(hidden_sizes):
    ref, fast = twin_agents(dtype=torch.float64, compile=False, hidden_sizes=hidden_sizes)
    fast._update_fn = make_autograd_update(fast._cfg, compile=False)
    one, many = run_twins(ref, fast, 20)
    assert one <= 1e-12
    assert many <= 1e-10
