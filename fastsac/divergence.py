"""Divergence: a non-finite loss, parameter or reward stops training with an error that names
the frame and the value, before it reaches a checkpoint (docs/design.md, "Resume")."""

from __future__ import annotations

import numpy as np

from fastsac.curves import CURVE_KEYS

LOSS_NAMES = tuple(f"{key}_loss" for key in CURVE_KEYS)


class TrainingDiverged(ValueError):
    """Training produced a non-finite value. ``frame`` is the frame it was found at, ``what``
    the name of the value (``qf_loss``, ``reward``, ``parameters of vf``...)."""

    def __init__(self, frame: int, what: str, value: object, hint: str = ""):
        self.frame, self.what, self.value, self.hint = int(frame), what, value, hint
        message = f"training diverged at frame {frame}: {what} is {value}"
        super().__init__(message + (f"; {hint}" if hint else ""))


def check_losses(frame: int, losses: np.ndarray) -> None:
    """``losses``: ``[updates, 4]`` (actor, qf, vf, alpha) since the last check."""
    bad = ~np.isfinite(losses)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise TrainingDiverged(frame, LOSS_NAMES[col], float(losses[row, col]),
                               "a learning rate too large, or rewards too large for it?")


def check_rewards(frame: int, rewards: np.ndarray | float, observations: np.ndarray) -> None:
    """The env's outputs of one step (a plain env's, or a vector env's rows)."""
    rewards = np.asarray(rewards)
    if not np.isfinite(rewards).all():
        raise TrainingDiverged(frame, "reward", rewards[~np.isfinite(rewards)].reshape(-1)[0],
                               "the env returned it; nothing was stored")
    if not np.isfinite(observations).all():
        raise TrainingDiverged(frame, "observation", "non-finite",
                               "the env returned it; nothing was stored")
