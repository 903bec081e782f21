"""The ahead-of-time C++ update (fastsac::sac_update_, fastsac.native_update) against the eager
reference and against the Python update it mirrors: same weights, batches and noise -> the same
parameters, Adam state and losses, to rounding. (tests/test_update.py runs it against the
reference at the notebook's shape on every SIMD build.)"""

import dataclasses

import numpy as np
import pytest
import torch

from fastsac import native_update, ops
from fastsac.agreement import random_batch, run_twins, twin_agents
from fastsac.check_cli import update_tolerances
from fastsac.native_update import make_native_update
from fastsac.state import state_tensors
from fastsac.update import sac_update


@pytest.mark.parametrize("hidden", [(16,), (24, 20, 12)])
def test_native_agrees_at_other_depths_and_action_dims(hidden):
    from tests.envs import PointMassEnv  # noqa: F401  (registers the env)

    ref, fast = twin_agents(dtype=torch.float64, env_id="fastsac-tests/PointMass-v0",
                            hidden_sizes=hidden, native=True)
    assert fast.action_dim == 3
    _, many = run_twins(ref, fast, 20)
    assert many <= update_tolerances(torch.float64)[1]


def _cloned_states(agent):
    """The agent's update state and a deep copy of it."""
    state = agent._bound_state()
    copy = type(state)(*(tuple(t.clone() for t in s) if isinstance(s, tuple) else s.clone()
                         for s in state))
    return state, copy


def test_native_matches_python_update_tensor_for_tensor():
    """Every state tensor (parameters, both Adam moments, step counts) and the losses, at the
    notebook's width in float32, policy steps and not."""
    _, fast = twin_agents(compile=False, dtype=torch.float32, hidden_sizes=(128, 128),
                          batch_size=64)
    python_state, native_state = _cloned_states(fast)
    native = make_native_update(fast._cfg)
    rng = np.random.default_rng(3)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for i in range(10):
            batch = fast._batch_tensors(random_batch(rng, 64, fast.obs_dim, fast.action_dim))
            noise = torch.randn(64, fast.action_dim, generator=gen)
            want = sac_update(fast._cfg, i % 2 == 0, python_state, batch, noise)
            got = native(i % 2 == 0, native_state, batch, noise)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for a, b in zip(state_tensors(python_state), state_tensors(native_state), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    assert native_state.actor[3][0].item() == 5 and native_state.qf_1[3][0].item() == 10


def test_native_refuses_bad_state():
    _, fast = twin_agents(compile=False, dtype=torch.float32)
    native = make_native_update(fast._cfg)
    state = fast._bound_state()
    batch = fast._batch_tensors(random_batch(np.random.default_rng(0), fast.batch_size,
                                             fast.obs_dim, fast.action_dim))
    noise = torch.zeros(fast.batch_size, fast.action_dim)
    short = state._replace(vf_target=state.vf_target[:-1])
    with pytest.raises(RuntimeError, match="parameter buffer holds"):
        native(True, short, batch, noise)
    with pytest.raises(RuntimeError, match="one dtype"):
        native(True, state, batch._replace(obs=batch.obs.double()), noise)
    with pytest.raises(RuntimeError, match="state tensors"):
        torch.ops.fastsac.sac_update_(state_tensors(state)[:-1], *batch, noise, [256, 256], [],
                                      0.99, 5e-3, -1.0, -20.0, 2.0, 3e-4, 0.9, 0.999, 1e-8, True)


def test_native_is_one_process_only():
    _, fast = twin_agents(compile=False)
    cfg = dataclasses.replace(fast._cfg, world_size=2)
    assert native_update.available("cpu") == ops.EXTENSION_LOADED
    assert ops.has_kernel("fastsac::sac_update_", "CPU")
    assert not ops.has_kernel("fastsac::no_such_op", "CPU")  # an older build's case
    assert not native_update.available("cpu", world_size=2)
    assert not native_update.available("cuda")
    with pytest.raises(ValueError, match="world_size"):
        make_native_update(cfg)
    with pytest.raises(ValueError, match="compile=False"):
        native_update.run_natively(type(fast)(fast.env, 100, 8, compile=True))


def test_without_the_op_the_bridge_is_the_python_update(monkeypatch):
    """An extension without the op (an older build), or a device it does not run on: train()
    bridges with the eager Python update instead of failing."""
    monkeypatch.setattr(native_update, "available", lambda *a, **k: False)
    _, fast = twin_agents(compile=False)
    assert fast._bridge_fn is fast._eager_fn
    with pytest.raises(RuntimeError, match="cannot run as the C\\+\\+ op"):
        native_update.run_natively(fast)


def test_native_refuses_mismatched_adam_buffers():
    """Adam writes both moments over the parameters' span: a short moment buffer is refused
    before anything is written."""
    _, fast = twin_agents(compile=False, dtype=torch.float32)
    native = make_native_update(fast._cfg)
    state = fast._bound_state()
    before = [t.clone() for t in state_tensors(state)]
    batch = fast._batch_tensors(random_batch(np.random.default_rng(0), fast.batch_size,
                                             fast.obs_dim, fast.action_dim))
    noise = torch.zeros(fast.batch_size, fast.action_dim)
    params, exp_avg, exp_avg_sq, steps = state.qf_2
    for bad in (state._replace(qf_2=(params, exp_avg[:-1], exp_avg_sq, steps)),
                state._replace(log_alpha=(torch.zeros(2),) + state.log_alpha[1:])):
        with pytest.raises(RuntimeError, match="differ in size|one number"):
            native(True, bad, batch, noise)
    for t, t0 in zip(state_tensors(state), before, strict=True):
        assert torch.equal(t, t0)
