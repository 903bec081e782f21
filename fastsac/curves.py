"""The per-update losses ``train()`` plots: compact arrays that survive a checkpoint.

One float64 row per update (actor, qf, vf, alpha), grown by doubling, so a million updates cost
32 MB instead of four Python lists of boxed floats, and a resumed run plots its whole history.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CURVE_KEYS = ("actor", "qf", "vf", "alpha")


class LossCurves:
    """The losses of every update ``train()`` ran; ``curves["qf"]`` is that column."""

    def __init__(self) -> None:
        self._rows = np.zeros((0, len(CURVE_KEYS)), dtype=np.float64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def extend(self, rows: np.ndarray) -> None:
        """Append ``[k, 4]`` losses (one row per update, in ``CURVE_KEYS`` order)."""
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(CURVE_KEYS))
        need = self._n + rows.shape[0]
        if need > self._rows.shape[0]:
            grown = np.zeros((max(need, 2 * self._rows.shape[0], 1024), len(CURVE_KEYS)))
            grown[:self._n] = self._rows[:self._n]
            self._rows = grown
        self._rows[self._n:need] = rows
        self._n = need

    def __getitem__(self, key: str) -> np.ndarray:
        return self._rows[:self._n, CURVE_KEYS.index(key)]

    def state_dict(self) -> dict[str, Any]:
        import torch

        return {"losses": torch.from_numpy(self._rows[:self._n].copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        losses = state.get("losses")
        if losses is None or tuple(losses.shape[1:]) != (len(CURVE_KEYS),):
            raise ValueError("loss curves state is malformed")
        self._rows = np.array(losses.numpy(), dtype=np.float64).reshape(-1, len(CURVE_KEYS))
        self._n = self._rows.shape[0]
