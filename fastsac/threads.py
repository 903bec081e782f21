"""The CPU thread count of FastSAC's update products, chosen by timing them
(``update_threads="auto"``).

Why: an update is a few dozen matrix products. Splitting each across threads pays on idle cores
and costs dearly when the cores are shared: with other work on the machine (a second training
run, a noisy neighbour) every split waits for the busiest core. Which one wins changes while a
run goes on (BENCHMARKS.md has both cases), so the tuner times the candidate counts
(``thread_candidates``) at the start and again every ``recheck_every`` updates (a probe is 10
updates per candidate, a small share of ``recheck_every``).

The count reaches the tiled products through ``fastsac.ops.set_product_threads``
(``fastsac::mm`` reads it at run time), not through ``torch.set_num_threads``: torch.compile
guards on torch's thread count, so switching it would compile another entry of the update per
candidate. That is why FastSAC makes a tuner only for updates with tiled products (float32, 128
wide, where the tiles pay: ``fastsac.ops.tiles_pay``); the others run on torch's count.

The update's results do not depend on the thread count (fastsac::mm gives each output tile to
one thread; at the widths that have tiles the compiled graph's other kernels run on one; MKL
splits its products by output blocks), so switching never changes what is learned, only how
fast (tests/test_threads.py).
"""

from __future__ import annotations

import statistics


def thread_candidates(available: int) -> tuple[int, ...]:
    """The thread counts worth timing on a machine with ``available`` threads: 1, 2, 4 and all.

    A 128-wide product splits into few useful chunks, so counts between 4 and all rarely win
    at SAC's sizes; all of them is still timed, as torch's own default."""
    return tuple(sorted({c for c in (1, 2, 4, available) if 1 <= c <= available}))


class ThreadTuner:
    """Chooses among ``candidates`` thread counts by timing short runs of updates.

    Probing alternates the candidates in runs of ``block`` updates (the policy-update period, so
    every run holds the same mix of actor and critic-only steps) for ``rounds`` rounds and keeps
    the candidate with the smallest median run time. Use: ``n = tuner.threads()`` before an
    update, ``tuner.record(n, seconds)`` after it.
    """

    def __init__(self, candidates: tuple[int, ...], block: int = 2, rounds: int = 5,
                 recheck_every: int = 1000, skip: int = 4):
        if not candidates or any(c < 1 for c in candidates):
            raise ValueError(f"thread candidates must be >= 1, got {candidates}")
        self.candidates = tuple(dict.fromkeys(candidates))
        self.block, self.rounds, self.recheck_every = block, rounds, recheck_every
        self.choice = self.candidates[-1]
        self._skip = skip  # the first updates compile: their times say nothing
        self._plan: list[int] = []
        self._runs: dict[int, list[float]] = {}
        self._run_time = 0.0
        self._since_probe = recheck_every  # probe as soon as the skipped updates are done

    @property
    def probing(self) -> bool:
        return bool(self._plan)

    def threads(self) -> int:
        """The thread count for the next update."""
        if self._skip > 0 or len(self.candidates) == 1:
            return self.choice
        if not self._plan and self._since_probe >= self.recheck_every:
            self._plan = [c for _ in range(self.rounds) for c in self.candidates
                          for _ in range(self.block)]
            self._runs = {c: [] for c in self.candidates}
            self._run_time = 0.0
        return self._plan[0] if self._plan else self.choice

    def record(self, threads: int, seconds: float) -> None:
        """The wall time of the update that just ran on ``threads`` threads."""
        if self._skip > 0:
            self._skip -= 1
            return
        if not self._plan:
            self._since_probe += 1
            return
        self._plan.pop(0)
        self._run_time += seconds
        if not self._plan or self._plan[0] != threads:  # the end of a run
            self._runs[threads].append(self._run_time)
            self._run_time = 0.0
        if not self._plan:
            self.choice = min(self.candidates, key=lambda c: statistics.median(self._runs[c]))
            self._since_probe = 0
