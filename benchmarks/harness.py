"""The benchmark cases and the timer behind ``fastsac bench`` (benchmarks/suite.py), the
pytest-benchmark files and the scripts of benchmarks/: one place for each.

Every group compares variants of the same work (fused vs composite, Numba vs numpy, FastSAC vs
the eager reference and Stable-Baselines3, an update vs its matrix products alone). A group's
variants are timed interleaved, round by round, and each figure is the median over rounds, so a
slow moment of the machine (a shared one: see ``machine_info``'s load averages) hits all
variants alike. Training runs are interleaved the same way (``interleave_runners``).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fastsac import FastSAC, ReplayBuffer, SACAgent, make_env, ops
from fastsac.agreement import fill_random
from fastsac.networks import NOTEBOOK_HEAD, SB3_HEAD
from fastsac.reference import NumpyReplayBuffer, tanh_normal_sample

HEADS = {"v1 head": NOTEBOOK_HEAD, "v2 head": SB3_HEAD}


@dataclass
class Case:
    """One variant of a benchmark group: ``setup()`` returns the zero-argument call to time."""

    group: str
    name: str
    setup: Callable[[], Callable[[], object]]
    baseline: bool = False  # the variant the group's ratios are taken against
    params: dict = field(default_factory=dict)


def by_group(cases: list[Case]) -> list[list[Case]]:
    """Cases split into their groups, in first-seen order."""
    return [[c for c in cases if c.group == g] for g in dict.fromkeys(c.group for c in cases)]


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@dataclass(frozen=True)
class Shape:
    """A training configuration: env, networks, batch, buffer, variant."""

    name: str
    env_id: str
    hidden_sizes: tuple[int, ...]
    batch_size: int
    memory_size: int
    variant: str = "v2"

    @property
    def label(self) -> str:
        return (f"{self.env_id} {'-'.join(map(str, self.hidden_sizes))} batch {self.batch_size}"
                f" {self.memory_size:.0e} buffer SAC {self.variant}")


# ---- ops ------------------------------------------------------------------------------------
def tanh_normal_cases(device="cpu", batches=(1, 128, 4096, 65536), dims=(1, 6)) -> list[Case]:
    """Forward + backward of the actor head: the reference's composite vs fastsac::tanh_normal,
    for both heads (v1: the notebook's tanh mean; v2: SB3's)."""
    cases = []
    for head_name, head in HEADS.items():
        for batch in batches:
            for dim in dims:
                group = f"tanh_normal fwd+bwd {head_name} [{batch}x{dim}] {device}"

                def make(fn, batch=batch, dim=dim):
                    def setup():
                        g = torch.Generator().manual_seed(0)
                        m, s, e = (torch.randn(batch, dim, generator=g).to(device)
                                   for _ in range(3))
                        m.requires_grad_()
                        s.requires_grad_()

                        def call():
                            action, log_prob = fn(m, s, e)
                            (action.sum() + log_prob.sum()).backward()
                            m.grad = s.grad = None
                            _sync(device)
                        return call
                    return setup

                params = {"batch": batch, "dim": dim, "head": head_name}
                cases.append(Case(group, "eager composite (reference)", make(
                    lambda m, s, e, h=head: tanh_normal_sample(m, s, e, h)), baseline=True,
                    params=params))
                cases.append(Case(group, "fastsac::tanh_normal", make(
                    lambda m, s, e, h=head: ops.tanh_normal(m, s, e, h.log_std_min,
                                                            h.log_std_max, h.tanh_mean)),
                    params=params))
    return cases


def _polyak_lists(kind: str, device):
    g = torch.Generator().manual_seed(0)
    if kind == "V network":
        from fastsac.networks import CriticV

        net, target = CriticV(3).to(device), CriticV(3).to(device)
        return [p.data for p in target.parameters()], [p.data for p in net.parameters()]
    shapes = [(256, 256), (256,), (256, 256), (256,)] * 8  # 32 tensors, ~1.06M parameters
    return ([torch.randn(s, generator=g).to(device) for s in shapes],
            [torch.randn(s, generator=g).to(device) for s in shapes])


def _polyak_loop(target, source, tau):
    """The notebook's per-parameter Polyak loop."""
    for t, s in zip(target, source, strict=True):
        t.copy_(tau * s + (1.0 - tau) * t)


POLYAK_VARIANTS = {"per-parameter loop (notebook)": _polyak_loop,
                   "torch._foreach_lerp_": torch._foreach_lerp_,
                   "fastsac::polyak_": ops.polyak_}


def polyak_cases(device="cpu", tau=5e-3) -> list[Case]:
    cases = []
    for kind in ("V network", "1M-parameter list"):
        for name, fn in POLYAK_VARIANTS.items():

            def setup(kind=kind, fn=fn):
                target, source = _polyak_lists(kind, device)

                def call():
                    fn(target, source, tau)
                    _sync(device)
                return call

            cases.append(Case(f"polyak_ {kind} {device}", name, setup,
                              baseline=fn is _polyak_loop))
    return cases


def mm_cases(sizes=((128, 128, 128), (256, 128, 128))) -> list[Case]:
    """The update's hidden-layer products on CPU: torch.mm (MKL) vs fastsac::mm, with a plain and
    a transposed left operand (weight gradients read activations transposed)."""
    cases = []
    for m, k, n in sizes:
        for transposed in (False, True):
            group = f"mm {m}x{k} @ {k}x{n}{' (a transposed)' if transposed else ''} cpu"

            def make(fn, m=m, k=k, n=n, transposed=transposed):
                def setup():
                    g = torch.Generator().manual_seed(0)
                    a = torch.randn((k, m) if transposed else (m, k), generator=g)
                    a = a.t() if transposed else a
                    b = torch.randn(k, n, generator=g)
                    return lambda: fn(a, b)
                return setup

            params = {"m": m, "k": k, "n": n}
            cases.append(Case(group, "torch.mm (MKL)", make(torch.mm), baseline=True,
                              params=params))
            cases.append(Case(group, f"fastsac::mm ({ops.kernel_build()} build)",
                              make(torch.ops.fastsac.mm), params=params))
    return cases


# ---- buffer ---------------------------------------------------------------------------------
def buffer_cases(sizes=(1_000, 10_000, 100_000, 1_000_000), batch: int = 128) -> list[Case]:
    cases = []
    for n in sizes:
        group = f"sample_batch() batch {batch} at {n:.0e} stored"
        cases.append(Case(group, "np.random.choice (notebook)",
                          lambda n=n: fill_random(NumpyReplayBuffer(3, n, batch, 1,
                                                                    seed=0)).sample_batch,
                          baseline=True, params={"size": n}))
        cases.append(Case(group, "fastsac.ReplayBuffer (Numba)",
                          lambda n=n: fill_random(ReplayBuffer(3, n, batch, 1,
                                                               seed=0)).sample_batch,
                          params={"size": n}))
    return cases


# ---- the agent --------------------------------------------------------------------------------
def agent_at(cls, shape: Shape, device="cpu", **kwargs):
    """An agent of ``shape`` with its buffer full of random transitions."""
    agent = cls(make_env(shape.env_id), shape.memory_size, shape.batch_size, device=device,
                seed=0, variant=shape.variant, hidden_sizes=shape.hidden_sizes, **kwargs)
    fill_random(agent.memory)
    return agent


def _updating(make_agent: Callable[[], object], device="cpu") -> Callable[[], Callable]:
    """setup(): the agent, both graphs compiled (or captured), and one update per call."""

    def setup():
        agent = make_agent()
        for _ in range(4):
            agent.total_step += 1
            agent.update_model()

        def call():
            agent.total_step += 1  # policy steps by the notebook's rule (v1: every other one)
            agent.update_model()
            _sync(device)
        return call
    return setup


# the update groups' shapes: each variant at its own default networks, on Pendulum
UPDATE_SHAPES = {"v1": Shape("v1", "Pendulum-v1", (128, 128), 128, 100_000, "v1"),
                 "v2": Shape("v2", "Pendulum-v1", (256, 256), 256, 100_000, "v2")}


def update_cases(device="cpu", variant="v1", compiled=True, shape: Shape | None = None
                 ) -> list[Case]:
    """One update_model(): the eager reference, FastSAC's engine run eagerly, compiled (and on
    CUDA compiled + CUDA graph)."""
    shape = shape or UPDATE_SHAPES[variant]
    group = f"update_model() {shape.label} {device}"
    params = {"variant": shape.variant, "hidden": list(shape.hidden_sizes),
              "batch": shape.batch_size}

    def make(cls, **kwargs):
        return _updating(lambda: agent_at(cls, shape, device, **kwargs), device)

    cases = [Case(group, "reference (eager)", make(SACAgent), baseline=True, params=params),
             Case(group, "FastSAC eager engine", make(FastSAC, compile=False), params=params)]
    if compiled:
        cases.append(Case(group, "FastSAC compiled", make(FastSAC, cuda_graph=False),
                          params=params))
        if torch.device(device).type == "cuda":
            cases.append(Case(group, "FastSAC compiled + CUDA graph", make(FastSAC),
                              params=params))
    return cases


def select_action_cases(device="cpu", variant="v1") -> list[Case]:
    group = f"select_action() one state SAC {variant} {device}"

    def make(cls, deterministic=False, **kwargs):
        def setup():
            agent = cls(make_env(), 1000, 32, initial_random_steps=0, device=device, seed=0,
                        variant=variant, **kwargs)
            state = np.zeros(3, dtype=np.float32)
            return lambda: agent.select_action(state, deterministic)
        return setup

    return [Case(group, "reference", make(SACAgent), baseline=True),
            Case(group, "FastSAC", make(FastSAC, compile=False)),
            Case(group, "FastSAC deterministic", make(FastSAC, True, compile=False))]


# ---- the floor: an update's matrix products alone -------------------------------------------
class _ProductRecorder(TorchDispatchMode):
    """Records the matrix products called inside it, with copies of their operands."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[Callable, tuple]] = []
        self._ops = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default,
                     torch.ops.fastsac.mm.default}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in self._ops:
            self.calls.append((func, tuple(_like(a) for a in args)))
        return func(*args, **(kwargs or {}))


def _like(x):
    """A tensor with ``x``'s shape, strides and values (a transposed view stays one)."""
    if not isinstance(x, torch.Tensor):
        return x
    out = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device)
    out.copy_(x)
    return out


def recorded_products(shape: Shape, policy_step: bool = True) -> list[tuple[Callable, tuple]]:
    """The matrix products of one FastSAC update of ``shape`` (the eager engine: the same
    function the compiled graph is made of), as (op, operands with their shapes and strides)."""
    agent = agent_at(FastSAC, shape, compile=False, update_threads=None)
    agent.update_model(policy_step=policy_step)  # lazy first-call work outside the recording
    with _ProductRecorder() as rec, torch.no_grad():
        agent.update_model(policy_step=policy_step)
    return rec.calls


def expected_v2_products(n_critics: int = 2, layers: int = 2) -> int:
    """The products of one v2 update by the count in benchmarks/peers.py's docstring: forward,
    actor on obs and next_obs ((layers + 2) each), n critics on (s,a), n targets on (s',a') and
    n critics on (s,ã) ((layers + 1) each); backward, the critics on (s,a) (dW of every layer, dX
    of all but the first), the critics on (s,ã) (dX of every layer, to reach ã) and the actor on
    obs (dW of every layer and both heads, dX of the heads and of all hidden layers but the
    first). With fastsac::mm's tiles (AVX-512, 128 wide), the tiled layers of the frozen critics
    also compute their dW eagerly: the recording shows n_critics * tiled layers more."""
    forward = 2 * (layers + 2) + 3 * n_critics * (layers + 1)
    critics = n_critics * ((2 * layers + 1) + (layers + 1))
    actor = (layers + 2) + 2 + (layers - 1)
    return forward + critics + actor


def floor_call(products: list[tuple[Callable, tuple]], all_torch: bool = False) -> Callable:
    """One call: every product once, in order. ``all_torch``: fastsac::mm's replaced by
    torch.mm on the same operands (the floor in MKL's products)."""
    calls = [(torch.ops.aten.mm.default if all_torch and f is torch.ops.fastsac.mm.default
              else f, args) for f, args in products]

    def call():
        for f, args in calls:
            f(*args)
    return call


def floor_cases(shape: Shape, threads: int, with_sb3: bool = True, eager: bool = True
                ) -> list[Case]:
    """One group, one update per call, all on ``threads`` threads: the floor (the update's
    products alone, as it calls them; the baseline), with fastsac::mm's tiles also the same
    products all in MKL's, FastSAC compiled, with ``eager`` FastSAC's engine run eagerly and the
    reference, and SB3's train() (v2 shapes: the same algorithm). v1 alternates critic-only and
    policy steps, as in training; its floor holds one of each, halved."""
    group = f"one update {shape.label}, {threads} thread{'s' if threads > 1 else ''}"
    params = {"shape": shape.name, "threads": threads}
    floor_params = dict(params)  # the products' count is filled in when recorded

    def on_threads(setup):
        def wrapped():
            torch.set_num_threads(threads)
            ops.set_product_threads(threads)
            call = setup()

            def run():
                torch.set_num_threads(threads)
                ops.set_product_threads(threads)
                return call()
            run.updates = getattr(call, "updates", 1)
            return run
        return wrapped

    products: list = []

    def floor(all_torch=False):
        def setup():
            if not products:
                products.extend(recorded_products(shape, policy_step=True))
                if shape.variant == "v1":
                    products.extend(recorded_products(shape, policy_step=False))
                floor_params["products"] = len(products)
                floor_params["tiled_products"] = sum(f is torch.ops.fastsac.mm.default
                                                     for f, _ in products)
            call = floor_call(products, all_torch)
            return _halved(call) if shape.variant == "v1" else call
        return setup

    def fast(**kwargs):
        return _updating(lambda: agent_at(FastSAC, shape, update_threads=threads, **kwargs))

    cases = [Case(group, "products alone (floor)", on_threads(floor()), baseline=True,
                  params=floor_params)]
    if any(tiled_layers(shape)):
        cases.append(Case(group, "products alone, all in torch.mm/addmm (MKL floor)",
                          on_threads(floor(all_torch=True)), params=params))
    cases.append(Case(group, "FastSAC compiled", on_threads(fast()), params=params))
    if eager:
        cases += [Case(group, "FastSAC eager engine", on_threads(fast(compile=False)),
                       params=params),
                  Case(group, "reference (eager)",
                       on_threads(_updating(lambda: agent_at(SACAgent, shape))), params=params)]
    if with_sb3 and shape.variant == "v2" and sb3_available():
        cases.append(Case(group, "Stable-Baselines3 SAC train()",
                          on_threads(lambda: sb3_update(shape)), params=params))
    return cases


def _halved(call):
    """Two updates in a call: the timer reports the time of one."""
    def run():
        return call()
    run.updates = 2
    return run


def tiled_layers(shape: Shape) -> tuple[bool, ...]:
    """Which hidden layers FastSAC runs in fastsac::mm's tiles at ``shape`` (float32, CPU), as
    its engine decides."""
    from fastsac.engine import UpdateSpec

    return UpdateSpec(shape.variant, 2, 1, 1, shape.hidden_sizes, shape.batch_size, 0.99, 0.005,
                      -1.0, tiled=ops.tiles_pay()).tiled_layers


# ---- Stable-Baselines3 -----------------------------------------------------------------------
def sb3_available() -> bool:
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        return False
    return True


def sb3_model(shape: Shape, learning_starts: int, device="cpu", seed: int = 0):
    """SB3's SAC with FastSAC's settings at ``shape``: gamma 0.99, tau 0.005, lr 3e-4, the same
    buffer, batch and networks, one gradient step per env step, auto entropy."""
    import gymnasium as gym
    from stable_baselines3 import SAC

    return SAC("MlpPolicy", gym.make(shape.env_id), learning_rate=3e-4, gamma=0.99, tau=0.005,
               buffer_size=shape.memory_size, batch_size=shape.batch_size,
               learning_starts=learning_starts, train_freq=1, gradient_steps=1,
               ent_coef="auto", policy_kwargs={"net_arch": list(shape.hidden_sizes)},
               device=device, seed=seed, verbose=0)


def sb3_update(shape: Shape) -> Callable[[], object]:
    """SB3's train() for one gradient step, its buffer full of random data."""
    from stable_baselines3.common.logger import configure

    model = sb3_model(shape, 0)
    model.set_logger(configure(None, []))
    buf = model.replay_buffer
    rng = np.random.default_rng(0)
    for name in ("observations", "next_observations", "actions", "rewards"):
        array = getattr(buf, name)
        array[:] = rng.normal(size=array.shape).astype(array.dtype)
    buf.full = True
    return lambda: model.train(gradient_steps=1, batch_size=shape.batch_size)


# ---- timing -----------------------------------------------------------------------------------
def _calls_for(call, budget_s: float) -> int:
    start = time.perf_counter()
    call()
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, min(10_000, int(budget_s / once)))


def time_group(cases: list[Case], rounds: int = 7, budget_s: float = 0.05) -> list[dict]:
    """Median seconds per call (per update, for calls that run several) of each case, the
    variants interleaved round by round (their order reversed every other round)."""
    calls = [case.setup() for case in cases]
    for call in calls:  # warm up (JIT, caches)
        for _ in range(3):
            call()
    counts = [_calls_for(call, budget_s) for call in calls]
    samples: list[list[float]] = [[] for _ in cases]
    order = list(range(len(cases)))
    for r in range(rounds):
        for i in (order if r % 2 == 0 else order[::-1]):
            start = time.perf_counter()
            for _ in range(counts[i]):
                calls[i]()
            per = getattr(calls[i], "updates", 1)
            samples[i].append((time.perf_counter() - start) / counts[i] / per)
    base = next((i for i, c in enumerate(cases) if c.baseline), 0)
    base_median = statistics.median(samples[base])
    results = []
    for case, s in zip(cases, samples, strict=True):
        median = statistics.median(s)
        results.append({"group": case.group, "name": case.name, "median_s": median,
                        "spread": (max(s) - min(s)) / median if median else 0.0,
                        "speedup_vs_baseline": base_median / median,
                        "over_baseline": median / base_median, "baseline": case.baseline,
                        "samples_s": s, **case.params})
    return results


# ---- training -------------------------------------------------------------------------------
def fastsac_runner(cls, shape: Shape, warmup_random: int, settle: int = 50, device="cpu",
                   **kwargs):
    """(start(), run(frames)) of one agent training on ``shape``: start fills the buffer with
    ``warmup_random`` random steps and runs ``settle`` updates (FastSAC: waiting for its compiled
    update, so the update phase's steady state is what run() measures; cold starts are
    benchmarks/cold_start.py's)."""
    box = {}
    if cls is FastSAC:
        kwargs.setdefault("background_compile", False)

    def start():
        agent = cls(make_env(shape.env_id), shape.memory_size, shape.batch_size,
                    initial_random_steps=warmup_random, device=device, seed=0,
                    variant=shape.variant, hidden_sizes=shape.hidden_sizes, **kwargs)
        agent.train(warmup_random + settle, plot_path=None, progress=False)
        box["agent"] = agent

    return start, lambda n: box["agent"].train(n, plot_path=None, progress=False)


def sb3_runner(shape: Shape, warmup_random: int, settle: int = 50, device="cpu"):
    box = {}

    def start():
        torch.manual_seed(0)
        model = sb3_model(shape, warmup_random, device)
        model.learn(warmup_random + settle)
        box["model"] = model

    return start, lambda n: box["model"].learn(n, reset_num_timesteps=False)


def interleave_runners(runners: dict, frames: int, rounds: int) -> dict[str, list[float]]:
    """Start every runner, then train each for ``frames`` frames in turn, ``rounds`` times (the
    order reversed every other round): frames/s per runner and round."""
    for start, _ in runners.values():
        start()
    fps: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            runners[name][1](frames)
            fps[name].append(frames / (time.perf_counter() - t0))
    return fps


E2E_SHAPE = Shape("notebook", "Pendulum-v1", (128, 128), 128, 100_000, "v1")


def time_e2e(device="cpu", frames=1000, rounds=3, warmup_random=1000,
             with_sb3=True) -> list[dict]:
    """Training frames/s in the update phase with the notebook's settings (Pendulum-v1, SAC v1,
    128-128, batch 128, 100k buffer): FastSAC, the eager reference and SB3's SAC (its own
    algorithm, v2, at the same networks, batch and buffer; benchmarks/peers.py compares FastSAC
    v2 with it on the same algorithm)."""
    shape = E2E_SHAPE
    runners = {"FastSAC": fastsac_runner(FastSAC, shape, warmup_random, device=device),
               "reference (eager)": fastsac_runner(SACAgent, shape, warmup_random,
                                                   device=device)}
    if with_sb3 and sb3_available():
        runners["Stable-Baselines3 SAC"] = sb3_runner(shape, warmup_random, device=device)
    fps = interleave_runners(runners, frames, rounds)
    ref = statistics.median(fps["reference (eager)"])
    return [{"group": f"training frames/s {shape.label} {device}", "name": name,
             "frames_per_s": statistics.median(v),
             "speedup_vs_reference": statistics.median(v) / ref, "rounds": v}
            for name, v in fps.items()]


# ---- the machine and the reports ----------------------------------------------------------------
def machine_info(device: str = "cpu") -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpu": _cpu_model(), "cpu_id": _cpu_id(), "cores": _cores(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "numpy": np.__version__,
            "extension": "fastsac._C" if ops.EXTENSION_LOADED else "FALLBACK (pure torch)",
            "simd": ops.kernel_build(), "FASTSAC_CPU_SIMD": os.environ.get("FASTSAC_CPU_SIMD"),
            "loadavg": _loadavg()}
    for mod in ("fastsac", "numba", "gymnasium", "stable_baselines3"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> str:
    return ops.cpu_fields().get("model name") or platform.processor() or "unknown"


def _cpu_id() -> str:
    """Vendor, family and model: what tells two CPUs of one model name apart (an AMD EPYC VM is a
    Zen 3 or a Zen 4), and whether it has AVX-512."""
    f = ops.cpu_fields()
    if not f:
        return ""
    avx512 = "avx512f" in f.get("flags", "").split()
    return (f"{f.get('vendor_id', '?')} family {f.get('cpu family', '?')} model "
            f"{f.get('model', '?')}, {'AVX-512' if avx512 else 'no AVX-512'}")


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine_slug(info: dict) -> str:
    name = info.get("gpu") or info["cpu"]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]
    family = re.search(r"family (\w+) model (\w+)", info.get("cpu_id") or "")
    if family and not info.get("gpu"):
        slug += f"-f{family[1]}m{family[2]}"
    return f"{slug}-{info['cores']}c"


def today() -> str:
    return datetime.date.today().isoformat()


def machine_lines(m: dict) -> list[str]:
    """The Markdown lines naming the machine."""
    cpu_id = f", {m['cpu_id']}" if m.get("cpu_id") else ""
    return [f"- CPU: {m['cpu']} ({m['cores']} cores{cpu_id}, torch threads {m['torch_threads']}); "
            f"fastsac CPU kernels: {m['simd']} build"
            + (f" (FASTSAC_CPU_SIMD={m['FASTSAC_CPU_SIMD']})" if m.get("FASTSAC_CPU_SIMD")
               else ""),
            f"- GPU: {m.get('gpu', 'none')}",
            f"- torch {m['torch']}, numpy {m['numpy']}, numba {m['numba']}, gymnasium "
            f"{m['gymnasium']}, stable-baselines3 {m['stable_baselines3']}, fastsac "
            f"{m['fastsac']}",
            f"- load average at the start: {m.get('loadavg')}"]


def write_report(stem: str, report: dict, markdown: str) -> None:
    """``stem.json`` (the raw report) and ``stem.md`` (its tables), folders made as needed."""
    os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=2)
    with open(stem + ".md", "w") as f:
        f.write(markdown)


def publish(out: str, kind: str, report: dict, markdown: str, quick: bool = False) -> None:
    """Writes ``<machine>-<date>-<kind>[-quick].json/.md`` under ``out`` and prints the tables."""
    stem = os.path.join(out, f"{machine_slug(report['machine'])}-{report['date']}-{kind}"
                        f"{'-quick' if quick else ''}")
    write_report(stem, report, markdown)
    print(markdown)
    print(f"wrote {stem}.json, .md ({report['seconds']:.0f} s)")


def fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"
