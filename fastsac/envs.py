"""Environment helpers: the action normaliser, env construction (plain or vectorized), and
space validation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

VECTORIZATIONS = ("sync", "async")


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


def space_dims(env: gym.Env | VectorEnv) -> tuple[int, int]:
    """Validated ``(obs_dim, action_dim)`` of an env, or of each env of a vector env."""
    if isinstance(env, VectorEnv):
        obs_space, action_space = env.single_observation_space, env.single_action_space
    elif isinstance(env, gym.Env):
        obs_space, action_space = env.observation_space, env.action_space
    else:
        raise TypeError(f"env must be a gymnasium.Env or gymnasium.vector.VectorEnv, got "
                        f"{type(env).__name__}")
    validate_observation_space(obs_space)
    validate_action_space(action_space)
    return int(obs_space.shape[0]), int(action_space.shape[0])


def autoreset_mode(env: VectorEnv) -> AutoresetMode:
    """The vector env's autoreset mode; ``DISABLED`` is refused (the training loop relies on the
    env resetting finished episodes itself)."""
    mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    try:
        mode = AutoresetMode(mode)
    except ValueError:
        raise ValueError(f"unknown autoreset mode {mode!r} of {type(env).__name__}") from None
    if mode == AutoresetMode.DISABLED:
        raise ValueError(
            "vector envs with autoreset_mode=DISABLED are not supported: fastsac trains on "
            "vector envs that reset finished episodes themselves (NEXT_STEP, gymnasium's "
            "default, or SAME_STEP)")
    return mode


def make_env(env_id: str = "Pendulum-v1", render_mode: str | None = None,
             num_envs: int | None = None, vectorization: str = "sync",
             autoreset: str | AutoresetMode = AutoresetMode.NEXT_STEP) -> gym.Env | VectorEnv:
    """``gym.make(env_id)`` wrapped in :class:`ActionNormalizer`.

    With ``num_envs=N`` it is a ``gymnasium.vector.VectorEnv`` of N such envs instead, stepped
    in this process (``vectorization="sync"``) or each in a subprocess (``"async"``), resetting
    finished episodes by gymnasium's ``autoreset`` mode (NEXT_STEP or SAME_STEP).
    """
    if num_envs is None:
        return ActionNormalizer(gym.make(env_id, render_mode=render_mode))
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs must be an int >= 1 (or None for a plain env), got "
                         f"{num_envs!r}")
    if vectorization not in VECTORIZATIONS:
        raise ValueError(f"vectorization must be one of {VECTORIZATIONS}, got {vectorization!r}")
    mode = AutoresetMode(autoreset)
    if mode == AutoresetMode.DISABLED:
        raise ValueError("autoreset=DISABLED is not supported (see fastsac.envs.autoreset_mode)")
    return gym.make_vec(env_id, num_envs=int(num_envs), vectorization_mode=vectorization,
                        vector_kwargs={"autoreset_mode": mode}, wrappers=[ActionNormalizer],
                        render_mode=render_mode)
