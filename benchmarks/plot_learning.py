"""Learning curves of recorded runs side by side (episode return against frames), with the
published 1M-frame figures of SAC on the same task as reference lines.

    python benchmarks/plot_learning.py OUT.png LABEL=metrics.csv [LABEL=metrics.csv ...]
        [--title TITLE] [--published halfcheetah]

Each metrics.csv needs ``frame`` and ``score`` columns (``fastsac train`` and
``benchmarks/sb3_learning.py`` both write them).
"""

from __future__ import annotations

import argparse
import csv

import numpy as np
from matplotlib.figure import Figure

# Published returns of SAC at 1M environment steps (for context: other seeds, versions of the
# env and evaluation protocols than the runs plotted here).
PUBLISHED = {
    "halfcheetah": [
        ("SAC paper (Haarnoja et al. 2018b), HalfCheetah-v2, ~11,250", 11_250),
        ("CleanRL sac_continuous_action, HalfCheetah-v2, 9,635", 9_635),
        ("SB3 RL Zoo, HalfCheetah-v3, 9,535", 9_535),
    ],
}


def read_curve(path: str) -> tuple[np.ndarray, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return (np.array([float(r["frame"]) for r in rows]),
            np.array([float(r["score"]) for r in rows]))


def smooth(y: np.ndarray, window: int = 10) -> np.ndarray:
    """Mean of the last ``window`` episodes (fewer at the start)."""
    c = np.cumsum(np.insert(y, 0, 0.0))
    n = np.minimum(np.arange(1, len(y) + 1), window)
    return (c[1:] - c[np.arange(1, len(y) + 1) - n]) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("runs", nargs="+", help="LABEL=path/to/metrics.csv")
    p.add_argument("--title", default="")
    p.add_argument("--published", choices=sorted(PUBLISHED), default=None)
    args = p.parse_args()
    fig = Figure(figsize=(9, 5))
    ax = fig.add_subplot(1, 1, 1)
    for spec in args.runs:
        label, path = spec.split("=", 1)
        x, y = read_curve(path)
        line, = ax.plot(x, smooth(y), label=f"{label} (mean of 10 episodes)")
        ax.scatter(x, y, s=4, alpha=0.25, color=line.get_color())
    if args.published:
        for (label, value), style in zip(PUBLISHED[args.published], (":", "--", "-."),
                                         strict=False):
            ax.axhline(value, color="gray", linestyle=style, linewidth=1,
                       label=f"at 1M frames: {label}")
    ax.set_xlabel("environment frames")
    ax.set_ylabel("episode return")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
