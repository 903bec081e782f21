"""Shared fixtures. A test session on a broken build fails loudly: see test_extension_built."""

import os

import numpy as np
import pytest
import torch

from fastsac import ops

# The AVX-512 tiles run wherever the CPU has AVX-512, not only where they pay (ops.tiles_pay): the
# suite holds them to the reference on any CI machine. Set here, subprocesses inherit it.
os.environ.setdefault("FASTSAC_TILES", "1")

CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def _seed_torch():
    """Every test starts from the same global RNG state, whatever ran before it."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _restore_threads():
    """A test that fixes torch's thread count (for bitwise runs) leaves it as it found it, so
    later tests see the machine's count."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def simd_builds() -> list[str]:
    """The SIMD builds of the CPU kernels this CPU can run (fastsac.ops.cpu_simd)."""
    builds = []
    previous = ops.cpu_simd()
    for name in ops.CPU_SIMD_BUILDS:
        try:
            ops.cpu_simd(name)
            builds.append(name)
        except RuntimeError:
            pass
    ops.cpu_simd(previous)
    return builds


@pytest.fixture(params=ops.CPU_SIMD_BUILDS)
def simd(request):
    """Runs a test on each SIMD build of the float32 CPU kernels this CPU has."""
    if request.param not in simd_builds():
        pytest.skip(f"this CPU has no {request.param} kernels")
    previous = ops.cpu_simd()
    ops.cpu_simd(request.param)
    yield request.param
    ops.cpu_simd(previous)


# shared with fastsac check and the benchmarks
from fastsac.agreement import fill_random, random_batch  # noqa: E402,F401
