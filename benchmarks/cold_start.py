"""Cold start, with every cache emptied before each run (inductor's, its precompiled headers,
numba's): what a fresh machine or a new shape sees.

1. Compile time against time per update, with and without inductor's C++ wrapper
   (``FASTSAC_CPP_WRAPPER``), per shape (Pendulum-v1 SAC v1 128-128 batch 128; HalfCheetah-v5
   SAC v2 256-256 batch 256): which pays, by run length.
2. Time from process start to the first update and to the first compiled update,
   ``fastsac train`` on all cores, with the background compile (the default: FastSAC learns
   with its eager engine, the same update function, while a background process compiles it)
   and without (it waits for the compiler).
3. The key measurement: a cold short Pendulum run, ``fastsac train`` for 6,000 frames, 256-256,
   batch 256, 1M buffer, learning from frame 5000 (SAC v2 by default, ``--variant``), one core
   (``taskset``, OMP_NUM_THREADS=1), timed from launch to exit. With ``--cleanrl DIR`` (a CleanRL
   checkout) next to CleanRL's ``sac_continuous_action.py`` at the same settings, side by side,
   one core each, then with the cores swapped; its script is adapted to gymnasium 1.x at run
   time (SAME_STEP autoreset, ``final_obs``; its episode printout off) and needs its own
   requirements (tyro, tensorboard).

    python benchmarks/cold_start.py [--parts 1,2,3] [--cleanrl DIR] [--frames 6000] [--quick]
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

if __package__ in (None, ""):  # run as a file: the repository's root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.harness import machine_info, machine_slug, write_report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# part 1: in a fresh process, compile the update's graphs (v1: policy step and not; v2: one),
# then time updates
COMPILE_COST = r"""
import json, sys, time
import numpy as np, torch
import fastsac
from fastsac import FastSAC
env_id, variant, hidden, batch, updates = (sys.argv[1], sys.argv[2], sys.argv[3],
                                           int(sys.argv[4]), int(sys.argv[5]))
hidden = tuple(map(int, hidden.split("-")))
torch.set_num_threads(1)
agent = FastSAC(fastsac.make_env(env_id), 10_000, batch, variant=variant, hidden_sizes=hidden,
                seed=0, update_threads=1, background_compile=False)
rng = np.random.default_rng(0)
n = 2000
obs, act = rng.normal(size=(n, agent.obs_dim)), rng.uniform(-1, 1, (n, agent.action_dim))
agent.memory.store_batch(obs, act, rng.normal(size=n), obs[::-1], np.zeros(n))
first, times = {}, []
for step in range(1, updates + 3):
    agent.total_step = step
    policy = step % agent.policy_update_freq == 0
    start = time.perf_counter()
    agent.update_model()
    took = time.perf_counter() - start
    if policy in first:
        times.append(took)
    else:
        first[policy] = took
print(json.dumps({"graph_s": list(first.values()), "per_update_s": float(np.median(times))}))
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
    for env_id, variant, hidden, batch in shapes:
        for wrapper in ("1", "0"):
            env = dict(fresh_caches(work), FASTSAC_CPP_WRAPPER=wrapper)
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", COMPILE_COST, env_id, variant, hidden,
                                  str(batch), str(updates)], env=env, capture_output=True,
                                 text=True, cwd=ROOT, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result.update(env=env_id, variant=variant, hidden=hidden, batch=batch,
                          cpp_wrapper=wrapper == "1", process_s=time.perf_counter() - start)
            print(f"  {env_id} {hidden} cpp_wrapper={wrapper}: compile "
                  f"{sum(result['graph_s']):.1f} s, {result['per_update_s'] * 1e3:.3f} ms/update",
                  flush=True)
            rows.append(result)
    return rows


def _train_command(out: str, frames: int, initial: int, hidden: str, batch: int,
                   memory: int, variant: str) -> list[str]:
    return [sys.executable, "-m", "fastsac", "train", "--env", "Pendulum-v1", "--frames",
            str(frames), "--initial-random-steps", str(initial), "--variant", variant,
            "--hidden", *hidden.split("-"), "--batch-size", str(batch), "--memory-size",
            str(memory), "--test-episodes", "1", "--no-progress", "--out", out,
            "--device", "cpu"]


def _summary(out: str) -> dict:
    with open(os.path.join(out, "summary.json")) as f:
        s = json.load(f)
    return {"train_s": s["train_seconds"],
            "first_bridge_update_train_s": s["first_bridge_update_train_s"],
            "first_compiled_update_train_s": s["first_compiled_update_train_s"],
            "test_return": s["test_mean_return"]}


def first_compiled(frames: int, work: str) -> list[dict]:
    """``fastsac train`` (the notebook preset: v1, 128-128, batch 128, learning from frame
    1000) on all cores, cold, with and without the background compile."""
    rows = []
    for background in ("1", "0"):
        env = dict(fresh_caches(work), FASTSAC_BACKGROUND_COMPILE=background)
        out = tempfile.mkdtemp(dir=work)
        launched = time.time()
        subprocess.run(_train_command(out, frames, 1000, "128-128", 128, 100_000, "v1"),
                       env=env, cwd=ROOT, check=True, capture_output=True)
        rows.append({"background_compile": background == "1", "frames": frames,
                     "process_s": time.time() - launched, **_summary(out)})
        r = rows[-1]
        print(f"  background={background}: first bridge update {r['first_bridge_update_train_s']}"
              f" s, first compiled update {r['first_compiled_update_train_s']} s into training, "
              f"run {r['process_s']:.1f} s", flush=True)
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


def _wait(procs: dict, launched: float) -> dict[str, float]:
    ends = {}
    while len(ends) < len(procs):
        for name, proc in procs.items():
            if name not in ends and proc.poll() is not None:
                ends[name] = time.time() - launched
                if proc.returncode != 0:
                    raise RuntimeError(f"{name} failed: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    return ends


def cold_run(frames: int, work: str, cores: list[str], variant: str,
             cleanrl: str | None) -> list[dict]:
    """fastsac's cold short run on one core; with CleanRL beside it on the other, then the cores
    swapped."""
    copy = _cleanrl_copy(cleanrl, work) if cleanrl else None
    pairs = ((cores[0], cores[1]), (cores[1], cores[0])) if copy else ((cores[0], None),)
    rows = []
    for fast_core, clean_core in pairs:
        out = tempfile.mkdtemp(dir=work)
        procs = {}
        launched = time.time()
        fast_env = dict(fresh_caches(work), OMP_NUM_THREADS="1")
        procs["fastsac"] = subprocess.Popen(
            _taskset(fast_core) + _train_command(out, frames, 5000, "256-256", 256, 1_000_000,
                                                 variant),
            env=fast_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if copy:
            clean_env = dict(fresh_caches(work), OMP_NUM_THREADS="1", PYTHONPATH=copy)
            procs["cleanrl"] = subprocess.Popen(
                _taskset(clean_core) + [sys.executable, "cleanrl/sac_continuous_action.py",
                                        "--env-id", "Pendulum-v1", "--total-timesteps",
                                        str(frames), "--no-cuda", "--seed", "1"],
                env=clean_env, cwd=copy, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ends = _wait(procs, launched)
        rows.append({"variant": variant, "frames": frames, "fastsac_core": fast_core,
                     "cleanrl_core": clean_core, "fastsac_s": ends["fastsac"],
                     "cleanrl_s": ends.get("cleanrl"), **_summary(out)})
        r = rows[-1]
        print(f"  fastsac {r['fastsac_s']:.1f} s (core {fast_core}; first bridge update "
              f"{r['first_bridge_update_train_s']} s, first compiled "
              f"{r['first_compiled_update_train_s']} s into training)"
              + (f", CleanRL {r['cleanrl_s']:.1f} s (core {clean_core})" if copy else ""),
              flush=True)
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


def _seconds(value) -> str:
    return "never" if value is None else f"{value:.1f} s"


def to_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"# Cold start, {report['date']}", "",
             f"- CPU: {m['cpu']} ({m['cores']} cores); torch {m['torch']}; fastsac CPU kernels "
             f"{m['simd']}", "",
             "Every run starts with empty caches (inductor's, its precompiled headers, numba's).",
             ""]
    if report.get("compile_cost"):
        lines += ["## Compile time against time per update (1 thread)", "",
                  "| env | SAC | hidden | batch | cpp_wrapper | first update per graph | "
                  "per update |", "|---|---|---|---:|---|---|---:|"]
        for r in report["compile_cost"]:
            graphs = ", ".join(f"{g:.1f} s" for g in r["graph_s"])
            lines.append(f"| {r['env']} | {r['variant']} | {r['hidden']} | {r['batch']} | "
                         f"{r['cpp_wrapper']} | {graphs} | {r['per_update_s'] * 1e3:.3f} ms |")
        lines += ["", "Compile + n updates:", "", "| env | updates | with wrapper | without |",
                  "|---|---:|---:|---:|"]
        for r in report["by_run_length"]:
            lines.append(f"| {r['env']} | {r['updates']} | {r['with_wrapper_s']:.1f} s | "
                         f"{r['without_wrapper_s']:.1f} s |")
    if report.get("first_compiled"):
        lines += ["", "## Time to the first update on the eager bridge and to the first compiled "
                  "update (`fastsac train`, notebook preset, all cores; seconds into training)",
                  "", "| background compile | frames | first bridge update | first compiled "
                  "update | training | whole process |", "|---|---:|---:|---:|---:|---:|"]
        for r in report["first_compiled"]:
            lines.append(f"| {r['background_compile']} | {r['frames']} | "
                         f"{_seconds(r['first_bridge_update_train_s'])} | "
                         f"{_seconds(r['first_compiled_update_train_s'])} | "
                         f"{r['train_s']:.1f} s | {r['process_s']:.1f} s |")
    if report.get("cold_run"):
        lines += ["", "## Cold short Pendulum run (256-256, batch 256, 1M buffer, learning from "
                  "frame 5000), one core each, launch to exit", "",
                  "| SAC | frames | fastsac | first bridge update | first compiled update | "
                  "test return | CleanRL | cores (fastsac, CleanRL) |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in report["cold_run"]:
            clean = _seconds(r["cleanrl_s"]) if r["cleanrl_s"] is not None else "not run"
            lines.append(f"| {r['variant']} | {r['frames']} | {r['fastsac_s']:.1f} s | "
                         f"{_seconds(r['first_bridge_update_train_s'])} | "
                         f"{_seconds(r['first_compiled_update_train_s'])} | "
                         f"{r['test_return']:.0f} | {clean} | "
                         f"{r['fastsac_core']}, {r['cleanrl_core']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="1,2,3")
    p.add_argument("--cleanrl", default=None, help="a CleanRL checkout (part 3, optional)")
    p.add_argument("--frames", type=int, default=6000, help="part 3's run length")
    p.add_argument("--variant", choices=("v1", "v2"), default="v2", help="part 3's SAC")
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
            shapes = [("Pendulum-v1", "v1", "128-128", 128)]
            if not args.quick:
                shapes.append(("HalfCheetah-v5", "v2", "256-256", 256))
            report["compile_cost"] = compile_cost(shapes, 300 if args.quick else 2000, work)
            report["by_run_length"] = by_run_length(report["compile_cost"])
        if "2" in parts:
            print("time to the first compiled update ...", flush=True)
            report["first_compiled"] = first_compiled(8000 if args.quick else 30_000, work)
        if "3" in parts:
            print("the cold short run" + (" beside CleanRL" if args.cleanrl else "") + " ...",
                  flush=True)
            report["cold_run"] = cold_run(args.frames, work, args.cores.split(","),
                                          args.variant, args.cleanrl)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    name = f"{machine_slug(report['machine'])}-{report['date']}-cold-start"
    name += "-quick" if args.quick else ""
    write_report(os.path.join(args.out, name), report, to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
