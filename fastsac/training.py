"""The training loop both agents run, and what it keeps: every update's losses
(:class:`LossCurves`), one history row per finished episode, divergence checks, evaluation.

The loop only steps, stores, updates and counts; what it writes and shows are hooks
(``fastsac.run_log``: metrics CSV, TensorBoard, checkpoints, evaluation; ``fastsac.plotting``:
the plot; a progress bar; the user's callback), called after each finished episode and after
each step.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fastsac.errors import ConfigError, TrainingDiverged

# Called after each finished episode with its metrics; returning False stops training.
Callback = Callable[[dict[str, Any]], "bool | None"]


class LossCurves:
    """Every update's losses, one float64 row each (NaN where an update computed none: the
    actor's loss without a policy step), grown by doubling; kept in checkpoints."""

    def __init__(self, names: tuple[str, ...]):
        self.names = tuple(names)
        self._rows = np.zeros((0, len(self.names)))
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def extend(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(self.names))
        need = self._n + rows.shape[0]
        if need > self._rows.shape[0]:
            grown = np.zeros((max(need, 2 * self._rows.shape[0], 1024), len(self.names)))
            grown[:self._n] = self._rows[:self._n]
            self._rows = grown
        self._rows[self._n:need] = rows
        self._n = need

    def __getitem__(self, name: str) -> np.ndarray:
        """The curve of one loss, without the updates that did not compute it."""
        return self.points(name)[1]

    def points(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The updates (numbered from 1) that computed ``name``'s loss, and its values there."""
        column = self._rows[:self._n, self.names.index(name)]
        computed = ~np.isnan(column)
        return np.flatnonzero(computed) + 1.0, column[computed]

    def state_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "losses": torch.from_numpy(self._rows[:self._n].copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state.get("names", [])) != list(self.names):
            raise ValueError(f"loss curves of {state.get('names')}, this agent has {self.names}")
        self._rows = np.array(state["losses"].numpy(), dtype=np.float64).reshape(
            -1, len(self.names))
        self._n = self._rows.shape[0]


# ---- divergence -----------------------------------------------------------------------------
def check_env_output(frame: int, rewards: Any, observations: Any) -> None:
    """A step's reward(s) and observation(s), before they are stored."""
    rewards = np.asarray(rewards)
    if not np.isfinite(rewards).all():
        raise TrainingDiverged(frame, "reward", rewards[~np.isfinite(rewards)].reshape(-1)[0],
                               "the env returned it; nothing was stored")
    if not np.isfinite(observations).all():
        raise TrainingDiverged(frame, "observation", "non-finite",
                               "the env returned it; nothing was stored")


def check_parameters(agent) -> None:
    """Raise unless every parameter is finite (one host sync)."""
    groups = agent.engine.finite_check_tensors()
    with torch.no_grad():
        flags = torch.stack([torch.stack([torch.isfinite(t).all() for t in ts]).all()
                             for ts in groups.values()]).cpu()
    if not bool(flags.all()):
        name = list(groups)[int((~flags).nonzero()[0])]
        raise TrainingDiverged(agent.total_step, f"a parameter of {name}", "not finite",
                               "a learning rate too large?")


def _losses_to_host(agent, pending: list) -> np.ndarray:
    """The losses of these updates as ``[updates, losses]`` (one device-to-host copy), checked
    to be finite where an update computed them."""
    if not pending:
        return np.zeros((0, len(agent.loss_names)))
    stacked = torch.stack([losses for losses, _ in pending])
    cols = stacked.double().cpu().numpy()
    computed = np.ones_like(cols, dtype=bool)
    computed[:, agent.loss_names.index("actor")] = [policy for _, policy in pending]
    bad = computed & ~np.isfinite(cols)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise TrainingDiverged(agent.total_step, f"{agent.loss_names[col]}_loss",
                               float(cols[row, col]),
                               "a learning rate too large, or rewards too large for it?")
    return cols


def _end_episodes(agent, envs: list[int], scores: list[float], fps: float,
                  pending: list) -> list[dict[str, float]]:
    """History rows for the episodes that ended at this step (with N envs several; they share
    the mean losses of the updates since the last episode end)."""
    cols = _losses_to_host(agent, pending)
    if len(cols):
        check_parameters(agent)
        agent.loss_curves.extend(cols)
    row = {"frame": float(agent.total_step), "fps": float(fps),
           "alpha": float(agent.log_alpha.detach().exp().item())}
    for i, name in enumerate(agent.loss_names):
        column = cols[:, i][~np.isnan(cols[:, i])]
        row[f"{name}_loss"] = float(column.mean()) if len(column) else math.nan
    rows = []
    for env_index, score in zip(envs, scores, strict=True):
        rows.append({**row, "env": float(env_index), "score": float(score),
                     "rank": float(agent.rank)})
        for key in agent.history_keys:
            agent.history[key].append(rows[-1][key])
    return rows


# ---- the loop ---------------------------------------------------------------------------------
def _check_count(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _progress_bar(agent, num_frames: int, progress: bool | None):
    from tqdm.auto import tqdm

    from fastsac.plotting import in_notebook

    if progress is None:  # a bar in a terminal or a notebook, not in a log file
        progress = sys.stderr.isatty() or in_notebook()
    return tqdm(total=num_frames, disable=not progress, smoothing=0.05, dynamic_ncols=True,
                unit="transition" if agent.num_envs else "frame")


def train(agent, num_frames: int, *, plotting_interval: int = 200, plot_path=None,
          progress: bool | None = None, checkpoint_path=None, checkpoint_every=None,
          metrics_path=None, tensorboard_dir=None, eval_every=None, eval_episodes: int = 5,
          eval_env=None, callback: Callback | None = None) -> dict[str, list[float]]:
    """``Agent.train``: see there."""
    from fastsac import plotting, run_log

    _check_count("num_frames", num_frames)
    _check_count("plotting_interval", plotting_interval)
    if checkpoint_every is not None:
        _check_count("checkpoint_every", checkpoint_every)
    if eval_every is not None:
        _check_count("eval_every", eval_every)
        _check_count("eval_episodes", eval_episodes)
    if agent.total_step + num_frames <= agent.config.initial_random_steps:
        warnings.warn(f"fastsac: {num_frames} frames end within the "
                      f"{agent.config.initial_random_steps} random warm-up steps (from frame "
                      f"{agent.total_step}): no update will run; train longer or lower "
                      "initial_random_steps", UserWarning, stacklevel=3)
    agent.is_test = False
    vector = agent.num_envs is not None
    outputs = run_log.Outputs(agent, metrics_path if agent.rank == 0 else None,
                              tensorboard_dir if agent.rank == 0 else None)
    hooks = [outputs, run_log.Evaluation(agent, outputs, eval_every, eval_episodes, eval_env),
             plotting.PlotHook(agent, plot_path, num_frames, plotting_interval),
             run_log.Checkpoints(agent, outputs, checkpoint_path,
                                 checkpoint_every or max(1, num_frames // 10))]
    bar = _progress_bar(agent, num_frames, progress)
    agent.engine.before_train()
    state = agent._reset_env()
    scores = np.zeros(agent.num_envs or 1)  # the running episode return of each env
    pending: list = []  # (losses, policy step) of the updates since the last episode end
    episode_start, episode_frames = time.perf_counter(), 0
    start, collected, stop = agent.total_step, 0, False
    try:
        for hook in hooks:
            hook.start()
        while collected < num_frames and not stop:
            agent.total_step = start + collected + 1  # the frame of the next transition
            action = agent.select_action(state)
            if not np.isfinite(action).all():  # diverged: say where, before the env sees it
                _losses_to_host(agent, pending)
                check_parameters(agent)
                raise TrainingDiverged(agent.total_step, "the policy's action", "not finite",
                                       "the actor's output")
            next_state, reward, done = agent.step(action)
            if vector:
                found = agent.last_transitions
                new = len(found.rows)
                scores[found.rows] += found.rews
                ended = found.rows[found.ended]
            else:
                new, ended = 1, ((0,) if done else ())
                scores[0] += reward
            collected += new
            agent.total_step = start + collected
            episode_frames += new
            if (new and len(agent.memory) >= agent.config.batch_size
                    and agent.total_step > agent.config.initial_random_steps):
                for _ in range(agent._updates_due(new)):
                    pending.append(agent._scheduled_update())
            if len(ended):
                fps = episode_frames / max(time.perf_counter() - episode_start, 1e-9)
                rows = _end_episodes(agent, list(ended), [float(scores[i]) for i in ended], fps,
                                     pending)
                for hook in hooks:
                    hook.episodes(rows)
                if callback is not None:
                    stop = any(callback(dict(row, total_step=agent.total_step)) is False
                               for row in rows)
                scores[list(ended)] = 0.0
                bar.set_postfix(score=f"{np.mean(agent.history['score'][-10:]):.1f}",
                                fps=f"{fps:.0f}")
                pending, episode_start, episode_frames = [], time.perf_counter(), 0
            last = stop or collected >= num_frames
            # before the env is reset: at an episode boundary a resumed run's first reset is the
            # reset this run makes next
            for hook in hooks:
                hook.step(agent.total_step - new, agent.total_step, last)
            # the last step's episode is reset by the next train() (which starts with one)
            state = agent._reset_env() if (not vector and done and not last) else next_state
            bar.update(new)
        for hook in hooks:
            hook.end()
    except TrainingDiverged as exc:
        raise hooks[-1].diverged(exc) from None
    finally:
        for hook in hooks:
            hook.close()
        bar.close()
        agent.engine.after_train()
        if not vector:  # as the notebook does; a vector env stays open for the next call
            agent.env.close()
    agent.output_seconds = sum(hook.seconds for hook in hooks)
    return agent.history


def evaluate(agent, n_episodes: int, env, deterministic: bool) -> list[float]:
    """``Agent.evaluate``: see there."""
    from fastsac.envs import rescaled

    if env is None:
        if agent.num_envs is not None:
            raise ConfigError("evaluate() plays a plain env; this agent's env is a vector env: "
                              "pass one, e.g. agent.evaluate(env=fastsac.make_env(env_id))")
        env = agent.env
    else:
        env = rescaled(env)
    scores = []
    for _ in range(_check_count("n_episodes", n_episodes)):
        state, _ = env.reset()
        done, score = False, 0.0
        while not done:
            action = agent.engine.act(np.asarray(state), deterministic)
            state, reward, terminated, truncated, _ = env.step(action)
            score += float(reward)
            done = terminated or truncated
        scores.append(score)
    return scores
