"""sample_batch() of the Numba buffer vs the notebook's np.random.choice buffer."""

import pytest

from benchmarks.conftest import ids, run_case
from benchmarks.harness import buffer_cases

CASES = buffer_cases((1_000, 10_000, 100_000))


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_sample_batch(benchmark, case):
    run_case(benchmark, case)
