"""SAC at any width and depth: agreement with the reference at the shapes people train, the
naming of deeper nets, state dicts and checkpoints across shapes, many compiled agents of
different shapes in one process, and the validation of the architecture arguments."""

import numpy as np
import pytest
import torch

import tests.envs  # noqa: F401  (registers fastsac-tests/PointMass-v0)
from fastsac import FastSAC, SACAgent, make_env
from fastsac.agreement import copy_weights, max_adam_diff, max_param_diff, run_twins, twin_agents
from fastsac.check_cli import update_tolerances
from fastsac.state import MODULES

SHAPES = [(64,), (256, 256), (400, 300), (256, 256, 256)]
TOLERANCES = {dtype: update_tolerances(dtype) for dtype in (torch.float32, torch.float64)}


@pytest.mark.parametrize("hidden_sizes", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_eager_agrees_at_every_shape_f64(simd, hidden_sizes):
    """60 updates of FastSAC's explicit backward against the reference's autograd, float64."""
    tol_one, tol_many = TOLERANCES[torch.float64]
    ref, fast = twin_agents(dtype=torch.float64, compile=False, hidden_sizes=hidden_sizes)
    one, many = run_twins(ref, fast, 60)
    assert one <= tol_one
    assert many <= tol_many
    assert max_adam_diff(ref, fast) <= tol_many


def _copy_of(ref64: SACAgent, agent_cls, dtype: torch.dtype, **kwargs):
    """An agent of ``agent_cls`` in ``dtype`` with ``ref64``'s env, batch and initial weights."""
    agent = agent_cls(make_env(ref64.env.spec.id), 1000, ref64.batch_size, device="cpu",
                      dtype=dtype, hidden_sizes=ref64.hidden_sizes, **kwargs)
    copy_weights(ref64, agent)
    return agent


def check_float32(fast32: FastSAC, updates: int = 60) -> None:
    """float32 FastSAC against the float64 reference: within rounding after one update; after
    ``updates``, within 5e-4 (the 128-128 bound) or ten times the float32 reference's own
    distance from float64, whichever is larger. Why the second: Adam's first steps are about
    lr * sign(grad), so rounding that tips a tiny gradient moves a weight by up to lr, and at
    256 wide, deeper or at small batches the float32 reference itself ends 1e-4-1e-3 away from
    float64 after 60 updates."""
    ref64 = SACAgent(make_env(fast32.env.spec.id), 1000, fast32.batch_size, device="cpu",
                     dtype=torch.float64, seed=0, hidden_sizes=fast32.hidden_sizes)
    copy_weights(ref64, fast32)
    ref32 = _copy_of(ref64, SACAgent, torch.float32)
    ref64_again = _copy_of(ref64, SACAgent, torch.float64)
    one, fast_drift = run_twins(ref64, fast32, updates)
    _, ref_drift = run_twins(ref64_again, ref32, updates)
    assert one <= TOLERANCES[torch.float32][0]
    assert fast_drift <= max(TOLERANCES[torch.float32][1], 10 * ref_drift), (fast_drift,
                                                                             ref_drift)


@pytest.mark.parametrize("hidden_sizes", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_eager_agrees_at_every_shape_f32(simd, hidden_sizes):
    check_float32(FastSAC(make_env(), 1000, 32, device="cpu", compile=False,
                          hidden_sizes=hidden_sizes))


@pytest.mark.compile
def test_compiled_agents_of_many_shapes_agree_and_never_recompile(monkeypatch):
    """Agents of different batch sizes, obs/action dims, widths, depths, dtypes and thread
    counts, created one after another in one process, each checked against the reference; the
    thread tuner's candidates are forced to 1, 2, 4 and 16 (a 16-core machine's: where the
    update has tiled products, the tuner probes them all); an agent of a shape seen before
    compiles nothing."""
    import fastsac.agent

    monkeypatch.setattr(fastsac.agent, "thread_candidates", lambda available: (1, 2, 4, 16))
    torch._dynamo.reset()
    counters = torch._dynamo.utils.counters
    counters.clear()
    agents = [  # (env, hidden_sizes, batch, dtype, update_threads)
        ("Pendulum-v1", (64,), 32, torch.float64, 1),
        ("fastsac-tests/PointMass-v0", (256, 256), 48, torch.float64, 2),
        ("Pendulum-v1", (400, 300), 32, torch.float64, "auto"),
        ("Pendulum-v1", (256, 256, 256), 64, torch.float64, 4),
        ("fastsac-tests/PointMass-v0", (128, 128), 16, torch.float32, "auto"),
        ("Pendulum-v1", (128, 128), 32, torch.float32, 16),
    ]
    threads = torch.get_num_threads()
    for env_id, sizes, batch, dtype, update_threads in agents:
        fast = FastSAC(make_env(env_id), 1000, batch, device="cpu", dtype=dtype, compile=True,
                       hidden_sizes=sizes, update_threads=update_threads)
        # 60 updates: past the tuner's probe of every candidate, where there is a tuner
        if dtype == torch.float32:
            check_float32(fast)
        else:
            ref = _copy_of(fast, SACAgent, torch.float64)
            one, many = run_twins(ref, fast, 60)
            assert one <= TOLERANCES[dtype][0], sizes
            assert many <= TOLERANCES[dtype][1], sizes
        if fast._thread_tuner is not None:
            assert fast._thread_tuner.candidates == (1, 2, 4, 16)
            assert not fast._thread_tuner.probing
        assert torch.get_num_threads() == threads  # restored after every update
    frames = counters["stats"]["unique_graphs"]
    assert frames == 2 * len(agents)  # a policy-step and a critic-only graph each
    assert not counters["graph_break"], "the update graph broke"
    # the first shape again: nothing to compile
    again = FastSAC(make_env(), 1000, 32, device="cpu", dtype=torch.float64, compile=True,
                    hidden_sizes=(64,), update_threads=1)
    run_twins(_copy_of(again, SACAgent, torch.float64), again, 4)
    assert counters["stats"]["unique_graphs"] == frames


def test_deeper_nets_are_named_hidden1_to_n():
    agent = FastSAC(make_env(), 1000, 32, compile=False, device="cpu",
                    hidden_sizes=(32, 16, 8))
    assert list(dict(agent.actor.named_parameters())) == [
        "hidden1.weight", "hidden1.bias", "hidden2.weight", "hidden2.bias", "hidden3.weight",
        "hidden3.bias", "log_std_layer.weight", "log_std_layer.bias", "mu_layer.weight",
        "mu_layer.bias"]
    assert agent.qf_1.hidden1.in_features == 4 and agent.qf_1.hidden3.out_features == 8
    assert list(dict(agent.vf.named_parameters()))[-2:] == ["out.weight", "out.bias"]
    assert agent.actor.hidden2.weight.shape == (16, 32)


@pytest.mark.parametrize("hidden_sizes", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_state_dicts_and_checkpoints_move_between_agents(hidden_sizes, tmp_path):
    ref = SACAgent(make_env(), 1000, 32, device="cpu", seed=0, hidden_sizes=hidden_sizes)
    fast = FastSAC(make_env(), 1000, 32, device="cpu", seed=1, compile=False,
                   hidden_sizes=hidden_sizes)
    copy_weights(ref, fast)
    assert max_param_diff(ref, fast) == 0.0
    run_twins(ref, fast, 4)  # Adam state on both sides
    fast.save(tmp_path / "fast.pt")
    ref.save(tmp_path / "ref.pt")
    into_ref = SACAgent(make_env(), 1000, 32, device="cpu", seed=5, hidden_sizes=hidden_sizes)
    into_fast = FastSAC(make_env(), 1000, 32, device="cpu", seed=5, compile=False,
                        hidden_sizes=hidden_sizes)
    into_ref.load(tmp_path / "fast.pt")
    into_fast.load(tmp_path / "ref.pt")
    assert max_param_diff(into_ref, fast) == 0.0
    assert max_param_diff(into_fast, ref) == 0.0
    assert max_adam_diff(into_fast, ref) == 0.0
    state = torch.load(tmp_path / "fast.pt", weights_only=True)
    assert state["hidden_sizes"] == list(hidden_sizes)
    for name in MODULES:  # the modules' state_dicts load straight across
        getattr(into_fast, name).load_state_dict(getattr(into_ref, name).state_dict())


def test_checkpoint_of_another_shape_is_refused(tmp_path):
    wide = FastSAC(make_env(), 1000, 32, device="cpu", compile=False, hidden_sizes=(256, 256))
    wide.save(tmp_path / "wide.pt")
    narrow = FastSAC(make_env(), 1000, 32, device="cpu", seed=3, compile=False)
    before = [p.detach().clone() for p in narrow.actor.parameters()]
    with pytest.raises(ValueError, match=r"hidden_sizes=\(256, 256\).*hidden_sizes=\(128, 128\)"):
        narrow.load(tmp_path / "wide.pt")
    for p, q in zip(narrow.actor.parameters(), before, strict=True):
        assert torch.equal(p, q)  # untouched


def test_lr_and_target_entropy_reach_the_update():
    """Both agents use the given lr and target entropy, and agree with each other."""
    ref, fast = twin_agents(dtype=torch.float64, compile=False, lr=1e-3, target_entropy=-0.5)
    assert ref.lr == fast.lr == 1e-3 and ref.target_entropy == fast.target_entropy == -0.5
    for opt in (fast.actor_optimizer, ref.qf_1_optimizer, fast.alpha_optimizer):
        assert opt.param_groups[0]["lr"] == 1e-3
    _, many = run_twins(ref, fast, 20)
    assert many <= TOLERANCES[torch.float64][1]
    default, _ = twin_agents(dtype=torch.float64, compile=False)
    assert default.lr == 3e-4 and default.target_entropy == -1.0
    changed = [p.detach().clone() for p in fast.qf_1.parameters()]
    slow_ref, slow_fast = twin_agents(dtype=torch.float64, compile=False)
    run_twins(slow_ref, slow_fast, 20)
    moved = max((p - q).abs().max().item() for p, q in
                zip(changed, slow_fast.qf_1.parameters(), strict=True))
    assert moved > 0  # another lr lands elsewhere


@pytest.mark.parametrize("agent_cls", [SACAgent, FastSAC])
@pytest.mark.parametrize("kwargs,error,match", [
    ({"hidden_sizes": ()}, ValueError, "at least one"),
    ({"hidden_sizes": (256, 0)}, ValueError, "positive"),
    ({"hidden_sizes": (256, -3)}, ValueError, "positive"),
    ({"hidden_sizes": (256.0, 256)}, TypeError, "ints"),
    ({"hidden_sizes": (True, 4)}, TypeError, "ints"),
    ({"hidden_sizes": 256}, TypeError, "sequence"),
    ({"hidden_sizes": "256"}, TypeError, "sequence"),
    ({"lr": 0.0}, ValueError, "lr"),
    ({"lr": -1e-3}, ValueError, "lr"),
    ({"lr": float("nan")}, ValueError, "lr"),
    ({"lr": "3e-4"}, TypeError, "lr"),
    ({"target_entropy": float("inf")}, ValueError, "target_entropy"),
    ({"target_entropy": "auto"}, TypeError, "target_entropy"),
])
def test_bad_architecture_arguments(agent_cls, kwargs, error, match):
    extra = {"compile": False} if agent_cls is FastSAC else {}
    with pytest.raises(error, match=match):
        agent_cls(make_env(), 1000, 32, device="cpu", **kwargs, **extra)


def test_numpy_ints_are_fine_as_sizes():
    agent = SACAgent(make_env(), 1000, 32, device="cpu", hidden_sizes=np.array([8, 4]))
    assert agent.hidden_sizes == (8, 4)


@pytest.mark.parametrize("hidden_sizes", [(64,), (256, 256, 256), (7, 5)])
def test_policy_action_at_any_depth(hidden_sizes):
    """fastsac::policy_action (one state, one call) equals the actor's own forward."""
    agent = FastSAC(make_env(), 1000, 32, device="cpu", compile=False, seed=0,
                    hidden_sizes=hidden_sizes, dtype=torch.float64)
    state = torch.randn(3, dtype=torch.float64)
    eps = torch.randn(1, dtype=torch.float64)
    params = list(agent.actor.parameters())
    got = torch.ops.fastsac.policy_action(state, params, eps, -20.0, 2.0)
    want, _ = agent.actor(state.unsqueeze(0), eps.unsqueeze(0))
    torch.testing.assert_close(got, want.detach().reshape(-1), rtol=0, atol=1e-12)
    with pytest.raises(RuntimeError, match="hidden1"):
        torch.ops.fastsac.policy_action(torch.randn(5, dtype=torch.float64), params, eps,
                                        -20.0, 2.0)
