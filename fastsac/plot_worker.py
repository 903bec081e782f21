"""Writing the training plot in a separate process, so drawing it never holds up training.

Drawing the five-panel figure with matplotlib's Agg is slow (slower the first time, with
matplotlib's import; BENCHMARKS.md, "Outputs"): on the training loop's thread that is time
taken from training, and a thread would hold the GIL while it draws. ``train()`` therefore
hands the figure's data to a child process: the loop saves the (thinned) curves to a small
``.npz`` file and writes one line to the child's stdin, a small fraction of a draw. The child
draws each request in turn and writes the PNG atomically; ``close()`` waits for the last one,
so the file is there when ``train()`` returns.

Run as ``python .../fastsac/plot_worker.py`` (a script, so the child imports numpy and
matplotlib but not torch): one request per stdin line, ``<npz path>\\t<png path>``, until
stdin closes.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import subprocess
import sys

import numpy as np


class PlotWorker:
    """The parent's end: start on first use, submit figures, wait for the last one."""

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self._count = 0
        self._pending: list[str] = []  # data files handed over (the child deletes them)

    def start(self) -> None:
        """Start the child now (its imports then overlap with the run's first frames)."""
        if self.proc is None:
            self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__)],
                                         stdin=subprocess.PIPE, text=True)
            _STARTED.append(self.proc)

    def submit(self, path: str, frame: int, scores, curves: dict) -> None:
        """Hand one figure's data to the child. ``OSError``: the child cannot take it (then
        call ``abandon``)."""
        self.start()
        self._count += 1
        data = f"{path}.{self._count}.npz"
        thinned = _plotting().thinned
        arrays = {name: np.stack(thinned(curves[name])) for name in CURVES}
        with open(data + ".tmp", "wb") as f:
            np.savez(f, frame=frame, scores=np.asarray(scores, dtype=np.float64), **arrays)
        os.replace(data + ".tmp", data)
        self._pending.append(data)
        self.proc.stdin.write(f"{data}\t{path}\n")
        self.proc.stdin.flush()

    def close(self, timeout: float = 60.0) -> bool:
        """Wait until the child has drawn every figure submitted and exited (it imports no
        torch, so it exits at once). False if it failed or timed out: then the last figure
        may be missing."""
        if self.proc is None:
            return True
        proc, self.proc = self.proc, None
        try:
            proc.stdin.close()
        except OSError:  # it died; what it left undrawn is cleaned up below
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._clean()
        return proc.returncode == 0

    def abandon(self) -> None:
        """Stop the child (it failed): kill it and delete the data it did not draw."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            try:
                self.proc.stdin.close()
            except OSError:  # its pipe is broken: nothing left to flush
                pass
            self.proc = None
        self._clean()

    def _clean(self) -> None:
        for data in self._pending:
            _remove(data)
        self._pending = []


_STARTED: list[subprocess.Popen] = []


@atexit.register
def _reap() -> None:
    """A child left running (an interrupted close) is stopped at exit."""
    for proc in _STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _sibling(name: str):
    """The module ``fastsac.<name>``; in the child, loaded from its file (importing the fastsac
    package would import torch, a slow start for a process that only draws)."""
    if __package__:
        return importlib.import_module(f"fastsac.{name}")
    spec = importlib.util.spec_from_file_location(
        f"fastsac_{name}", os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _plotting():
    return _sibling("plotting")


CURVES = _sibling("curves").CURVE_KEYS  # the loss curves drawn, in the figure's order


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _draw(line: str, plotting) -> None:
    data, path = line.rstrip("\n").split("\t")
    with np.load(data) as z:
        fig = plotting.training_figure(int(z["frame"]), z["scores"],
                                       *(z[name] for name in CURVES), prethinned=True)
    plotting.save_figure(fig, path)
    _remove(data)


def main() -> None:
    """Draw each request in turn (they are few: at most a dozen a run) until stdin closes."""
    plotting = _plotting()
    # matplotlib's import and a first draw (fonts, Agg) before the first request, so a
    # request costs only its own drawing
    plotting.training_figure(0, [0.0], [0.0], [0.0], [0.0], [0.0]).savefig(
        os.devnull, format="png", dpi=60)
    for line in sys.stdin:
        _draw(line, plotting)


if __name__ == "__main__":
    main()
