"""One rank of the data-parallel exactness test (tests/test_distributed.py): joins a gloo
group of ``world`` processes, runs 10 float64 updates of each agent kind on this rank's half
of shared batches, and saves the parameters.

    python -m tests.dp_worker RANK WORLD PORT OUT_DIR
"""

import os
import sys

import numpy as np
import torch
import torch.distributed as dist

from fastsac import FastSAC, SACAgent, make_env
from fastsac.state import modules

BATCH = 16  # per rank
UPDATES = 10
KINDS = {"eager": (FastSAC, {"compile": False}), "compiled": (FastSAC, {"compile": True}),
         "reference": (SACAgent, {}), "v2_eager": (FastSAC, {"compile": False, "variant": "v2"}),
         "v2_reference": (SACAgent, {"variant": "v2"})}


def batches(total: int):
    """The same batch and noise sequence in every process: ``total`` rows per update."""
    rng = np.random.default_rng(100)
    for i in range(UPDATES):
        batch = {"obs": rng.normal(size=(total, 3)), "next_obs": rng.normal(size=(total, 3)),
                 "acts": rng.uniform(-1, 1, size=total), "rews": rng.normal(size=total),
                 "done": (rng.uniform(size=total) < 0.1).astype(np.float64)}
        yield i, batch, torch.tensor(rng.normal(size=(2, total, 1)))  # v1 takes the first


def make(cls, batch_size: int, data_parallel: bool, seed_offset: int = 0, **kwargs):
    return cls(make_env("Pendulum-v1"), 1000, batch_size, hidden_sizes=(32, 32),
               dtype=torch.float64, device="cpu", seed=3 + seed_offset,
               data_parallel=data_parallel, **kwargs)


def parameters(agent) -> dict[str, torch.Tensor]:
    out = {f"{n}.{k}": v.clone() for n in modules(agent)
           for k, v in getattr(agent, n).state_dict().items()}
    out["log_alpha"] = agent.log_alpha.detach().clone()
    return out


def run(agent, rows: slice | None, total: int) -> dict[str, torch.Tensor]:
    for i, batch, noise in batches(total):
        mine = {k: v[rows] for k, v in batch.items()} if rows else batch
        noise = (noise[:, rows] if rows else noise)[:agent._variant.noise_draws]
        agent.update_model(batch=mine, noise=noise, policy_step=i % 2 == 0)
    return parameters(agent)


def main() -> int:
    rank, world, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    rows = slice(rank * BATCH, (rank + 1) * BATCH)
    for kind, (cls, kwargs) in KINDS.items():
        # seeded apart: the starting weights must come from rank 0's broadcast
        agent = make(cls, BATCH, True, seed_offset=rank, **kwargs)
        torch.save(run(agent, rows, world * BATCH), os.path.join(out, f"{kind}-{rank}.pt"))
    # a single-process checkpoint loads into every rank, and the ranks go on in step
    solo = make(FastSAC, BATCH, False, compile=False)
    solo.update_model(batch=next(batches(BATCH))[1], noise=torch.zeros(BATCH, 1))
    solo.save(os.path.join(out, f"solo-{rank}.pt"))
    agent = make(FastSAC, BATCH, True, compile=False, seed_offset=1)
    agent.load(os.path.join(out, f"solo-{rank}.pt"))
    loaded = parameters(agent)
    _, batch, noise = next(batches(world * BATCH))
    agent.update_model(batch={k: v[rows] for k, v in batch.items()}, noise=noise[0, rows])
    torch.save({"loaded": loaded, "solo": parameters(solo), "after": parameters(agent)},
               os.path.join(out, f"loaded-{rank}.pt"))
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
