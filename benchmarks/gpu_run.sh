#!/usr/bin/env bash
# Everything a lent GPU is for, in one call of the device tool (from the repo root):
#   build fastsac._C with the CUDA kernels, run the whole test suite (the CUDA tests included),
#   the CUDA agreement report in float32 and float64, and the CUDA benchmarks.
# Results go to $OUT (the device tool's folder; benchmarks/results otherwise): at most 8 files.
# Packages the GPU image lacks (gymnasium, farama-notifications) travel as wheels in .whl/
# (see the device tool's README); they are installed to /tmp/site when present.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} 2>&1 | tee "$out/gpu.txt"

echo "== build (CUDA)"
MAX_JOBS=${MAX_JOBS:-16} python3 setup.py build_ext --inplace > "$out/build.log" 2>&1 \
  || { tail -40 "$out/build.log"; exit 1; }
python3 -c "import fastsac; assert fastsac.ops.has_cuda_kernels(), 'no CUDA kernels'" || exit 1

echo "== tests"
python3 -m pytest -q -p no:warnings -rs tests 2>&1 | tee "$out/tests.log" | tail -20

echo "== fastsac check (cuda)"
{ python3 -m fastsac.cli check --device cuda
  python3 -m fastsac.cli check --device cuda --dtype float64
} 2>&1 | tee "$out/check.txt"

echo "== fastsac bench (cuda)"
python3 -m benchmarks.suite --device cuda --out "$out" 2>&1 | tail -60
