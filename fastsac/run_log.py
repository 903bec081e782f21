"""What ``train()`` writes while it runs, besides the plot: a metrics CSV that grows by one row
per finished episode, and resumable checkpoints on a schedule of frames and wall time."""

from __future__ import annotations

import csv
import os
import time

from fastsac.checkpoint import HISTORY_KEYS

# A checkpoint at least this often (seconds of wall time), whatever the frame interval.
CHECKPOINT_MAX_SECONDS = 600.0


def _row(episode: int, history: dict[str, list[float]], i: int) -> list[str]:
    return [str(episode), *(f"{history[k][i]:.6g}" for k in HISTORY_KEYS)]


def write_metrics(path: str | os.PathLike, history: dict[str, list[float]]) -> None:
    """The whole history as a CSV (header ``episode`` + the history's columns), atomically."""
    path = os.fspath(path)
    tmp = f"{path}.part"
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["episode", *HISTORY_KEYS])
        for i in range(len(history["frame"])):
            writer.writerow(_row(i + 1, history, i))
    os.replace(tmp, path)


class MetricsLog:
    """``metrics.csv`` during training. ``open`` rewrites it from the agent's history (on a
    resume: the checkpoint's, which drops rows written after that checkpoint, so the file has
    no gap and no duplicate row); then each finished episode appends its row, flushed."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = None if path is None else os.fspath(path)
        self._file = None
        self._written = 0

    def open(self, history: dict[str, list[float]]) -> None:
        if self.path is None:
            return
        write_metrics(self.path, history)
        self._written = len(history["frame"])
        self._file = open(self.path, "a", newline="")

    def append(self, history: dict[str, list[float]]) -> None:
        if self._file is None:
            return
        writer = csv.writer(self._file)
        for i in range(self._written, len(history["frame"])):
            writer.writerow(_row(i + 1, history, i))
        self._written = len(history["frame"])
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class CheckpointSchedule:
    """When ``train()`` writes its checkpoint: each time ``total_step`` passes a multiple of
    ``every`` frames, and after ``max_seconds`` of wall time without one."""

    def __init__(self, path: str | os.PathLike | None, every: int,
                 max_seconds: float = CHECKPOINT_MAX_SECONDS):
        self.path = None if path is None else os.fspath(path)
        self.every = max(1, int(every))
        self.max_seconds = max_seconds
        self._last_time = time.monotonic()
        self.seconds = 0.0  # spent writing checkpoints
        self.frame: int | None = None  # of the last checkpoint written

    def due(self, before: int, after: int) -> bool:
        """Whether a step that moved ``total_step`` from ``before`` to ``after`` calls for one."""
        if self.path is None:
            return False
        return (after // self.every > before // self.every
                or time.monotonic() - self._last_time >= self.max_seconds)

    def written(self, frame: int, seconds: float) -> None:
        self._last_time = time.monotonic()
        self.seconds += seconds
        self.frame = frame
