"""The new main against the previous one (commit 6522c52), side by side, interleaved in one run.

1. ``update_model`` timing: one long-lived worker process per version (old, new) and setting,
   each with one FastSAC agent (v1) on a replay buffer filled with random transitions, both
   graphs (policy step and not) compiled before timing; the driver asks them in turn, round by
   round (old first in even rounds, new first in odd ones), to time K updates, so a slow moment
   of the machine hits both. Shapes: 128-128 batch 128 (Pendulum-v1), 256-256 batch 256
   (HalfCheetah-v5); torch threads 1 and 2 (``update_threads`` equal); the default SIMD build of
   the CPU kernels and ``FASTSAC_CPU_SIMD=avx2``.
2. The cold start: ``python -m fastsac train`` on Pendulum-v1, 6,000 frames, 256-256, batch
   256, 1M buffer, learning from frame 5000, every cache emptied before each run (inductor's,
   its precompiled headers in the temp folder, numba's), timed from launch to exit; pinned to
   one core (``taskset -c 0``, OMP_NUM_THREADS=1), old and new alternating; then one pair on
   all cores.

The previous main must be a git worktree with its extension built in place:

    git worktree add /work/prevmain 6522c52
    (cd /work/prevmain && FASTSAC_NO_CUDA=1 python setup.py build_ext --inplace)
    python benchmarks/vs_previous.py --prev /work/prevmain [--rounds 11] [--cold-runs 3]

The two versions register torch ops in the same namespace, so each runs in its own process: the
old one with cwd and PYTHONPATH at the worktree, the new one with cwd at this checkout.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __package__ in (None, ""):
    sys.path.insert(0, ROOT)

from benchmarks import harness  # noqa: E402  (the driver reads the CPU with the new fastsac)
from fastsac import ops  # noqa: E402

PROTO = "@@fastsac-vs@@ "  # the worker's answers are the stdout lines that start with this

WORKER = r"""
import json, os, sys, time
proto = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)  # anything else written to stdout (compiler chatter) goes to stderr
PROTO = "@@fastsac-vs@@ "


def say(obj):
    proto.write(PROTO + json.dumps(obj) + "\n")
    proto.flush()


env_id, hidden, batch, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
mode = sys.argv[5]  # "compiled": update_model() as it is; "bridge": on the cold-start bridge
hidden = tuple(map(int, hidden.split("-")))
import numpy as np
import torch
torch.set_num_threads(threads)
import fastsac
from fastsac import FastSAC, ops
import torch._dynamo.utils as dyn_utils

agent = FastSAC(fastsac.make_env(env_id), 100_000, batch, seed=0, hidden_sizes=hidden,
                update_threads=threads, background_compile=False)
if mode == "bridge":
    # what train() runs while the background process compiles, put in place of the compiled
    # function before it is first called (so nothing compiles): old: the C++ whole-update op,
    # new: the eager update (private attributes of each version, for this benchmark only)
    if hasattr(agent, "_bridge_fn"):
        assert agent._bridge_fn is not agent._eager_fn, "old: no C++ op in this build"
        agent._update_fn = agent._bridge_fn
    else:
        agent.engine._fn = agent.engine._eager
buf = agent.memory  # as fastsac.agreement.fill_random (not imported: the old package lacks it)
rng = np.random.default_rng(0)
buf.obs_buf[:] = rng.normal(size=buf.obs_buf.shape)
buf.next_obs_buf[:] = rng.normal(size=buf.next_obs_buf.shape)
buf.acts_buf[:] = rng.uniform(-1, 1, size=buf.acts_buf.shape)
buf.rews_buf[:] = rng.normal(size=buf.rews_buf.shape)
buf.size, buf.ptr = buf.max_size, 0

step = 0
def updates(n):
    global step
    times = []
    for _ in range(n):
        step += 1
        agent.total_step = step  # update_model(): policy step when total_step % 2 == 0
        t0 = time.perf_counter()
        agent.update_model()
        times.append(time.perf_counter() - t0)
    return times

first = updates(6)  # the first two compile the two graphs
updates(40)
graphs = dict(dyn_utils.counters["stats"])
say({"ready": True, "file": fastsac.__file__, "simd": ops.cpu_simd(),
     "torch": torch.__version__, "threads": torch.get_num_threads(),
     "first_updates_s": first, "dynamo_stats": graphs})
for line in sys.stdin:
    cmd = line.split()
    if not cmd or cmd[0] == "quit":
        break
    k = int(cmd[1])
    t0 = time.perf_counter()
    times = updates(k)
    total = time.perf_counter() - t0
    say({"k": k, "mean_ms": total / k * 1e3, "median_ms": float(np.median(times)) * 1e3,
         "min_ms": min(times) * 1e3,
         "recompiled": dict(dyn_utils.counters["stats"]) != graphs})
"""


def version_env(version: str, prev: str, extra: dict | None = None) -> tuple[dict, str]:
    """(environment, cwd) of a process that imports the old or the new package."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if version == "old":
        env["PYTHONPATH"] = prev
        cwd = prev
    else:
        cwd = ROOT
    env.update(extra or {})
    return env, cwd


class Worker:
    def __init__(self, version: str, prev: str, shape: tuple, threads: int, simd: str | None,
                 log_dir: str, mode: str = "compiled"):
        env_id, hidden, batch = shape
        extra = {"OMP_NUM_THREADS": str(threads)}
        if simd:
            extra["FASTSAC_CPU_SIMD"] = simd
        env, cwd = version_env(version, prev, extra)
        self.version = version
        name = f"{version}-{mode}-{env_id}-{threads}t-{simd}.log"
        self.log = open(os.path.join(log_dir, name), "w")
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, env_id, hidden, str(batch),
                                      str(threads), mode], cwd=cwd, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)

    def answer(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(PROTO):
                return json.loads(line[len(PROTO):])
        self.log.flush()
        raise RuntimeError(f"{self.version} worker died (rc {self.proc.wait()}); see "
                           f"{self.log.name}")

    def time(self, k: int) -> dict:
        self.proc.stdin.write(f"time {k}\n")
        self.proc.stdin.flush()
        return self.answer()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def timing(prev: str, shapes, thread_counts, simds, rounds: int, target_s: float,
           log_dir: str, mode: str = "compiled") -> list[dict]:
    rows = []
    for simd in simds:
        for shape in shapes:
            for threads in thread_counts:
                label = f"{shape[0]} {shape[1]} b{shape[2]}, {threads} thread(s), " \
                        f"SIMD {simd or 'default'}"
                print(f"update_model ({mode}): {label}: starting ...", flush=True)
                workers = {v: Worker(v, prev, shape, threads, simd, log_dir, mode)
                           for v in ("old", "new")}
                try:
                    ready = {v: w.answer() for v, w in workers.items()}  # both compile at once
                    for v, r in ready.items():
                        print(f"  {v}: {r['file']} simd={r['simd']} threads={r['threads']} "
                              f"first updates {', '.join(f'{t:.2f}' for t in r['first_updates_s'])}"
                              f" s", flush=True)
                    # K from a probe, so one timing takes about target_s
                    probe = max(workers["old"].time(20)["mean_ms"],
                                workers["new"].time(20)["mean_ms"])
                    k = max(20, int(round(target_s / (probe / 1e3) / 2)) * 2)
                    samples = {"old": [], "new": []}
                    for i in range(rounds):
                        order = ("old", "new") if i % 2 == 0 else ("new", "old")
                        for v in order:
                            samples[v].append(workers[v].time(k))
                        print(f"  round {i + 1}/{rounds}: old "
                              f"{samples['old'][-1]['mean_ms']:.3f} ms, new "
                              f"{samples['new'][-1]['mean_ms']:.3f} ms", flush=True)
                finally:
                    for w in workers.values():
                        w.close()
                row = {"env": shape[0], "hidden": shape[1], "batch": shape[2],
                       "threads": threads, "simd_env": simd, "mode": mode, "k": k, "rounds": rounds,
                       "simd": {v: ready[v]["simd"] for v in ready},
                       "first_updates_s": {v: ready[v]["first_updates_s"] for v in ready},
                       "recompiled": {v: any(s["recompiled"] for s in samples[v])
                                      for v in samples},
                       "samples_mean_ms": {v: [s["mean_ms"] for s in samples[v]]
                                           for v in samples},
                       "samples_median_ms": {v: [s["median_ms"] for s in samples[v]]
                                             for v in samples}}
                for v in ("old", "new"):
                    ms = row["samples_mean_ms"][v]
                    row[f"{v}_ms"] = statistics.median(ms)
                    row[f"{v}_min_round_ms"] = min(ms)
                    row[f"{v}_max_round_ms"] = max(ms)
                # ratio per round (old and new of the same round), and its spread
                per_round = [n / o for o, n in zip(row["samples_mean_ms"]["old"],
                                                    row["samples_mean_ms"]["new"], strict=True)]
                row["ratio"] = row["new_ms"] / row["old_ms"]
                row["ratio_per_round_median"] = statistics.median(per_round)
                row["ratio_per_round_min"] = min(per_round)
                row["ratio_per_round_max"] = max(per_round)
                print(f"  => old {row['old_ms']:.3f} ms, new {row['new_ms']:.3f} ms, new/old "
                      f"{row['ratio']:.3f} (per round {row['ratio_per_round_min']:.3f}-"
                      f"{row['ratio_per_round_max']:.3f})", flush=True)
                rows.append(row)
    return rows


def fresh_caches(work: str) -> dict[str, str]:
    """Every cache at an empty folder: inductor's, its precompiled headers (which live in the
    temp folder, as the old benchmarks/cold_start.py knew), numba's."""
    tmp = tempfile.mkdtemp(dir=work)
    return {"TORCHINDUCTOR_CACHE_DIR": os.path.join(tmp, "inductor"), "TMPDIR": tmp,
            "NUMBA_CACHE_DIR": os.path.join(tmp, "numba"), "PYTHONDONTWRITEBYTECODE": "1"}


def cold_command(out: str, frames: int, initial: int) -> list[str]:
    return [sys.executable, "-m", "fastsac", "train", "--env", "Pendulum-v1", "--frames",
            str(frames), "--hidden", "256", "256", "--batch-size", "256", "--memory-size",
            "1000000", "--initial-random-steps", str(initial), "--test-episodes", "1",
            "--no-progress", "--out", out, "--overwrite"]


def cold_run(version: str, prev: str, pinned: bool, frames: int, initial: int,
             work: str) -> dict:
    extra = fresh_caches(work)
    if pinned:
        extra["OMP_NUM_THREADS"] = "1"
    env, cwd = version_env(version, prev, extra)
    out = tempfile.mkdtemp(dir=work)
    cmd = (["taskset", "-c", "0"] if pinned else []) + cold_command(out, frames, initial)
    launched = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - launched
    if proc.returncode != 0:
        raise RuntimeError(f"{version} cold run failed ({proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    summary = json.load(open(os.path.join(out, "summary.json")))
    row = {"version": version, "pinned": pinned, "frames": frames, "process_s": wall,
           "train_s": summary.get("train_seconds"),
           "test_mean_return": summary.get("test_mean_return"),
           "frames_collected": summary.get("frames_collected"),
           "output_share": summary.get("output_share")}
    for key in ("first_compiled_update_train_s", "first_native_update_train_s",
                "first_bridge_update_train_s"):
        if key in summary:
            row[key] = summary[key]
    shutil.rmtree(os.path.dirname(extra["TORCHINDUCTOR_CACHE_DIR"]), ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    return row


def cold_start(prev: str, runs: int, frames: int, initial: int, work: str) -> list[dict]:
    rows = []
    plan = [(v, True) for i in range(runs) for v in (("old", "new") if i % 2 == 0
                                                      else ("new", "old"))]
    plan += [("old", False), ("new", False)]
    for version, pinned in plan:
        row = cold_run(version, prev, pinned, frames, initial, work)
        bridge = row.get("first_native_update_train_s", row.get("first_bridge_update_train_s"))
        print(f"cold run {version} {'core 0' if pinned else 'all cores'}: {row['process_s']:.1f} s "
              f"from launch (training {row['train_s']} s; first bridge update {bridge} s, first "
              f"compiled {row.get('first_compiled_update_train_s')} s into training)", flush=True)
        rows.append(row)
    return rows


def machine(prev: str) -> dict:
    cpu, cpu_id = harness._cpu_model(), harness._cpu_id()
    flags = ops.cpu_fields().get("flags", "").split()
    import importlib.metadata as md
    try:
        torch_version = md.version("torch")
    except md.PackageNotFoundError:
        torch_version = "unknown"

    def git(*args, cwd=ROOT):
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True,
                              text=True).stdout.strip()

    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch_version,
            "python": platform.python_version(),
            "cpu_id": cpu_id, "avx512f": "avx512f" in flags, "avx2": "avx2" in flags,
            "new_commit": git("rev-parse", "--short", "HEAD"),
            "new_dirty_files": git("status", "--porcelain", "--untracked-files=no").splitlines(),
            "old_commit": git("rev-parse", "--short", "HEAD", cwd=prev)}


def to_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"# New main against the previous one ({m['old_commit']}), {report['date']}", "",
             f"- CPU: {m['cpu']} ({m['cores']} cores, {m.get('cpu_id', '')}; shared with other "
             f"jobs); torch "
             f"{m['torch']}; Python {m['python']}",
             f"- new: {m['new_commit']} + working tree ({len(m['new_dirty_files'])} modified "
             f"files); old: {m['old_commit']}"
             + (f" (the checkout was at {m['new_commit_at_end']} when it ended)"
                if m.get("new_commit_at_end", m["new_commit"]) != m["new_commit"] else ""),
             f"- command: `{report['command']}`", ""]
    def table(rows):
        out = ["| shape | mode | threads | SIMD | K x rounds | old ms | new ms | new/old | "
               "per-round range | old round min-max | new round min-max |",
               "|---|---|---:|---|---:|---:|---:|---:|---|---|---|"]
        for r in rows:
            simd = r["simd"]["old"] if r["simd"]["old"] == r["simd"]["new"] else \
                f"{r['simd']['old']}/{r['simd']['new']}"
            out.append(
                f"| {r['hidden']} b{r['batch']} {r['env']} | {r.get('mode', 'compiled')} | "
                f"{r['threads']} | {simd} | {r['k']} x {r['rounds']} | {r['old_ms']:.3f} | "
                f"{r['new_ms']:.3f} | **{r['ratio']:.3f}** | {r['ratio_per_round_min']:.3f}-"
                f"{r['ratio_per_round_max']:.3f} | {r['old_min_round_ms']:.3f}-"
                f"{r['old_max_round_ms']:.3f} | {r['new_min_round_ms']:.3f}-"
                f"{r['new_max_round_ms']:.3f} |")
        return out

    if report.get("timing"):
        lines += ["## `update_model()` per update (v1, 100k buffer, random transitions)", "",
                  "Old and new in two live worker processes, asked in turn (old first in even "
                  "rounds, new first in odd); each cell is the median over rounds of one round's "
                  "mean over K updates (half policy steps). `SIMD` is the build of fastsac's CPU "
                  "kernels each worker reported. new/old is the ratio of the medians; the range "
                  "is new/old within each round.", ""] + table(report["timing"])
        lines += ["", "Compile in the worker (first two updates, s; both workers compiling at "
                  "once, on a warm inductor cache of this machine: not a cold-start number):",
                  "", "| shape | threads | SIMD | old | new |", "|---|---:|---|---:|---:|"]
        for r in report["timing"]:
            f = r["first_updates_s"]
            lines.append(f"| {r['hidden']} b{r['batch']} | {r['threads']} | "
                         f"{r['simd']['new']} | {f['old'][0] + f['old'][1]:.1f} | "
                         f"{f['new'][0] + f['new'][1]:.1f} |")
    if report.get("bridge"):
        lines += ["", "## The cold-start bridge at the cold run's shape", "",
                  "`bridge`: what `train()` learns on while the background process compiles "
                  "(old: the C++ whole-update op `fastsac::sac_update_`; new: the eager update), "
                  "put in place of the compiled function in the worker; `compiled`: the "
                  "compiled update, for scale. Same interleaving as above.", ""]
        lines += table(report["bridge"])
    rows = report.get("timing", []) + report.get("bridge", [])
    if any(any(r["recompiled"].values()) for r in rows):
        lines += ["", "**Warning**: dynamo's counters moved during timing in: " + ", ".join(
            f"{r['hidden']} {r.get('mode')} {r['threads']}t {r['simd_env']}" for r in rows
            if any(r["recompiled"].values()))]
    if report.get("cold"):
        c = report["cold_settings"]
        lines += ["", f"## Cold start: `fastsac train` Pendulum-v1, {c['frames']} frames, "
                  f"256-256, batch 256, 1M buffer, learning from frame {c['initial']}", "",
                  "Every cache emptied before each run; wall clock from launch to exit. "
                  "Pinned runs: `taskset -c 0`, OMP_NUM_THREADS=1 (the idle-priority background "
                  "compiler gets no time; old learns on the C++ op, new on the eager update).",
                  "", "| # | version | cores | whole process | training | first bridge update "
                  "| first compiled update | test return |",
                  "|---:|---|---|---:|---:|---:|---:|---:|"]

        def sec(v):
            return "never" if v is None else f"{v:.1f} s"

        for i, r in enumerate(report["cold"], 1):
            bridge = r.get("first_native_update_train_s", r.get("first_bridge_update_train_s"))
            lines.append(f"| {i} | {r['version']} | {'core 0' if r['pinned'] else 'all'} | "
                         f"{r['process_s']:.1f} s | {sec(r['train_s'])} | {sec(bridge)} | "
                         f"{sec(r.get('first_compiled_update_train_s'))} | "
                         f"{r['test_mean_return']:.1f} |")
        med = report["cold_medians"]
        lines += ["", "| pinned to one core | old | new | new/old |", "|---|---:|---:|---:|",
                  f"| median whole process | {med['old_process_s']:.1f} s | "
                  f"{med['new_process_s']:.1f} s | "
                  f"{med['new_process_s'] / med['old_process_s']:.3f} |",
                  f"| median training | {med['old_train_s']:.1f} s | {med['new_train_s']:.1f} s | "
                  f"{med['new_train_s'] / med['old_train_s']:.3f} |"]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prev", default="/work/prevmain", help="worktree of the previous main")
    p.add_argument("--parts", default="timing,bridge,cold")
    p.add_argument("--rounds", type=int, default=11)
    p.add_argument("--target-s", type=float, default=1.5, help="seconds per timing request")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--simd", default="default,avx2", help="FASTSAC_CPU_SIMD values (default: "
                   "unset)")
    p.add_argument("--shapes", default="pendulum,cheetah")
    p.add_argument("--cold-runs", type=int, default=3, help="pinned runs of each version")
    p.add_argument("--frames", type=int, default=6000)
    p.add_argument("--initial", type=int, default=5000)
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    p.add_argument("--name", default=None, help="file name stem of the report")
    args = p.parse_args()
    all_shapes = {"pendulum": ("Pendulum-v1", "128-128", 128),
                  "cheetah": ("HalfCheetah-v5", "256-256", 256),
                  "pendulum256": ("Pendulum-v1", "256-256", 256),
                  "tiny": ("Pendulum-v1", "32-32", 32)}
    parts = set(args.parts.split(","))
    work = tempfile.mkdtemp(prefix="fastsac-vs-previous-")
    report = {"date": datetime.date.today().isoformat(), "machine": machine(args.prev),
              "command": " ".join([os.path.relpath(sys.executable, ROOT)
                                   if sys.executable.startswith(ROOT) else sys.executable,
                                   *sys.argv])}
    try:
        if "timing" in parts:
            simds = [None if s == "default" else s for s in args.simd.split(",")]
            report["timing"] = timing(args.prev, [all_shapes[s] for s in args.shapes.split(",")],
                                      [int(t) for t in args.threads.split(",")], simds,
                                      args.rounds, args.target_s, work)
        if "bridge" in parts:
            # the cold run's shape (Pendulum, 256-256, batch 256) on one thread, as pinned: the
            # bridge each version learns on, and the compiled update for scale
            shape = [all_shapes["pendulum256"]]
            report["bridge"] = (timing(args.prev, shape, [1], [None], args.rounds, args.target_s,
                                       work, "bridge")
                                + timing(args.prev, shape, [1], [None], args.rounds,
                                         args.target_s, work, "compiled"))
        if "cold" in parts:
            report["cold_settings"] = {"frames": args.frames, "initial": args.initial}
            rows = cold_start(args.prev, args.cold_runs, args.frames, args.initial, work)
            report["cold"] = rows
            pinned = [r for r in rows if r["pinned"]]
            report["cold_medians"] = {
                f"{v}_{k}": statistics.median(r[k] for r in pinned if r["version"] == v)
                for v in ("old", "new") for k in ("process_s", "train_s")}
    except BaseException:
        print(f"failed; the workers' logs are in {work}", file=sys.stderr)
        raise
    shutil.rmtree(work, ignore_errors=True)
    end = machine(args.prev)  # others may commit in this checkout while it runs
    report["machine"]["new_commit_at_end"] = end["new_commit"]
    report["machine"]["new_dirty_files_at_end"] = end["new_dirty_files"]
    stem = args.name or f"{harness.machine_slug(report['machine'])}-{report['date']}-vs-previous"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, stem + ".json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(args.out, stem + ".md"), "w") as f:
        f.write(to_markdown(report))
    print(f"wrote {os.path.join(args.out, stem)}.{{json,md}}")


if __name__ == "__main__":
    main()
