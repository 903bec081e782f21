"""FastSAC: the agent with the fast paths. What differs from the reference is how each step runs:

- the replay buffer is the Numba one, sampling straight into reusable (on CUDA pinned) host
  tensors that torch reads without a copy;
- the update is ``fastsac.engine``'s, compiled as one graph over flat parameter and Adam buffers
  (``fastsac.flat``); while a background process compiles it (``fastsac.background_compile``),
  ``train`` runs the same function eagerly;
- on CUDA the compiled update is captured once as a CUDA graph and replayed; on the AVX-512 CPUs
  where they pay (``ops.tiles_pay``) its 128-wide products run in ``fastsac::mm``'s tiles, on a
  thread count tuned while training;
- acting on CPU is one call of ``fastsac::policy_action``; on CUDA one copy in and one out.
"""

from __future__ import annotations

import copy
import time
import weakref
from typing import Any

import numpy as np
import torch

from fastsac import background_compile, engine, ops
from fastsac.agent import _D, Agent
from fastsac.buffer import ReplayBuffer
from fastsac.engine import UpdateSpec, UpdateState
from fastsac.errors import ConfigError
from fastsac.flat import FlatGroup, adopt_state, flatten, holds_views
from fastsac.state import parameters
from fastsac.threads import ThreadTuner, thread_candidates

BATCH_KEYS = ("obs", "next_obs", "acts", "rews", "done")


class FastEngine:
    """FastSAC's update and acting over flat buffers (the engine interface of ``Agent``)."""

    def __init__(self, agent: Agent, compile: bool, cuda_graph: bool, background: bool,
                 update_threads: int | str | None):
        self.agent = agent
        self.compile, self.background = compile, background
        self.update_threads = update_threads
        cpu = agent.device.type == "cpu"
        c = agent.config
        self.spec = UpdateSpec(
            variant=c.variant, n_critics=c.n_critics, obs_dim=agent.obs_dim,
            action_dim=agent.action_dim, hidden_sizes=c.hidden_sizes, batch_size=c.batch_size,
            gamma=c.gamma, tau=c.tau, target_entropy=agent.target_entropy,
            dtype=str(agent.dtype).removeprefix("torch."), device=agent.device.type,
            tiled=cpu and agent.dtype == torch.float32 and ops.tiles_pay(),
            world_size=agent.world_size)
        self.use_cuda_graph = cuda_graph and compile and agent.device.type == "cuda"
        self._fn = engine.make_update(self.spec, compile)
        self._eager = engine.make_update(self.spec, False)
        self._ran: set[bool] = set()  # the policy_step graphs the compiled update ran here
        self._training = False
        self._threads_before_bridge: int | None = None
        # the tuner sets fastsac::mm's own thread count; where the update has no tiles it runs
        # on torch's count, which torch.compile guards on (another count: another compile)
        self._tuner = (ThreadTuner(thread_candidates(torch.get_num_threads()),
                                   c.policy_update_freq)
                       if update_threads == "auto" and any(self.spec.tiled_layers) else None)
        # seconds into the process (time.time()) of the first compiled and first eager update
        # while the graph compiled in the background: cold-start benchmarks read them
        self.first_compiled_update_time: float | None = None
        self.first_bridge_update_time: float | None = None
        self._graphs: dict[bool, Any] = {}
        self._static: tuple | None = None
        self._copy_done: torch.cuda.Event | None = None  # the host batch's copies are done
        self._act_staging: tuple | None = None  # CUDA acting: rows, pinned in/out, event
        self.bind()

    # ---- the flat buffers and the optimizers they hold the state of --------------------------
    def bind(self) -> None:
        """Lay every slot's parameters and Adam state out in flat buffers (their current values
        and state), and keep the optimizers' loads in them."""
        a = self.agent
        step_device = a.device if a.device.type == "cuda" else torch.device("cpu")
        self.groups: dict[str, FlatGroup] = {}
        for slot in a.slots:
            optimizer = getattr(a, slot.optimizer) if slot.optimizer else None
            self.groups[slot.name] = flatten(parameters(a, slot), optimizer, step_device)
            if optimizer is not None:
                if not hasattr(optimizer, "_fastsac_engine"):
                    optimizer.register_load_state_dict_post_hook(_adopt_loaded)
                optimizer._fastsac_engine = weakref.ref(self)
        self._bound = {s.name: getattr(a, s.name) for s in a.slots}
        self._bound.update({s.optimizer: getattr(a, s.optimizer) for s in a.slots
                            if s.optimizer})
        spec = self.spec
        settings = torch.zeros((len(spec.trained) + 1, len(engine.SETTINGS)), dtype=torch.float64)
        self._settings_host = settings.pin_memory() if a.device.type == "cuda" else settings
        self._settings = self._settings_host.to(a.device)
        self._state = UpdateState(
            tuple(self.groups[n].adam() for n in spec.trained),
            tuple(self.groups[t].params for t, _ in spec.targets),
            self.groups["log_alpha"].adam(), self._settings)
        self._optimizers = [getattr(a, f"{n}_optimizer") for n in spec.trained]
        self._optimizers.append(a.alpha_optimizer)
        self._actor_params = list(a.actor.parameters())
        self._graphs.clear()

    def _adopt(self, optimizer) -> None:
        """An optimizer's ``load_state_dict`` replaced its state: copy it into the buffers."""
        for slot in self.agent.slots:
            if slot.optimizer and getattr(self.agent, slot.optimizer) is optimizer:
                adopt_state(self.groups[slot.name], parameters(self.agent, slot), optimizer)

    def check(self) -> None:
        """Before ``train`` and after a load: the agent still shows what the update works on.
        A network or optimizer replaced by hand is an error; parameters moved or an Adam state
        reset by hand are taken on (laid out in the buffers again, as torch's Adam would run
        them)."""
        a = self.agent
        for name, obj in self._bound.items():
            if getattr(a, name) is not obj:
                raise ConfigError(
                    f"FastSAC.{name} was replaced; its update works on the {name} it was built "
                    "with: load weights in place (load_state_dict, agent.load) instead")
        rebind = False
        for slot in a.slots:
            params, group = parameters(a, slot), self.groups[slot.name]
            optimizer = getattr(a, slot.optimizer) if slot.optimizer else None
            if optimizer is not None:
                held = [p for g in optimizer.param_groups for p in g["params"]]
                if len(held) != len(params) or any(
                        p is not q for p, q in zip(held, params, strict=True)):
                    raise ConfigError(f"{slot.optimizer} no longer holds {slot.name}'s "
                                      "parameters (replaced by hand?)")
                if len(optimizer.param_groups) != 1 or any(
                        optimizer.param_groups[0].get(k) for k in ("amsgrad", "maximize")):
                    raise ConfigError(f"{slot.optimizer}: FastSAC's Adam runs one parameter "
                                      "group, without amsgrad or maximize")
                rebind |= not holds_views(group, params, optimizer)
            rebind |= not group.owns(params)
        if rebind:
            self.bind()

    def _read_settings(self) -> torch.Tensor:
        """Each optimizer's lr, betas, eps and weight decay as they are now (a scheduler's too)."""
        rows = self._settings_host.numpy()
        for i, optimizer in enumerate(self._optimizers):
            g = optimizer.param_groups[0]
            beta1, beta2 = g["betas"]
            rows[i] = (float(g["lr"]), float(beta1), float(beta2), float(g["eps"]),
                       float(g["weight_decay"]))
            optimizer._opt_called = True  # it steps: torch's lr schedulers check for this
        if self._settings is not self._settings_host:
            self._settings.copy_(self._settings_host, non_blocking=True)
        return self._settings

    def finite_check_tensors(self) -> dict[str, list[torch.Tensor]]:
        return {name: [group.params] for name, group in self.groups.items()}

    def after_load(self) -> None:
        self.check()
        self._graphs.clear()

    def copied_for(self, agent: Agent) -> FastEngine:
        """This engine for a copy of its agent (``copy.deepcopy(agent)``, to keep the best one):
        buffers of its own, laid out from the copied parameters and Adam state; per-device
        objects (CUDA graphs, events, pinned staging) made anew on first use."""
        new = copy.copy(self)
        new.agent, new._tuner = agent, copy.deepcopy(self._tuner)
        new._graphs, new._static, new._copy_done, new._act_staging = {}, None, None, None
        new._ran = set(self._ran)
        new.bind()
        return new

    # ---- updating ---------------------------------------------------------------------------
    def before_train(self) -> None:
        self.check()
        self._training = True

    def after_train(self) -> None:
        self._training = False
        self._bridge_phase(False)

    def _batch(self, batch: dict | None) -> tuple[torch.Tensor, ...]:
        a = self.agent
        cast = a.device.type != "cpu" or a.dtype != torch.float32
        if batch is None:
            if self._copy_done is not None:  # the copies out of the last batch are done
                self._copy_done.synchronize()
            a.memory.sample_batch()
            host = a._host_batch
            if not cast:  # the host tensors are the batch
                return tuple(host[k] for k in BATCH_KEYS)
            out = tuple(host[k].to(a.device, a.dtype, non_blocking=True) for k in BATCH_KEYS)
            self._mark_copies()
            return out
        widths = (a.obs_dim, a.obs_dim, a.action_dim, 1, 1)
        return tuple(torch.as_tensor(np.asarray(batch[k]), dtype=a.dtype,
                                     device=a.device).reshape(-1, w)
                     for k, w in zip(BATCH_KEYS, widths, strict=True))

    def _mark_copies(self) -> None:
        if self.agent.device.type == "cuda":
            if self._copy_done is None:
                self._copy_done = torch.cuda.Event()
            self._copy_done.record()

    def update(self, policy_step: bool, batch: dict | None,
               noise: torch.Tensor | None) -> torch.Tensor:
        a = self.agent
        for name, obj in self._bound.items():  # a network replaced by hand: a clear error
            if getattr(a, name) is not obj:
                self.check()
        if self.use_cuda_graph and batch is None and noise is None:
            return self._replay(policy_step)
        tensors = self._batch(batch)
        if noise is None:
            noise = a._noise((self.spec.impl.noise_draws, tensors[0].shape[0], a.action_dim))
        settings = self._read_settings()
        return self._run(policy_step, tensors, noise, settings)

    def _run(self, policy_step: bool, batch, noise, settings) -> torch.Tensor:
        state = self._state._replace(settings=settings)
        if self._compiling_elsewhere(policy_step):
            with torch.no_grad():
                losses = self._eager(policy_step, state, batch, noise)
            self.first_bridge_update_time = self.first_bridge_update_time or time.time()
            return losses
        if self._tuner is not None:
            threads = self._tuner.threads()
            ops.set_product_threads(threads)
            started = time.perf_counter()
            with torch.no_grad():
                losses = self._fn(policy_step, state, batch, noise)
            self._tuner.record(threads, time.perf_counter() - started)
        else:
            ops.set_product_threads(0)
            fixed = self.update_threads if isinstance(self.update_threads, int) else None
            previous = torch.get_num_threads()
            if fixed is not None and fixed != previous:  # one fixed count: one compiled entry
                torch.set_num_threads(fixed)
            try:
                with torch.no_grad():
                    losses = self._fn(policy_step, state, batch, noise)
            finally:
                if fixed is not None and fixed != previous:
                    torch.set_num_threads(previous)
        if self.compile:
            self._ran.add(policy_step)
            self.first_compiled_update_time = self.first_compiled_update_time or time.time()
        return losses

    # ---- the cold start: learning while a background process compiles -----------------------
    def _compiling_elsewhere(self, policy_step: bool) -> bool:
        """In ``train`` on CPU, while the compiled update is not built yet: whether a background
        process still compiles it (started here at the first update); the update then runs
        eagerly (the same function). Data-parallel updates compile in the ranks (their graph
        holds collectives)."""
        if not (self.compile and self.background and self._training and policy_step not in self._ran
                and self.spec.device == "cpu" and self.spec.world_size == 1
                and background_compile.enabled()):
            return False
        job = background_compile.start(
            self.spec, "fastsac.engine:warm_compile",
            {"spec": {**self.spec.__dict__, "hidden_sizes": list(self.spec.hidden_sizes)},
             "threads": torch.get_num_threads()})
        compiling = job is not None and not job.done()
        self._bridge_phase(compiling)
        return compiling

    def _bridge_phase(self, on: bool) -> None:
        """While the background process compiles, the eager update leaves it a core."""
        if on and self._threads_before_bridge is None:
            self._threads_before_bridge = threads = torch.get_num_threads()
            if threads >= 2:
                torch.set_num_threads(threads - 1)
        elif not on and self._threads_before_bridge is not None:
            torch.set_num_threads(self._threads_before_bridge)
            self._threads_before_bridge = None

    # ---- CUDA graphs ----------------------------------------------------------------------------
    def _capture(self, policy_step: bool):
        """Compile (warm-up) and capture the update for one ``policy_step``. The warm-up runs
        really update and draw noise: the tensors and the generator are restored after, so
        capturing changes nothing and a seeded CUDA-graph run draws the eager run's noise."""
        a, spec = self.agent, self.spec
        if self._static is None:
            like = {"device": a.device, "dtype": a.dtype}
            b = spec.batch_size
            self._static = (tuple(torch.zeros((b, w), **like) for w in
                                  (a.obs_dim, a.obs_dim, a.action_dim, 1, 1)),
                            torch.zeros((spec.impl.noise_draws, b, a.action_dim), **like),
                            torch.zeros_like(self._settings))
        batch, noise, settings = self._static
        state = self._state._replace(settings=settings)
        saved = [t.detach().clone() for t in state.tensors()]
        generator_state = a.generator.get_state()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(3):
                noise.normal_(generator=a.generator)
                self._fn(policy_step, state, batch, noise)
        torch.cuda.current_stream().wait_stream(side)
        a.generator.set_state(generator_state)
        graph = torch.cuda.CUDAGraph()
        # the agent's generator is registered to advance at each replay (torch >= 2.5)
        generator = a.generator if hasattr(graph, "register_generator_state") else None
        if generator is not None:
            graph.register_generator_state(generator)
        with torch.cuda.graph(graph), torch.no_grad():
            noise.normal_(generator=generator)  # fresh noise at every replay
            out = self._fn(policy_step, state, batch, noise)
        with torch.no_grad():
            for t, v in zip(state.tensors(), saved, strict=True):
                t.copy_(v)
        a.generator.set_state(generator_state)
        torch.cuda.synchronize()
        return graph, out

    def _replay(self, policy_step: bool) -> torch.Tensor:
        if policy_step not in self._graphs:
            self._graphs[policy_step] = self._capture(policy_step)
        graph, out = self._graphs[policy_step]
        batch, _, settings = self._static
        if self._copy_done is not None:
            self._copy_done.synchronize()
        self.agent.memory.sample_batch()
        for key, static in zip(BATCH_KEYS, batch, strict=True):
            static.copy_(self.agent._host_batch[key], non_blocking=True)
        settings.copy_(self._read_settings(), non_blocking=True)
        self._mark_copies()
        graph.replay()
        return out.clone()  # the graph overwrites `out` at the next replay

    # ---- acting ---------------------------------------------------------------------------------
    def act(self, states: np.ndarray, deterministic: bool) -> np.ndarray:
        """The policy's action for ``[obs_dim]`` or ``[n, obs_dim]`` states: a sample, or the
        squashed mean. On CPU one ``fastsac::policy_action`` call, no autograd records."""
        a, head = self.agent, self.agent._variant.head
        if a.device.type != "cpu":
            return self._act_cuda(states, deterministic)
        x = np.asarray(states, dtype=np.float64 if a.dtype == torch.float64 else np.float32)
        with torch.inference_mode():
            x = torch.from_numpy(x.reshape((a.obs_dim,) if x.ndim <= 1 else (-1, a.obs_dim)))
            eps = None if deterministic else a._noise((*x.shape[:-1], a.action_dim))
            return torch.ops.fastsac.policy_action(
                x, self._actor_params, eps, head.log_std_min, head.log_std_max,
                head.tanh_mean).numpy().astype(np.float32, copy=False)

    def _act_cuda(self, states: np.ndarray, deterministic: bool) -> np.ndarray:
        """One pinned host-to-device copy, the forward, one device-to-host copy into pinned
        memory and one synchronisation, for one state or a vector env's rows."""
        from fastsac.networks import actor_heads

        a, head = self.agent, self.agent._variant.head
        states = np.asarray(states)
        rows = states.shape[0] if states.ndim == 2 else None
        capacity = max(rows or 1, self._act_staging[0] if self._act_staging else 1)
        if self._act_staging is None or self._act_staging[0] < capacity:
            self._act_staging = (
                capacity, torch.zeros((capacity, a.obs_dim), pin_memory=True),
                torch.zeros((capacity, a.action_dim), pin_memory=True), torch.cuda.Event())
        _, pinned_in, pinned_out, done = self._act_staging
        host_in = pinned_in[0] if rows is None else pinned_in[:rows]
        host_out = pinned_out[0] if rows is None else pinned_out[:rows]
        with torch.inference_mode():
            host_in.numpy()[:] = np.asarray(states, dtype=np.float32).reshape(host_in.shape)
            x = host_in.to(a.device, non_blocking=True).to(a.dtype)
            mean_raw, log_std_raw = actor_heads(x, self._actor_params, len(a.hidden_sizes))
            eps = (torch.zeros_like(mean_raw) if deterministic else a._noise(mean_raw.shape))
            action, _ = torch.ops.fastsac.tanh_normal(mean_raw, log_std_raw, eps,
                                                      head.log_std_min, head.log_std_max,
                                                      head.tanh_mean)
            host_out.copy_(action, non_blocking=True)
            done.record()
            done.synchronize()
            return host_out.numpy().copy()


class FastSAC(Agent):
    """Soft Actor-Critic with fused ops, a Numba buffer and a compiled update: the notebook's
    ``SACAgent`` API, SB3's habits (``predict``, deterministic evaluation, settings that travel
    with checkpoints), several times faster. Arguments below (``help(fastsac.SACConfig)`` has
    the settings' own); ``FastSAC(env)`` alone takes SB3-like defaults."""

    def __init__(
        self,
        env,
        memory_size: int = _D["memory_size"],
        batch_size: int = _D["batch_size"],
        gamma: float = _D["gamma"],
        tau: float = _D["tau"],
        initial_random_steps: int = _D["initial_random_steps"],
        policy_update_freq: int | None = _D["policy_update_freq"],
        *,
        variant: str = _D["variant"],
        n_critics: int = _D["n_critics"],
        hidden_sizes: tuple[int, ...] | None = _D["hidden_sizes"],
        lr: float = _D["lr"],
        updates_per_step: float = _D["updates_per_step"],
        target_entropy: float | None = _D["target_entropy"],
        seed: int | None = _D["seed"],
        device: str | torch.device = "auto",
        dtype: torch.dtype = torch.float32,
        data_parallel: bool = False,
        compile: bool = True,
        cuda_graph: bool = True,
        background_compile: bool = True,
        update_threads: int | str | None = "auto",
    ):
        if update_threads not in (None, "auto") and (isinstance(update_threads, bool)
                                                     or not isinstance(update_threads, int)
                                                     or update_threads < 1):
            raise ConfigError("update_threads must be 'auto', None or an int >= 1, got "
                              f"{update_threads!r}")
        self._fast_options = (bool(compile), bool(cuda_graph), bool(background_compile),
                              update_threads)
        super().__init__(env, memory_size, batch_size, gamma, tau, initial_random_steps,
                         policy_update_freq, variant=variant, n_critics=n_critics,
                         hidden_sizes=hidden_sizes, lr=lr, updates_per_step=updates_per_step,
                         target_entropy=target_entropy, seed=seed, device=device, dtype=dtype,
                         data_parallel=data_parallel)

    def _make_memory(self, seed: int | None) -> ReplayBuffer:
        # sampled batches land in these tensors (pinned on CUDA, for asynchronous copies): the
        # buffer writes into their numpy views, so torch reads each batch without a copy
        c, pin = self.config, self.device.type == "cuda"
        b = c.batch_size
        shapes = {"obs": (b, self.obs_dim), "next_obs": (b, self.obs_dim),
                  "acts": (b, self.action_dim), "rews": (b, 1), "done": (b, 1)}
        self._host_batch = {k: torch.zeros(s, dtype=torch.float32, pin_memory=pin)
                            for k, s in shapes.items()}
        return ReplayBuffer(self.obs_dim, c.memory_size, b, self.action_dim, seed=seed,
                            out={k: t.numpy() for k, t in self._host_batch.items()})

    def _make_optimizer(self, params) -> torch.optim.Optimizer:
        # capturable on CUDA: step counts on the device, as a CUDA graph needs
        return Adam(params, lr=self.config.lr, capturable=self.device.type == "cuda")

    def _make_engine(self) -> FastEngine:
        return FastEngine(self, *self._fast_options)

    def __deepcopy__(self, memo):
        """A copy that learns as its original: its buffer writes batches where its own update
        reads them, its engine works on its own parameters (``FastEngine.copied_for``)."""
        new = object.__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            if key != "engine":
                new.__dict__[key] = copy.deepcopy(value, memo)
        new.memory._out = new.memory._make_out({k: t.numpy() for k, t in new._host_batch.items()})
        new.engine = self.engine.copied_for(new)
        return new


# The code object every method wrapped by torch's ``_disable_dynamo`` runs (its ``inner``; making
# one imports nothing, only calling it does).
_DISABLE_DYNAMO_CODE = torch._compile._disable_dynamo(lambda: None).__code__


def _plain(method):
    """``method`` without torch's ``_disable_dynamo`` wrapper; any other wrapper is kept."""
    if getattr(method, "__code__", None) is _DISABLE_DYNAMO_CODE:
        return method.__wrapped__
    return method


class Adam(torch.optim.Adam):
    """``torch.optim.Adam`` whose bookkeeping methods run without torch's ``_disable_dynamo``
    wrapper. Why: that wrapper imports ``torch._dynamo`` at its first call, the largest import of
    a cold run (BENCHMARKS.md, "Cold start"), and a run on the eager update (a short one, while
    the background process compiles) needs no compiler otherwise. FastSAC's optimizers only hold
    state and settings (its update steps them), and none of these methods runs inside a
    compiled function."""

    add_param_group = _plain(torch.optim.Optimizer.add_param_group)
    state_dict = _plain(torch.optim.Optimizer.state_dict)
    load_state_dict = _plain(torch.optim.Optimizer.load_state_dict)
    zero_grad = _plain(torch.optim.Optimizer.zero_grad)


def _adopt_loaded(optimizer) -> None:
    """Load post-hook of FastSAC's optimizers (a function, so copies of them carry it)."""
    engine = optimizer._fastsac_engine()
    if engine is not None:
        engine._adopt(optimizer)
