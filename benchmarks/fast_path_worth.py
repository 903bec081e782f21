"""What each CPU fast path outside the fused head buys: the shipped agent against the same agent
without it, interleaved in one process (harness.time_group). The measurement behind
BENCHMARKS.md's "Where the package's lines go".

- ``act``: ``select_action``'s forward as one ``fastsac::policy_action`` call, against the same
  forward in torch ops (the actor's layers and ``fastsac::tanh_normal``, no autograd records).
- ``adam``: the eager update (the cold start's bridge) with the fused ``fastsac::adam_``, against
  the same Adam step in torch ops (what the compiled graph runs, uncompiled).
- ``tiles``: the compiled update at 128 wide with its hidden products in ``fastsac::mm``'s
  AVX-512 tiles on a tuned thread count (``fastsac/threads.py``), against the same graph with
  every product in MKL, on 1 thread and on 2; and ``mm``: the 128-wide products alone, tiles
  against MKL, on 1 thread and on 2.

    python benchmarks/fast_path_worth.py [--parts act,adam,tiles,mm] [--rounds 9]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import torch

from benchmarks import harness
from benchmarks.harness import Case, Shape
from fastsac import FastSAC, engine, networks, ops

PENDULUM_128 = Shape("v1", "Pendulum-v1", (128, 128), 128, 100_000, "v1")
PENDULUM_256 = Shape("cold", "Pendulum-v1", (256, 256), 256, 100_000, "v1")
CHEETAH_256 = Shape("mujoco", "HalfCheetah-v5", (256, 256), 256, 100_000, "v2")


def act_torch(agent, state: np.ndarray) -> np.ndarray:
    """A sampled action from the actor's forward in torch ops: what acting would run without
    ``fastsac::policy_action``."""
    head = agent._variant.head
    with torch.inference_mode():
        x = torch.from_numpy(np.asarray(state, dtype=np.float32))
        mean_raw, log_std_raw = networks.actor_heads(x, agent.engine._actor_params,
                                                     len(agent.hidden_sizes))
        action, _ = torch.ops.fastsac.tanh_normal(mean_raw, log_std_raw,
                                                  agent._noise(mean_raw.shape),
                                                  head.log_std_min, head.log_std_max,
                                                  head.tanh_mean)
        return action.numpy()


def act_cases(shape: Shape) -> list[Case]:
    group = f"acting, one state: {shape.label}"

    def make(with_op: bool):
        def setup():
            agent = harness.agent_at(FastSAC, shape, compile=False)
            state = np.zeros(agent.obs_dim, dtype=np.float32)
            if with_op:
                return lambda: agent.engine.act(state, False)
            return lambda: act_torch(agent, state)
        return setup

    return [Case(group, "torch ops", make(False), baseline=True),
            Case(group, "fastsac::policy_action (shipped)", make(True))]


def _adam_in_torch_ops(group, grads, s) -> None:
    ops.adam_torch_(*group, grads, s)


def adam_cases(shape: Shape) -> list[Case]:
    """The eager update on one thread (the cold run's bridge leaves the other core to the
    compiler), fused Adam or Adam in torch ops."""
    group = f"eager update, 1 thread: {shape.label}"
    shipped = engine.adam_

    def make(fused: bool):
        def setup():
            agent = harness.agent_at(FastSAC, shape, compile=False)

            def call():
                engine.adam_ = shipped if fused else _adam_in_torch_ops
                threads = torch.get_num_threads()
                torch.set_num_threads(1)
                try:
                    agent.total_step += 1
                    agent.update_model()
                finally:
                    torch.set_num_threads(threads)
                    engine.adam_ = shipped
            return call
        return setup

    return [Case(group, "Adam in torch ops", make(False), baseline=True),
            Case(group, "fastsac::adam_ (shipped)", make(True))]


def tiles_cases(shape: Shape) -> list[Case]:
    group = f"compiled update: {shape.label}"

    def make(tiled: bool, threads: int | str):
        def setup():
            kwargs = {"update_threads": threads} if tiled else {}
            previous = os.environ.get("FASTSAC_TILES")
            os.environ["FASTSAC_TILES"] = "1" if tiled else "0"  # whatever the CPU's vendor
            try:
                agent = harness.agent_at(FastSAC, shape, background_compile=False, **kwargs)
            finally:
                os.environ.pop("FASTSAC_TILES")
                if previous is not None:
                    os.environ["FASTSAC_TILES"] = previous
            assert agent.engine.spec.tiled == tiled
            count = torch.get_num_threads() if threads == "auto" else threads

            def call():
                previous = torch.get_num_threads()
                torch.set_num_threads(count)  # a fixed count is one compiled entry each
                try:
                    agent.total_step += 1
                    agent.update_model()
                finally:
                    torch.set_num_threads(previous)
            for _ in range(300):  # past the tuner's first probe
                call()
            if agent.engine._tuner is not None:
                print(f"the tuner chose {agent.engine._tuner.choice} threads", flush=True)
            return call
        return setup

    shipped = "tiles" if ops.tiles_pay() else "MKL"  # this CPU's default (ops.tiles_pay)
    mark = {True: " (shipped here)" if shipped == "tiles" else "",
            False: " (shipped here)" if shipped == "MKL" else ""}
    return [Case(group, "MKL, 1 thread", make(False, 1), baseline=True),
            Case(group, f"MKL, torch's {torch.get_num_threads()} threads{mark[False]}",
                 make(False, torch.get_num_threads())),
            Case(group, "tiles, 1 thread", make(True, 1)),
            Case(group, f"tiles, tuned thread count{mark[True]}", make(True, "auto"))]


def markdown(report: dict) -> str:
    lines = [f"# What each CPU fast path buys, {report['date']}", "",
             *harness.machine_lines(report["machine"]),
             f"- command: `{report['command']}`; medians of {report['rounds']} interleaved "
             "rounds", ""]
    for rows in report["groups"]:
        lines += [f"## {rows[0]['group']}", "", "| variant | median | spread | baseline / this |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {r['name']} | {harness.fmt_time(r['median_s'])} | {r['spread']:.0%} | "
                  f"{r['speedup_vs_baseline']:.2f}x |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", default="act,adam,tiles,mm")
    p.add_argument("--budget", type=float, default=0.2, help="seconds per variant per round")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "results"))
    args = p.parse_args()
    parts = args.parts.split(",")
    started = time.perf_counter()
    avx512 = ops.cpu_simd() == "avx512"  # the tiles exist only there
    groups = {"act": [act_cases(PENDULUM_128), act_cases(CHEETAH_256)],
              "adam": [adam_cases(PENDULUM_256), adam_cases(PENDULUM_128)],
              "tiles": [tiles_cases(PENDULUM_128)] if avx512 else [],
              "mm": harness.by_group(harness.mm_cases(((128, 128, 128),))) if avx512 else []}
    report = {"date": harness.today(), "machine": harness.machine_info(),
              "command": "python " + " ".join(sys.argv), "rounds": args.rounds, "groups": []}
    for part in parts:
        for cases in groups[part]:
            for threads in (1, 2) if part == "mm" else (None,):
                previous = torch.get_num_threads()
                torch.set_num_threads(threads or previous)
                try:
                    rows = harness.time_group(cases, rounds=args.rounds, budget_s=args.budget)
                finally:
                    torch.set_num_threads(previous)
                if threads:
                    rows = [{**r, "group": f"{r['group']}, {threads} thread(s)"} for r in rows]
                report["groups"].append(rows)
                print(markdown({**report, "groups": [rows]}).split("\n", 6)[-1], flush=True)
    report["seconds"] = time.perf_counter() - started
    harness.publish(args.out, "fast-path-worth", report, markdown(report))


if __name__ == "__main__":
    main()
