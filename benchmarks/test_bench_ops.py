"""tanh_normal forward+backward vs the eager composite (both heads); polyak_ vs the loop and
_foreach_lerp_; fastsac::mm vs torch.mm (CPU)."""

import pytest

from benchmarks.conftest import DEVICES, ids, run_case
from benchmarks.harness import mm_cases, polyak_cases, tanh_normal_cases

TANH = [c for d in DEVICES for c in tanh_normal_cases(d, batches=(1, 128, 4096))]
POLYAK = [c for d in DEVICES for c in polyak_cases(d)]
MM = mm_cases()


@pytest.mark.parametrize("case", TANH, ids=ids(TANH))
def test_tanh_normal(benchmark, case):
    run_case(benchmark, case)


@pytest.mark.parametrize("case", POLYAK, ids=ids(POLYAK))
def test_polyak(benchmark, case):
    run_case(benchmark, case)


@pytest.mark.parametrize("case", MM, ids=ids(MM))
def test_mm(benchmark, case):
    run_case(benchmark, case)
