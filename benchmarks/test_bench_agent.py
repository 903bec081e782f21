"""update_model() (reference / FastSAC's engine eagerly / compiled / CUDA graph) for SAC v1 and
v2, and select_action()."""

import pytest

from benchmarks.conftest import DEVICES, ids, run_case
from benchmarks.harness import select_action_cases, update_cases

UPDATE = [c for d in DEVICES for v in ("v1", "v2") for c in update_cases(d, v)]
SELECT = [c for d in DEVICES for c in select_action_cases(d)]


@pytest.mark.parametrize("case", UPDATE, ids=ids(UPDATE))
def test_update_model(benchmark, case):
    run_case(benchmark, case)


@pytest.mark.parametrize("case", SELECT, ids=ids(SELECT))
def test_select_action(benchmark, case):
    run_case(benchmark, case)
