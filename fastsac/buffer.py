"""Replay buffer on Numba: O(batch) sampling without replacement, seeded, no Python objects per
transition.

Memory: float32 obs, next_obs, action, reward and done, ``2 * obs_dim + act_dim + 2`` floats,
stored as one row rounded up to whole 64-byte cache lines (``bytes_per_transition``),
preallocated at construction. Pendulum (obs 3, act 1): 64 bytes, 64 MB at 1e6 transitions.

Sampling draws ``batch_size`` distinct indices with Robert Floyd's algorithm (uniform over all
subsets, ``batch_size`` draws, membership in a small open-addressing hash set), then gathers every
field into preallocated contiguous output arrays in the same compiled pass. The cost depends on
the batch size, not on the buffer size (the notebook's ``np.random.choice(size, batch,
replace=False)`` permutes the whole buffer every call).

The generator is a per-buffer SplitMix64 stream, so two buffers with the same seed and the same
stores sample the same batches, independently of numpy's or numba's global RNG.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, inline="always")
def _next_u64(state):
    """SplitMix64: advance ``state[0]`` and return the next 64 random bits."""
    state[0] += np.uint64(0x9E3779B97F4A7C15)
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _uniform_below(state, bound):
    """Uniform integer in [0, bound): 53 random bits scaled (bias below bound / 2**53)."""
    u = (_next_u64(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)
    return np.int64(u * bound)


@njit(cache=True)
def _sample_into(state, size, batch, table, idxs, data, obs_dim, act_dim, obs_out, next_obs_out,
                 acts_out, rews_out, done_out):
    """Floyd's algorithm for ``batch`` distinct indices in [0, size), then the gather."""
    mask = table.shape[0] - 1
    table[:] = -1
    for k in range(batch):
        j = size - batch + k
        t = _uniform_below(state, j + 1)
        # insert t, or j if t is already taken (j cannot be: it is larger than every earlier pick)
        pick = t
        h = (t * 0x9E3779B1) & mask
        while table[h] != -1:
            if table[h] == t:
                pick = j
                break
            h = (h + 1) & mask
        if pick == j:
            h = (j * 0x9E3779B1) & mask
            while table[h] != -1:
                h = (h + 1) & mask
        table[h] = pick
        idxs[k] = pick
    o, a = obs_dim, act_dim
    # first pass: one load per sampled row, independent of each other, so the cache misses of a
    # large buffer overlap instead of queueing behind the stores of the copy below
    touch = np.float32(0.0)
    for k in range(batch):
        touch += data[idxs[k], 0]
    rews_out[0] = touch
    for k in range(batch):
        row = data[idxs[k]]
        for c in range(o):
            obs_out[k, c] = row[c]
            next_obs_out[k, c] = row[o + c]
        for c in range(a):
            acts_out[k, c] = row[2 * o + c]
        rews_out[k] = row[2 * o + a]
        done_out[k] = row[2 * o + a + 1]


class ReplayBuffer:
    """Ring buffer of transitions with the notebook's API, plus ``store_batch``.

    Args:
        obs_dim: observation size.
        size: capacity; the newest ``size`` transitions are kept.
        batch_size: transitions per ``sample_batch()``.
        act_dim: action size (the notebook's buffer stored 1-D actions only).
        seed: seed of the buffer's own sampling stream (``None``: from the OS).
        out: optional preallocated output arrays (FastSAC passes numpy views of pinned tensors,
            so sampled batches land where the GPU copy reads them).

    ``sample_batch()`` returns arrays that the NEXT call overwrites (no allocation per call):
    copy them if you keep them. ``acts`` is ``[batch]`` when ``act_dim == 1`` (as in the
    notebook), else ``[batch, act_dim]``.
    """

    def __init__(self, obs_dim: int, size: int, batch_size: int = 32, act_dim: int = 1,
                 seed: int | None = None, out: dict[str, np.ndarray] | None = None):
        for name, value, low in (("obs_dim", obs_dim, 1), ("size", size, 1),
                                 ("batch_size", batch_size, 1), ("act_dim", act_dim, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.max_size, self.batch_size = int(size), int(batch_size)
        # One row per transition, [obs | next_obs | act | rew | done], padded to whole 64-byte
        # cache lines and aligned: a sampled transition costs one line (Pendulum) instead of
        # five scattered reads, and padding beats unpadded rows too (a 36-byte row straddles
        # two lines half the time). BENCHMARKS.md has the timings of the three layouts.
        # The notebook's per-field arrays are views of it.
        self._lay_out(None)
        self.ptr, self.size = 0, 0
        seed_bits = np.random.SeedSequence(seed).generate_state(1, dtype=np.uint64)
        self._rng_state = np.array(seed_bits, dtype=np.uint64)
        table_size = 1 << max(4, int(2 * batch_size - 1).bit_length() + 1)
        self._table = np.empty(table_size, dtype=np.int64)
        self._idxs = np.empty(batch_size, dtype=np.int64)
        self._out = self._make_out(out)

    def _lay_out(self, rows: np.ndarray | None) -> None:
        """Allocate the aligned rows (a copy of ``rows`` if given) and their per-field views."""
        o, a, size = self.obs_dim, self.act_dim, self.max_size
        width = 2 * o + a + 2
        padded = -(-width // 16) * 16  # whole 64-byte cache lines per row
        raw = np.zeros(size * padded + 16, dtype=np.float32)
        start = (-raw.ctypes.data // 4) % 16  # first row on a 64-byte boundary
        self._data = raw[start:start + size * padded].reshape(size, padded)
        if rows is not None:
            self._data[:] = rows
        self.obs_buf = self._data[:, :o]
        self.next_obs_buf = self._data[:, o:2 * o]
        self.acts_buf = self._data[:, 2 * o:2 * o + a]
        self.rews_buf = self._data[:, 2 * o + a]
        self.done_buf = self._data[:, 2 * o + a + 1]

    def __setstate__(self, state: dict) -> None:
        """A copy: numpy copies each array apart, so the per-field arrays would no longer be
        views of the rows (nor the rows aligned); lay them out again."""
        self.__dict__.update(state)
        self._lay_out(state["_data"])

    def _make_out(self, out):
        b = self.batch_size
        shapes = {"obs": (b, self.obs_dim), "next_obs": (b, self.obs_dim),
                  "acts": (b, self.act_dim), "rews": (b,), "done": (b,)}
        if out is None:
            return {k: np.zeros(s, dtype=np.float32) for k, s in shapes.items()}
        for key, shape in shapes.items():
            arr = out.get(key)
            if arr is None or arr.dtype != np.float32 or arr.size != int(np.prod(shape)):
                raise ValueError(f"out[{key!r}] must be a float32 array of {shape}")
            if not arr.flags.c_contiguous:
                raise ValueError(f"out[{key!r}] must be C-contiguous")
        return {key: out[key].reshape(shape) for key, shape in shapes.items()}

    bytes_per_transition = property(
        lambda self: 4 * self._data.shape[1],
        doc="Bytes of storage per transition (a row padded to whole 64-byte cache lines).",
    )

    # ---- storing ----------------------------------------------------------------------------
    def _as_rows(self, name: str, value: Any, n: int | None, width: int) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float32)
        if n is None:  # one transition: any shape with `width` elements
            if arr.size != width:
                raise ValueError(f"{name} must have {width} elements, got shape {arr.shape}")
            arr = arr.reshape(1, width)
        else:
            if arr.size != n * width or arr.shape[0] != n:
                raise ValueError(f"{name} must have shape ({n}, {width}), got {arr.shape}")
            arr = arr.reshape(n, width)
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} has non-finite values (nan or inf)")
        return arr

    def _validated(self, obs, act, rew, next_obs, done, n: int | None):
        obs = self._as_rows("obs", obs, n, self.obs_dim)
        next_obs = self._as_rows("next_obs", next_obs, n, self.obs_dim)
        act = self._as_rows("act", act, n, self.act_dim)
        rew = self._as_rows("rew", rew, n, 1).reshape(-1)
        done = np.asarray(done, dtype=np.float32).reshape(-1)
        if done.shape[0] != rew.shape[0]:
            raise ValueError(f"done must have {rew.shape[0]} values, got {done.shape[0]}")
        return obs, act, rew, next_obs, done

    def store(self, obs: np.ndarray, act: np.ndarray, rew: float, next_obs: np.ndarray,
              done: bool) -> None:
        """Store one transition. Bad shapes or non-finite values raise ValueError and store
        nothing."""
        self._write(*self._validated(obs, act, rew, next_obs, done, None))

    def store_batch(self, obs: np.ndarray, act: np.ndarray, rew: np.ndarray,
                    next_obs: np.ndarray, done: np.ndarray) -> None:
        """Store N transitions at once (a vectorized env's step), oldest first, wrapping
        around; equal to N calls of ``store``."""
        n = int(np.shape(obs)[0]) if np.ndim(obs) >= 1 else -1
        if n < 1:
            raise ValueError("store_batch needs obs of shape (N, obs_dim) with N >= 1")
        self._write(*self._validated(obs, act, rew, next_obs, done, n))

    def _write(self, obs, act, rew, next_obs, done) -> None:
        n = obs.shape[0]
        if n > self.max_size:  # only the newest max_size survive; skip the rest up front
            cut = n - self.max_size
            self.ptr = (self.ptr + cut) % self.max_size
            obs, act, rew = obs[cut:], act[cut:], rew[cut:]
            next_obs, done = next_obs[cut:], done[cut:]
            n = self.max_size
        # numpy writes each field's view in at most two blocks (the second after a wrap-around):
        # as quick as a compiled loop for one env's step, and nothing for a cold start to compile
        first = min(n, self.max_size - self.ptr)
        for view, value in ((self.obs_buf, obs), (self.next_obs_buf, next_obs),
                            (self.acts_buf, act), (self.rews_buf, rew), (self.done_buf, done)):
            view[self.ptr:self.ptr + first] = value[:first]
            view[:n - first] = value[first:]
        self.ptr = (self.ptr + n) % self.max_size
        self.size = min(self.size + n, self.max_size)

    # ---- sampling ---------------------------------------------------------------------------
    def sample_batch(self) -> dict[str, np.ndarray]:
        """``batch_size`` distinct transitions, uniformly. The arrays are reused by the next
        call."""
        if self.size < self.batch_size:
            raise ValueError(f"cannot sample {self.batch_size} distinct transitions from "
                             f"{self.size} stored")
        o = self._out
        _sample_into(self._rng_state, self.size, self.batch_size, self._table, self._idxs,
                     self._data, self.obs_dim, self.act_dim, o["obs"], o["next_obs"], o["acts"],
                     o["rews"], o["done"])
        acts = o["acts"].reshape(-1) if self.act_dim == 1 else o["acts"]
        return {"obs": o["obs"], "next_obs": o["next_obs"], "acts": acts, "rews": o["rews"],
                "done": o["done"]}

    @property
    def last_indices(self) -> np.ndarray:
        """Buffer rows of the last sampled batch (for tests and debugging)."""
        return self._idxs

    def __len__(self) -> int:
        return self.size

    # ---- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The stored rows as one tensor sharing the buffer's memory (a checkpoint writes them
        once, without a copy; BENCHMARKS.md has the cost at 1M transitions), and the sampler."""
        import torch

        n = self.size
        return {"rows": torch.from_numpy(self._data[:n]),
                "layout": [self.obs_dim, self.act_dim], "ptr": int(self.ptr), "size": int(n),
                "max_size": int(self.max_size), "sampler": "splitmix64",
                "rng": torch.from_numpy(self._rng_state.view(np.int64).copy())}

    def check_state_dict(self, state: dict[str, Any]) -> None:
        check_transitions_state(self, state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_transitions_state(self, state)
        n = int(state["size"])
        if "rows" in state and tuple(state["rows"].shape) == (n, self._data.shape[1]):
            self._data[:n] = state["rows"].numpy()  # this buffer's own layout: one copy
            self.ptr, self.size = int(state["ptr"]), n
        else:
            _copy_transitions(self, state)
        if state.get("sampler") == "splitmix64":  # another buffer's stream does not carry over
            self._rng_state[:] = state["rng"].numpy().view(np.uint64)


FIELDS = ("obs", "next_obs", "acts", "rews", "done")


def transitions_state(buf) -> dict[str, Any]:
    """The stored transitions of a buffer with the notebook's ``*_buf`` arrays, as tensors
    (checkpoints load with ``weights_only=True``, which takes tensors, not numpy arrays)."""
    import torch

    n = buf.size
    state: dict[str, Any] = {f: torch.from_numpy(np.array(getattr(buf, f"{f}_buf")[:n]))
                             for f in FIELDS}
    state.update(ptr=int(buf.ptr), size=int(n), max_size=int(buf.max_size))
    return state


def _fields(state: dict[str, Any], obs_dim: int, act_dim: int) -> dict[str, Any]:
    """The five fields of a buffer state, from per-field tensors or from packed rows
    ``[obs | next_obs | act | rew | done | padding]`` (ReplayBuffer's)."""
    if "rows" not in state:
        return {f: state[f] for f in FIELDS}
    layout = [int(v) for v in state["layout"]]
    if layout != [obs_dim, act_dim]:
        raise ValueError(f"replay buffer state holds obs_dim={layout[0]}, act_dim={layout[1]}; "
                         f"this buffer has obs_dim={obs_dim}, act_dim={act_dim}")
    rows, o, a = state["rows"], obs_dim, act_dim
    if rows.ndim != 2 or rows.shape[1] < 2 * o + a + 2:
        raise ValueError(f"replay buffer rows of shape {tuple(rows.shape)} are too narrow")
    return {"obs": rows[:, :o], "next_obs": rows[:, o:2 * o], "acts": rows[:, 2 * o:2 * o + a],
            "rews": rows[:, 2 * o + a], "done": rows[:, 2 * o + a + 1]}


def check_transitions_state(buf, state: dict[str, Any]) -> None:
    """Raise ValueError unless ``state`` fits ``buf`` (capacity and field shapes)."""
    obs_dim, act_dim = buf.obs_buf.shape[1], buf.acts_buf.shape[1]
    try:
        n = int(state["size"])
        fields = _fields(state, obs_dim, act_dim)
        shapes = {"obs": (n, obs_dim), "next_obs": (n, obs_dim), "acts": (n, act_dim),
                  "rews": (n,), "done": (n,)}
        ok = (state["max_size"] == buf.max_size and 0 <= int(state["ptr"]) < buf.max_size
              and all(tuple(fields[f].shape) == shapes[f] for f in FIELDS))
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(f"replay buffer state is malformed: {exc!r}") from exc
    if not ok:
        raise ValueError("replay buffer state does not fit this buffer (size or dims differ)")


def load_transitions_state(buf, state: dict[str, Any]) -> None:
    check_transitions_state(buf, state)
    _copy_transitions(buf, state)


def _copy_transitions(buf, state: dict[str, Any]) -> None:
    """Field by field into ``buf`` (``state`` already checked against it)."""
    n = int(state["size"])
    fields = _fields(state, buf.obs_buf.shape[1], buf.acts_buf.shape[1])
    for f in FIELDS:
        getattr(buf, f"{f}_buf")[:n] = fields[f].numpy()
    buf.ptr, buf.size = int(state["ptr"]), n
