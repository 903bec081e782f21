"""pytest-benchmark suite. Each file parametrizes over the cases of ``benchmarks/harness.py``;
run ``pytest benchmarks/ --benchmark-group-by=group`` to see each group's variants side by side
(``fastsac bench`` runs the same cases interleaved and writes ratios to benchmarks/results/), or
``pytest benchmarks/ --benchmark-disable`` as a smoke check (every case runs once). Sizes are
kept small here; the scripts of benchmarks/ measure at full size."""

import torch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def run_case(benchmark, case):
    benchmark.group = case.group
    benchmark.extra_info.update(case.params, variant=case.name, baseline=case.baseline)
    call = case.setup()
    for _ in range(3):
        call()
    benchmark(call)


def ids(cases):
    return [f"{c.group} | {c.name}" for c in cases]
