"""``fastsac train --resume DIR``: find the run's checkpoint, check it can continue the run, and
take the run's options from it, refusing options that contradict them. Everything here only
reads: a bad directory or checkpoint is reported before anything in it is written."""

from __future__ import annotations

import json
import os
from typing import Any

from fastsac import checkpoint
from fastsac.errors import ConfigError
from fastsac.settings import FIELDS

CHECKPOINT_NAME = "checkpoint.pt"
# A run's options besides its agent's settings, recorded in its checkpoints (run_config).
RUN_KEYS = ("preset", "env", "env_kwargs", "frames", "num_envs", "vectorization", "nproc",
            "device", "eager", "background_compile", "checkpoint_every", "test_episodes",
            "stochastic_test", "eval_every", "eval_episodes")
# Options that change nothing the agent learns: a resumed run may give them anew (--frames
# extends the run).
CHANGEABLE = ("frames", "checkpoint_every", "test_episodes", "stochastic_test", "eval_every",
              "eval_episodes")


def run_config(args: Any) -> dict[str, Any]:
    """The options and settings of a resolved ``fastsac train`` namespace, JSON-able."""
    config = {key: getattr(args, key) for key in (*RUN_KEYS, *FIELDS)}
    if config["hidden_sizes"] is not None:
        config["hidden_sizes"] = list(config["hidden_sizes"])
    return config


def checkpoint_path(run_dir: str | os.PathLike) -> str:
    return os.path.join(os.fspath(run_dir), CHECKPOINT_NAME)


def recorded_run(run_dir: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(checkpoint state, run options)`` of the run in ``run_dir``; ConfigError saying why it
    cannot be resumed."""
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise ConfigError(f"--resume {run_dir}: no such directory")
    path = checkpoint_path(run_dir)
    if not os.path.exists(path):
        raise ConfigError(f"--resume {run_dir}: no {CHECKPOINT_NAME} in it (a run writes its "
                          "first checkpoint a tenth of the way in, or at --checkpoint-every)")
    state = checkpoint.read(path, mmap=True)  # mapped: the buffer's bytes are not read here
    if state.get("buffer") is None or state.get("run_config") is None:
        raise ConfigError(f"{path} cannot be resumed: it holds no replay buffer or no run "
                          "options (written by agent.save() without include_buffer); "
                          "FastSAC.from_checkpoint() still reads it")
    config = json.loads(state["run_config"])
    missing = [key for key in (*RUN_KEYS, *FIELDS) if key not in config]
    if missing:
        raise ConfigError(f"{path}: its run options lack {missing}")
    return state, config


def contradictions(given: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The options given (not None) that differ from the run's, but for ``CHANGEABLE``."""
    found = []
    for key, value in given.items():
        if value is None or key not in config or key in CHANGEABLE:
            continue
        recorded = config[key]
        same = (list(value) == list(recorded) if isinstance(value, (list, tuple))
                else float(value) == float(recorded) if isinstance(recorded, float)
                else value == recorded)
        if not same:
            shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            found.append(f"--{key.replace('_', '-')} {shown} (the run has {recorded})")
    return found
