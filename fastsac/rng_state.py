"""The random streams of a run that live outside torch, captured and restored for resume: numpy
generators (the warm-up actions', an env's ``np_random``) as JSON text, which checkpoints load
with ``weights_only=True`` and which any numpy bit generator's state turns into."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.integer):
        return int(value)
    return value


def _arrays(value: Any) -> Any:
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=value["dtype"])
        return {k: _arrays(v) for k, v in value.items()}
    return value


def generator_state(generator: np.random.Generator) -> str:
    return json.dumps(_plain(generator.bit_generator.state))


def set_generator_state(generator: np.random.Generator, text: str) -> None:
    generator.bit_generator.state = _arrays(json.loads(text))


def random_state_state(rs: np.random.RandomState) -> str:
    """A legacy ``RandomState`` (the reference buffer's, as the notebook's)."""
    return json.dumps(_plain(rs.get_state(legacy=False)))


def set_random_state_state(rs: np.random.RandomState, text: str) -> None:
    rs.set_state(_arrays(json.loads(text)))


def env_rng_states(env: Any) -> str | None:
    """Each env's ``np_random`` state (a vector env's, one per env), or None where an env has
    none."""
    try:
        if isinstance(env, VectorEnv):
            generators = list(env.get_attr("np_random"))
        else:
            generators = [env.np_random]
    except AttributeError:
        return None
    if not all(isinstance(g, np.random.Generator) for g in generators):
        return None
    return json.dumps([_plain(g.bit_generator.state) for g in generators])


def set_env_rng_states(env: Any, text: str | None) -> None:
    """Restore what ``env_rng_states`` captured into ``env`` (same number of envs)."""
    if text is None:
        return
    states = [_arrays(s) for s in json.loads(text)]
    count = env.num_envs if isinstance(env, VectorEnv) else 1
    if len(states) != count:
        raise ValueError(f"checkpoint holds the RNG states of {len(states)} envs; this env has "
                         f"{count}")
    generators = []
    for state in states:
        generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
        generator.bit_generator.state = state
        generators.append(generator)
    if isinstance(env, VectorEnv):
        env.set_attr("np_random", generators)
    else:
        env.np_random = generators[0]
