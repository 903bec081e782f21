"""``fastsac train --resume DIR``: find the run's checkpoint, check it can continue the run, and
take the run's settings from it, refusing command-line options that contradict them.

Everything here only reads: a bad directory or checkpoint is reported before anything in the
run directory is written."""

from __future__ import annotations

import json
import os
from typing import Any

from fastsac import checkpoint

CHECKPOINT_NAME = "checkpoint.pt"
# The settings of a run, recorded in its checkpoints (``agent.run_config``) and taken back by
# --resume. Output-only options (--out, --no-progress) are not settings.
RUN_KEYS = ("preset", "nproc", "env", "frames", "hidden", "lr", "memory_size", "batch_size",
            "initial_random_steps", "num_envs", "vectorization", "updates_per_step", "seed",
            "device", "eager", "background_compile", "test_episodes", "checkpoint_every")
# Settings that act only once training is over: --resume may change them.
AFTER_TRAINING = ("test_episodes",)


def run_config(args: Any) -> dict[str, Any]:
    """The settings of a resolved ``fastsac train`` namespace, as JSON-able values."""
    config = {key: getattr(args, key) for key in RUN_KEYS}
    config["hidden"] = list(config["hidden"])
    return config


def checkpoint_path(run_dir: str | os.PathLike) -> str:
    return os.path.join(os.fspath(run_dir), CHECKPOINT_NAME)


def recorded_run(run_dir: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(checkpoint state, run settings)`` of the run in ``run_dir``; ValueError saying why it
    cannot be resumed."""
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise ValueError(f"--resume {run_dir}: no such directory")
    path = checkpoint_path(run_dir)
    if not os.path.exists(path):
        raise ValueError(f"--resume {run_dir}: no {CHECKPOINT_NAME} in it (a run writes its first "
                         "checkpoint a tenth of the way in, or at --checkpoint-every frames)")
    # ValueError for truncated, foreign, other-version files; mapped, not read: agent.load()
    # reads the file once the settings are known
    state = checkpoint.read(path, mmap=True)
    if state["version"] < 3 or state.get("buffer") is None or state.get("run_config") is None:
        raise ValueError(f"{path} cannot be resumed: it holds no replay buffer or no run settings "
                         "(written by agent.save() without include_buffer, or by a fastsac "
                         "older than resume); agent.load() still reads its weights")
    try:
        config = json.loads(state["run_config"])
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: its run settings are unreadable: {exc}") from exc
    missing = [key for key in RUN_KEYS if key not in config]
    if missing:
        raise ValueError(f"{path}: its run settings lack {missing}")
    return state, config


def contradictions(given: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The options given on the command line (not None) whose values differ from the run's
    (but for ``AFTER_TRAINING``'s)."""
    found = []
    for key, value in given.items():
        if value is None or key not in config or key in AFTER_TRAINING:
            continue
        recorded = config[key]
        same = (list(value) == list(recorded) if key == "hidden"
                else float(value) == float(recorded) if isinstance(recorded, float)
                else value == recorded)
        if not same:
            found.append(f"--{key.replace('_', '-')} {_show(value)} (the run has "
                         f"{_show(recorded)})")
    return found


def _show(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
