"""Builds fastsac._C: the C++ CPU kernels always, the CUDA kernels when torch has CUDA and nvcc.

Build against the torch you have installed (no isolated build env, which would fetch another):
    pip install --no-build-isolation -e .
Environment: FASTSAC_NO_CUDA=1 skips the CUDA kernels; TORCH_CUDA_ARCH_LIST picks GPU targets.
"""

import glob
import os

from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension


def _build_cuda() -> bool:
    import torch

    if os.environ.get("FASTSAC_NO_CUDA") == "1":
        return False
    return torch.version.cuda is not None and CUDA_HOME is not None


# --fmad=false: nvcc would otherwise contract a*b + c into fused multiply-adds (its default), and
# `1 - a*a`, `lo + half_range*(t + 1)` and `mean + std*e` would round differently from the CPU
# kernels (built with -ffp-contract=off) by up to ~5e-10 in float64 log-probs.
NVCC_FLAGS = ["-O3", "--expt-relaxed-constexpr", "--fmad=false"]


def _extension():
    cpu_sources = sorted(glob.glob("csrc/*.cpp"))
    # -fopenmp: at::parallel_for is inline OpenMP code; without the flag it runs on one thread.
    # -ffp-contract=off: no fused multiply-adds, so the kernels round like torch's eager ops.
    cxx = ["-O3", "-fopenmp", "-ffp-contract=off"]
    link = ["-fopenmp"]
    if _build_cuda():
        cuda_sources = sorted(glob.glob("csrc/cuda/*.cu")) + sorted(glob.glob("csrc/cuda/*.cpp"))
        return CUDAExtension(
            "fastsac._C",
            cpu_sources + cuda_sources,
            define_macros=[("FASTSAC_WITH_CUDA", "1")],
            extra_compile_args={"cxx": cxx, "nvcc": NVCC_FLAGS},
            extra_link_args=link,
        )
    return CppExtension("fastsac._C", cpu_sources, extra_compile_args={"cxx": cxx},
                        extra_link_args=link)


setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
