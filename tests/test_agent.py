"""The drop-in contract: the notebook's calling sequence, attribute and parameter names,
state_dict transfer, checkpoints, validation, and a short learning smoke test."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import tests.envs  # noqa: F401  (registers fastsac-tests/PointMass-v0)
from fastsac import ActionNormalizer, FastSAC, SACAgent, make_env
from fastsac.agreement import MODULES, max_param_diff
from fastsac.state import OPTIMIZERS

AGENTS = [SACAgent, FastSAC]
NOTEBOOK_ATTRS = ("actor", "qf_1", "qf_2", "vf", "vf_target", "log_alpha", "memory",
                  "total_step", "is_test", "actor_optimizer", "vf_optimizer", "qf_1_optimizer",
                  "qf_2_optimizer", "alpha_optimizer", "env", "batch_size", "gamma", "tau",
                  "initial_random_steps", "policy_update_freq", "target_entropy", "transition",
                  "device")


def make(agent_cls, env_id="Pendulum-v1", render_mode=None, **kwargs):
    env = ActionNormalizer(gym.make(env_id, render_mode=render_mode))
    kwargs.setdefault("device", "cpu")
    if agent_cls is FastSAC:
        kwargs.setdefault("compile", False)
    return agent_cls(env, 2000, 32, initial_random_steps=100, **kwargs)


@pytest.mark.parametrize("agent_cls", AGENTS)
@pytest.mark.parametrize("env_id,act_dim", [("Pendulum-v1", 1), ("fastsac-tests/PointMass-v0", 3)])
def test_notebook_calling_sequence(agent_cls, env_id, act_dim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    agent = make(agent_cls, env_id, render_mode="rgb_array", seed=0)
    for attr in NOTEBOOK_ATTRS:
        assert hasattr(agent, attr), attr
    agent.train(300)  # the notebook's call, default plotting
    assert agent.total_step == 300 and len(agent.memory) == 300
    assert (tmp_path / "fastsac_training.png").exists()  # no display: written to a file
    frames = agent.test()
    assert agent.is_test and len(frames) > 0 and frames[0].ndim == 3
    state, _ = agent.env.reset(seed=1)
    action = agent.select_action(state)
    assert action.shape == (act_dim,) and action.dtype == np.float32
    assert np.all(np.abs(action) <= 1)
    agent.is_test = False
    next_state, reward, done = agent.step(action)
    assert next_state.shape == state.shape and isinstance(reward, float)
    assert isinstance(done, bool)
    losses = agent.update_model()
    assert len(losses) == 4 and all(isinstance(x, torch.Tensor) for x in losses)


@pytest.mark.parametrize("agent_cls", AGENTS)
def test_test_returns_no_frames_without_rendering(agent_cls):
    agent = make(agent_cls, seed=0)
    assert agent.test() == []


def test_parameter_names_match_the_notebook():
    agent = make(FastSAC)
    assert list(dict(agent.actor.named_parameters())) == [
        "hidden1.weight", "hidden1.bias", "hidden2.weight", "hidden2.bias",
        "log_std_layer.weight", "log_std_layer.bias", "mu_layer.weight", "mu_layer.bias"]
    for name in ("qf_1", "qf_2", "vf", "vf_target"):
        assert list(dict(getattr(agent, name).named_parameters())) == [
            "hidden1.weight", "hidden1.bias", "hidden2.weight", "hidden2.bias", "out.weight",
            "out.bias"]


def test_same_seed_same_initial_weights():
    assert max_param_diff(make(SACAgent, seed=5), make(FastSAC, seed=5)) == 0.0


@pytest.mark.parametrize("src_cls,dst_cls", [(SACAgent, FastSAC), (FastSAC, SACAgent)])
def test_state_dicts_move_between_agents(src_cls, dst_cls):
    src, dst = make(src_cls, seed=1), make(dst_cls, seed=2)
    src.train(250, plot_path=None, progress=False)
    for name in MODULES:
        getattr(dst, name).load_state_dict(getattr(src, name).state_dict())
    with torch.no_grad():
        dst.log_alpha.copy_(src.log_alpha)
    assert max_param_diff(src, dst) == 0.0
    state = torch.randn(4, 3)
    eps = torch.randn(4, 1)
    with torch.no_grad():
        a1 = src.actor(state, eps)
        a2 = dst.actor(state, eps)
    for x, y in zip(a1, a2, strict=True):
        torch.testing.assert_close(x, y)


def _snapshot(agent):
    return {
        "modules": {n: {k: v.clone() for k, v in getattr(agent, n).state_dict().items()}
                    for n in MODULES},
        "log_alpha": agent.log_alpha.detach().clone(),
        "opt": {n: torch.cat([t.flatten() for s in getattr(agent, n).state_dict()["state"].values()
                              for t in s.values()]) for n in ("actor_optimizer", "vf_optimizer")},
        "step": agent.total_step,
    }


def _assert_same(a, b):
    assert a["step"] == b["step"]
    assert torch.equal(a["log_alpha"], b["log_alpha"])
    for n in MODULES:
        for k in a["modules"][n]:
            assert torch.equal(a["modules"][n][k], b["modules"][n][k]), (n, k)
    for n in a["opt"]:
        assert torch.equal(a["opt"][n], b["opt"][n]), n


@pytest.mark.parametrize("agent_cls", AGENTS)
def test_save_load_round_trip(agent_cls, tmp_path):
    agent = make(agent_cls, seed=0)
    agent.train(250, plot_path=None, progress=False)
    path = tmp_path / "ckpt.pt"
    agent.save(path, include_buffer=True)
    other = make(agent_cls, seed=9)
    other.load(path)
    _assert_same(_snapshot(agent), _snapshot(other))
    assert len(other.memory) == len(agent.memory) == 250
    assert other.history["score"] == agent.history["score"]
    assert other.total_step == 250


def test_fastsac_updates_after_load_use_loaded_state(tmp_path):
    """FastSAC's update works on the loaded tensors (its bindings are refreshed)."""
    a, b = make(FastSAC, seed=0), make(FastSAC, seed=7)
    a.train(200, plot_path=None, progress=False)
    a.save(tmp_path / "a.pt")
    b.load(tmp_path / "a.pt")
    rng = np.random.default_rng(0)
    from tests.conftest import random_batch

    batch = random_batch(rng, 32, 3, 1)
    noise = torch.randn(32, 1)
    a.update_model(batch, noise)
    b.update_model(batch, noise)
    assert max_param_diff(a, b) == 0.0


@pytest.mark.parametrize("agent_cls", AGENTS)
def test_failed_loads_leave_agent_unchanged(agent_cls, tmp_path):
    agent = make(agent_cls, seed=0)
    agent.train(200, plot_path=None, progress=False)
    good = tmp_path / "good.pt"
    agent.save(good)
    other = make(agent_cls, seed=4)
    other.train(150, plot_path=None, progress=False)
    before = _snapshot(other)

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint")
    mismatched = tmp_path / "mismatched.pt"
    make(agent_cls, "fastsac-tests/PointMass-v0").save(mismatched)

    for path, message in ((truncated, "not a readable"), (foreign, "not a fastsac checkpoint"),
                          (text, "not a readable"), (mismatched, "action_dim")):
        with pytest.raises(ValueError, match=message):
            other.load(path)
        _assert_same(before, _snapshot(other))
    with pytest.raises(FileNotFoundError):
        other.load(tmp_path / "missing.pt")


def test_save_is_atomic(tmp_path, monkeypatch):
    agent = make(FastSAC, seed=0)
    path = tmp_path / "ckpt.pt"
    agent.save(path)
    original = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        agent.save(path)
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


# ---- validation ------------------------------------------------------------------------------
class _SpaceEnv(gym.Env):
    def __init__(self, observation_space, action_space):
        self.observation_space, self.action_space = observation_space, action_space


BOX3 = spaces.Box(-1, 1, shape=(3,))


@pytest.mark.parametrize("obs_space,act_space,error,message", [
    (BOX3, spaces.Discrete(3), TypeError, "continuous Box action"),
    (BOX3, spaces.Box(-1, 1, shape=(2, 2)), ValueError, "action space must be flat"),
    (BOX3, spaces.Box(-np.inf, np.inf, shape=(2,)), ValueError, "bounded"),
    (spaces.Discrete(4), BOX3, TypeError, "Box observation"),
    (spaces.Box(0, 1, shape=(4, 4)), BOX3, ValueError, "observation space must be flat"),
])
@pytest.mark.parametrize("agent_cls", AGENTS)
def test_bad_spaces(agent_cls, obs_space, act_space, error, message):
    with pytest.raises(error, match=message):
        agent_cls(_SpaceEnv(obs_space, act_space), 100, 10, device="cpu")


@pytest.mark.parametrize("kwargs,error,message", [
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": 101}, ValueError, "batch_size"),
    ({"memory_size": 0}, ValueError, "memory_size"),
    ({"gamma": 0.0}, ValueError, "gamma"),
    ({"gamma": 1.5}, ValueError, "gamma"),
    ({"tau": 0.0}, ValueError, "tau"),
    ({"tau": 1.01}, ValueError, "tau"),
    ({"policy_update_freq": 0}, ValueError, "policy_update_freq"),
    ({"batch_size": 2.0}, TypeError, "batch_size"),
    ({"dtype": torch.float16}, TypeError, "dtype"),
    ({"device": "tpu"}, ValueError, "device must be"),
    ({"device": "meta"}, ValueError, "device must be"),
    ({"initial_random_steps": -1}, ValueError, "initial_random_steps"),
])
@pytest.mark.parametrize("agent_cls", AGENTS)
def test_bad_arguments(agent_cls, kwargs, error, message):
    args = {"memory_size": 100, "batch_size": 10} | kwargs
    with pytest.raises(error, match=message):
        agent_cls(make_env(), **args)


def test_gamma_and_tau_of_one_are_allowed():
    FastSAC(make_env(), 100, 10, gamma=1.0, tau=1.0, device="cpu", compile=False)


def test_seeded_runs_repeat():
    a, b = make(FastSAC, seed=11), make(FastSAC, seed=11)
    a.train(220, plot_path=None, progress=False)
    b.train(220, plot_path=None, progress=False)
    assert a.history["score"] == b.history["score"]
    assert max_param_diff(a, b) == 0.0


# ---- learning ---------------------------------------------------------------------------------
def test_learning_smoke():
    """A few thousand frames on an easy task: the policy's returns clearly beat random ones."""
    env = make_env("fastsac-tests/PointMass-v0")
    agent = FastSAC(env, 10_000, 64, initial_random_steps=400, device="cpu", seed=0,
                    compile=False)
    agent.train(3000, plot_path=None, progress=False)
    scores = agent.history["score"]
    random_phase = np.mean(scores[:20])  # the first 400 frames act randomly
    learned = np.mean(scores[-20:])
    assert learned > random_phase + 30, (random_phase, learned)
    evaluated = agent.evaluate(10, env=make_env("fastsac-tests/PointMass-v0"))
    assert np.mean(evaluated) > random_phase + 30


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "fastsac-tests/PointMass-v0"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_select_action_is_the_actor_sample(env_id, dtype):
    """FastSAC's one-state path (fastsac::policy_action on CPU) is the actor's sample for the
    same noise."""
    agent = FastSAC(make_env(env_id), 1000, 32, initial_random_steps=0, device="cpu", seed=0,
                    dtype=dtype, compile=False)
    state = np.linspace(-0.5, 0.7, agent.obs_dim).astype(np.float32)
    before = agent.generator.get_state()
    action = agent.select_action(state)
    agent.generator.set_state(before)
    eps = agent._noise((agent.action_dim,))
    with torch.no_grad():
        want, _ = agent.actor(torch.as_tensor(state, dtype=dtype), eps)
    assert action.shape == (agent.action_dim,) and action.dtype == np.float32
    tol = 1e-6 if dtype == torch.float32 else 1e-7
    np.testing.assert_allclose(action, want.float().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "fast"])
def test_bad_update_threads(threads):
    with pytest.raises(ValueError, match="update_threads"):
        FastSAC(make_env(), 100, 10, device="cpu", compile=False, update_threads=threads)


def test_replaced_parameters_are_refused():
    """FastSAC updates its own flat buffers; swapped-out parameter tensors are caught."""
    agent = make(FastSAC, seed=0)
    agent.actor.hidden1.weight = torch.nn.Parameter(agent.actor.hidden1.weight.detach().clone())
    with pytest.raises(RuntimeError, match="parameters were replaced"):
        agent.update_model(random_batch_for(agent))


def test_parameters_replaced_after_updates_are_refused():
    """The check is not only at the first bind: the next update after a replacement raises."""
    agent = make(FastSAC, seed=0)
    agent.update_model(random_batch_for(agent))
    agent.qf_2.hidden2.bias = torch.nn.Parameter(agent.qf_2.hidden2.bias.detach().clone())
    with pytest.raises(RuntimeError, match="qf_2's parameters were replaced"):
        agent.update_model(random_batch_for(agent))
    with pytest.raises(RuntimeError, match="qf_2's parameters were replaced"):
        agent.train(10, plot_path=None, progress=False)


def test_replaced_optimizer_is_refused():
    agent = make(FastSAC, seed=0)
    agent.vf_optimizer = torch.optim.Adam(agent.vf.parameters(), lr=agent.lr)
    with pytest.raises(RuntimeError, match="vf_optimizer was replaced"):
        agent.update_model(random_batch_for(agent))


def _updated(agent_cls, updates, seed=0, **kwargs):
    agent = make(agent_cls, seed=seed, dtype=torch.float64, **kwargs)
    for i in range(updates):
        agent.update_model(random_batch_for(agent), torch.randn(32, 1, generator=torch.Generator()
                                                               .manual_seed(i)),
                           policy_step=i % 2 == 1)  # the first is no policy step
    return agent


def _step_counts(agent):
    return {name: sorted({float(s["step"]) for s in getattr(agent, name).state_dict()["state"]
                          .values()}) for name in OPTIMIZERS}


def test_optimizer_states_loaded_directly_reach_the_update():
    """optimizer.load_state_dict (the notebook's way) puts the Adam state where FastSAC's
    update reads it: the loading agent then updates exactly as the saved one."""
    src, dst = _updated(FastSAC, 3), _updated(FastSAC, 1, seed=5)
    for name in MODULES:
        getattr(dst, name).load_state_dict(getattr(src, name).state_dict())
    with torch.no_grad():
        dst.log_alpha.copy_(src.log_alpha)
    for name in OPTIMIZERS:
        getattr(dst, name).load_state_dict(getattr(src, name).state_dict())
    assert _step_counts(dst) == _step_counts(src)
    batch, noise = random_batch_for(src), torch.randn(32, 1, dtype=torch.float64)
    for agent in (src, dst):
        agent.update_model(batch, noise, policy_step=True)
    assert max_param_diff(src, dst) == 0.0
    # three updates, one of them a policy step, then one more policy step
    assert _step_counts(dst) == _step_counts(src) == {n: [2.0 if n == "actor_optimizer" else 4.0]
                                                      for n in OPTIMIZERS}


@pytest.mark.parametrize("reference_updates", [0, 1])  # 1: Adam state but the actor's
def test_reference_checkpoint_without_adam_state_loads_into_fastsac(tmp_path,
                                                                    reference_updates):
    """A reference agent creates Adam state lazily (none before its first update, none for the
    actor before its first policy step): FastSAC starts those at step 0, learns as the
    reference does from there, and its own checkpoints keep the state it builds."""
    ref = _updated(SACAgent, reference_updates)
    ref.save(tmp_path / "ref.pt")
    fast = make(FastSAC, seed=3, dtype=torch.float64)
    fast.load(tmp_path / "ref.pt")
    for agent in (ref, fast):
        for i in range(4):
            agent.update_model(random_batch_for(agent),
                               torch.randn(32, 1, dtype=torch.float64,
                                           generator=torch.Generator().manual_seed(10 + i)),
                               policy_step=i % 2 == 1)
    assert max_param_diff(ref, fast) < 1e-10
    assert _step_counts(fast) == _step_counts(ref)
    fast.save(tmp_path / "fast.pt")
    again = make(FastSAC, seed=4, dtype=torch.float64)
    again.load(tmp_path / "fast.pt")
    assert _step_counts(again) == _step_counts(ref)


def test_adam_settings_other_than_the_updates_are_refused(tmp_path):
    """FastSAC's update has its Adam settings compiled in: an optimizer saying otherwise (a
    changed lr, a schedule, a checkpoint of another lr) is refused, never silently ignored."""
    agent = make(FastSAC, seed=0)
    agent.actor_optimizer.param_groups[0]["lr"] = 1e-3
    with pytest.raises(RuntimeError, match="lr=0.001, but FastSAC's update is built for lr=0.0003"):
        agent.update_model(random_batch_for(agent))
    other = make(SACAgent, seed=0, lr=1e-3)
    other.save(tmp_path / "lr.pt")
    agent = make(FastSAC, seed=0)
    before = _snapshot(agent)
    with pytest.raises(ValueError, match="actor_optimizer: Adam lr=0.001"):
        agent.load(tmp_path / "lr.pt")
    _assert_same(before, _snapshot(agent))
    with pytest.raises(ValueError, match="qf_1_optimizer: Adam lr=0.001"):
        agent.qf_1_optimizer.load_state_dict(other.qf_1_optimizer.state_dict())
    make(FastSAC, seed=0, lr=1e-3).load(tmp_path / "lr.pt")  # built for it: loads


def test_a_replaced_layer_is_refused():
    agent = make(FastSAC, seed=0)
    agent.update_model(random_batch_for(agent))
    agent.actor.mu_layer = torch.nn.Linear(128, 1)
    with pytest.raises(RuntimeError, match="actor's parameters were replaced"):
        agent.update_model(random_batch_for(agent))
    fresh = make(FastSAC, seed=0)  # before the first update too
    fresh.vf.hidden1 = torch.nn.Linear(3, 128)
    with pytest.raises(RuntimeError, match="vf's parameters were replaced"):
        fresh.update_model(random_batch_for(fresh))


def test_parameters_rewrapped_over_the_same_memory_are_refused():
    """New Parameter objects over the buffers' own memory: the optimizer still holds the old
    ones (the reference would stop training the new ones), so FastSAC refuses them too."""
    agent = make(FastSAC, seed=0)
    agent.vf.load_state_dict(agent.vf.state_dict(), assign=True)
    with pytest.raises(RuntimeError, match="vf's parameters were replaced"):
        agent.update_model(random_batch_for(agent))


@pytest.mark.parametrize("bad,message", [
    ("shape", "state 'exp_avg' of parameter 2 does not fit"),
    ("rmsprop", "state 'exp_avg' of parameter 0 does not fit"),
    ("malformed", "not an optimizer state"),
])
def test_unfit_optimizer_states_are_refused_before_anything_changes(bad, message):
    agent = _updated(FastSAC, 3)
    before = _snapshot(agent), _step_counts(agent)
    if bad == "shape":  # a network of other widths
        saved = _updated(FastSAC, 3, hidden_sizes=(128, 64)).qf_1_optimizer.state_dict()
    elif bad == "rmsprop":
        rms = torch.optim.RMSprop(agent.qf_1.parameters(), lr=agent.lr, eps=1e-8)
        rms.state = {p: {"step": torch.tensor(1.0), "square_avg": torch.zeros_like(p)}
                     for p in agent.qf_1.parameters()}
        saved = rms.state_dict()
        for group in saved["param_groups"]:
            group["betas"] = (0.9, 0.999)
    else:
        saved = {"state": {}}
    with pytest.raises(ValueError, match=message):
        agent.qf_1_optimizer.load_state_dict(saved)
    after = _snapshot(agent), _step_counts(agent)
    _assert_same(before[0], after[0])
    assert before[1] == after[1]
    agent.update_model(random_batch_for(agent))  # still bound: the update runs


@pytest.mark.parametrize("updates", [0, 3])
def test_a_deep_copy_learns_as_its_original_does(updates):
    """copy.deepcopy (e.g. to keep the best agent so far): the copy's modules show what its
    update trains, its optimizers' loads reach its buffers, and it updates exactly as the
    original; the original is untouched by the copy's updates."""
    import copy

    agent = _updated(FastSAC, updates)
    twin = copy.deepcopy(agent)
    before = _snapshot(agent)
    batch, noise = random_batch_for(agent), torch.randn(32, 1, dtype=torch.float64)
    twin.update_model(batch, noise, policy_step=True)
    _assert_same(before, _snapshot(agent))
    assert max_param_diff(agent, twin) > 0  # the copy's modules moved
    agent.update_model(batch, noise, policy_step=True)
    assert max_param_diff(agent, twin) == 0.0
    src = _updated(FastSAC, 5)
    twin.vf_optimizer.load_state_dict(src.vf_optimizer.state_dict())
    assert twin._flat["vf"].steps.tolist() == [5.0] * 6
    assert copy.copy(twin).vf_optimizer is twin.vf_optimizer  # a shallow copy adds no hooks
    assert len(twin.vf_optimizer._optimizer_load_state_dict_post_hooks) == 1


def test_a_deep_copy_trains_from_its_own_buffer_as_its_original():
    """train() samples the replay buffer into the host batch the update reads: a copy's
    sampling (its buffer's rows, views and batch arrays) must be its own and the same."""
    import copy

    agent = make(FastSAC, seed=0, dtype=torch.float64)
    agent.train(150, plot_path=None, progress=False)
    agent.env = ActionNormalizer(gym.make("Pendulum-v1"))  # train() closed the plain env
    agent.env.reset(seed=5)  # copied with it: both then continue one env stream
    twin = copy.deepcopy(agent)
    assert twin.memory.obs_buf.base is not None and np.shares_memory(twin.memory.obs_buf,
                                                                      twin.memory._data)
    for a in (agent, twin):
        a.train(120, plot_path=None, progress=False)
    assert max_param_diff(agent, twin) == 0.0 and len(twin.memory) == 270


def test_a_deep_copy_keeps_a_refused_edit_refused():
    import copy

    agent = make(FastSAC, seed=0)
    agent.qf_1.out.bias.data = torch.full_like(agent.qf_1.out.bias, 7.0)
    twin = copy.deepcopy(agent)
    assert float(twin.qf_1.out.bias.detach()) == 7.0  # shows what the original shows
    with pytest.raises(RuntimeError, match="qf_1's parameters were replaced"):
        twin.update_model(random_batch_for(twin))


def test_optimizer_edits_are_refused_or_taken_on():
    """Edits the update cannot run raise; an Adam reset (``state.clear()``, a common idiom)
    is taken on, as torch's Adam would: zero moments, step 0."""
    agent = _updated(FastSAC, 2)
    agent.qf_1_optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))]})
    with pytest.raises(RuntimeError, match="qf_1's parameters were replaced"):
        agent.update_model(random_batch_for(agent))
    agent = _updated(FastSAC, 2)
    agent.vf.hidden2.bias.data = agent.vf.hidden1.bias.data  # two parameters on one slice
    with pytest.raises(RuntimeError, match="vf's parameters were replaced"):
        agent.update_model(random_batch_for(agent))
    agent = _updated(FastSAC, 2)
    agent.vf_optimizer.state.clear()
    agent.update_model(random_batch_for(agent), policy_step=False)
    assert agent._flat["vf"].steps.tolist() == [1.0] * 6
    assert _step_counts(agent)["vf_optimizer"] == [1.0]
    agent = _updated(FastSAC, 2)  # an entry's count replaced by hand: counts now differ
    first = next(iter(agent.qf_2_optimizer.state.values()))
    first["step"] = torch.tensor(0.0)
    with pytest.raises(RuntimeError, match="different Adam step counts"):  # train(): in full
        agent.train(10, plot_path=None, progress=False)


def test_frozen_layers_are_refused_but_a_frozen_v_target_is_fine():
    """The reference's Adam would skip a frozen layer; FastSAC's update trains them all, so
    it refuses instead of training what the user froze."""
    agent = _updated(FastSAC, 1)
    agent.vf_target.requires_grad_(False)  # the usual for a target network: no optimizer
    agent.update_model(random_batch_for(agent))
    agent.actor.hidden1.requires_grad_(False)
    with pytest.raises(RuntimeError, match="actor has parameters with requires_grad=False"):
        agent.update_model(random_batch_for(agent))
    with pytest.raises(RuntimeError, match="freezing layers is not supported"):
        agent.train(10, plot_path=None, progress=False)


@pytest.mark.parametrize("how", ["clear the state", "empty each entry"])
def test_an_adam_reset_by_hand_learns_as_the_reference(how):
    """The same reset in both agents, then the same updates: they agree as before (float64)."""
    ref, fast = _updated(SACAgent, 3), _updated(FastSAC, 3)
    assert max_param_diff(ref, fast) < 1e-10
    for agent in (ref, fast):
        for name in ("vf_optimizer", "actor_optimizer"):
            state = getattr(agent, name).state
            if how == "clear the state":
                state.clear()
            else:
                for entry in state.values():
                    entry.clear()
    for i in range(4):
        noise = torch.randn(32, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
        for agent in (ref, fast):
            agent.update_model(random_batch_for(agent), noise, policy_step=i % 2 == 1)
    assert max_param_diff(ref, fast) < 1e-10
    assert _step_counts(ref) == _step_counts(fast)


def test_a_cuda_agents_checkpoint_loads_into_a_cpu_reference(tmp_path):
    """The saved groups' ``capturable=True`` (a CUDA FastSAC's Adam) does not travel: the
    loading agent keeps its own, so torch's Adam on CPU still steps."""
    src = _updated(FastSAC, 2)
    src.save(tmp_path / "a.pt")
    state = torch.load(tmp_path / "a.pt", weights_only=False)
    for name in OPTIMIZERS:
        for group in state["optimizers"][name]["param_groups"]:
            group["capturable"] = True
    torch.save(state, tmp_path / "a.pt")
    ref = make(SACAgent, seed=1, dtype=torch.float64)
    ref.load(tmp_path / "a.pt")
    assert not ref.actor_optimizer.param_groups[0]["capturable"]
    ref.update_model(random_batch_for(ref), policy_step=True)


def test_adam_settings_equal_in_another_form_are_accepted():
    """A list of betas (a state from JSON) or a tensor lr of the same value: accepted, and
    written back as the update's own values."""
    src, dst = _updated(FastSAC, 2), _updated(FastSAC, 1)
    saved = src.actor_optimizer.state_dict()
    saved["param_groups"][0]["betas"] = [0.9, 0.999]
    saved["param_groups"][0]["lr"] = torch.tensor(3e-4)
    dst.actor_optimizer.load_state_dict(saved)
    assert dst.actor_optimizer.param_groups[0]["betas"] == (0.9, 0.999)
    assert dst.actor_optimizer.param_groups[0]["lr"] == 3e-4
    dst.update_model(random_batch_for(dst))  # a load's new groups: checked in full once
    assert dst._bindings.unchanged(dst)  # then the identity-fast check holds again
    dst.qf_2_optimizer.param_groups[0]["betas"] = (0.8, 0.999)
    with pytest.raises(RuntimeError, match=r"betas=\(0.8, 0.999\).*always runs with betas"):
        dst.update_model(random_batch_for(dst))


def test_unequal_adam_step_counts_are_refused():
    src = _updated(FastSAC, 2)
    saved = src.vf_optimizer.state_dict()
    saved["state"][0]["step"] = torch.tensor(7.0)
    dst = make(FastSAC, seed=1, dtype=torch.float64)
    with pytest.raises(ValueError, match="different Adam step counts"):
        dst.vf_optimizer.load_state_dict(saved)


def random_batch_for(agent):
    from tests.conftest import random_batch

    return random_batch(np.random.default_rng(0), agent.batch_size, agent.obs_dim,
                        agent.action_dim)


def test_action_normalizer_maps_and_reverses():
    env = ActionNormalizer(gym.make("Pendulum-v1"))  # torque bounds [-2, 2]
    assert env.action_space.low.tolist() == [-1.0] and env.action_space.high.tolist() == [1.0]
    np.testing.assert_allclose(env.action(np.array([-1.0, 0.0, 0.5, 1.0, 3.0])),
                               [-2.0, 0.0, 1.0, 2.0, 2.0])  # clipped to the env's bounds
    np.testing.assert_allclose(env.reverse_action(np.array([-2.0, 1.0, 5.0])), [-1.0, 0.5, 1.0])
    env.action_space.seed(0)
    assert all(-1 <= env.action_space.sample()[0] <= 1 for _ in range(100))
