"""The training loop's hooks that write or measure: metrics.csv and eval.csv, TensorBoard,
periodic deterministic evaluation, and resumable checkpoints (with the data-parallel gathers of
every rank's rows). Each hook is called at the start, after finished episodes, after each step,
at the end; ``seconds`` is what it cost the loop."""

from __future__ import annotations

import csv
import math
import os
import time

import numpy as np

from fastsac import checkpoint, distributed
from fastsac.errors import ConfigError, TrainingDiverged

# A checkpoint at least this often (seconds of wall time), whatever the frame interval.
CHECKPOINT_MAX_SECONDS = 600.0
EVAL_KEYS = ("frame", "eval_return", "eval_std")


class Hook:
    seconds = 0.0

    def start(self) -> None: ...

    def episodes(self, rows: list[dict[str, float]]) -> None: ...

    def step(self, before: int, after: int, last: bool) -> None: ...

    def end(self) -> None: ...

    def close(self) -> None: ...


def _crossed(every: int | None, before: int, after: int) -> bool:
    return every is not None and after // every > before // every


def _row(history: dict, keys: tuple[str, ...], i: int) -> list:
    """Row ``i`` as CSV cells: whole numbers (frames) in full, the rest to 6 digits."""
    return [i + 1, *(int(v) if float(v).is_integer() else f"{v:.6g}"
                     for v in (history[k][i] for k in keys))]


def write_csv(path: str | os.PathLike, keys: tuple[str, ...], history: dict) -> None:
    """A whole history as a CSV (header ``episode`` + its columns), atomically."""
    path = os.fspath(path)
    with open(f"{path}.part", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["episode", *keys])
        writer.writerows(_row(history, keys, i) for i in range(len(history[keys[0]])))
    os.replace(f"{path}.part", path)


class Outputs(Hook):
    """metrics.csv (one row per finished episode; rewritten from the history at the start, so
    a resumed run has no gap and no duplicate row), eval.csv beside it, and TensorBoard scalars
    named as the CSV columns."""

    def __init__(self, agent, metrics_path, tensorboard_dir):
        self.agent = agent
        self.path = None if metrics_path is None else os.fspath(metrics_path)
        self.eval_path = (None if self.path is None else
                          os.path.join(os.path.dirname(os.path.abspath(self.path)), "eval.csv"))
        self.tensorboard_dir = tensorboard_dir
        self._file = self._writer = None
        self._written = 0

    def start(self) -> None:
        agent = self.agent
        if self.path is not None:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            write_csv(self.path, agent.history_keys, agent.history)
            self._written = len(agent.history["frame"])
            self._file = open(self.path, "a", newline="")
        if self.eval_path is not None and agent.eval_history["frame"]:
            write_csv(self.eval_path, EVAL_KEYS, agent.eval_history)
        if self.tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ConfigError("TensorBoard logging needs the tensorboard package: pip "
                                  "install 'fastsac[tensorboard]' (or tensorboard)") from exc
            self._writer = SummaryWriter(os.fspath(self.tensorboard_dir))

    def episodes(self, rows) -> None:
        if self.agent.world is None:  # data-parallel: rank 0 writes when the rows are gathered
            self.flush()

    def flush(self) -> None:
        """Append the history's rows not written yet."""
        started, history = time.perf_counter(), self.agent.history
        keys = self.agent.history_keys
        for i in range(self._written, len(history["frame"])):
            if self._file is not None:
                csv.writer(self._file).writerow(_row(history, keys, i))
            if self._writer is not None:
                for key in keys[3:]:
                    value = history[key][i]
                    if not math.isnan(value):  # a loss no update computed is not a zero
                        self._writer.add_scalar(key, value, int(history["frame"][i]))
        self._written = len(history["frame"])
        if self._file is not None:
            self._file.flush()
        self.seconds += time.perf_counter() - started

    def evaluation(self, frame: int, mean: float, std: float) -> None:
        if self.eval_path is not None:  # a few rows: rewritten whole, as at the start
            write_csv(self.eval_path, EVAL_KEYS, self.agent.eval_history)
        if self._writer is not None:
            self._writer.add_scalar("eval_return", mean, frame)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._writer is not None:
            self._writer.close()
        self._file = self._writer = None


class Evaluation(Hook):
    """Every ``every`` frames, the mean return of ``episodes`` deterministic episodes on a
    separate env (its own seeded resets; no noise is drawn, so training is unchanged)."""

    def __init__(self, agent, outputs: Outputs, every: int | None, episodes: int, env):
        self.agent, self.outputs = agent, outputs
        self.every, self.episodes_n, self.env = every, episodes, env
        self._made = False

    def start(self) -> None:
        if self.every is None or self.env is not None:
            return
        import gymnasium as gym

        spec = getattr(self.agent.env, "spec", None)
        if spec is None or self.agent.num_envs is not None:
            raise ConfigError("eval_every needs eval_env= (the agent's env has no gymnasium spec "
                              "to make another from, or is a vector env)")
        self.env, self._made = gym.make(spec), True
        seed = self.agent.config.seed
        self.env.reset(seed=None if seed is None else seed + 1)

    def step(self, before: int, after: int, last: bool) -> None:
        if not _crossed(self.every, before, after):
            return
        started = time.perf_counter()
        returns = self.agent.evaluate(self.episodes_n, env=self.env, deterministic=True)
        mean, std = float(np.mean(returns)), float(np.std(returns))
        for key, value in zip(EVAL_KEYS, (float(after), mean, std), strict=True):
            self.agent.eval_history[key].append(value)
        self.outputs.evaluation(after, mean, std)
        self.seconds += time.perf_counter() - started

    def close(self) -> None:
        if self._made:
            self.env.close()


class Checkpoints(Hook):
    """A resumable checkpoint each time ``total_step`` passes a multiple of ``every`` frames,
    after ``CHECKPOINT_MAX_SECONDS`` without one (one process: data-parallel ranks meet at
    checkpoints, by frames only) and at the run's last step. Never over a diverged state."""

    def __init__(self, agent, outputs: Outputs, path, every: int):
        self.agent, self.outputs, self.every = agent, outputs, max(1, int(every))
        self.path = None if path is None else os.fspath(path)
        self.max_seconds = math.inf if agent.world else CHECKPOINT_MAX_SECONDS
        self.frame: int | None = None  # of the last checkpoint written
        self._last = time.monotonic()

    def step(self, before: int, after: int, last: bool) -> None:
        if self.path is not None and (last or _crossed(self.every, before, after)
                                      or time.monotonic() - self._last >= self.max_seconds):
            self.write()

    def write(self) -> None:
        from fastsac.training import check_parameters

        started, agent = time.perf_counter(), self.agent
        check_parameters(agent)  # on every rank (equal parameters): all stop together
        self.gather()
        if agent.world is not None and agent.rank != 0:  # its own buffer and streams, first
            checkpoint.save_rank(agent, self.path)
        if agent.world is not None:
            distributed.barrier()  # every rank file is whole before rank 0's names its frame
        if agent.rank == 0:
            checkpoint.save(agent, self.path, include_buffer=True)
        if agent.world is not None:
            distributed.barrier()  # rank 0's file is whole: older rank files can go
            if agent.rank != 0:
                checkpoint.remove_older_rank_files(self.path, agent.rank, agent.total_step)
        self._last, self.frame = time.monotonic(), agent.total_step
        self.seconds += time.perf_counter() - started

    def gather(self) -> None:
        """Data-parallel: the rows every rank finished since the last gather join rank 0's
        history (ordered by frame, rank, env) and its outputs."""
        agent = self.agent
        if agent.world is None:
            return
        keys, first = agent.history_keys, agent._gathered_rows
        mine = [{k: agent.history[k][i] for k in keys}
                for i in range(first, len(agent.history["frame"]))]
        rows = distributed.gather_rows(mine)
        if rows is not None:
            rows.sort(key=lambda r: (r["frame"], r["rank"], r["env"]))
            for k in keys:
                del agent.history[k][first:]
                agent.history[k].extend(r[k] for r in rows)
            self.outputs.flush()
        agent._gathered_rows = len(agent.history["frame"])

    def end(self) -> None:
        if self.path is None:
            self.gather()

    def diverged(self, exc: TrainingDiverged) -> TrainingDiverged:
        """The error, saying which checkpoint is kept."""
        if self.path is None:
            return exc
        kept = (f"the last checkpoint, {self.path} (frame {self.frame}), is kept"
                if self.frame is not None else f"the checkpoint at {self.path} is kept"
                if os.path.exists(self.path) else "no checkpoint was written")
        return TrainingDiverged(exc.frame, exc.what, exc.value,
                                f"{exc.hint}; {kept}" if exc.hint else kept)

