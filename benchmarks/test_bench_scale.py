"""update_model() at the shapes people train (notebook 128-128 batch 128; SAC paper 256-256 batch
256, 1M buffer) against the time of its own matrix products alone (the floor), the eager
reference and Stable-Baselines3, on 1 thread and on all of torch's threads. Each call runs two
updates (a critic-only and a policy step)."""

import pytest
import torch

from benchmarks.conftest import ids, run_case
from fastsac.bench_scale import SHAPES, update_floor_cases

THREADS = sorted({1, torch.get_num_threads()})
CASES = [c for shape in SHAPES.values() for n in THREADS
         for c in update_floor_cases(shape, n)]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_update_at_scale(benchmark, case):
    run_case(benchmark, case)
