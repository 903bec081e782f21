"""Environment helpers: the action normaliser, env construction, and space validation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class ActionNormalizer(gym.ActionWrapper):
    """Lets the agent act in [-1, 1]: maps actions affinely to the env's [low, high] and clips.

    Unlike the notebook's wrapper, the wrapped env's ``action_space`` becomes ``Box(-1, 1)``, so
    ``env.action_space.sample()`` draws actions in the space the agent acts in (the notebook's
    sampled in [low, high] and stored those out-of-range actions in the buffer).
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        box = env.action_space
        validate_action_space(box)
        self.low = box.low.astype(np.float64)
        self.high = box.high.astype(np.float64)
        self.scale = (self.high - self.low) / 2.0
        self.center = self.high - self.scale
        self.action_space = spaces.Box(-1.0, 1.0, shape=box.shape, dtype=np.float32)

    def action(self, action: np.ndarray) -> np.ndarray:
        """[-1, 1] -> [low, high]."""
        scaled = np.asarray(action, dtype=np.float64) * self.scale + self.center
        return np.clip(scaled, self.low, self.high).astype(self.env.action_space.dtype)

    def reverse_action(self, action: np.ndarray) -> np.ndarray:
        """[low, high] -> [-1, 1]."""
        unscaled = (np.asarray(action, dtype=np.float64) - self.center) / self.scale
        return np.clip(unscaled, -1.0, 1.0).astype(np.float32)


def validate_action_space(space: gym.Space) -> None:
    """SAC needs a flat, bounded Box of actions."""
    if not isinstance(space, spaces.Box):
        raise TypeError(
            f"SAC needs a continuous Box action space, got {type(space).__name__} ({space})"
        )
    if len(space.shape) != 1:
        raise ValueError(
            f"action space must be flat (1-D), got shape {space.shape}; flatten it with "
            "gymnasium.wrappers.FlattenObservation-style wrappers first"
        )
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise ValueError(f"action space must be bounded, got low={space.low} high={space.high}")
    if np.any(space.high <= space.low):
        raise ValueError(f"action space needs high > low, got low={space.low} high={space.high}")


def validate_observation_space(space: gym.Space) -> None:
    """The MLPs need a flat Box of observations."""
    if not isinstance(space, spaces.Box):
        raise TypeError(
            f"SAC needs a Box observation space, got {type(space).__name__} ({space}); "
            "wrap the env with gymnasium.wrappers.FlattenObservation"
        )
    if len(space.shape) != 1:
        raise ValueError(
            f"observation space must be flat (1-D), got shape {space.shape}; wrap the env with "
            "gymnasium.wrappers.FlattenObservation"
        )


def space_dims(env: gym.Env) -> tuple[int, int]:
    """Validated ``(obs_dim, action_dim)`` of an env."""
    validate_observation_space(env.observation_space)
    validate_action_space(env.action_space)
    return int(env.observation_space.shape[0]), int(env.action_space.shape[0])


def make_env(env_id: str = "Pendulum-v1", render_mode: str | None = None) -> gym.Env:
    """``gym.make(env_id)`` wrapped in :class:`ActionNormalizer`."""
    return ActionNormalizer(gym.make(env_id, render_mode=render_mode))
