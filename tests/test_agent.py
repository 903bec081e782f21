"""The agents' API: the notebook's calling sequence and names, SB3's habits (predict,
deterministic evaluation, settings that travel with checkpoints), actions rescaled to the env's
bounds, the typed signature, optimizers that behave like torch's, and bad input."""

import copy
import inspect

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import tests.envs  # noqa: F401  (registers the test envs)
from fastsac import ConfigError, FastSAC, SACAgent, SACConfig, load_policy, make_env
from fastsac.agreement import copy_weights, max_adam_diff, max_param_diff, run_twins, twin_agents
from fastsac.errors import CheckpointError
from fastsac.state import modules
from tests.envs import RecordingBoxEnv

AGENTS = [SACAgent, FastSAC]
NOTEBOOK_ATTRS = ("actor", "qf_1", "qf_2", "vf", "vf_target", "log_alpha", "memory",
                  "total_step", "is_test", "actor_optimizer", "vf_optimizer", "qf_1_optimizer",
                  "qf_2_optimizer", "alpha_optimizer", "env", "batch_size", "gamma", "tau",
                  "initial_random_steps", "policy_update_freq", "target_entropy", "transition",
                  "device")


def make(agent_cls, env=None, **kwargs):
    kwargs.setdefault("device", "cpu")
    kwargs.setdefault("hidden_sizes", (32, 32))
    if agent_cls is FastSAC:
        kwargs.setdefault("compile", False)
    return agent_cls(env if env is not None else make_env(), 2000, 32, initial_random_steps=100,
                     **kwargs)


@pytest.mark.parametrize("agent_cls", AGENTS)
def test_notebook_calling_sequence(agent_cls, tmp_path, monkeypatch):
    """The notebook's code on an env it wraps itself, and no file in the working directory."""
    monkeypatch.chdir(tmp_path)
    agent = make(agent_cls, gym.make("Pendulum-v1", render_mode="rgb_array"), seed=0)
    for attr in NOTEBOOK_ATTRS:
        assert hasattr(agent, attr), attr
    agent.train(300)
    assert agent.total_step == 300 and len(agent.memory) == 300
    assert list(tmp_path.iterdir()) == []  # nothing written unless asked
    frames = agent.test()
    assert agent.is_test and len(frames) > 0 and frames[0].ndim == 3
    state, _ = agent.env.reset(seed=1)
    action = agent.select_action(state)
    assert action.shape == (1,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1)
    agent.is_test = False
    next_state, reward, done = agent.step(action)
    assert next_state.shape == state.shape and isinstance(reward, float) and isinstance(done,
                                                                                         bool)
    losses = agent.update_model()
    assert len(losses) == 4 and all(isinstance(x, torch.Tensor) for x in losses)


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_parameter_names_and_the_same_seed_s_weights(variant):
    ref, fast = (make(cls, seed=3, variant=variant) for cls in AGENTS)
    assert modules(ref) == modules(fast)
    expected = {"v1": ["actor", "vf", "vf_target", "qf_1", "qf_2"],
                "v2": ["actor", "qf_1", "qf_2", "qf_1_target", "qf_2_target"]}[variant]
    assert modules(ref) == expected
    assert list(dict(ref.actor.named_parameters())) == [
        "hidden1.weight", "hidden1.bias", "hidden2.weight", "hidden2.bias",
        "log_std_layer.weight", "log_std_layer.bias", "mu_layer.weight", "mu_layer.bias"]
    assert max_param_diff(ref, fast) == 0.0
    target = "vf_target" if variant == "v1" else "qf_1_target"
    source = target.removesuffix("_target")
    for p, q in zip(getattr(ref, target).parameters(), getattr(ref, source).parameters(),
                    strict=True):
        assert torch.equal(p, q)  # targets start as copies


def test_the_signature_is_the_settings():
    """Every setting is an argument of both agents, typed, with the settings' default; help()
    lists them; FastSAC(env) alone works (SB3-like sizes)."""
    for cls in AGENTS:
        params = inspect.signature(cls).parameters
        for f in SACConfig.__dataclass_fields__.values():
            assert f.name in params, (cls.__name__, f.name)
            assert params[f.name].default == f.default, f.name
            assert params[f.name].annotation != inspect.Parameter.empty
        assert list(params)[:7] == ["env", "memory_size", "batch_size", "gamma", "tau",
                                    "initial_random_steps", "policy_update_freq"]  # notebook
        assert params["device"].default == "auto"
    assert {"compile", "cuda_graph", "background_compile", "update_threads"} <= set(
        inspect.signature(FastSAC).parameters)
    agent = FastSAC(make_env(), compile=False)
    assert (agent.memory_size, agent.batch_size, agent.hidden_sizes) == (1_000_000, 256,
                                                                        (128, 128))
    v2 = FastSAC(make_env(), compile=False, variant="v2")
    assert v2.hidden_sizes == (256, 256) and v2.policy_update_freq == 1
    with pytest.raises(AttributeError):
        agent.gamma = 0.5  # settings are read-only: they are what the update was built with


@pytest.mark.parametrize("agent_cls", AGENTS)
def test_actions_reach_the_env_s_full_bounds(agent_cls):
    """Pendulum-v1 unwrapped gets torques across [-2, 2]; a Box(0, 10) env gets [0, 10]; the
    buffer keeps what the policy produced, in [-1, 1]."""
    pendulum = gym.make("Pendulum-v1")
    agent = make(agent_cls, pendulum, seed=0)
    agent.train(300)
    torques = agent.memory.acts_buf[:300] * 2.0
    assert np.abs(agent.memory.acts_buf[:300]).max() <= 1.0
    assert torques.max() > 1.8 and torques.min() < -1.8
    box_env = RecordingBoxEnv()
    agent = make(agent_cls, box_env, seed=1)
    agent.train(300)
    received = np.array(box_env.received)
    assert received.min() >= 0.0 and received.max() <= 10.0
    assert received.min() < 0.5 and received.max() > 9.5
    stored = agent.memory.acts_buf[:300]
    np.testing.assert_allclose(received, (stored + 1) * 5, rtol=1e-5, atol=1e-5)


def test_unbounded_actions_are_a_clear_error():
    class Unbounded(RecordingBoxEnv):
        def __init__(self):
            super().__init__()
            self.action_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)

    for cls in AGENTS:
        with pytest.raises(ConfigError, match="unbounded.*finite bounds"):
            make(cls, Unbounded())


@pytest.mark.parametrize("agent_cls", AGENTS)
def test_deterministic_actions_and_predict(agent_cls):
    agent = make(agent_cls, gym.make("Pendulum-v1"), seed=2)
    state = np.array([0.3, -0.2, 0.5], dtype=np.float32)
    assert agent.total_step < agent.initial_random_steps  # warm-up: select_action is random
    first = agent.select_action(state, deterministic=True)
    assert np.array_equal(first, agent.select_action(state, deterministic=True))
    assert not np.array_equal(agent.select_action(state), agent.select_action(state))
    action, hidden = agent.predict(state)
    assert hidden is None and action.shape == (1,)
    np.testing.assert_allclose(action, first * 2.0, rtol=1e-6)  # in the env's own bounds
    batch, _ = agent.predict(np.stack([state, -state, state]))
    assert batch.shape == (3, 1) and np.array_equal(batch[0], batch[2])
    np.testing.assert_allclose(batch[0], action, rtol=1e-6)
    with pytest.raises(ConfigError, match="predict takes"):
        agent.predict(np.zeros(5))


def test_both_agents_act_alike_and_deterministically():
    ref, fast = twin_agents(dtype=torch.float64)
    states = np.random.default_rng(0).normal(size=(6, 3))
    np.testing.assert_allclose(ref.predict(states)[0], fast.predict(states)[0], atol=1e-6)
    v2_ref, v2_fast = twin_agents(dtype=torch.float64, variant="v2")
    np.testing.assert_allclose(v2_ref.predict(states)[0], v2_fast.predict(states)[0], atol=1e-6)


@pytest.mark.parametrize("agent_cls", AGENTS)
def test_evaluation_is_deterministic_by_default(agent_cls):
    agent = make(agent_cls, seed=4)
    env = make_env()
    env.reset(seed=0)
    one = agent.evaluate(2, env=env)
    env.reset(seed=0)
    assert agent.evaluate(2, env=env) == one
    env.reset(seed=0)
    assert agent.evaluate(2, env=env, deterministic=False) != one


@pytest.mark.parametrize("agent_cls", AGENTS)
@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_from_checkpoint_rebuilds_the_agent(agent_cls, variant, tmp_path):
    """From the file alone: the settings, spaces, weights, Adam state, buffer; its next update
    equals the original's, bit for bit."""
    agent = make(agent_cls, seed=5, variant=variant, gamma=0.95, tau=0.01, lr=1e-3)
    agent.train(300)
    agent.save(tmp_path / "ckpt.pt", include_buffer=True)
    kwargs = {"compile": False} if agent_cls is FastSAC else {}
    again = agent_cls.from_checkpoint(tmp_path / "ckpt.pt", device="cpu", **kwargs)
    assert again.config == agent.config and again.total_step == 300
    assert max_param_diff(agent, again) == 0.0 and max_adam_diff(agent, again) == 0.0
    for a in (agent, again):
        a.update_model(policy_step=True)
    assert max_param_diff(agent, again) == 0.0


@pytest.mark.parametrize("agent_cls", AGENTS)
def test_a_load_with_other_settings_is_refused_naming_them(agent_cls, tmp_path):
    make(agent_cls, seed=0).save(tmp_path / "ckpt.pt")
    other = make(agent_cls, seed=0, gamma=0.9, tau=0.02)
    before = [p.detach().clone() for p in other.actor.parameters()]
    with pytest.raises(CheckpointError, match=r"gamma: checkpoint 0.99, agent 0.9; tau: "
                       r"checkpoint 0.005, agent 0.02"):
        other.load(tmp_path / "ckpt.pt")
    bigger = agent_cls(make_env(), 5000, 32, initial_random_steps=100, device="cpu",
                       hidden_sizes=(32, 32), **({"compile": False} if agent_cls is FastSAC
                                                  else {}))
    with pytest.raises(CheckpointError, match="memory_size: checkpoint 2000, agent 5000"):
        bigger.load(tmp_path / "ckpt.pt")
    assert all(torch.equal(p, q) for p, q in zip(other.actor.parameters(), before, strict=True))


def test_an_older_checkpoint_is_refused_clearly(tmp_path):
    torch.save({"format": "fastsac-checkpoint", "version": 3, "modules": {}}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="format version 3; this fastsac reads version 4"):
        make(FastSAC).load(tmp_path / "old.pt")


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_a_saved_policy_predicts_as_its_agent(variant, tmp_path):
    agent = make(FastSAC, gym.make("Pendulum-v1"), seed=6, variant=variant)
    agent.train(300)
    agent.save_policy(tmp_path / "policy.pt")
    policy = load_policy(tmp_path / "policy.pt")
    states = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(policy.predict(states)[0], agent.predict(states)[0], atol=1e-6)
    np.testing.assert_allclose(policy.predict(states[0])[0], agent.predict(states[0])[0],
                               atol=1e-6)
    assert policy.env_id == "Pendulum-v1" and not hasattr(policy, "memory")
    assert (tmp_path / "policy.pt").stat().st_size < 100_000  # no buffer, no optimizer


# ---- optimizers that behave like torch's ------------------------------------------------------
def test_an_optimizer_state_loaded_directly_reaches_the_update():
    ref, fast = twin_agents(dtype=torch.float64)
    run_twins(ref, fast, 3)
    other_ref, other_fast = twin_agents(dtype=torch.float64)
    copy_weights(ref, other_fast)
    for name in [s.optimizer for s in ref.slots if s.optimizer]:
        getattr(other_fast, name).load_state_dict(getattr(ref, name).state_dict())
    assert max_adam_diff(ref, other_fast) == 0.0
    run_twins(ref, other_fast, 3, seed=2, start_step=4)
    assert max_param_diff(ref, other_fast) <= 1e-12


def test_a_replaced_network_is_a_clear_error():
    from fastsac.networks import CriticQ

    agent = make(FastSAC)
    agent.qf_1 = CriticQ(4, (32, 32))
    with pytest.raises(ConfigError, match="qf_1 was replaced"):
        agent.update_model(policy_step=False, batch=_batch())


def _batch():
    from fastsac.agreement import random_batch

    return random_batch(np.random.default_rng(0), 32, 3, 1)


def test_parameters_moved_and_adam_reset_by_hand_are_taken_on_at_train():
    """``p.data = ...`` and ``optimizer.state.clear()``: the next train() lays them out again,
    and FastSAC learns on as the reference does after the same edits."""
    ref, fast = twin_agents(dtype=torch.float64)
    run_twins(ref, fast, 3)
    for agent in (ref, fast):
        w = agent.qf_1.hidden1.weight
        w.data = w.data.clone() * 0.5
        agent.vf_optimizer.state.clear()
    fast.engine.check()  # what train() runs first
    run_twins(ref, fast, 3, seed=3, start_step=4)
    assert max_param_diff(ref, fast) <= 1e-12


def test_a_deep_copy_learns_as_its_original():
    agent = make(FastSAC, seed=7)
    agent.train(300)
    twin = copy.deepcopy(agent)
    before = [p.detach().clone() for p in agent.actor.parameters()]
    for a in (agent, twin):
        a.train(200)
    assert max_param_diff(agent, twin) == 0.0
    assert not all(torch.equal(p, q) for p, q in zip(agent.actor.parameters(), before,
                                                     strict=True))
    assert twin.actor.hidden1.weight.data_ptr() != agent.actor.hidden1.weight.data_ptr()


# ---- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize("agent_cls", AGENTS)
@pytest.mark.parametrize("kwargs,error,match", [
    ({"memory_size": 0}, ConfigError, "memory_size"),
    ({"batch_size": 5000}, ConfigError, "batch_size must be in"),
    ({"gamma": 1.5}, ConfigError, "gamma"),
    ({"tau": 0.0}, ConfigError, "tau"),
    ({"policy_update_freq": 0}, ConfigError, "policy_update_freq"),
    ({"variant": "v3"}, ConfigError, "variant must be one of"),
    ({"n_critics": 3}, ConfigError, "n_critics must be in .2, 2. for variant 'v1'"),
    ({"variant": "v2", "n_critics": 11}, ConfigError, "n_critics"),
    ({"hidden_sizes": ()}, ConfigError, "at least one"),
    ({"hidden_sizes": (256, 0)}, ConfigError, "positive"),
    ({"hidden_sizes": (256.0, 256)}, TypeError, "ints"),
    ({"hidden_sizes": "256"}, TypeError, "sequence"),
    ({"lr": 0.0}, ConfigError, "lr"),
    ({"lr": float("nan")}, ConfigError, "lr must be finite"),
    ({"lr": float("inf")}, ConfigError, "lr must be finite"),
    ({"lr": "3e-4"}, TypeError, "lr"),
    ({"target_entropy": float("inf")}, ConfigError, "target_entropy must be finite"),
    ({"updates_per_step": 0}, ConfigError, "updates_per_step"),
    ({"seed": -1}, ConfigError, "seed"),
    ({"device": "tpu"}, ConfigError, "device"),
    ({"dtype": torch.float16}, ConfigError, "dtype"),
])
def test_bad_arguments(agent_cls, kwargs, error, match):
    kwargs = {"hidden_sizes": (32, 32), **kwargs}
    extra = {"compile": False} if agent_cls is FastSAC else {}
    memory = kwargs.pop("memory_size", 2000)
    with pytest.raises(error, match=match):
        agent_cls(make_env(), memory, kwargs.pop("batch_size", 32), device=kwargs.pop(
            "device", "cpu"), **kwargs, **extra)


@pytest.mark.parametrize("space", [spaces.Discrete(3), spaces.Box(-1, 1, (2, 2))])
def test_bad_action_spaces(space):
    env = RecordingBoxEnv()
    env.action_space = space
    with pytest.raises(ConfigError):
        make(SACAgent, env)


def test_numpy_ints_and_gamma_of_one_are_fine():
    agent = make(SACAgent, hidden_sizes=np.array([8, 4]), gamma=1.0, tau=1.0)
    assert agent.hidden_sizes == (8, 4) and agent.gamma == 1.0


@pytest.mark.parametrize("agent_cls", AGENTS)
def test_seeded_runs_repeat(agent_cls):
    torch.set_num_threads(1)
    a, b = make(agent_cls, seed=11), make(agent_cls, seed=11)
    for agent in (a, b):
        agent.train(300)
    assert max_param_diff(a, b) == 0.0
    assert a.history["score"] == b.history["score"]
