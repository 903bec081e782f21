"""The fast engine against the eager reference, update for update: SAC v1 and v2 (2 and 3
critics), at several widths and depths, float64 and float32, eager and compiled, and what the
engine reads from the optimizers (lr changes, schedulers, weight decay) without a recompile."""

import numpy as np
import pytest
import torch

import tests.envs  # noqa: F401  (registers fastsac-tests/PointMass-v0)
from fastsac import FastSAC, SACAgent, engine, make_env, ops
from fastsac.agreement import (
    copy_weights,
    max_adam_diff,
    max_param_diff,
    run_twins,
    tolerance,
    twin_agents,
)
from fastsac.engine import UpdateSpec
from tests.conftest import requires_cuda

VARIANTS = {"v1": {"variant": "v1"}, "v2x2": {"variant": "v2", "n_critics": 2},
            "v2x3": {"variant": "v2", "n_critics": 3}}
SHAPES = [(64,), (256, 256), (64, 48, 32)]


def _f64(variant: str, hidden_sizes, **fast_kwargs) -> None:
    ref, fast = twin_agents(dtype=torch.float64, hidden_sizes=hidden_sizes,
                            fast_kwargs=fast_kwargs, **VARIANTS[variant])
    one, many = run_twins(ref, fast, 60)
    assert one <= tolerance("update x1", torch.float64)
    assert many <= tolerance("update xN", torch.float64)
    assert max_adam_diff(ref, fast) <= tolerance("update xN", torch.float64)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("hidden_sizes", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_eager_engine_agrees_f64(variant, hidden_sizes):
    _f64(variant, hidden_sizes)


def _copy_of(ref, dtype, cls=SACAgent, **kwargs):
    agent = cls(make_env(ref.env.spec.id), 1000, ref.batch_size, device="cpu", dtype=dtype,
                variant=ref.variant, n_critics=ref.n_critics, hidden_sizes=ref.hidden_sizes,
                **kwargs)
    copy_weights(ref, agent)
    return agent


def check_float32(fast32: FastSAC, updates: int = 60) -> None:
    """float32 FastSAC against the float64 reference: within rounding after one update; after
    ``updates``, within 5e-4 or ten times the float32 reference's own distance from float64,
    whichever is larger (docs/design.md, "Agreement in float32")."""
    ref64 = _copy_of(fast32, torch.float64)
    copy_weights(ref64, fast32)
    ref32, again64 = _copy_of(ref64, torch.float32), _copy_of(ref64, torch.float64)
    one, fast_drift = run_twins(ref64, fast32, updates)
    _, ref_drift = run_twins(again64, ref32, updates)
    assert one <= tolerance("update x1", torch.float32)
    assert fast_drift <= max(tolerance("update xN", torch.float32), 10 * ref_drift), (
        fast_drift, ref_drift)


@pytest.mark.parametrize("variant", VARIANTS)
def test_eager_engine_agrees_f32_on_every_simd_build(simd, variant):
    check_float32(FastSAC(make_env(), 1000, 32, device="cpu", compile=False,
                          hidden_sizes=(64, 64), **VARIANTS[variant]))


@pytest.mark.parametrize("variant", ["v1", "v2x3"])
def test_eager_engine_agrees_f32_at_256(variant):
    check_float32(FastSAC(make_env("fastsac-tests/PointMass-v0"), 1000, 32, device="cpu",
                          compile=False, hidden_sizes=(256, 256), **VARIANTS[variant]))


@pytest.mark.compile
def test_compiled_engine_agrees_and_a_known_spec_compiles_nothing():
    """v1 (two graphs: with and without the policy step) and v2 with 3 critics, float32 and
    float64; an lr changed by hand mid-run reaches the compiled update without a recompile;
    a second agent of a known spec compiles nothing; no graph breaks."""
    torch._dynamo.reset()
    counters = torch._dynamo.utils.counters
    counters.clear()
    check_float32(FastSAC(make_env(), 1000, 32, device="cpu", compile=True,
                          hidden_sizes=(128, 128)))
    ref, fast = twin_agents(dtype=torch.float64, hidden_sizes=(64, 64), fast_kwargs={
        "compile": True}, variant="v2", n_critics=3)
    one, _ = run_twins(ref, fast, 30)
    assert one <= tolerance("update x1", torch.float64)
    for agent in (ref, fast):  # by hand, as a user would
        for name in ("actor_optimizer", "qf_2_optimizer", "alpha_optimizer"):
            getattr(agent, name).param_groups[0]["lr"] = 1e-3
    _, many = run_twins(ref, fast, 30, seed=1, start_step=31)
    assert many <= tolerance("update xN", torch.float64)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs == 3  # v1: policy and critic-only steps; v2 (policy_update_freq 1): one
    again = FastSAC(make_env(), 1000, 32, device="cpu", compile=True, hidden_sizes=(128, 128))
    run_twins(_copy_of(again, torch.float64), again, 4)
    assert counters["stats"]["unique_graphs"] == graphs
    assert not counters["graph_break"], "the update graph broke"


@pytest.mark.parametrize("variant", ["v1", "v2x2"])
def test_schedulers_and_adam_settings_reach_the_update(variant):
    """A torch lr scheduler, and betas, eps and weight decay edited by hand, on every optimizer
    of both agents: they keep agreeing, and the settings did change what was learned."""
    ref, fast = twin_agents(dtype=torch.float64, hidden_sizes=(32, 32), **VARIANTS[variant])
    plain_ref, plain_fast = twin_agents(dtype=torch.float64, hidden_sizes=(32, 32),
                                        **VARIANTS[variant])
    schedulers = []
    for agent in (ref, fast):
        for name in [s.optimizer for s in agent.slots if s.optimizer]:
            opt = getattr(agent, name)
            opt.param_groups[0].update(betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2)
            schedulers.append(torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7))
    for step in range(1, 11):
        run_twins(ref, fast, 1, seed=step, start_step=step)
        run_twins(plain_ref, plain_fast, 1, seed=step, start_step=step)
        for scheduler in schedulers:
            scheduler.step()
    assert max_param_diff(ref, fast) <= tolerance("update xN", torch.float64)
    assert max_adam_diff(ref, fast) <= tolerance("update xN", torch.float64)
    assert max_param_diff(fast, plain_fast) > 1e-4


def test_policy_update_freq_and_polyak_before_the_v_step():
    """v1: the actor steps on policy steps only; the V target blends V's parameters from before
    this update's V step (docs/design.md, section 2.1, step 6)."""
    ref, fast = twin_agents(dtype=torch.float64)
    actor = [p.detach().clone() for p in fast.actor.parameters()]
    v_before = [p.detach().clone() for p in fast.vf.parameters()]
    t_before = [p.detach().clone() for p in fast.vf_target.parameters()]
    run_twins(ref, fast, 1, start_step=1)  # not a policy step (policy_update_freq 2)
    assert all(torch.equal(p, q) for p, q in zip(fast.actor.parameters(), actor, strict=True))
    assert all(torch.equal(p, q) for p, q in zip(fast.vf_target.parameters(), t_before,
                                                 strict=True))
    v_before = [p.detach().clone() for p in fast.vf.parameters()]
    run_twins(ref, fast, 1, start_step=2)
    for t, v, t0 in zip(fast.vf_target.parameters(), v_before, t_before, strict=True):
        torch.testing.assert_close(t.detach(), fast.tau * v + (1 - fast.tau) * t0, rtol=0,
                                   atol=1e-15)
    assert max_param_diff(ref, fast) <= tolerance("update x1", torch.float64)


def test_an_update_is_traced_as_one_graph_with_the_fused_ops():
    graphs = []

    def record(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    for variant in ("v1", "v2"):
        fast = FastSAC(make_env(), 1000, 32, device="cpu", compile=False, variant=variant,
                       hidden_sizes=(128, 128))
        spec, state = fast.engine.spec, fast.engine._state
        compiled = torch.compile(lambda *t, s=spec: engine.sac_update(s, True, *t),
                                 backend=record, fullgraph=True)
        batch = fast.engine._batch({k: np.zeros((32, w)) for k, w in (
            ("obs", 3), ("next_obs", 3), ("acts", 1), ("rews", 1), ("done", 1))})
        with torch.no_grad():
            compiled(state, batch, torch.zeros(spec.impl.noise_draws, 32, 1))
    assert len(graphs) == 2
    for gm in graphs:  # torch.func.grad's body is a subgraph of the update's
        targets = {str(n.target).removesuffix(".default") for m in gm.modules()
                   if isinstance(m, torch.fx.GraphModule) for n in m.graph.nodes
                   if n.op == "call_function"}
        for op in ("fastsac.tanh_normal", "fastsac.tanh_normal_backward", "fastsac.polyak_",
                   *(("fastsac.mm",) if spec.tiled else ())):
            assert op in targets, f"{op} is not in the traced update"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_power_cap_changes_no_result(dtype):
    """The capped step of Adam's beta ** step gives the same bias corrections, bit for bit."""
    t = torch.arange(1, 200_000, dtype=dtype)
    for beta in (0.9, 0.999):
        b = torch.tensor(beta, dtype=dtype)
        capped = ops._power_step(t, b)
        assert capped.max() < t.max()  # the cap is reached
        assert torch.equal(1 - b ** t, 1 - b ** capped)
        assert torch.equal(torch.sqrt(1 - b ** t), torch.sqrt(1 - b ** capped))


def test_tiled_layers_rule():
    def spec(sizes, tiled=True):
        return UpdateSpec("v1", 2, 3, 1, sizes, 32, 0.99, 0.005, -1.0, tiled=tiled)

    assert spec((128, 128)).tiled_layers == (False, True)
    assert spec((400, 128)).tiled_layers == (False, False)
    assert spec((64, 128, 256)).tiled_layers == (False, True, False)
    assert spec((128, 128), tiled=False).tiled_layers == (False, False)


# ---- CUDA -----------------------------------------------------------------------------------
@requires_cuda
@pytest.mark.parametrize("variant", ["v1", "v2x3"])
@pytest.mark.parametrize("compile", [False, True])
def test_cuda_agrees_with_reference(compile, variant):
    for dtype in (torch.float32, torch.float64):
        ref, fast = twin_agents(device="cuda", dtype=dtype, fast_kwargs={
            "compile": compile, "cuda_graph": False}, **VARIANTS[variant])
        one, many = run_twins(ref, fast, 60)
        assert one <= tolerance("update x1", dtype) and many <= tolerance("update xN", dtype)


@requires_cuda
@pytest.mark.parametrize("variant", ["v1", "v2x3"])
def test_cuda_graph_agrees_with_reference(variant):
    from fastsac.agreement import run_graph_twins

    for dtype in (torch.float32, torch.float64):
        ref, fast = twin_agents(device="cuda", dtype=dtype, fast_kwargs={
            "compile": True, "cuda_graph": True}, **VARIANTS[variant])
        assert fast.engine.use_cuda_graph
        one, many = run_graph_twins(ref, fast, 40)
        assert one <= tolerance("update x1", dtype) and many <= tolerance("update xN", dtype)
