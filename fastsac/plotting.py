"""The notebook's five-panel training plot: inline in a notebook, a PNG file in a script, written
on a schedule that keeps its cost a small share of the run.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no GUI backend), so plotting
never opens a window or blocks a script.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence

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


def thinned(values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a curve, as slice means when it has more than ``MAX_POINTS`` points."""
    y = np.asarray(values, dtype=np.float64)
    x = np.arange(y.size, dtype=np.float64)
    if y.size <= MAX_POINTS:
        return x, y
    edges = np.linspace(0, y.size, MAX_POINTS + 1).astype(np.int64)
    sums = np.add.reduceat(y, edges[:-1])
    counts = np.diff(edges)
    return (edges[:-1] + (counts - 1) / 2.0), sums / counts


def training_figure(frame: int, scores: Sequence[float], actor_losses: Sequence[float],
                    qf_losses: Sequence[float], vf_losses: Sequence[float],
                    alpha_losses: Sequence[float], prethinned: bool = False):
    """Scores and the four losses side by side, titled with the mean of the last 10 scores.
    ``prethinned``: each loss is already ``thinned`` (an ``[2, k]`` array of x and y)."""
    from matplotlib.figure import Figure

    recent = float(np.mean(scores[-10:])) if len(scores) else float("nan")
    panels = [
        (f"frame {frame}. score: {recent:.1f}", scores),
        ("actor_loss", actor_losses),
        ("qf_loss", qf_losses),
        ("vf_loss", vf_losses),
        ("alpha_loss", alpha_losses),
    ]
    fig = Figure(figsize=(30, 5))
    # fixed margins: tight_layout measures every label, which costs more than drawing
    fig.subplots_adjust(left=0.03, right=0.99, bottom=0.1, top=0.9, wspace=0.2)
    for i, (title, values) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, 5, i)
        ax.set_title(title)
        ax.plot(*(values if prethinned and i > 1 else thinned(values)))
    return fig


def curves_figure(frame: int, scores: Sequence[float], curves: dict):
    """``training_figure`` of the loss curves ``train()`` keeps (actor, qf, vf, alpha)."""
    return training_figure(frame, scores, curves["actor"], curves["qf"], curves["vf"],
                           curves["alpha"])


def show_or_save(fig, path: str | os.PathLike | None) -> None:
    """Inline display in a notebook; otherwise an atomic write to ``path`` (if given)."""
    if in_notebook():
        from IPython.display import clear_output, display

        clear_output(wait=True)
        display(fig)
    if path is not None:
        save_figure(fig, os.fspath(path))


class PlotSchedule:
    """When ``train()`` writes its plot file, how, and what that has cost the training loop.

    The file is written at the end of the run, and during it at most at each tenth of the run,
    and only once the time since the last write is ``BUDGET`` times what that write cost the
    loop. The drawing happens in a child process (:mod:`fastsac.plot_worker`): the loop pays for
    handing over the data, and ``close()`` waits for the final figure. Where the child cannot
    start, the figure is drawn in this process, on the same schedule. The inline plot of a
    notebook is shown as the notebook showed it.
    """

    BUDGET = 200
    FIRST_COST_GUESS = 0.05  # seconds, until a write has been timed

    def __init__(self, path: str | os.PathLike | None, num_frames: int):
        self.path = None if path is None else os.fspath(path)
        self.num_frames = num_frames
        self.every = max(1, num_frames // 10)
        self.next = self.every
        self.seconds = 0.0  # spent building, showing and writing figures
        self._cost = self.FIRST_COST_GUESS
        self._last = time.perf_counter()
        self._worker = None  # the drawing process; None: figures are drawn in this process
        self._latest: tuple | None = None  # the last write's (frame, scores, curves)

    def due(self, collected: int) -> bool:
        """Whether to write now, ``collected`` frames into the run (the final write is the
        caller's, after the loop)."""
        if self.path is None or collected < self.next or collected >= self.num_frames:
            return False
        self.next = (collected // self.every + 1) * self.every
        return time.perf_counter() - self._last >= self.BUDGET * self._cost

    def write(self, frame: int, scores: Sequence[float], curves: dict) -> None:
        start = time.perf_counter()
        self._latest = (frame, scores, curves)
        if self._worker is not None:
            try:
                self._worker.submit(self.path, frame, scores, curves)
            except OSError:  # it died: draw in this process from now on
                self._worker.abandon()
                self._worker = None
        if self._worker is None:
            save_figure(curves_figure(frame, scores, curves), self.path)
        end = time.perf_counter()
        self._cost, self._last = end - start, end
        self.seconds += end - start

    def start(self) -> None:
        """Start the drawing process (early, so its imports overlap with training); where it
        cannot start, figures are drawn in this process."""
        if self.path is not None:
            from fastsac.plot_worker import PlotWorker

            try:
                worker = PlotWorker()
                worker.start()
                self._worker = worker
            except OSError:
                self._worker = None

    def close(self) -> None:
        """Wait for the last figure (the loop's time: counted in ``seconds``)."""
        if self._worker is not None:
            start = time.perf_counter()
            if not self._worker.close() and self._latest is not None:
                warnings.warn(f"fastsac: the plot process failed; drawing {self.path} in this "
                              "process", RuntimeWarning, stacklevel=2)
                save_figure(curves_figure(*self._latest), self.path)
            self.seconds += time.perf_counter() - start
        self._worker = None

    def show(self, figure: Callable[[], object]) -> None:
        start = time.perf_counter()
        show_or_save(figure(), None)
        self.seconds += time.perf_counter() - start


def save_figure(fig, path: str) -> None:
    """Atomic PNG write (temp file + rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    fig.savefig(tmp, format="png", dpi=60)
    os.replace(tmp, path)
