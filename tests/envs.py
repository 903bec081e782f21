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
