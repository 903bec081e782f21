"""FastSAC's update (explicit backward, fused ops, compiled graph) against the eager reference:
same initial weights, batches and noise -> the same parameters."""

import numpy as np
import pytest
import torch

from fastsac.agreement import (
    max_adam_diff,
    max_param_diff,
    random_batch,
    run_graph_twins,
    run_twins,
    twin_agents,
)
from fastsac.check_cli import update_tolerances
from fastsac.update import UpdateConfig, sac_update
from tests.conftest import requires_cuda

# (dtype, after one update, after many): the bounds `fastsac check` holds every path to
TWIN_TOLERANCES = [(dtype, *update_tolerances(dtype)) for dtype in (torch.float32, torch.float64)]
F64_ONE, F64_MANY = update_tolerances(torch.float64)


@pytest.mark.parametrize("path", ["eager", "native"])
@pytest.mark.parametrize("dtype,tol_one,tol_many", TWIN_TOLERANCES)
def test_eager_agrees_with_reference(simd, path, dtype, tol_one, tol_many):
    """The update uncompiled: the Python function, or the same update as one ahead-of-time C++
    op (``native``, fastsac.native_update; twin_agents raises if the extension's op is not
    there). On
    every SIMD build: with AVX-512 the float32 update runs fastsac::mm's products."""
    ref, fast = twin_agents(dtype=dtype, compile=False, native=path == "native")
    assert fast._cfg.tiled_mm == (simd == "avx512" and dtype == torch.float32)
    one, many = run_twins(ref, fast, 60)
    assert one <= tol_one
    assert many <= tol_many
    assert max_adam_diff(ref, fast) <= tol_many
    assert ref.actor_optimizer.state_dict()["state"][0]["step"] == 30  # policy steps only


def test_eager_agrees_multidim_actions():
    from tests.envs import PointMassEnv  # noqa: F401  (registers the env)

    ref, fast = twin_agents(dtype=torch.float64, compile=False, env_id="fastsac-tests/PointMass-v0")
    assert fast.action_dim == 3
    one, many = run_twins(ref, fast, 20)
    assert many <= F64_MANY


@pytest.mark.parametrize("path", ["eager", "native"])
def test_policy_update_freq_respected(path):
    """Odd steps skip the actor and the Polyak update in both agents."""
    ref, fast = twin_agents(dtype=torch.float64, native=path == "native")
    actor_before = [p.detach().clone() for p in fast.actor.parameters()]
    target_before = [p.detach().clone() for p in fast.vf_target.parameters()]
    run_twins(ref, fast, 1, start_step=1)  # step 1: 1 % 2 != 0
    for p, q in zip(fast.actor.parameters(), actor_before, strict=True):
        assert torch.equal(p, q)
    for p, q in zip(fast.vf_target.parameters(), target_before, strict=True):
        assert torch.equal(p, q)
    assert max_param_diff(ref, fast) <= F64_ONE


@pytest.mark.parametrize("path", ["eager", "native"])
def test_polyak_uses_pre_step_v(path):
    """The V target blends V's parameters from before this update's V step (docs/design.md,
    step 6)."""
    ref, fast = twin_agents(dtype=torch.float64, native=path == "native")
    v_before = [p.detach().clone() for p in fast.vf.parameters()]
    t_before = [p.detach().clone() for p in fast.vf_target.parameters()]
    run_twins(ref, fast, 1, start_step=2)
    for t, v, t0 in zip(fast.vf_target.parameters(), v_before, t_before, strict=True):
        torch.testing.assert_close(t.detach(), fast.tau * v + (1 - fast.tau) * t0, rtol=0,
                                   atol=1e-15)


@pytest.mark.compile
def test_compiled_agrees_with_reference():
    """One compiled agent (two graphs: policy and non-policy step) in float32 and float64."""
    torch._dynamo.utils.counters.clear()
    for dtype, tol_one, tol_many in TWIN_TOLERANCES:
        ref, fast = twin_agents(dtype=dtype, compile=True)
        one, many = run_twins(ref, fast, 60)
        assert one <= tol_one, dtype
        assert many <= tol_many, dtype
    assert not torch._dynamo.utils.counters["graph_break"], "the update graph broke"


def test_graph_calls_fused_ops():
    """The traced update is one graph, with no break, that calls both fused ops."""
    torch._dynamo.reset()
    graphs = []

    def record(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    ref, fast = twin_agents(compile=False)
    cfg = fast._cfg
    compiled = torch.compile(lambda *t: sac_update(cfg, True, *t), backend=record,
                             fullgraph=True)
    rng = np.random.default_rng(0)
    batch = fast._batch_tensors(random_batch(rng, 32, fast.obs_dim, fast.action_dim))
    with torch.no_grad():
        compiled(fast._bound_state(), batch, torch.randn(32, 1))
    assert len(graphs) == 1
    targets = {str(node.target).removesuffix(".default") for node in graphs[0].graph.nodes
               if node.op == "call_function"}
    wanted = ["fastsac.tanh_normal", "fastsac.tanh_normal_backward", "fastsac.polyak_"]
    if cfg.tiled_mm:  # an AVX-512 CPU: the 128-wide hidden layer's products too
        wanted.append("fastsac.mm")
    for op in wanted:
        assert op in targets, f"{op} is not in the compiled graph"


def test_update_config_is_frozen():
    cfg = UpdateConfig(obs_dim=3, action_dim=1, hidden_sizes=(128, 128), gamma=0.99, tau=0.005,
                       target_entropy=-1.0, log_std_min=-20, log_std_max=2)
    with pytest.raises(AttributeError):
        cfg.gamma = 0.5


# ---- CUDA -----------------------------------------------------------------------------------
@requires_cuda
@pytest.mark.parametrize("compile", [False, True])
def test_cuda_agrees_with_reference(compile):
    for dtype, tol_one, tol_many in TWIN_TOLERANCES:
        ref, fast = twin_agents(device="cuda", dtype=dtype, compile=compile, cuda_graph=False)
        one, many = run_twins(ref, fast, 60)
        assert one <= tol_one, dtype
        assert many <= tol_many, dtype


@requires_cuda
def test_cuda_graph_agrees_with_reference():
    """The captured CUDA graph samples from the buffer and draws its own noise; replay the same
    batch and noise through the reference and compare."""
    for dtype, tol_one, tol_many in TWIN_TOLERANCES:
        ref, fast = twin_agents(device="cuda", dtype=dtype, compile=True, cuda_graph=True)
        assert fast.use_cuda_graph
        (one, _), (many, _) = run_graph_twins(ref, fast, 40)
        assert one <= tol_one, dtype
        assert many <= tol_many, dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_power_cap_changes_no_result(dtype):
    """The capped step count of Adam's beta ** step (no libm underflow path) gives the same
    bias corrections, bit for bit, at every step."""
    from fastsac.update import _power_step

    t = torch.arange(1, 200_000, dtype=dtype)
    for beta in (0.9, 0.999):
        capped = _power_step(t, beta)
        assert capped.max() < t.max()  # the cap is reached
        assert torch.equal(1 - torch.pow(beta, t), 1 - torch.pow(beta, capped))
        assert torch.equal(torch.sqrt(1 - torch.pow(beta, t)),
                           torch.sqrt(1 - torch.pow(beta, capped)))


def test_tiled_layers_rule():
    """One rule says which hidden layers run in fastsac::mm's tiles; the update and FastSAC's
    thread tuner both read it."""
    def cfg(sizes, tiled=True):
        return UpdateConfig(obs_dim=3, action_dim=1, hidden_sizes=sizes, gamma=0.99, tau=0.005,
                            target_entropy=-1.0, log_std_min=-20, log_std_max=2, tiled_mm=tiled)

    assert cfg((128, 128)).tiled_layers == (False, True)
    assert cfg((400, 128)).tiled_layers == (False, False)
    assert cfg((64, 128, 256)).tiled_layers == (False, True, False)
    assert cfg((128, 128), tiled=False).tiled_layers == (False, False)
