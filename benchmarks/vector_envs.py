"""Training transitions/s on vector envs, fastsac next to Stable-Baselines3's SAC with the same
number of envs, networks, batch, buffer and ratio of updates to transitions, in one run.

Per env (Pendulum-v1 with the notebook's networks; HalfCheetah-v5 with the SAC paper's),
per number of envs N, per vectorization (sync, async) and per ``updates_per_step`` (1, 0.25):
transitions/s once learning runs (the warm-up's random steps and the compile excluded), on one
torch thread. fastsac runs SAC v2 by default (``--variant``), SB3's algorithm. For fastsac,
where the time goes: env stepping, acting, updates, the rest. SB3 gets the same ratio through
``train_freq`` and ``gradient_steps``.

Each configuration runs ``--rounds`` pairs of processes' worth of work, fastsac and SB3
alternating (fastsac first in even rounds, SB3 first in odd ones), so that a slow stretch of a
shared machine weighs on both; the table gives medians and each configuration's range of
per-round ratios.

    python benchmarks/vector_envs.py [--envs pendulum,halfcheetah] [--nums 1,4,16]
                                     [--rounds 3] [--quick] [--no-sb3] [--variant v2]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from fractions import Fraction

if __package__ in (None, ""):  # run as a file: the repository's root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

from benchmarks.harness import machine_info, machine_slug, write_report
from fastsac import FastSAC, make_env

SETUPS = {
    "pendulum": {"env": "Pendulum-v1", "hidden": (128, 128), "batch": 128, "memory": 100_000,
                 "frames": {1.0: 1500, 0.25: 4000}},
    "halfcheetah": {"env": "HalfCheetah-v5", "hidden": (256, 256), "batch": 256,
                    "memory": 1_000_000, "frames": {1.0: 500, 0.25: 1500}},
}
WARMUP = 1000  # random transitions before learning starts


class Clock:
    """Wall time spent in named calls, and (time, transitions) marks after each env step."""

    def __init__(self):
        self.spent: dict[str, float] = {}
        self.marks: list[tuple[float, int]] = []

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - start
        return timed

    def rate_after(self, transitions: int) -> tuple[float, int, float]:
        """(transitions/s, transitions, seconds) from the first mark at or past ``transitions``."""
        start = next(i for i, (_, n) in enumerate(self.marks) if n >= transitions)
        t0, n0 = self.marks[start]
        t1, n1 = self.marks[-1]
        return (n1 - n0) / (t1 - t0), n1 - n0, t1 - t0


def run_fastsac(setup: dict, n: int, vectorization: str, ratio: float, frames: int,
                variant: str = "v2") -> dict:
    env = make_env(setup["env"], num_envs=n, vectorization=vectorization)
    agent = FastSAC(env, setup["memory"], setup["batch"], variant=variant,
                    hidden_sizes=setup["hidden"],
                    initial_random_steps=WARMUP, updates_per_step=ratio, seed=0,
                    update_threads=1, background_compile=False)
    clock = Clock()
    env.step = clock.wrap("env", env.step)
    agent.select_action = clock.wrap("act", agent.select_action)
    agent._scheduled_update = clock.wrap("update", agent._scheduled_update)
    # learning starts after WARMUP; the first updates compile (or load) the graphs: skip past
    settle = WARMUP + max(2 * n, 200)
    spent_before: dict[str, float] = {}
    step = agent.step

    def marked(action):
        out = step(action)
        done = agent.total_step - 1 + len(agent.last_transitions.rows)  # transitions so far
        clock.marks.append((time.perf_counter(), done))
        if not spent_before and done >= settle:
            spent_before.update(clock.spent)
        return out

    agent.step = marked
    agent.train(settle + frames, plot_path=None, progress=False)
    rate, count, seconds = clock.rate_after(settle)
    where = {k: (clock.spent.get(k, 0.0) - spent_before.get(k, 0.0)) / seconds
             for k in ("env", "act", "update")}
    where["rest"] = max(0.0, 1.0 - sum(where.values()))
    return {"transitions_per_s": rate, "transitions": count, "seconds": seconds,
            "time_shares": where}


def _sb3_schedule(n: int, ratio: float) -> tuple[int, int]:
    """(train_freq in vector steps, gradient_steps) giving ``ratio`` updates per transition."""
    per_vector_step = Fraction(ratio).limit_denominator(1000) * n
    if per_vector_step >= 1:
        if per_vector_step.denominator != 1:
            raise ValueError(f"SB3 cannot run {ratio} updates per transition with {n} envs")
        return 1, int(per_vector_step)
    every = 1 / per_vector_step
    if every.denominator != 1:
        raise ValueError(f"SB3 cannot run {ratio} updates per transition with {n} envs")
    return int(every), 1


def run_sb3(setup: dict, n: int, vectorization: str, ratio: float, frames: int,
            variant: str = "v2") -> dict:
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    vec_cls = DummyVecEnv if vectorization == "sync" else SubprocVecEnv
    env = make_vec_env(setup["env"], n_envs=n, seed=0, vec_env_cls=vec_cls)
    train_freq, gradient_steps = _sb3_schedule(n, ratio)
    model = SAC("MlpPolicy", env, learning_rate=3e-4, buffer_size=setup["memory"],
                learning_starts=WARMUP, batch_size=setup["batch"], train_freq=train_freq,
                gradient_steps=gradient_steps, policy_kwargs={"net_arch": list(setup["hidden"])},
                device="cpu", seed=0)
    clock = Clock()

    class Marks(BaseCallback):
        def _on_step(self) -> bool:
            clock.marks.append((time.perf_counter(), self.model.num_timesteps))
            return True

    settle = WARMUP + max(2 * n, 200)
    model.learn(settle + frames, callback=Marks())
    env.close()
    rate, count, seconds = clock.rate_after(settle)
    return {"transitions_per_s": rate, "transitions": count, "seconds": seconds,
            "train_freq": train_freq, "gradient_steps": gradient_steps}


def summarize(rounds: list[dict], sb3_rounds: list[dict]) -> dict:
    """Medians over a configuration's rounds, and the per-round ratios fastsac / SB3 (the runs
    of one round ran back to back)."""
    fast = {"rounds": rounds,
            "transitions_per_s": statistics.median(r["transitions_per_s"] for r in rounds),
            "time_shares": {k: statistics.median(r["time_shares"][k] for r in rounds)
                            for k in rounds[0]["time_shares"]}}
    if not sb3_rounds:
        return {"fastsac": fast}
    ratios = [f["transitions_per_s"] / s["transitions_per_s"]
              for f, s in zip(rounds, sb3_rounds, strict=True)]
    sb3 = {"rounds": sb3_rounds,
           "transitions_per_s": statistics.median(r["transitions_per_s"] for r in sb3_rounds)}
    return {"fastsac": fast, "sb3": sb3, "ratios": ratios, "ratio": statistics.median(ratios)}


def to_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"# Vector envs, {report['date']}", "",
             f"- CPU: {m['cpu']} ({m['cores']} cores), 1 torch thread; fastsac SAC "
             f"{report['variant']}, {m['simd']} build; torch {m['torch']}, "
             f"stable-baselines3 {m['stable_baselines3']}, gymnasium {m['gymnasium']}", "",
             f"Transitions/s once learning runs, medians of {report['rounds']} interleaved "
             "rounds; vs SB3: the median of the rounds' ratios and their range. Time shares are "
             "fastsac's: env stepping, acting, updates, the rest (buffer, bookkeeping).", "",
             "| env | N | vectorization | updates/transition | fastsac | SB3 | vs SB3 | range "
             "| env | act | update | rest |",
             "|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in report["runs"]:
        f, s = r["fastsac"], r.get("sb3")
        sh = f["time_shares"]
        sb3 = f"{s['transitions_per_s']:.0f}" if s else ""
        ratio = f"{r['ratio']:.2f}x" if s else ""
        spread = f"{min(r['ratios']):.2f}-{max(r['ratios']):.2f}x" if s else ""
        lines.append(f"| {r['env']} | {r['num_envs']} | {r['vectorization']} | "
                     f"{r['updates_per_step']:g} | {f['transitions_per_s']:.0f} | {sb3} | "
                     f"{ratio} | {spread} | {sh['env']:.0%} | {sh['act']:.0%} | "
                     f"{sh['update']:.0%} | {sh['rest']:.0%} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", default="pendulum,halfcheetah")
    p.add_argument("--nums", default="1,4,16")
    p.add_argument("--vectorizations", default="sync,async")
    p.add_argument("--ratios", default="1,0.25")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per configuration")
    p.add_argument("--quick", action="store_true", help="a third of the frames")
    p.add_argument("--no-sb3", action="store_true")
    p.add_argument("--variant", choices=("v1", "v2"), default="v2",
                   help="fastsac's SAC (v2, the default: SB3's algorithm)")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"))
    args = p.parse_args()
    torch.set_num_threads(1)
    report = {"date": datetime.date.today().isoformat(), "machine": machine_info("cpu"),
              "variant": args.variant, "warmup": WARMUP, "rounds": args.rounds, "runs": []}
    name = f"{machine_slug(report['machine'])}-{report['date']}-vector-envs-{args.variant}"
    name += "-quick" if args.quick else ""
    os.makedirs(args.out, exist_ok=True)
    for key in args.envs.split(","):
        setup = SETUPS[key]
        for n in map(int, args.nums.split(",")):
            for vectorization in args.vectorizations.split(","):
                for ratio in map(float, args.ratios.split(",")):
                    frames = setup["frames"][ratio] // (3 if args.quick else 1)
                    frames = max(frames, 4 * n)
                    row = {"env": setup["env"], "num_envs": n, "vectorization": vectorization,
                           "updates_per_step": ratio}
                    print(f"{setup['env']} N={n} {vectorization} ratio={ratio} ...", flush=True)
                    ours, theirs = [], []
                    for k in range(args.rounds):
                        runs = [(ours, run_fastsac)]
                        if not args.no_sb3:
                            runs.insert(1 - k % 2, (theirs, run_sb3))  # SB3 second, then first
                        for results, run in runs:
                            results.append(run(setup, n, vectorization, ratio, frames,
                                               args.variant))
                    row.update(summarize(ours, theirs))
                    report["runs"].append(row)
                    print(to_markdown({**report, "runs": [row]}).splitlines()[-1], flush=True)
                    write_report(os.path.join(args.out, name), report, to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
