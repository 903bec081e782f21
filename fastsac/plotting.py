"""The notebook's five-panel training plot: inline in a notebook, a PNG file in a script.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no GUI backend), so plotting
never opens a window or blocks a script.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np


def in_notebook() -> bool:
    """True inside a Jupyter/Colab kernel, where figures can be shown inline."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ in ("ZMQInteractiveShell", "Shell")


def training_figure(frame: int, scores: Sequence[float], actor_losses: Sequence[float],
                    qf_losses: Sequence[float], vf_losses: Sequence[float],
                    alpha_losses: Sequence[float]):
    """Scores and the four losses side by side, titled with the mean of the last 10 scores."""
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
    for i, (title, values) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, 5, i)
        ax.set_title(title)
        ax.plot(np.asarray(values, dtype=np.float64))
    fig.tight_layout()
    return fig


def show_or_save(fig, path: str | os.PathLike | None) -> None:
    """Inline display in a notebook; otherwise an atomic write to ``path`` (if given)."""
    if in_notebook():
        from IPython.display import clear_output, display

        clear_output(wait=True)
        display(fig)
    if path is not None:
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp"
        fig.savefig(tmp, format="png", dpi=60)
        os.replace(tmp, path)
