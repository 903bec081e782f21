"""Cold start, with every cache emptied before each run (inductor's, its precompiled headers,
numba's): what a fresh machine or a new shape sees.

1. Compile time against time per update, with and without inductor's C++ wrapper
   (``FASTSAC_CPP_WRAPPER``), per shape: which pays, by run length.
2. Time from process start to the first compiled update, ``fastsac train`` on all cores, with
   the background compile (the default: learning with the eager update meanwhile) and without.
3. A cold short Pendulum run next to CleanRL's ``sac_continuous_action.py`` at the same settings
   (256-256, batch 256, 1M buffer, learning from frame 5000), side by side, one core each, then
   with the cores swapped. CleanRL's script is run from a checkout (``--cleanrl DIR``), adapted
   to gymnasium 1.x at run time (SAME_STEP autoreset, ``final_obs``; its episode printout off).

    python benchmarks/cold_start.py [--cleanrl DIR] [--parts 1,2,3] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from fastsac.bench import machine_info
from fastsac.bench_cli import machine_slug, write_report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# part 1: in a fresh process, compile both graphs, then time updates
COMPILE_COST = r"""
import json, sys, time
import numpy as np, torch
import fastsac
from fastsac import FastSAC
env_id, hidden, batch, updates = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
hidden = tuple(map(int, hidden.split("-")))
torch.set_num_threads(1)
agent = FastSAC(fastsac.make_env(env_id), 10_000, batch, hidden_sizes=hidden, seed=0,
                update_threads=1, background_compile=False)
rng = np.random.default_rng(0)
n = 2000
obs, act = rng.normal(size=(n, agent.obs_dim)), rng.uniform(-1, 1, (n, agent.action_dim))
agent.memory.store_batch(obs, act, rng.normal(size=n), obs[::-1], np.zeros(n))
times = []
for step in range(1, updates + 3):
    agent.total_step = step
    start = time.perf_counter()
    agent.update_model()
    times.append(time.perf_counter() - start)
print(json.dumps({"graph_s": times[:2], "per_update_s": float(np.median(times[2:]))}))
"""


def fresh_caches(root: str) -> dict[str, str]:
    """Environment variables pointing every cache at an empty folder under ``root``."""
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=root)
    return dict(os.environ, TORCHINDUCTOR_CACHE_DIR=os.path.join(tmp, "inductor"),
                TMPDIR=tmp,  # inductor's precompiled headers live in the temp folder
                NUMBA_CACHE_DIR=os.path.join(tmp, "numba"), PYTHONDONTWRITEBYTECODE="1")


def _taskset(cores: str | None) -> list[str]:
    return ["taskset", "-c", cores] if cores else []


def compile_cost(shapes, updates: int, work: str) -> list[dict]:
    rows = []
    for env_id, hidden, batch in shapes:
        for wrapper in ("1", "0"):
            env = dict(fresh_caches(work), FASTSAC_CPP_WRAPPER=wrapper)
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", COMPILE_COST, env_id, hidden, str(batch),
                                  str(updates)], env=env, capture_output=True, text=True,
                                 cwd=ROOT, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result.update(env=env_id, hidden=hidden, batch=batch, cpp_wrapper=wrapper == "1",
                          process_s=time.perf_counter() - start)
            print(f"  {env_id} {hidden} cpp_wrapper={wrapper}: compile "
                  f"{sum(result['graph_s']):.1f} s, {result['per_update_s'] * 1e3:.3f} ms/update",
                  flush=True)
            rows.append(result)
    return rows


def _train_command(out: str, frames: int, initial: int, hidden: str, batch: int,
                   memory: int) -> list[str]:
    return [sys.executable, "-m", "fastsac.cli", "train", "--env", "Pendulum-v1", "--frames",
            str(frames), "--initial-random-steps", str(initial), "--hidden", *hidden.split("-"),
            "--batch-size", str(batch), "--memory-size", str(memory), "--test-episodes", "1",
            "--no-progress", "--out", out, "--device", "cpu"]


def first_compiled(frames: int, work: str) -> list[dict]:
    rows = []
    for background in ("1", "0"):
        env = dict(fresh_caches(work), FASTSAC_BACKGROUND_COMPILE=background)
        out = tempfile.mkdtemp(dir=work)
        launched = time.time()
        subprocess.run(_train_command(out, frames, 1000, "128-128", 128, 100_000), env=env,
                       cwd=ROOT, check=True, capture_output=True)
        wall = time.time() - launched
        summary = json.load(open(os.path.join(out, "summary.json")))
        first = summary["first_compiled_update_time"]
        native = summary.get("first_native_update_time")
        rows.append({"background_compile": background == "1", "frames": frames,
                     "first_compiled_update_s": None if first is None else first - launched,
                     "first_native_update_s": None if native is None else native - launched,
                     "process_s": wall, "train_s": summary["train_seconds"]})
        print(f"  background={background}: first update by the C++ op "
              f"{rows[-1]['first_native_update_s']} s, first compiled update "
              f"{rows[-1]['first_compiled_update_s']} s, run {wall:.1f} s", flush=True)
    return rows


def _cleanrl_copy(cleanrl: str, work: str) -> str:
    """CleanRL's script and utils, adapted to gymnasium 1.x, in a temp folder."""
    dst = tempfile.mkdtemp(dir=work)
    shutil.copytree(os.path.join(cleanrl, "cleanrl_utils"), os.path.join(dst, "cleanrl_utils"))
    os.makedirs(os.path.join(dst, "cleanrl"))
    src = open(os.path.join(cleanrl, "cleanrl", "sac_continuous_action.py")).read()
    src = src.replace("for i in range(args.num_envs)]\n    )",
                      "for i in range(args.num_envs)],\n"
                      "        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,\n    )")
    src = src.replace('infos["final_observation"]', 'infos["final_obs"]')
    src = src.replace('if "final_info" in infos:', "if False:  # gymnasium 1.x infos differ")
    if "AutoresetMode.SAME_STEP" not in src or 'infos["final_obs"]' not in src:
        raise RuntimeError("CleanRL's script changed; update the gymnasium 1.x adaptation")
    open(os.path.join(dst, "cleanrl", "sac_continuous_action.py"), "w").write(src)
    return dst


def side_by_side(cleanrl: str, frames: int, work: str, cores: list[str]) -> list[dict]:
    """fastsac and CleanRL at once, one core each; then the cores swapped."""
    copy = _cleanrl_copy(cleanrl, work)
    rows = []
    for fast_core, clean_core in ((cores[0], cores[1]), (cores[1], cores[0])):
        out = tempfile.mkdtemp(dir=work)
        procs = {}
        launched = time.time()
        fast_env = dict(fresh_caches(work), OMP_NUM_THREADS="1")
        procs["fastsac"] = subprocess.Popen(
            _taskset(fast_core) + _train_command(out, frames, 5000, "256-256", 256, 1_000_000),
            env=fast_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        clean_env = dict(fresh_caches(work), OMP_NUM_THREADS="1", PYTHONPATH=copy)
        procs["cleanrl"] = subprocess.Popen(
            _taskset(clean_core) + [sys.executable, "cleanrl/sac_continuous_action.py",
                                    "--env-id", "Pendulum-v1", "--total-timesteps", str(frames),
                                    "--no-cuda", "--seed", "1"],
            env=clean_env, cwd=copy, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ends = {}
        while len(ends) < len(procs):
            for name, proc in procs.items():
                if name not in ends and proc.poll() is not None:
                    ends[name] = time.time() - launched
                    if proc.returncode != 0:
                        raise RuntimeError(f"{name} failed: {proc.stderr.read()[-2000:]}")
            time.sleep(0.05)
        rows.append({"fastsac_core": fast_core, "cleanrl_core": clean_core, "frames": frames,
                     "fastsac_s": ends["fastsac"], "cleanrl_s": ends["cleanrl"]})
        print(f"  fastsac {ends['fastsac']:.1f} s (core {fast_core}), CleanRL "
              f"{ends['cleanrl']:.1f} s (core {clean_core})", flush=True)
    return rows


def by_run_length(compile_rows: list[dict], lengths=(1_000, 10_000, 100_000, 1_000_000)):
    """Compile + n updates, with and without the C++ wrapper, per shape."""
    table = []
    for env_id in dict.fromkeys(r["env"] for r in compile_rows):
        on = next(r for r in compile_rows if r["env"] == env_id and r["cpp_wrapper"])
        off = next(r for r in compile_rows if r["env"] == env_id and not r["cpp_wrapper"])
        for n in lengths:
            t_on = sum(on["graph_s"]) + n * on["per_update_s"]
            t_off = sum(off["graph_s"]) + n * off["per_update_s"]
            table.append({"env": env_id, "updates": n, "with_wrapper_s": t_on,
                          "without_wrapper_s": t_off})
    return table


def to_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"# Cold start, {report['date']}", "",
             f"- CPU: {m['cpu']} ({m['cores']} cores); torch {m['torch']}", "",
             "Every run starts with empty caches (inductor's, its precompiled headers, numba's).",
             ""]
    if report.get("compile_cost"):
        lines += ["## Compile time against time per update (1 thread)", "",
                  "| env | hidden | batch | cpp_wrapper | graph 1 | graph 2 | per update |",
                  "|---|---|---:|---|---:|---:|---:|"]
        for r in report["compile_cost"]:
            g1, g2 = r["graph_s"]
            lines.append(f"| {r['env']} | {r['hidden']} | {r['batch']} | {r['cpp_wrapper']} | "
                         f"{g1:.1f} s | {g2:.1f} s | {r['per_update_s'] * 1e3:.3f} ms |")
        lines += ["", "Compile + n updates:", "", "| env | updates | with wrapper | without |",
                  "|---|---:|---:|---:|"]
        for r in report["by_run_length"]:
            lines.append(f"| {r['env']} | {r['updates']} | {r['with_wrapper_s']:.1f} s | "
                         f"{r['without_wrapper_s']:.1f} s |")
    if report.get("first_compiled"):
        lines += ["", "## Time to the first update by the ahead-of-time C++ op and to the first "
                  "compiled update (`fastsac train`, all cores)", "",
                  "| background compile | frames | first C++ update | first compiled update "
                  "| whole run |", "|---|---:|---:|---:|---:|"]

        def seconds(value):
            return "never" if value is None else f"{value:.1f} s"

        for r in report["first_compiled"]:
            lines.append(f"| {r['background_compile']} | {r['frames']} | "
                         f"{seconds(r.get('first_native_update_s'))} | "
                         f"{seconds(r['first_compiled_update_s'])} | {r['process_s']:.1f} s |")
    if report.get("side_by_side"):
        lines += ["", "## Cold short Pendulum run, side by side, one core each", "",
                  "| frames | fastsac | CleanRL | cores (fastsac, CleanRL) |",
                  "|---:|---:|---:|---|"]
        for r in report["side_by_side"]:
            lines.append(f"| {r['frames']} | {r['fastsac_s']:.1f} s | {r['cleanrl_s']:.1f} s | "
                         f"{r['fastsac_core']}, {r['cleanrl_core']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="1,2,3")
    p.add_argument("--cleanrl", default=None, help="a CleanRL checkout (part 3)")
    p.add_argument("--frames", type=int, default=6000, help="part 3's run length")
    p.add_argument("--cores", default="0,1", help="part 3's two cores")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"))
    args = p.parse_args()
    parts = set(args.parts.split(","))
    work = tempfile.mkdtemp(prefix="fastsac-cold-")
    report: dict = {"date": datetime.date.today().isoformat(), "machine": machine_info("cpu")}
    try:
        if "1" in parts:
            print("compile time against time per update ...", flush=True)
            shapes = [("Pendulum-v1", "128-128", 128)]
            if not args.quick:
                shapes.append(("HalfCheetah-v5", "256-256", 256))
            report["compile_cost"] = compile_cost(shapes, 300 if args.quick else 2000, work)
            report["by_run_length"] = by_run_length(report["compile_cost"])
        if "2" in parts:
            print("time to the first compiled update ...", flush=True)
            report["first_compiled"] = first_compiled(8000 if args.quick else 30_000, work)
        if "3" in parts:
            if args.cleanrl is None:
                raise SystemExit("part 3 needs --cleanrl DIR (a CleanRL checkout)")
            print("side by side with CleanRL ...", flush=True)
            report["side_by_side"] = side_by_side(args.cleanrl, args.frames, work,
                                                  args.cores.split(","))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    name = f"{machine_slug(report['machine'])}-{report['date']}-cold-start"
    name += "-quick" if args.quick else ""
    write_report(os.path.join(args.out, name), report, to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
