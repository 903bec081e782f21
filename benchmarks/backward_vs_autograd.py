"""The update's hand-written backward (fastsac.update) against autograd's gradients
(torch.func.grad, fastsac.autograd_update) inside the same compiled graph, at one shape, on one
thread, interleaved round by round; compile times too. Results to benchmarks/results/.

    python benchmarks/backward_vs_autograd.py [--hidden 256 256] [--batch 256] [--rounds 9]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time

import torch

from fastsac import FastSAC, make_env
from fastsac.autograd_update import make_autograd_update
from fastsac.bench import _fill_random, machine_info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--out", default=os.path.join("benchmarks", "results"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    agents, compile_s = {}, {}
    variants = ("explicit backward (fastsac.update)", "autograd (torch.func.grad)")
    for name in variants:
        agent = FastSAC(make_env(args.env), 100_000, args.batch, device="cpu", seed=0,
                        hidden_sizes=tuple(args.hidden), update_threads=args.threads)
        if name.startswith("autograd"):
            agent._update_fn = make_autograd_update(agent._cfg, compile=True)
        _fill_random(agent.memory)
        start = time.perf_counter()
        for _ in range(2):  # both graphs
            agent.total_step += 1
            agent.update_model()
        compile_s[name] = time.perf_counter() - start
        agents[name] = agent
    samples = {name: [] for name in agents}
    for _ in range(args.rounds):
        for name, agent in agents.items():
            start = time.perf_counter()
            for _ in range(args.calls):
                agent.total_step += 1
                agent.update_model()
            samples[name].append((time.perf_counter() - start) / args.calls)
    rows = [{"name": name, "median_s": statistics.median(s), "compile_s": compile_s[name],
             "rounds": s} for name, s in samples.items()]
    report = {"date": datetime.date.today().isoformat(), "hidden_sizes": args.hidden,
              "batch": args.batch, "threads": args.threads, "machine": machine_info("cpu"),
              "results": rows}
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"backward-vs-autograd-{'x'.join(map(str, args.hidden))}-"
                        f"{report['date']}.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    for row in rows:
        print(f"{row['name']:40s} {row['median_s'] * 1e3:8.3f} ms per update, "
              f"compiled in {row['compile_s']:.0f} s")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
