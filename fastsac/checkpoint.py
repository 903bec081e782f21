"""Agent checkpoints: one ``torch.save`` file, written atomically, loaded all-or-nothing.

A checkpoint holds everything a run needs to continue exactly (docs/design.md, "Resume"): the
weights, optimizer states, log_alpha, the step and update counters, every random stream (the
agent's torch generator, the warm-up actions' numpy generator, the env's ``np_random``, the
buffer's sampler), the history and loss curves, the run's own settings (``run_config``) and,
when asked, the replay buffer.

A load first checks the whole file against the agent (format tag, dimensions, every tensor's
shape), then applies it; should applying still fail, the agent's previous state is restored, so
a bad file never leaves a half-loaded agent. Tensors are copied into the agent's existing
tensors (not swapped for new ones), which keeps FastSAC's compiled update and CUDA graph valid.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import tempfile
from typing import Any

import torch

from fastsac import rng_state
from fastsac.state import MODULES, OPTIMIZERS

FORMAT = "fastsac-checkpoint"
# 2: records hidden_sizes. Version 1 files (no hidden_sizes) hold the notebook's 128-128 nets.
# 3: random streams, update counters, loss curves and the run's settings (resumable).
VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
VERSION_1_HIDDEN_SIZES = (128, 128)
# One row per finished episode; "env" is the index of the env in a vector env (0 for a plain env),
# "rank" the data-parallel rank that played it (0 in one process).
HISTORY_KEYS = ("frame", "rank", "env", "score", "actor_loss", "qf_loss", "vf_loss",
                "alpha_loss", "alpha", "fps")


def _random_streams(agent) -> dict[str, Any]:
    return {"device_type": agent.device.type, "torch": agent.generator.get_state(),
            "numpy": rng_state.generator_state(agent._np_rng),
            "env": rng_state.env_rng_states(agent.env), "reset_seed": agent._reset_seed}


def agent_state(agent, include_buffer: bool) -> dict[str, Any]:
    """Everything that defines a trained agent, as tensors and plain Python values."""
    state = {
        "format": FORMAT,
        "version": VERSION,
        "obs_dim": agent.obs_dim,
        "action_dim": agent.action_dim,
        "hidden_sizes": list(agent.hidden_sizes),
        "modules": {name: getattr(agent, name).state_dict() for name in MODULES},
        "log_alpha": agent.log_alpha.detach().clone(),
        "optimizers": {name: getattr(agent, name).state_dict() for name in OPTIMIZERS},
        "total_step": int(agent.total_step),
        "update_step": int(agent.update_step),
        "learn_counts": [int(agent._learn_frames), int(agent._learn_updates)],
        "history": {k: list(v) for k, v in agent.history.items()},
        "curves": agent.loss_curves.state_dict(),
        "rng": _random_streams(agent),
        "world_size": int(agent.world_size),
        "run_config": None if agent.run_config is None else json.dumps(agent.run_config),
        "buffer": agent.memory.state_dict() if include_buffer else None,
    }
    return state


def _temp_prefix(path: str) -> str:
    return f".{os.path.basename(path)}.part-"


def save(agent, path: str | os.PathLike, include_buffer: bool = False) -> None:
    """Write to a temporary file beside ``path``, flush it to disk, rename it over ``path`` and
    flush the directory: a kill at any instant leaves the old file or the new one, whole."""
    _write_atomically(lambda: agent_state(agent, include_buffer), path)


def _write_atomically(make_state, path: str | os.PathLike) -> None:
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    for stale in glob.glob(os.path.join(glob.escape(directory), _temp_prefix(path) + "*")):
        os.unlink(stale)  # left by a writer killed mid-write
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(make_state(), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (a power cut after it keeps the new name)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read(path: str | os.PathLike, mmap: bool = False) -> dict[str, Any]:
    """The checkpoint at ``path``, checked to be one this fastsac reads (not yet against an
    agent): FileNotFoundError, or ValueError saying what is wrong with it. ``mmap``: tensors
    map the file instead of being read (for a look at the settings, without the buffer's
    bytes)."""
    try:
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(
            f"{os.fspath(path)!r} is not a readable fastsac checkpoint (truncated or corrupted?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not a fastsac checkpoint (no format tag)")
    if state.get("version") not in READABLE_VERSIONS:
        raise ValueError(f"checkpoint version {state.get('version')} is not supported "
                         f"(this fastsac reads versions {READABLE_VERSIONS})")
    if state["version"] == 1:
        state["hidden_sizes"] = list(VERSION_1_HIDDEN_SIZES)
    return state


def _check_tensors(where: str, expected: dict, found: dict) -> None:
    if set(expected) != set(found):
        raise ValueError(f"{where}: keys differ: missing {sorted(set(expected) - set(found))}, "
                         f"unexpected {sorted(set(found) - set(expected))}")
    for key, value in expected.items():
        other = found[key]
        if not isinstance(other, torch.Tensor) or tuple(other.shape) != tuple(value.shape):
            shape = getattr(other, "shape", type(other).__name__)
            raise ValueError(f"{where}.{key}: shape {tuple(value.shape)} expected, found {shape}")


def check_optimizer_state(where: str, optimizer: torch.optim.Optimizer, saved: Any) -> None:
    """Raise ``ValueError`` unless ``saved`` is an Adam ``state_dict`` for ``optimizer``'s
    parameters (their number, each entry's step and moment shapes)."""
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict) \
            or not isinstance(saved.get("param_groups"), list) \
            or not all(isinstance(g, dict) and "params" in g for g in saved["param_groups"]):
        raise ValueError(f"{where}: not an optimizer state")
    params = [p for g in optimizer.param_groups for p in g["params"]]
    saved_ids = [i for g in saved["param_groups"] for i in g["params"]]
    if len(saved_ids) != len(params):
        raise ValueError(f"{where}: {len(saved_ids)} parameters saved, the agent has {len(params)}")
    for idx, param in zip(saved_ids, params, strict=True):
        entry = saved["state"].get(idx)
        if entry is None:
            continue
        if not isinstance(entry, dict) or "step" not in entry:
            raise ValueError(f"{where}: the state of parameter {idx} is not Adam's")
        for key in ("exp_avg", "exp_avg_sq"):
            value = entry.get(key)
            if not isinstance(value, torch.Tensor) or value.shape != param.shape:
                raise ValueError(f"{where}: state '{key}' of parameter {idx} does not fit")


def validate(agent, state: dict[str, Any]) -> None:
    """Raise ValueError unless ``state`` fits ``agent`` entirely."""
    if (state.get("obs_dim"), state.get("action_dim")) != (agent.obs_dim, agent.action_dim):
        raise ValueError(
            f"checkpoint is for obs_dim={state.get('obs_dim')}, action_dim="
            f"{state.get('action_dim')}; this agent has obs_dim={agent.obs_dim}, "
            f"action_dim={agent.action_dim}"
        )
    sizes = state.get("hidden_sizes")
    if not isinstance(sizes, (list, tuple)) or tuple(sizes) != tuple(agent.hidden_sizes):
        raise ValueError(
            f"checkpoint is for hidden_sizes={tuple(sizes) if sizes else sizes}; this agent has "
            f"hidden_sizes={tuple(agent.hidden_sizes)} (create the agent with the checkpoint's "
            "hidden_sizes to load it)")
    modules, optimizers = state.get("modules"), state.get("optimizers")
    if not isinstance(modules, dict) or not isinstance(optimizers, dict):
        raise ValueError("checkpoint lacks module or optimizer states")
    for name in MODULES:
        _check_tensors(name, getattr(agent, name).state_dict(), modules.get(name) or {})
    for name in OPTIMIZERS:
        check_optimizer_state(name, getattr(agent, name), optimizers.get(name))
        problem = agent._optimizer_state_problem(optimizers[name])
        if problem:
            raise ValueError(f"{name}: {problem}")
    log_alpha = state.get("log_alpha")
    if not isinstance(log_alpha, torch.Tensor) or log_alpha.shape != agent.log_alpha.shape:
        raise ValueError("checkpoint lacks a log_alpha of the right shape")
    if not isinstance(state.get("total_step"), int):
        raise ValueError("checkpoint lacks total_step")
    if state["version"] >= 3:
        rng = state.get("rng")
        if not (isinstance(rng, dict) and isinstance(rng.get("torch"), torch.Tensor)
                and isinstance(rng.get("numpy"), str)):
            raise ValueError("checkpoint lacks its random streams")
        counts = state.get("learn_counts")
        if not (isinstance(counts, list) and len(counts) == 2):
            raise ValueError("checkpoint lacks its update counters")
        curves = state.get("curves")
        if not isinstance(curves, dict):
            raise ValueError("checkpoint lacks its loss curves")
    if state.get("buffer") is not None:
        agent.memory.check_state_dict(state["buffer"])


def apply(agent, state: dict[str, Any]) -> None:
    with torch.no_grad():
        for name in MODULES:
            getattr(agent, name).load_state_dict(state["modules"][name])
        agent.log_alpha.copy_(state["log_alpha"])
    for name in OPTIMIZERS:  # torch's own load: FastSAC's hooks keep the state in its buffers
        optimizer = getattr(agent, name)
        saved = state["optimizers"][name]
        # the agent's own device setting, not the saving agent's: a CUDA agent's capturable
        # Adam saved, then loaded on CPU, must not make torch's Adam demand CUDA tensors (set
        # before the load: torch places the step counts by it)
        groups = [{**g, "capturable": own.get("capturable", False)}
                  for g, own in zip(saved["param_groups"], optimizer.param_groups, strict=True)]
        optimizer.load_state_dict({**saved, "param_groups": groups})
    agent.total_step = state["total_step"]
    # files written before updates were counted apart: one env, one update per frame, so the
    # last update's number was its frame (none yet during the warm-up)
    learning = state["total_step"] > agent.initial_random_steps
    agent.update_step = int(state.get("update_step", state["total_step"] if learning else 0))
    history = state.get("history") or {}
    rows = len(history.get("frame", []))
    agent.history = {k: list(history.get(k, [0.0] * rows if k in ("env", "rank") else []))
                     for k in HISTORY_KEYS}
    agent._gathered_rows = rows
    if state.get("buffer") is not None:
        agent.memory.load_state_dict(state["buffer"])
    if state["version"] >= 3:
        agent._learn_frames, agent._learn_updates = (int(v) for v in state["learn_counts"])
        agent.loss_curves.load_state_dict(state["curves"])
        if agent.rank == 0:  # data-parallel: the other ranks keep their own streams (seed + rank)
            _apply_rng(agent, state["rng"])
        run = state.get("run_config")
        agent.run_config = None if run is None else json.loads(run)
    else:  # the ratio's count starts again; curves were not kept
        agent._learn_frames = agent._learn_updates = 0
        agent.loss_curves.load_state_dict({"losses": torch.zeros(0, 4, dtype=torch.float64)})


def _apply_rng(agent, rng: dict[str, Any]) -> None:
    """Restore the random streams. The torch generator's only from the same device type (a CPU
    generator's state means nothing to CUDA's); the env's only where it has as many envs."""
    if rng["device_type"] == agent.device.type:
        agent.generator.set_state(rng["torch"])
    rng_state.set_generator_state(agent._np_rng, rng["numpy"])
    agent._reset_seed = rng.get("reset_seed")
    try:
        rng_state.set_env_rng_states(agent.env, rng.get("env"))
    except ValueError:
        pass  # another env setup: its episodes start from its own streams


# ---- data-parallel ranks ----------------------------------------------------------------------
# A data-parallel checkpoint is rank 0's checkpoint file plus, for every other rank, a file of
# what is its own (replay buffer, random streams), named with the frame it belongs to. The rank
# files are written before rank 0's file and removed only once a newer one is complete, so the
# checkpoint file always finds the rank files of its frame (docs/design.md, section 16).
RANK_FORMAT = "fastsac-rank-state"


def rank_path(path: str | os.PathLike, rank: int, frame: int) -> str:
    root, ext = os.path.splitext(os.fspath(path))
    return f"{root}.rank{rank}.frame{frame}{ext}"


def save_rank(agent, path: str | os.PathLike) -> None:
    """This rank's own state at ``agent.total_step``, beside the checkpoint ``path``."""
    _write_atomically(lambda: {
        "format": RANK_FORMAT, "version": VERSION, "rank": agent.rank,
        "world_size": agent.world_size, "total_step": int(agent.total_step),
        "rng": _random_streams(agent), "buffer": agent.memory.state_dict()},
        rank_path(path, agent.rank, agent.total_step))


def remove_older_rank_files(path: str | os.PathLike, rank: int, frame: int) -> None:
    """This rank's files of frames before ``frame`` (their checkpoint has been replaced)."""
    root, ext = os.path.splitext(os.fspath(path))
    keep = rank_path(path, rank, frame)
    for old in glob.glob(f"{glob.escape(root)}.rank{rank}.frame*{ext}"):
        if old != keep:
            os.unlink(old)


def load_rank(agent, path: str | os.PathLike) -> bool:
    """Data-parallel, ranks but 0, after ``load``: this rank's buffer and streams from its file
    of the checkpoint's frame. False where there is none (a single-process checkpoint: the rank
    keeps its own streams and starts from rank 0's buffer)."""
    own = rank_path(path, agent.rank, agent.total_step)
    if not os.path.exists(own):
        return False
    try:
        state = torch.load(own, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{own!r} is not a readable rank state: {exc}") from exc
    if not (isinstance(state, dict) and state.get("format") == RANK_FORMAT
            and state.get("rank") == agent.rank and state.get("world_size") == agent.world_size
            and state.get("total_step") == agent.total_step):
        raise ValueError(f"{own!r} is not rank {agent.rank}'s state of frame {agent.total_step} "
                         f"in a world of {agent.world_size}")
    agent.memory.load_state_dict(state["buffer"])  # checked before anything is copied
    _apply_rng(agent, state["rng"])
    return True


def load(agent, path: str | os.PathLike) -> None:
    state = read(path)
    try:
        validate(agent, state)
    except (AttributeError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"{os.fspath(path)!r} is malformed: {type(exc).__name__}: {exc}") from exc
    snapshot = copy.deepcopy(agent_state(agent, include_buffer=state.get("buffer") is not None))
    try:
        apply(agent, state)
    except Exception as exc:
        apply(agent, snapshot)
        raise ValueError(
            f"loading {os.fspath(path)!r} failed, agent left unchanged: {exc}") from exc
