"""Where the cold 6k-frame run's time goes, old (the previous main's C++ whole-update op) against
new (the eager engine): the measurement behind BENCHMARKS.md's cold-start section.

1. ``runs``: the cold run of ``vs_previous.py`` (Pendulum-v1, 6,000 frames, 256-256, batch 256,
   1M buffer, learning from frame 5000, every cache emptied, one core), old and new alternating,
   each timed inside the process: every call of the update function (old
   ``FastSAC._run_update``, new ``FastEngine._run``), ``train()``, and the exit after ``main``
   returns; new is run both with its exit (``cli.entry_point``: ``gc.freeze`` first) and
   without it (``main`` alone, as before).
2. ``overhead``: the new eager update in a loop at 8-8 batch 8 (what is left is Python and
   dispatch, at any size) and at 256-256 batch 256, each with the ReLU in place (as shipped)
   and out of place (as before), interleaved.

    python benchmarks/cold_anatomy.py --prev /work/prevmain [--runs 3] [--parts runs,overhead]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import harness
from benchmarks.vs_previous import ROOT, cold_command, fresh_caches, machine, version_env

# Run in the measured process: time the update function and train(), then exit as asked.
DRIVER = r"""
import json, sys, time
version, out, exit_mode = sys.argv[1], sys.argv[2], sys.argv[3]
argv = json.loads(sys.argv[4])
if version == "new":
    import fastsac.fast as m
    cls, name = m.FastEngine, "_run"
    import fastsac.training as t
    owner, train_name = t, "train"
else:
    import fastsac.agent as m
    cls, name = m.FastSAC, "_run_update"
    import fastsac.base as t
    owner, train_name = t.AgentBase, "train"
times, train_s = [], []
def timed(original, into):
    def call(*a, **k):
        started = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            into.append(time.perf_counter() - started)
    return call
setattr(cls, name, timed(getattr(cls, name), times))
setattr(owner, train_name, timed(getattr(owner, train_name), train_s))
import atexit
from fastsac import cli
atexit.register(lambda: print("REPORT " + json.dumps(
    {"updates_s": sum(times), "updates": len(times), "train_s": sum(train_s),
     "main_end": time.time()}), flush=True))
if exit_mode == "entry_point":  # the shipped exit: gc.freeze, then sys.exit
    sys.argv = ["fastsac", *argv]
    cli.entry_point()
sys.exit(cli.main(argv))
"""

# The new eager update in a loop; argv: hidden width, batch, rounds.
OVERHEAD = r"""
import json, sys, time
import gymnasium as gym, numpy as np, torch
torch.set_num_threads(1)
import fastsac
from fastsac import networks, ops
from fastsac.agreement import fill_random
width, batch, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
agent = fastsac.FastSAC(gym.make("Pendulum-v1"), memory_size=10_000, batch_size=batch,
                        hidden_sizes=(width, width), variant="v1", policy_update_freq=2,
                        compile=False, seed=0)
fill_random(agent.memory)
shipped = networks.trunk
def out_of_place(x, p, layers, wt=None):
    for i in range(layers):
        x = torch.relu(ops.linear(x, p[2 * i], p[2 * i + 1], None if wt is None else wt[i]))
    return x
def block(k):
    started = time.perf_counter()
    for _ in range(k):
        agent.update_model()
    return (time.perf_counter() - started) / k * 1e3
block(20)
k = max(10, int(0.5 / (block(10) / 1e3)))
ms = {"in_place": [], "out_of_place": []}
for r in range(rounds):
    for key, trunk in (("in_place", shipped), ("out_of_place", out_of_place))[::1 - 2 * (r % 2)]:
        networks.trunk = trunk
        ms[key].append(block(k))
print("REPORT " + json.dumps({"width": width, "batch": batch, "k": k, "ms": ms}))
"""


def _report(stdout: str) -> dict:
    return json.loads([line for line in stdout.splitlines() if line.startswith("REPORT ")][-1][7:])


def cold_run(version: str, exit_mode: str, prev: str, work: str) -> dict:
    extra = fresh_caches(work)
    extra["OMP_NUM_THREADS"] = "1"
    env, cwd = version_env(version, prev, extra)
    out = tempfile.mkdtemp(dir=work)
    argv = cold_command(out, 6000, 5000)[3:]  # after `python -m fastsac`
    cmd = ["taskset", "-c", "0", sys.executable, "-c", DRIVER, version, out, exit_mode,
           json.dumps(argv)]
    launched = time.time()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    ended = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"{version} cold run failed:\n{proc.stderr[-3000:]}")
    r = _report(proc.stdout)
    shutil.rmtree(os.path.dirname(extra["TORCHINDUCTOR_CACHE_DIR"]), ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    return {"version": version, "exit": exit_mode, "process_s": ended - launched,
            "train_s": r["train_s"], "updates": r["updates"], "updates_s": r["updates_s"],
            "update_ms": r["updates_s"] / max(r["updates"], 1) * 1e3,
            "exit_s": ended - r["main_end"]}


def runs(prev: str, count: int, work: str) -> list[dict]:
    plan = [("old", "main"), ("new", "entry_point"), ("new", "main")]
    rows = []
    for i in range(count):
        for version, exit_mode in plan[::1 - 2 * (i % 2)]:
            row = cold_run(version, exit_mode, prev, work)
            print(f"{version} ({row['exit']}): {row['process_s']:.1f} s from launch, train "
                  f"{row['train_s']:.1f} s, {row['updates']} updates at {row['update_ms']:.2f} "
                  f"ms, exit {row['exit_s']:.2f} s", flush=True)
            rows.append(row)
    return rows


def overhead(rounds: int) -> list[dict]:
    rows = []
    for width, batch in ((8, 8), (256, 256)):
        proc = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", OVERHEAD, str(width),
                               str(batch), str(rounds)], cwd=ROOT, capture_output=True,
                              text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        r = _report(proc.stdout)
        row = {"width": width, "batch": batch, "k": r["k"], "rounds": r["ms"],
               **{key: statistics.median(v) for key, v in r["ms"].items()}}
        print(f"eager update {width}-{width} b{batch}: in place {row['in_place']:.3f} ms, out "
              f"of place {row['out_of_place']:.3f} ms", flush=True)
        rows.append(row)
    return rows


def markdown(report: dict) -> str:
    lines = [f"# The cold run's anatomy, {report['date']}", "",
             f"- CPU: {report['machine']['cpu']}; torch {report['machine']['torch']}",
             f"- command: `{report['command']}`", ""]
    if report.get("runs"):
        lines += ["## Cold runs, one core (medians; every run below)", "",
                  "| version | exit | runs | process s | train s | update ms | exit s |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for version, exit_mode in (("old", "main"), ("new", "entry_point"), ("new", "main")):
            rs = [r for r in report["runs"] if (r["version"], r["exit"]) == (version, exit_mode)]
            med = {k: statistics.median(r[k] for r in rs)
                   for k in ("process_s", "train_s", "update_ms", "exit_s")}
            lines.append(f"| {version} | {exit_mode} | {len(rs)} | {med['process_s']:.2f} | "
                         f"{med['train_s']:.2f} | {med['update_ms']:.2f} | {med['exit_s']:.2f} |")
        lines += ["", "| version | exit | process s | train s | update ms | exit s |",
                  "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {r['version']} | {r['exit']} | {r['process_s']:.2f} | {r['train_s']:.2f} "
                  f"| {r['update_ms']:.2f} | {r['exit_s']:.2f} |" for r in report["runs"]]
    if report.get("overhead"):
        lines += ["", "## The new eager update in a loop, one thread (median of rounds)", "",
                  "| shape | updates per round | ReLU in place | out of place |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {r['width']}-{r['width']} b{r['batch']} | {r['k']} | "
                  f"{r['in_place']:.3f} ms | {r['out_of_place']:.3f} ms |"
                  for r in report["overhead"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prev", default="/work/prevmain", help="worktree of the previous main")
    p.add_argument("--parts", default="runs,overhead")
    p.add_argument("--runs", type=int, default=3, help="cold runs of each kind")
    p.add_argument("--rounds", type=int, default=7, help="rounds of the overhead loop")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = p.parse_args()
    parts = set(args.parts.split(","))
    started = time.perf_counter()
    report = {"date": harness.today(), "machine": machine(args.prev),
              "command": "python " + " ".join(sys.argv)}
    work = tempfile.mkdtemp(prefix="fastsac-anatomy-")
    try:
        if "runs" in parts:
            report["runs"] = runs(args.prev, args.runs, work)
        if "overhead" in parts:
            report["overhead"] = overhead(args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["seconds"] = time.perf_counter() - started
    harness.publish(args.out, "cold-anatomy", report, markdown(report))


if __name__ == "__main__":
    main()
