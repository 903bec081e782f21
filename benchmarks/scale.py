"""One update at the shapes people train, against the floor of its own matrix products, the
eager reference and Stable-Baselines3, per thread count, written to benchmarks/results/:

- ``notebook``: the notebook preset's (Pendulum-v1, SAC v1, 128-128, batch 128, 100k buffer);
- ``mujoco``: the mujoco preset's (HalfCheetah-v5, SAC v2, 256-256, batch 256, 1M buffer; SB3's
  train() of one gradient step too, the same algorithm).

Each group: the products alone (the floor: benchmarks/peers.py's docstring says what it
counts), FastSAC compiled, FastSAC's engine run eagerly, the reference, SB3; all timed
interleaved on 1 and on all of torch's threads. Training frames/s against SB3 are
benchmarks/peers.py's; against the reference, ``fastsac bench --only e2e``'s. The SIMD build of
the CPU kernels is the one fastsac picks (``FASTSAC_CPU_SIMD=avx2`` forces the AVX2 build on an
AVX-512 CPU); it is part of the file name.

    python benchmarks/scale.py [--quick] [--shapes notebook,mujoco] [--threads 1,2] [--no-sb3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __package__ in (None, ""):  # run as a file: the repository's root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

from benchmarks import harness
from benchmarks.harness import Shape
from fastsac import PRESETS, ops


def preset_shape(name: str) -> Shape:
    p = PRESETS[name]
    return Shape(name, p["env"], tuple(p["hidden_sizes"]), p["batch_size"], p["memory_size"],
                 p["variant"])


SHAPES = {name: preset_shape(name) for name in ("notebook", "mujoco")}


def to_markdown(report: dict) -> str:
    lines = [f"# fastsac update against its products' floor, {report['date']}", "",
             *harness.machine_lines(report["machine"]), "",
             "## One update (median; x floor = this time / its products' time alone)", "",
             "| group | variant | median | spread | x floor | vs reference |",
             "|---|---|---:|---:|---:|---:|"]
    refs = {r["group"]: r["median_s"] for r in report["updates"]
            if r["name"].startswith("reference")}
    for r in report["updates"]:
        ref = f"{refs[r['group']] / r['median_s']:.2f}x" if r["group"] in refs else ""
        lines.append(f"| {r['group']} | {r['name']} | {r['median_s'] * 1e3:.3f} ms | "
                     f"{r['spread']:.0%} | {r['over_baseline']:.2f} | {ref} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds, small buffers")
    p.add_argument("--shapes", default="notebook,mujoco")
    p.add_argument("--threads", default=None, help="comma-separated counts (default: 1,all)")
    p.add_argument("--no-sb3", action="store_true")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"))
    args = p.parse_args()
    all_threads = torch.get_num_threads()
    threads = ([int(t) for t in args.threads.split(",")] if args.threads
               else sorted({1, all_threads}))
    shapes = [SHAPES[name] for name in args.shapes.split(",")]
    if args.quick:
        shapes = [Shape(s.name, s.env_id, s.hidden_sizes, s.batch_size, 20_000, s.variant)
                  for s in shapes]
    info = harness.machine_info("cpu")
    start = time.perf_counter()
    updates = []
    for shape in shapes:
        for n in threads:
            cases = harness.floor_cases(shape, n, with_sb3=not args.no_sb3)
            print(f"timing {cases[0].group} ...", flush=True)
            updates += harness.time_group(cases, rounds=3 if args.quick else 15,
                                          budget_s=0.02 if args.quick else 0.1)
    torch.set_num_threads(all_threads)
    report = {"date": harness.today(), "simd": ops.cpu_simd(), "machine": info,
              "updates": updates, "seconds": round(time.perf_counter() - start, 1)}
    harness.publish(args.out, f"scale-{report['simd']}", report, to_markdown(report), args.quick)


if __name__ == "__main__":
    main()
