"""update_model() (reference / eager+ops / compiled / CUDA graph) and select_action()."""

import pytest

from benchmarks.conftest import DEVICES, ids, run_case
from fastsac.bench import select_action_cases, update_cases

UPDATE = [c for d in DEVICES for c in update_cases(d)]
SELECT = [c for d in DEVICES for c in select_action_cases(d)]


@pytest.mark.parametrize("case", UPDATE, ids=ids(UPDATE))
def test_update_model(benchmark, case):
    run_case(benchmark, case)


@pytest.mark.parametrize("case", SELECT, ids=ids(SELECT))
def test_select_action(benchmark, case):
    run_case(benchmark, case)
