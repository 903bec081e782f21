"""One update at the presets' shapes (notebook: v1 128-128 batch 128; mujoco: v2 256-256 batch
256 on HalfCheetah) against the time of its own matrix products alone (the floor), FastSAC's
engine run eagerly, the eager reference and Stable-Baselines3 (v2), on 1 thread and on all of
torch's. Buffers of 100k here (benchmarks/scale.py: the presets' own)."""

import dataclasses

import pytest
import torch

from benchmarks.conftest import ids, run_case
from benchmarks.harness import floor_cases
from benchmarks.scale import SHAPES

THREADS = sorted({1, torch.get_num_threads()})
CASES = [c for shape in SHAPES.values() for n in THREADS
         for c in floor_cases(dataclasses.replace(shape, memory_size=100_000), n)]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_update_at_scale(benchmark, case):
    run_case(benchmark, case)
