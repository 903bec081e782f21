"""The training plot (scores, then each loss; evaluation returns over the scores): inline in a
notebook, a PNG file in a script, written on a schedule that keeps its cost a small share of
the run. Figures are ``matplotlib.figure.Figure`` objects (no pyplot, no GUI backend)."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

# Loss curves longer than this are drawn as the means of this many equal slices: a line of 10^5
# points costs Agg far more to draw than the picture shows.
MAX_POINTS = 2000


def in_notebook() -> bool:
    """True inside a Jupyter/Colab kernel, where figures can be shown inline."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ in ("ZMQInteractiveShell", "Shell")


def thinned(x, y) -> np.ndarray:
    """``[2, k]``: x and y of a curve, as slice means when it has more than ``MAX_POINTS``."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if y.size <= MAX_POINTS:
        return np.stack((x, y))
    edges = np.linspace(0, y.size, MAX_POINTS + 1).astype(np.int64)[:-1]
    counts = np.diff(np.append(edges, y.size))
    return np.stack((np.add.reduceat(x, edges) / counts, np.add.reduceat(y, edges) / counts))


def figure_data(agent) -> dict[str, Any]:
    """What a figure shows, as plain arrays (handed to the drawing process as they are)."""
    return {"frame": agent.total_step, "scores": np.asarray(agent.history["score"]),
            "score_frames": np.asarray(agent.history["frame"]),
            "eval_frames": np.asarray(agent.eval_history["frame"]),
            "eval_returns": np.asarray(agent.eval_history["eval_return"]),
            **{f"curve_{name}": thinned(*agent.loss_curves.points(name))
               for name in agent.loss_names}}


def training_figure(data: dict[str, Any]):
    """Scores (with evaluation returns, if any) and one panel per loss."""
    from matplotlib.figure import Figure

    scores = data["scores"]
    recent = float(np.mean(scores[-10:])) if len(scores) else float("nan")
    names = [k[len("curve_"):] for k in data if k.startswith("curve_")]
    fig = Figure(figsize=(6 * (1 + len(names)), 5))
    # fixed margins: tight_layout measures every label, which costs more than drawing
    fig.subplots_adjust(left=0.03, right=0.99, bottom=0.1, top=0.9, wspace=0.2)
    ax = fig.add_subplot(1, 1 + len(names), 1)
    ax.set_title(f"frame {int(data['frame'])}. score: {recent:.1f}")
    ax.plot(data["score_frames"], scores, label="training episodes")
    ax.set_xlabel("frame")
    if len(data["eval_frames"]):
        ax.plot(data["eval_frames"], data["eval_returns"], "o-",
                label="deterministic evaluation")
        ax.legend(loc="lower right")
    for i, name in enumerate(names, start=2):
        ax = fig.add_subplot(1, 1 + len(names), i)
        ax.set_title(f"{name}_loss")
        ax.set_xlabel("update")
        ax.plot(*data[f"curve_{name}"])
    return fig


def save_figure(fig, path: str) -> None:
    """Atomic PNG write (temp file + rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(f"{path}.tmp", format="png", dpi=60)
    os.replace(f"{path}.tmp", path)


class PlotHook:
    """``train()``'s plot. In a notebook, inline every ``interval`` frames, as the notebook did.
    To a file at the end, and during the run at most at each tenth of it, and only once the time
    since the last write is ``BUDGET`` times what that write cost: drawing is slow (BENCHMARKS.md,
    "Outputs"), and this keeps it under 1/BUDGET of the loop's time, whatever the machine."""

    BUDGET = 200
    FIRST_COST_GUESS = 0.5  # seconds, until a write has been timed (matplotlib's import)

    def __init__(self, agent, path, num_frames: int, interval: int):
        self.agent, self.interval = agent, interval
        self.path = None if path is None else os.fspath(path)
        self.inline = in_notebook()
        self.every = max(1, num_frames // 10)
        self.seconds, self._cost, self._last = 0.0, self.FIRST_COST_GUESS, time.perf_counter()

    def start(self) -> None: ...

    def episodes(self, rows) -> None: ...

    def step(self, before: int, after: int, last: bool) -> None:
        if self.inline and after // self.interval > before // self.interval:
            started = time.perf_counter()
            from IPython.display import clear_output, display

            clear_output(wait=True)
            display(training_figure(figure_data(self.agent)))
            self.seconds += time.perf_counter() - started
        if (self.path is not None and not last and after // self.every > before // self.every
                and time.perf_counter() - self._last >= self.BUDGET * self._cost):
            self.write()

    def write(self) -> None:
        started = time.perf_counter()
        save_figure(training_figure(figure_data(self.agent)), self.path)
        end = time.perf_counter()
        self._cost, self._last = end - started, end
        self.seconds += end - started

    def end(self) -> None:
        if self.path is not None:
            self.write()

    def close(self) -> None: ...
