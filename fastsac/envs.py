"""Envs as the agent sees them: the spaces checked, actions rescaled from the agent's [-1, 1] to
the env's bounds (gymnasium's own ``RescaleAction``), plain or vectorized construction."""

from __future__ import annotations

import inspect
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.wrappers import RescaleAction
from gymnasium.wrappers.vector import RescaleAction as VectorRescaleAction

from fastsac.errors import ConfigError

VECTORIZATIONS = ("sync", "async")


def action_space_of(env: gym.Env | VectorEnv) -> spaces.Space:
    return env.single_action_space if isinstance(env, VectorEnv) else env.action_space


def check_action_space(space: gym.Space) -> None:
    """SAC needs a flat Box of actions with finite bounds."""
    if not isinstance(space, spaces.Box):
        raise ConfigError(f"SAC needs a continuous Box action space, got {type(space).__name__} "
                          f"({space})")
    if len(space.shape) != 1:
        raise ConfigError(f"the action space must be flat (1-D), got shape {space.shape}; "
                          "flatten it first (gymnasium.wrappers.FlattenObservation's twin for "
                          "actions: a wrapper of your own)")
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise ConfigError(
            f"the action space is unbounded (low={space.low}, high={space.high}): SAC's tanh "
            "policy acts in a bounded box. Give the env finite bounds, e.g. "
            "gymnasium.wrappers.ClipAction(env) on a Box whose bounds you set to the torques "
            "the env can take")
    if np.any(space.high <= space.low):
        raise ConfigError(f"the action space needs high > low, got low={space.low} "
                          f"high={space.high}")


def check_observation_space(space: gym.Space) -> None:
    """The MLPs need a flat Box of observations."""
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise ConfigError(f"SAC needs a flat Box observation space, got {space}; wrap the env "
                          "with gymnasium.wrappers.FlattenObservation")


def space_dims(env: gym.Env | VectorEnv) -> tuple[int, int]:
    """Checked ``(obs_dim, action_dim)`` of an env, or of each env of a vector env."""
    if isinstance(env, VectorEnv):
        obs_space = env.single_observation_space
    elif isinstance(env, gym.Env):
        obs_space = env.observation_space
    else:
        raise ConfigError(f"env must be a gymnasium.Env or gymnasium.vector.VectorEnv, got "
                          f"{type(env).__name__}")
    check_observation_space(obs_space)
    check_action_space(action_space_of(env))
    return int(obs_space.shape[0]), int(action_space_of(env).shape[0])


def acts_in_unit_box(space: spaces.Box) -> bool:
    return bool(np.all(space.low == -1.0) and np.all(space.high == 1.0))


def rescaled(env: gym.Env | VectorEnv) -> gym.Env | VectorEnv:
    """``env`` taking the agent's actions in [-1, 1], mapped affinely to its own bounds (the env
    itself where they are [-1, 1] already)."""
    space = action_space_of(env)
    check_action_space(space)
    if acts_in_unit_box(space):
        return env
    low, high = np.full(space.shape, -1.0, space.dtype), np.full(space.shape, 1.0, space.dtype)
    if isinstance(env, VectorEnv):
        return VectorRescaleAction(env, low, high)
    return RescaleAction(env, low, high)


def env_id_of(env: gym.Env | VectorEnv) -> str | None:
    """The registered id the env was made from, where gymnasium knows it."""
    spec = getattr(env, "spec", None)
    return getattr(spec, "id", None)


def env_kwargs_of(env: gym.Env | VectorEnv) -> dict[str, Any]:
    """The keyword arguments it was made with (those a checkpoint can record as JSON)."""
    import json

    kwargs = dict(getattr(getattr(env, "spec", None), "kwargs", None) or {})
    kwargs.pop("render_mode", None)
    try:
        json.dumps(kwargs)
    except TypeError:
        return {}
    return kwargs


def unscale(actions: np.ndarray, space: spaces.Box) -> np.ndarray:
    """Agent actions in [-1, 1] to the env's bounds (SB3's ``predict`` returns these)."""
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    out = low + (np.asarray(actions, dtype=np.float64) + 1.0) * 0.5 * (high - low)
    return np.clip(out, low, high).astype(space.dtype)


def autoreset_mode(env: VectorEnv) -> AutoresetMode:
    """The vector env's autoreset mode; DISABLED is refused (the loop needs envs that reset
    finished episodes themselves)."""
    mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    try:
        mode = AutoresetMode(mode)
    except ValueError:
        raise ConfigError(f"unknown autoreset mode {mode!r} of {type(env).__name__}") from None
    if mode == AutoresetMode.DISABLED:
        raise ConfigError("vector envs with autoreset_mode=DISABLED are not supported: use "
                          "NEXT_STEP (gymnasium's default) or SAME_STEP")
    return mode


def _takes_render_mode(env_id: str) -> bool:
    """Whether the registered env's constructor takes ``render_mode`` (a custom env may not)."""
    entry = gym.spec(env_id).entry_point
    if isinstance(entry, str):
        try:
            entry = gym.envs.registration.load_env_creator(entry)
        except Exception:  # noqa: BLE001 - gym.make reports it
            return True
    try:
        params = inspect.signature(entry).parameters
    except (TypeError, ValueError):
        return True
    return "render_mode" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def make_env(env_id: str = "Pendulum-v1", render_mode: str | None = None,
             num_envs: int | None = None, vectorization: str = "sync",
             autoreset: str | AutoresetMode = AutoresetMode.NEXT_STEP,
             env_kwargs: dict[str, Any] | None = None) -> gym.Env | VectorEnv:
    """``gym.make(env_id, **env_kwargs)``, its actions rescaled from [-1, 1] to its bounds.

    With ``num_envs=N`` a ``gymnasium.vector.VectorEnv`` of N such envs instead, stepped in this
    process (``vectorization="sync"``) or each in a subprocess (``"async"``), resetting finished
    episodes by gymnasium's ``autoreset`` mode (NEXT_STEP or SAME_STEP)."""
    kwargs = dict(env_kwargs or {})
    if render_mode is not None or _takes_render_mode(env_id):
        kwargs["render_mode"] = render_mode
    if num_envs is None:
        return rescaled(gym.make(env_id, **kwargs))
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ConfigError(f"num_envs must be an int >= 1 (or None for a plain env), got "
                          f"{num_envs!r}")
    if vectorization not in VECTORIZATIONS:
        raise ConfigError(f"vectorization must be one of {VECTORIZATIONS}, got "
                          f"{vectorization!r}")
    mode = AutoresetMode(autoreset)
    if mode == AutoresetMode.DISABLED:
        raise ConfigError("autoreset=DISABLED is not supported (see fastsac.envs.autoreset_mode)")
    return gym.make_vec(env_id, num_envs=int(num_envs), vectorization_mode=vectorization,
                        vector_kwargs={"autoreset_mode": mode}, wrappers=[rescaled],
                        **kwargs)
