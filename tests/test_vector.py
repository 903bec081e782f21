"""Vectorized envs: transitions under both autoreset modes, a vector env of one acting like the
plain env, updates_per_step, and N = 4 envs learning Pendulum."""

import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from fastsac import FastSAC, make_env
from fastsac.reference import SACAgent
from tests.envs import EpisodeClockEnv

AGENTS = {"fast": lambda env, **kw: FastSAC(env, compile=False, **kw), "reference": SACAgent}


def clock_envs(n: int, mode: AutoresetMode, copy: bool = True) -> SyncVectorEnv:
    return SyncVectorEnv([lambda i=i: EpisodeClockEnv(uid=i + 1) for i in range(n)],
                         autoreset_mode=mode, copy=copy)


def stored(agent) -> tuple[np.ndarray, ...]:
    n = len(agent.memory)
    m = agent.memory
    return (np.array(m.obs_buf[:n]), np.array(m.next_obs_buf[:n]), np.array(m.rews_buf[:n]),
            np.array(m.done_buf[:n]))


@pytest.mark.parametrize("mode, copy", [(AutoresetMode.NEXT_STEP, True),
                                        (AutoresetMode.SAME_STEP, True),
                                        (AutoresetMode.NEXT_STEP, False)])
@pytest.mark.parametrize("kind", sorted(AGENTS))
def test_stored_transitions_follow_their_episode(kind, mode, copy):
    """N = 3 envs ending episodes at random: every stored transition goes one step forward in
    one episode, its done flag is the termination (not the truncation), a truncated episode
    keeps its true final observation, no reset observation is ever a next_obs, and every step
    of every episode is stored exactly once. Also with an env that reuses its observation
    array (copy=False)."""
    env = clock_envs(3, mode, copy)
    agent = AGENTS[kind](env, memory_size=5000, batch_size=16, initial_random_steps=40,
                         hidden_sizes=(16,), seed=3)
    agent.train(900, plot_path=None, progress=False)
    obs, next_obs, rews, done = stored(agent)
    assert len(obs) == agent.total_step >= 900
    assert np.array_equal(next_obs[:, 0], obs[:, 0]), "a transition spans two episodes"
    assert np.array_equal(next_obs[:, 1], obs[:, 1] + 1)
    assert (next_obs[:, 1] >= 1).all(), "a reset observation was stored as next_obs"
    assert np.array_equal(rews, next_obs[:, 1])  # the reward is the step's index
    assert np.array_equal(done, (next_obs[:, 2] == 1).astype(np.float32))
    assert (next_obs[:, 2] == 1).any() and (next_obs[:, 2] == 2).any()  # both endings happened
    assert (obs[:, 2] == 0).all(), "a final observation was stored as obs"
    # every episode's steps 0..k-1 are there, once each (the last episode of each env may be
    # unfinished)
    pairs = set(map(tuple, obs[:, :2].tolist()))
    assert len(pairs) == len(obs)
    for episode in np.unique(obs[:, 0]):
        steps = np.sort(obs[obs[:, 0] == episode, 1])
        assert np.array_equal(steps, np.arange(len(steps)))
    # one history row per finished episode, with the env it ran in
    ended = int((next_obs[:, 2] > 0).sum())
    assert len(agent.history["score"]) == ended
    assert set(agent.history["env"]) == {0.0, 1.0, 2.0}


@pytest.mark.parametrize("kind", sorted(AGENTS))
def test_vector_env_of_one_learns_like_the_plain_env(kind):
    """The same seed gives bitwise the same learning with a plain env and a vector env of one
    (CPU, fixed threads)."""
    def run(env):
        torch.set_num_threads(1)
        agent = AGENTS[kind](env, memory_size=3000, batch_size=32, initial_random_steps=300,
                             seed=5)
        agent.train(700, plot_path=None, progress=False)
        return agent

    plain = run(make_env("Pendulum-v1"))
    vector = run(make_env("Pendulum-v1", num_envs=1))
    assert plain.total_step == vector.total_step == 700
    assert plain.update_step == vector.update_step
    for name in ("actor", "qf_1", "qf_2", "vf", "vf_target"):
        for a, b in zip(getattr(plain, name).state_dict().values(),
                        getattr(vector, name).state_dict().values(), strict=True):
            assert torch.equal(a, b), name
    assert torch.equal(plain.log_alpha, vector.log_alpha)
    n = len(plain.memory)
    assert np.array_equal(plain.memory.obs_buf[:n], vector.memory.obs_buf[:n])
    assert plain.history["score"] == vector.history["score"]


@pytest.mark.parametrize("ratio, expected", [(0.25, 75), (1, 300), (4, 1200)])
def test_updates_per_step(ratio, expected):
    """N = 4 envs, 400 transitions, learning from transition 100 on: 300 transitions after the
    warm-up, so ratio x 300 updates, numbered on from the frame of the first (104); those with
    even numbers are policy steps."""
    agent = FastSAC(make_env("Pendulum-v1", num_envs=4), 1000, 32, initial_random_steps=100,
                    hidden_sizes=(16,), updates_per_step=ratio, compile=False, seed=0)
    calls = []
    update = agent.engine.update

    def counted(policy_step, batch, noise):
        calls.append(policy_step)
        return update(policy_step, batch, noise)

    agent.engine.update = counted
    agent.train(400, plot_path=None, progress=False)
    assert agent.total_step == 400
    assert len(calls) == expected
    first = 100 + 4  # the frame count after the first vector step past the warm-up
    numbers = range(first, first + expected)
    assert calls == [u % 2 == 0 for u in numbers]
    assert agent.update_step == numbers[-1]


def test_bad_vector_input():
    with pytest.raises(ValueError, match="num_envs"):
        make_env("Pendulum-v1", num_envs=0)
    with pytest.raises(ValueError, match="vectorization"):
        make_env("Pendulum-v1", num_envs=2, vectorization="threads")
    with pytest.raises(ValueError, match="DISABLED"):
        FastSAC(clock_envs(2, AutoresetMode.DISABLED), 100, 8, compile=False)
    for ratio in (0, 1e-9):
        with pytest.raises(ValueError, match="updates_per_step"):
            FastSAC(make_env("Pendulum-v1"), 100, 8, updates_per_step=ratio, compile=False)
    with pytest.raises(TypeError, match="updates_per_step must be a number, got str"):
        FastSAC(make_env("Pendulum-v1"), 100, 8, updates_per_step="a", compile=False)
    agent = FastSAC(make_env("Pendulum-v1", num_envs=2), 100, 8, compile=False)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        agent.select_action(np.zeros(3))
    with pytest.raises(ValueError, match="plain"):
        agent.test()


def test_train_twice_on_async_envs():
    """train() leaves a vector env open (async workers included), so training continues."""
    env = make_env("Pendulum-v1", num_envs=2, vectorization="async")
    agent = SACAgent(env, 1000, 16, initial_random_steps=50, hidden_sizes=(8,), seed=0)
    agent.train(100, plot_path=None, progress=False)
    agent.train(100, plot_path=None, progress=False)
    assert agent.total_step == 200 and len(agent.memory) == 200
    env.close()


def test_four_envs_learn_pendulum():
    """N = 4 envs, the notebook's settings, 50k transitions: a mean test return of at least
    -200 over 10 episodes (seeded)."""
    torch.manual_seed(0)
    agent = FastSAC(make_env("Pendulum-v1", num_envs=4), 100_000, 128, seed=777)
    agent.train(50_000, plot_path=None, progress=False)
    eval_env = make_env("Pendulum-v1")
    eval_env.reset(seed=778)
    scores = agent.evaluate(10, env=eval_env)
    assert np.mean(scores) >= -200, scores
