"""The training plot: when train() writes it, and the child process that draws it."""

import os
import subprocess
import sys

import numpy as np
import pytest

from fastsac import plotting
from fastsac.plot_worker import PlotWorker
from fastsac.plotting import PlotSchedule


def test_schedule_writes_at_tenths_only_within_budget(monkeypatch, tmp_path):
    now = [0.0]
    monkeypatch.setattr(plotting.time, "perf_counter", lambda: now[0])
    plots = PlotSchedule(tmp_path / "x.png", 1000)
    assert not plots.due(50)  # not at a tenth
    now[0] = 1.0  # one second in: less than BUDGET x the guessed cost
    assert not plots.due(100)
    now[0] = 100.0
    assert not plots.due(150)
    assert plots.due(200)
    plots._cost, plots._last = 0.5, 100.0  # a write that cost 0.5 s ended at t = 100
    now[0] = 100.0 + plots.BUDGET * 0.5 - 1
    assert not plots.due(300)
    now[0] = 100.0 + plots.BUDGET * 0.5
    assert plots.due(400)
    assert not plots.due(1000)  # the final write is the caller's
    assert not PlotSchedule(None, 1000).due(100)


def test_worker_draws_every_submitted_figure(tmp_path):
    worker = PlotWorker()
    path = str(tmp_path / "curve.png")
    curves = {k: list(np.linspace(0, 1, 5000)) for k in ("actor", "qf", "vf", "alpha")}
    worker.submit(path, 100, [1.0, 2.0], curves)
    worker.submit(path, 200, [1.0, 2.0, 3.0], curves)
    worker.close()
    assert os.path.getsize(path) > 0
    assert sorted(os.listdir(tmp_path)) == ["curve.png"]  # data files and temp files gone


def test_thinned_keeps_short_curves_and_averages_long_ones():
    x, y = plotting.thinned([1.0, 2.0, 3.0])
    assert list(y) == [1.0, 2.0, 3.0] and list(x) == [0.0, 1.0, 2.0]
    x, y = plotting.thinned(np.arange(10_000, dtype=float))
    assert len(y) == plotting.MAX_POINTS
    assert np.allclose(y, x)  # slice means of a line sit on the line


def test_a_dead_drawing_process_falls_back_to_drawing_here(tmp_path):
    path = tmp_path / "curve.png"
    plots = PlotSchedule(path, 1000)
    plots.start()
    plots._worker.proc.kill()
    plots._worker.proc.wait()
    curves = {k: [0.0, 1.0] for k in ("actor", "qf", "vf", "alpha")}
    plots.write(100, [1.0], curves)  # the pipe is broken: drawn in this process
    plots.write(200, [1.0, 2.0], curves)
    plots.close()
    assert os.path.getsize(path) > 0
    assert sorted(os.listdir(tmp_path)) == ["curve.png"]


def test_a_plot_process_that_fails_before_drawing_leaves_the_figure_anyway(tmp_path,
                                                                          monkeypatch):
    """The child takes the request, then exits with an error without drawing: close() warns
    and draws the last figure here."""
    def failing_child(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read(); "
                                      "sys.exit(1)"], stdin=subprocess.PIPE, text=True)

    monkeypatch.setattr(PlotWorker, "start", failing_child)
    path = tmp_path / "curve.png"
    plots = PlotSchedule(path, 1000)
    plots.start()
    plots.write(1000, [1.0, 2.0], {k: [0.0, 1.0] for k in ("actor", "qf", "vf", "alpha")})
    with pytest.warns(RuntimeWarning, match="the plot process failed"):
        plots.close()
    assert os.path.getsize(path) > 0
    assert sorted(os.listdir(tmp_path)) == ["curve.png"]
