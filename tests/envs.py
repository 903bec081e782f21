"""A tiny env with 3-D actions for tests: a point mass pushed towards the origin."""

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class PointMassEnv(gym.Env):
    """obs: position (3); action: velocity in [-1, 1]^3; reward: -|position|^2; 20 steps.

    Easy to learn (move towards the origin), so a short SAC run visibly improves.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, render_mode=None):
        self.observation_space = spaces.Box(-10.0, 10.0, shape=(3,), dtype=np.float32)
        self.action_space = spaces.Box(-2.0, 2.0, shape=(3,), dtype=np.float32)
        self.render_mode = render_mode
        self._pos = np.zeros(3, dtype=np.float32)
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._pos = self.np_random.uniform(-2, 2, size=3).astype(np.float32)
        self._t = 0
        return self._pos.copy(), {}

    def step(self, action):
        self._pos = np.clip(self._pos + 0.2 * np.asarray(action, dtype=np.float32), -10, 10)
        self._t += 1
        reward = -float(np.sum(self._pos**2))
        return self._pos.copy(), reward, False, self._t >= 20, {}

    def render(self):
        frame = np.zeros((8, 8, 3), dtype=np.uint8)
        frame[..., 0] = min(255, int(10 * np.sum(self._pos**2)))
        return frame


if "fastsac-tests/PointMass-v0" not in gym.registry:
    gym.register("fastsac-tests/PointMass-v0", entry_point=PointMassEnv)


class EpisodeClockEnv(gym.Env):
    """Observations that say where they come from: ``[episode id, step index, end]``.

    The episode id is unique across envs (``uid``) and episodes; the step index counts from 0
    at reset; ``end`` is 1 on the final observation of a terminated episode, 2 on that of a
    truncated one, else 0. Episodes end at random (seeded) by termination or truncation, so a
    test can check every stored transition against the episode it came from.
    """

    def __init__(self, uid: int = 0, end_probability: float = 0.15):
        self.observation_space = spaces.Box(-1e9, 1e9, shape=(3,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.uid, self.end_probability = uid, end_probability
        self.episodes = 0
        self._episode, self._t = 0.0, 0

    def _obs(self, end: int) -> np.ndarray:
        return np.array([self._episode, self._t, end], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episodes += 1
        self._episode, self._t = float(self.uid * 100_000 + self.episodes), 0
        return self._obs(0), {}

    def step(self, action):
        self._t += 1
        draw = self.np_random.uniform()
        terminated = draw < self.end_probability / 2
        truncated = not terminated and draw < self.end_probability
        end = 1 if terminated else 2 if truncated else 0
        return self._obs(end), float(self._t), terminated, truncated, {}


class NanRewardEnv(PointMassEnv):
    """PointMass whose reward turns NaN at its 150th step (a broken env, for divergence tests)."""

    NAN_AT = 150

    def __init__(self, render_mode=None):
        super().__init__(render_mode)
        self._steps = 0

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        self._steps += 1
        return obs, (float("nan") if self._steps >= self.NAN_AT else reward), terminated, \
            truncated, info


if "fastsac-tests/NanReward-v0" not in gym.registry:
    gym.register("fastsac-tests/NanReward-v0", entry_point=NanRewardEnv)


class RecordingBoxEnv(gym.Env):
    """Actions in a Box of ``low``..``high`` (default [0, 10]), each one received kept in
    ``received``; no ``render_mode`` argument (as many custom envs); 50-step episodes."""

    def __init__(self, low=0.0, high=10.0):
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(low, high, shape=(2,), dtype=np.float32)
        self.received: list[np.ndarray] = []
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        self.received.append(np.asarray(action, dtype=np.float64).copy())
        self._t += 1
        return (self.np_random.uniform(-1, 1, 2).astype(np.float32), -float(np.sum(action)),
                False, self._t >= 50, {})


class BrokenEnv(RecordingBoxEnv):
    """A user's env with a bug: its 5th step raises."""

    def step(self, action):
        if self._t == 4:
            raise ZeroDivisionError("a bug in the user's env")
        return super().step(action)


for _id, _entry in (("fastsac-tests/Box0to10-v0", RecordingBoxEnv),
                    ("fastsac-tests/Broken-v0", BrokenEnv)):
    if _id not in gym.registry:
        gym.register(_id, entry_point=_entry)
