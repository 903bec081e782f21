import sys, time, statistics, json, torch
sys.path.insert(0, "/work/proto")
import numpy as np
import single_pass
from fastsac import FastSAC, make_env
from fastsac.bench import _fill_random
hidden = tuple(int(x) for x in sys.argv[1].split("-")); batch = int(sys.argv[2]); threads = int(sys.argv[3])
env_id = sys.argv[4] if len(sys.argv) > 4 else ("Pendulum-v1" if hidden[0] <= 128 else "HalfCheetah-v5")
rounds, calls = 11, 30
torch.set_num_threads(threads)
agents = {}
for name in ("hand", "autograd"):
    a = FastSAC(make_env(env_id), 100_000, batch, seed=0, hidden_sizes=hidden, update_threads=threads,
                background_compile=False)
    if name == "autograd":
        a._update_fn = single_pass.make(a._cfg)
    _fill_random(a.memory)
    t = time.perf_counter()
    for _ in range(4):
        a.total_step += 1; a.update_model()
    print(name, "compiled in", round(time.perf_counter() - t, 1), flush=True)
    agents[name] = a
samples = {n: [] for n in agents}
for r in range(rounds):
    for n, a in agents.items():
        t = time.perf_counter()
        for _ in range(calls):
            a.total_step += 1; a.update_model()
        samples[n].append((time.perf_counter() - t) / calls)
med = {n: statistics.median(s) for n, s in samples.items()}
print(json.dumps({"hidden": hidden, "batch": batch, "threads": threads, "simd": __import__("fastsac").ops.cpu_simd(),
                  "median_ms": {n: round(v * 1e3, 3) for n, v in med.items()},
                  "autograd_over_hand": round(med["autograd"] / med["hand"], 3),
                  "rounds_ms": {n: [round(x * 1e3, 3) for x in s] for n, s in samples.items()}}))
