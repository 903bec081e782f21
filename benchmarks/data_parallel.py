"""Data-parallel throughput on this machine: ``fastsac train`` as one process on one thread, as
two data-parallel processes of one thread each (``--nproc 2``, gloo), and as one process on two
threads, at the notebook's shape (Pendulum, 128-128, batch 128 per process, one update per
transition per process). Compiled updates, caches warmed by a first run; each configuration
run ``--repeats`` times, alternating, median reported.

Reported per configuration: transitions/s (all processes), updates/s (lockstep updates; a
data-parallel update takes N x B samples), samples/s (updates x effective batch). Then the cost
of the update's two all-reduces alone: gloo between two processes on this machine, for the
gradient sizes of the notebook preset's shape (v1) and of the mujoco preset's (v2)
(``--allreduce-only`` runs just that part and merges it into the day's report).

    python benchmarks/data_parallel.py [--frames 20000] [--repeats 2] [--allreduce-only]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile

if __package__ in (None, ""):  # run as a file: the repository's root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.harness import machine_info, machine_slug, write_report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {  # name: (processes, threads per process)
    "1 process, 1 thread": (1, 1),
    "2 processes (data-parallel), 1 thread each": (2, 1),
    "1 process, 2 threads": (1, 2),
}


def run(nproc: int, threads: int, frames: int, out: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), FASTSAC_BACKGROUND_COMPILE="0")
    cmd = [sys.executable, "-m", "fastsac", "train", "--frames", str(frames),
           "--initial-random-steps", "1000", "--test-episodes", "1", "--no-progress",
           "--overwrite", "--out", out, "--device", "cpu"]  # threads: OMP_NUM_THREADS
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, capture_output=True, text=True)
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    per_rank_updates = frames // nproc - 1000  # each process's updates, after its warm-up
    seconds = summary["train_seconds"]
    return {"train_seconds": seconds,
            "transitions_per_s": summary["frames_collected"] / seconds,
            "updates_per_s": per_rank_updates / seconds,
            "samples_per_s": per_rank_updates * summary["effective_batch_size"] / seconds}


def _gradient_floats(variant: str, obs_dim: int, action_dim: int, hidden: tuple) -> int:
    """The floats of every trained network's gradient: one all-reduce per update."""
    import math

    from fastsac.engine import UpdateSpec

    spec = UpdateSpec(variant, 2, obs_dim, action_dim, hidden, 256, 0.99, 0.005, -action_dim)
    return sum(math.prod(s) for name in spec.trained for s in spec.shapes(name))


# floats all-reduced per update (policy step): log_alpha's gradient, then every network's, at the
# notebook preset's shape (v1) and the mujoco preset's (v2)
GRADIENT_FLOATS = {"alpha": 1, "Pendulum 128-128 v1": _gradient_floats("v1", 3, 1, (128, 128)),
                   "HalfCheetah 256-256 v2": _gradient_floats("v2", 17, 6, (256, 256))}


def _allreduce_rank(rank: int, port: str, repeats: int, out: str) -> None:
    import time

    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    times = {}
    for name, n in GRADIENT_FLOATS.items():
        t = torch.ones(n)
        for _ in range(20):
            dist.all_reduce(t)
        samples = []
        for _ in range(repeats):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(t)
            samples.append(time.perf_counter() - start)
        times[name] = statistics.median(samples)
    if rank == 0:
        with open(out, "w") as f:
            json.dump(times, f)
    dist.destroy_process_group()


def allreduce_costs(repeats: int = 300) -> dict[str, float]:
    """Median seconds of one gloo all-reduce between two local processes, per size."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    out = tempfile.mktemp(suffix=".json")
    mp.spawn(_allreduce_rank, args=(port, repeats, out), nprocs=2)
    with open(out) as f:
        return json.load(f)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    parser.add_argument("--allreduce-only", action="store_true")
    args = parser.parse_args(argv)
    info = machine_info()
    stem = os.path.join(args.out, f"{machine_slug(info)}-{datetime.date.today().isoformat()}"
                        "-data-parallel")
    if args.allreduce_only:
        with open(stem + ".json") as f:
            report = json.load(f)
        report["allreduce_seconds"] = allreduce_costs()
        with open(stem + ".md") as f:
            lines = f.read().rstrip("\n").split("\n")
        write_report(stem, report, "\n".join(lines + _allreduce_lines(report)) + "\n")
        print("\n".join(_allreduce_lines(report)))
        return 0
    work = tempfile.mkdtemp(prefix="fastsac-dp-")
    for nproc, threads in CONFIGS.values():  # warm the compile caches of every configuration
        run(nproc, threads, 3000, os.path.join(work, "warm"))
    runs: dict[str, list[dict]] = {name: [] for name in CONFIGS}
    for _ in range(args.repeats):
        for name, (nproc, threads) in CONFIGS.items():
            runs[name].append(run(nproc, threads, args.frames, os.path.join(work, "run")))
            print(name, runs[name][-1], flush=True)
    results = {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
               for name, rs in runs.items()}
    report = {"date": datetime.date.today().isoformat(), "machine": info,
              "frames": args.frames, "repeats": args.repeats, "results": results, "runs": runs}
    base = results["1 process, 1 thread"]
    lines = [f"# Data-parallel throughput, {report['date']}", "",
             f"- CPU: {info['cpu']} ({info['cores']} cores); Pendulum-v1, 128-128, batch 128 "
             f"per process, {args.frames} transitions in all, compiled update, median of "
             f"{args.repeats}", "",
             "| configuration | transitions/s | updates/s | samples/s | transitions/s vs 1x1 |",
             "|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['transitions_per_s']:.0f} | {r['updates_per_s']:.0f} | "
                     f"{r['samples_per_s']:.0f} | "
                     f"{r['transitions_per_s'] / base['transitions_per_s']:.2f}x |")
    report["allreduce_seconds"] = allreduce_costs()
    lines += _allreduce_lines(report)
    write_report(stem, report, "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written: {stem}.json, {stem}.md")
    return 0


def _allreduce_lines(report: dict) -> list[str]:
    costs = report["allreduce_seconds"]
    lines = ["", "One gloo all-reduce between the two processes (median):", "",
             "| what | floats | bytes | time |", "|---|---:|---:|---:|"]
    for name, n in GRADIENT_FLOATS.items():
        lines.append(f"| {name} | {n} | {4 * n} | {costs[name] * 1e6:.0f} us |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
