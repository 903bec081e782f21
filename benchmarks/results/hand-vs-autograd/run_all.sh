#!/bin/bash
# hand-written backward (the previous main's compiled update) against the single-pass autograd
# formulation of the same v1 loss in the same compiled graph; both in the previous main's package
cd /work/protomain
for simd in avx512 avx2; do for shape in "128-128 128" "256-256 256"; do for t in 1 2; do
  FASTSAC_CPU_SIMD=$simd PYTHONPATH=/work/protomain /work/main/.venv/bin/python /work/proto/bench_bwd.py $shape $t 2>/dev/null | tail -1
done; done; done
