"""Checkpoints: one ``torch.save`` file that carries its agent, written atomically, loaded
all-or-nothing; and the policy-only export.

A checkpoint holds the agent's settings (``SACConfig``), dtype, spaces and env id, so it can
rebuild its agent alone (``from_checkpoint``) and refuses to load into an agent of other
settings, naming them; then everything a run needs to continue exactly (docs/design.md,
"Checkpoints and resume"): weights, optimizer states, log_alpha, the counters, every random
stream, the history, evaluations and loss curves, the run's CLI settings and, when asked, the
replay buffer. A load checks the whole file first, then copies it into the agent's own tensors
(which keeps FastSAC's flat buffers and CUDA graphs valid); should that still fail, the agent's
previous state is put back.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import tempfile
from typing import Any

import numpy as np
import torch

from fastsac import rng_state
from fastsac.errors import CheckpointError
from fastsac.state import modules, optimizers

FORMAT, VERSION = "fastsac-checkpoint", 4
POLICY_FORMAT = "fastsac-policy"
RANK_FORMAT = "fastsac-rank-state"


def _spaces(agent) -> dict[str, Any]:
    return {"obs_dim": agent.obs_dim, "action_dim": agent.action_dim,
            "action_low": agent.action_space.low.tolist(),
            "action_high": agent.action_space.high.tolist()}


def _random_streams(agent) -> dict[str, Any]:
    return {"device_type": agent.device.type, "torch": agent.generator.get_state(),
            "numpy": rng_state.generator_state(agent._np_rng),
            "env": rng_state.env_rng_states(agent.env), "reset_seed": agent._reset_seed}


def agent_state(agent, include_buffer: bool) -> dict[str, Any]:
    """Everything that defines a trained agent, as tensors and plain values."""
    from fastsac.envs import env_id_of, env_kwargs_of

    return {
        "format": FORMAT, "version": VERSION, "settings": agent.config.to_dict(),
        "dtype": str(agent.dtype).removeprefix("torch."), "env_id": env_id_of(agent.env),
        "env_kwargs": json.dumps(env_kwargs_of(agent.env)),
        "spaces": _spaces(agent),
        "modules": {name: getattr(agent, name).state_dict() for name in modules(agent)},
        "log_alpha": agent.log_alpha.detach().clone(),
        "optimizers": {name: getattr(agent, name).state_dict() for name in optimizers(agent)},
        "counters": [int(agent.total_step), int(agent.update_step), int(agent._learn_frames),
                     int(agent._learn_updates)],
        "history": {k: list(v) for k, v in agent.history.items()},
        "eval_history": {k: list(v) for k, v in agent.eval_history.items()},
        "curves": agent.loss_curves.state_dict(),
        "rng": _random_streams(agent), "world_size": int(agent.world_size),
        "run_config": None if agent.run_config is None else json.dumps(agent.run_config),
        "buffer": agent.memory.state_dict() if include_buffer else None,
    }


def save(agent, path: str | os.PathLike, include_buffer: bool = False) -> None:
    _write_atomically(lambda: agent_state(agent, include_buffer), path)


def _write_atomically(make_state, path: str | os.PathLike) -> None:
    """A temporary file beside ``path``, flushed to disk, renamed over it, the directory
    flushed: a kill at any instant leaves the old file or the new one, whole."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    prefix = f".{os.path.basename(path)}.part-"
    for stale in glob.glob(os.path.join(glob.escape(directory), prefix + "*")):
        os.unlink(stale)  # left by a writer killed mid-write
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=directory)
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
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def read(path: str | os.PathLike, mmap: bool = False, kind: str = FORMAT) -> dict[str, Any]:
    """The file at ``path``, checked to be a ``kind`` file this fastsac reads (not yet against an
    agent). ``mmap``: tensors map the file (a look at the settings without the buffer's bytes)."""
    where = os.fspath(path)
    try:
        state = torch.load(where, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{where!r} is not a readable fastsac file (truncated or "
                              f"corrupted?): {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != kind:
        found = state.get("format") if isinstance(state, dict) else None
        raise CheckpointError(f"{where!r} is not a {kind} file (format {found!r})")
    if state.get("version") != VERSION and kind == FORMAT:
        raise CheckpointError(
            f"{where!r} is a checkpoint of format version {state.get('version')}; this fastsac "
            f"reads version {VERSION} only (files written before checkpoints carried their "
            "agent's settings): load its weights with torch.load(path)['modules'] into "
            "agent.actor.load_state_dict(...) and so on")
    return state


def _check_tensors(where: str, expected: dict, found: Any) -> None:
    if not isinstance(found, dict) or set(expected) != set(found):
        raise CheckpointError(f"{where}: its tensors differ from this agent's")
    for key, value in expected.items():
        other = found[key]
        if not isinstance(other, torch.Tensor) or tuple(other.shape) != tuple(value.shape):
            raise CheckpointError(f"{where}.{key}: shape {tuple(value.shape)} expected, found "
                                  f"{getattr(other, 'shape', type(other).__name__)}")


def check_optimizer_state(where: str, optimizer: torch.optim.Optimizer, saved: Any) -> None:
    """Raise unless ``saved`` is an Adam ``state_dict`` for ``optimizer``'s parameters."""
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict) \
            or not isinstance(saved.get("param_groups"), list):
        raise CheckpointError(f"{where}: not an optimizer state")
    params = [p for g in optimizer.param_groups for p in g["params"]]
    ids = [i for g in saved["param_groups"] for i in g.get("params", [])]
    if len(ids) != len(params):
        raise CheckpointError(f"{where}: {len(ids)} parameters saved, the agent has "
                              f"{len(params)}")
    for idx, param in zip(ids, params, strict=True):
        entry = saved["state"].get(idx)
        if entry is not None and not (
                isinstance(entry, dict) and "step" in entry
                and all(isinstance(entry.get(k), torch.Tensor) and entry[k].shape == param.shape
                        for k in ("exp_avg", "exp_avg_sq"))):
            raise CheckpointError(f"{where}: the state of parameter {idx} is not Adam's for it")


def validate(agent, state: dict[str, Any]) -> None:
    """Raise ``CheckpointError`` unless ``state`` fits ``agent`` entirely."""
    from fastsac.settings import SACConfig

    try:
        saved = SACConfig.from_dict(state["settings"])
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"the checkpoint's settings are unreadable: {exc}") from exc
    # the seed is not compared: the file's random streams replace the agent's
    differ = saved.replace(seed=agent.config.seed).differences(agent.config)
    if differ:
        raise CheckpointError(
            "the checkpoint's settings differ from this agent's: " + "; ".join(differ) +
            " (build the agent from the file: FastSAC.from_checkpoint(path))")
    spaces = state.get("spaces", {})
    if (spaces.get("obs_dim"), spaces.get("action_dim")) != (agent.obs_dim, agent.action_dim):
        raise CheckpointError(
            f"the checkpoint is for obs_dim={spaces.get('obs_dim')}, action_dim="
            f"{spaces.get('action_dim')}; this agent's env has obs_dim={agent.obs_dim}, "
            f"action_dim={agent.action_dim}")
    for name in modules(agent):
        _check_tensors(name, getattr(agent, name).state_dict(), state["modules"].get(name))
    for name in optimizers(agent):
        check_optimizer_state(name, getattr(agent, name), state["optimizers"].get(name))
    if not (isinstance(state.get("log_alpha"), torch.Tensor)
            and state["log_alpha"].shape == agent.log_alpha.shape):
        raise CheckpointError("the checkpoint lacks a log_alpha of the right shape")
    if state.get("buffer") is not None:
        try:
            agent.memory.check_state_dict(state["buffer"])
        except ValueError as exc:
            raise CheckpointError(str(exc)) from None


def apply(agent, state: dict[str, Any]) -> None:
    with torch.no_grad():
        for name in modules(agent):
            getattr(agent, name).load_state_dict(state["modules"][name])
        agent.log_alpha.copy_(state["log_alpha"])
    for name in optimizers(agent):  # torch's own load: FastSAC's hooks keep its buffers
        optimizer, saved = getattr(agent, name), state["optimizers"][name]
        # this agent's own device setting (a CUDA agent's capturable Adam loaded on CPU must not
        # demand CUDA tensors; set before the load: torch places the step counts by it)
        groups = [{**g, "capturable": own.get("capturable", False)}
                  for g, own in zip(saved["param_groups"], optimizer.param_groups, strict=True)]
        optimizer.load_state_dict({**saved, "param_groups": groups})
    (agent.total_step, agent.update_step, agent._learn_frames,
     agent._learn_updates) = (int(v) for v in state["counters"])
    agent.history = {k: list(state["history"][k]) for k in agent.history_keys}
    agent.eval_history = {k: list(v) for k, v in state["eval_history"].items()}
    agent._gathered_rows = len(agent.history["frame"])
    agent.loss_curves.load_state_dict(state["curves"])
    if state.get("buffer") is not None:
        agent.memory.load_state_dict(state["buffer"])
    if agent.rank == 0:  # data-parallel: the other ranks keep their own streams (seed + rank)
        _apply_rng(agent, state["rng"])
    run = state.get("run_config")
    agent.run_config = None if run is None else json.loads(run)


def _apply_rng(agent, rng: dict[str, Any]) -> None:
    """The torch generator's state only from the same device type; the env's only where it has
    as many envs (another env setup starts from its own streams)."""
    if rng["device_type"] == agent.device.type:
        agent.generator.set_state(rng["torch"])
    rng_state.set_generator_state(agent._np_rng, rng["numpy"])
    agent._reset_seed = rng.get("reset_seed")
    try:
        rng_state.set_env_rng_states(agent.env, rng.get("env"))
    except ValueError:
        pass


def load(agent, path: str | os.PathLike) -> None:
    state = read(path)
    try:
        validate(agent, state)
    except (AttributeError, TypeError, KeyError, IndexError) as exc:
        raise CheckpointError(f"{os.fspath(path)!r} is malformed: {type(exc).__name__}: "
                              f"{exc}") from exc
    snapshot = copy.deepcopy(agent_state(agent, include_buffer=state.get("buffer") is not None))
    try:
        apply(agent, state)
    except Exception as exc:
        apply(agent, snapshot)
        raise CheckpointError(f"loading {os.fspath(path)!r} failed, agent left unchanged: "
                              f"{exc}") from exc


def env_for(state: dict[str, Any], env):
    """The env an agent rebuilt from ``state`` acts in: ``env``, or a new one of the recorded id
    and keyword arguments."""
    import gymnasium as gym

    if env is None:
        if state.get("env_id") is None:
            raise CheckpointError("the checkpoint records no env id (the env was not made by "
                                  "gymnasium.make): pass env=")
        env = gym.make(state["env_id"], **json.loads(state.get("env_kwargs") or "{}"))
    return env


# ---- the policy alone ---------------------------------------------------------------------------
def save_policy(agent, path: str | os.PathLike) -> None:
    from fastsac.envs import env_id_of

    _write_atomically(lambda: {
        "format": POLICY_FORMAT, "version": VERSION, "settings": agent.config.to_dict(),
        "dtype": str(agent.dtype).removeprefix("torch."), "env_id": env_id_of(agent.env),
        "spaces": _spaces(agent), "actor": agent.actor.state_dict()}, path)


class Policy:
    """A saved actor, for deployment: ``predict`` as SB3's, no buffer, no training state."""

    def __init__(self, path: str | os.PathLike, device: str | torch.device = "cpu"):
        from fastsac.envs import unscale
        from fastsac.networks import Actor
        from fastsac.settings import SACConfig
        from fastsac.variants import VARIANTS

        state = read(path, kind=POLICY_FORMAT)
        self.settings = SACConfig.from_dict(state["settings"])
        self.env_id, spaces = state.get("env_id"), state["spaces"]
        self.obs_dim, self.action_dim = spaces["obs_dim"], spaces["action_dim"]
        self.low = np.asarray(spaces["action_low"], dtype=np.float32)
        self.high = np.asarray(spaces["action_high"], dtype=np.float32)
        self.device = torch.device(device)
        self.actor = Actor(self.obs_dim, self.action_dim, self.settings.hidden_sizes,
                           VARIANTS[self.settings.variant].head)
        self.actor.load_state_dict(state["actor"])
        self.actor.to(self.device, getattr(torch, state["dtype"])).eval()
        self._unscale = unscale

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        """The action for one observation ``[obs_dim]`` or a batch ``[n, obs_dim]``, in the
        env's own bounds (SB3's ``predict``), and None."""
        import gymnasium as gym

        p = next(self.actor.parameters())
        x = torch.as_tensor(np.asarray(observation), dtype=p.dtype, device=self.device)
        with torch.inference_mode():
            mean_raw, _ = self.actor.heads(x)
            action, _ = self.actor(x, torch.zeros_like(mean_raw) if deterministic else None)
        box = gym.spaces.Box(self.low, self.high, dtype=np.float32)
        return self._unscale(action.float().cpu().numpy(), box), None


def load_policy(path: str | os.PathLike, device: str | torch.device = "cpu") -> Policy:
    """The policy ``agent.save_policy(path)`` wrote."""
    return Policy(path, device)


# ---- data-parallel ranks ------------------------------------------------------------------------
# A data-parallel checkpoint is rank 0's file plus, for every other rank, a file of what is its
# own (replay buffer, random streams) named with its frame, written before rank 0's and removed
# only once a newer one is complete (docs/design.md, "Data-parallel training").
def rank_path(path: str | os.PathLike, rank: int, frame: int) -> str:
    root, ext = os.path.splitext(os.fspath(path))
    return f"{root}.rank{rank}.frame{frame}{ext}"


def save_rank(agent, path: str | os.PathLike) -> None:
    _write_atomically(lambda: {
        "format": RANK_FORMAT, "version": VERSION, "rank": agent.rank,
        "world_size": agent.world_size, "total_step": int(agent.total_step),
        "rng": _random_streams(agent), "buffer": agent.memory.state_dict()},
        rank_path(path, agent.rank, agent.total_step))


def remove_older_rank_files(path: str | os.PathLike, rank: int, frame: int) -> None:
    root, ext = os.path.splitext(os.fspath(path))
    keep = rank_path(path, rank, frame)
    for old in glob.glob(f"{glob.escape(root)}.rank{rank}.frame*{ext}"):
        if old != keep:
            os.unlink(old)


def load_rank(agent, path: str | os.PathLike) -> bool:
    """Ranks but 0, after ``load``: this rank's buffer and streams of the checkpoint's frame.
    False where there is none (a single-process checkpoint: the rank keeps its own streams)."""
    own = rank_path(path, agent.rank, agent.total_step)
    if not os.path.exists(own):
        return False
    state = read(own, kind=RANK_FORMAT)
    if not (state.get("rank") == agent.rank and state.get("world_size") == agent.world_size
            and state.get("total_step") == agent.total_step):
        raise CheckpointError(f"{own!r} is not rank {agent.rank}'s state of frame "
                              f"{agent.total_step} in a world of {agent.world_size}")
    agent.memory.load_state_dict(state["buffer"])
    _apply_rng(agent, state["rng"])
    return True
