"""FastSAC: the drop-in agent. Same API, arguments and semantics as the notebook's ``SACAgent``
(and ``fastsac.reference.SACAgent``); what differs is how fast each step runs:

- the replay buffer is the Numba one (O(batch) sampling straight into reusable, on CUDA pinned,
  arrays that torch reads without a copy);
- ``update_model`` is ``fastsac.update.sac_update``: one ``torch.compile``d graph (or, with
  ``compile=False``, the same function run eagerly), using the fused ``fastsac::tanh_normal`` and
  ``fastsac::polyak_`` ops; while a background process compiles it
  (``fastsac.background_compile``), ``train`` learns with the same update built ahead of time
  as one C++ op (``fastsac.native_update``);
- on CUDA the compiled update is captured once in a CUDA graph and replayed (one launch per
  update instead of ~100); on AVX-512 CPUs its hidden-layer products run in ``fastsac::mm``,
  on a thread count tuned while training (``fastsac.threads``);
- ``select_action`` for one state runs the actor directly, under inference mode, no
  ``Distribution`` objects (on CPU: one call of ``fastsac::policy_action``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import optim

from fastsac import background_compile as background
from fastsac import native_update, ops
from fastsac.base import AgentBase
from fastsac.binding import (
    Bindings,
    adam_settings_problem,
    check_bound,
    normalise_settings,
    refuse_unfit_state,
    step_count_problem,
)
from fastsac.buffer import ReplayBuffer
from fastsac.flat import adopt_optimizer_state, flatten_params, unflatten
from fastsac.state import (
    BATCH_KEYS,
    OPTIMIZER_OF,
    SLOT_NAMES,
    Batch,
    UpdateState,
    optimizer_of,
    slot_parameters,
    state_tensors,
)
from fastsac.threads import ThreadTuner, thread_candidates
from fastsac.update import UpdateConfig, is_built, make_update, mark_built, update_key


class FastSAC(AgentBase):
    """Soft Actor-Critic with fused ops, a Numba buffer and a compiled update.

    Takes the arguments of :class:`fastsac.base.AgentBase` (the notebook's ``SACAgent``
    arguments plus ``hidden_sizes``, ``lr``, ``target_entropy``, ``device``, ``dtype``,
    ``seed``), and:

    Args:
        compile: ``True`` (default) compiles the update as one graph with ``torch.compile``;
            ``False`` runs the same update function eagerly (no compile time).
        cuda_graph: on CUDA, replay the compiled update as a CUDA graph (default ``True``).
        background_compile: on CPU, while the compiled update is not built yet, ``train``
            builds it in a background process at idle priority and learns meanwhile with the
            same update built ahead of time in the extension (``fastsac.native_update``; they
            agree to rounding; ``fastsac.background_compile``).
            ``False``: wait for the compiler, for runs that must repeat bitwise. Direct
            ``update_model`` calls always use the compiled update.
        update_threads: CPU threads of the update: ``"auto"`` (default) times updates with
            the tiled products (AVX-512, float32, 128 wide) on 1, 2, 4 and torch's thread count
            and keeps the fastest, re-checked as training goes on (:mod:`fastsac.threads`),
            through fastsac's own product thread count, so one compiled graph serves every
            count; where the update has no tiled products it runs on torch's count. An int
            fixes the count for the whole update (torch's count is set around it); ``None``
            uses torch's count.

    Example:
        >>> env = fastsac.make_env("Pendulum-v1")
        >>> agent = FastSAC(env, memory_size=100_000, batch_size=128)
        >>> big = FastSAC(fastsac.make_env("HalfCheetah-v5"), 1_000_000, 256,
        ...               hidden_sizes=(256, 256))
        >>> agent.train(50_000)
    """

    def __init__(self, *args, compile: bool = True, cuda_graph: bool = True,
                 background_compile: bool = True,
                 update_threads: int | str | None = "auto", **kwargs):
        self.compile = bool(compile)
        self.background_compile = bool(background_compile)
        if update_threads not in (None, "auto") and (isinstance(update_threads, bool)
                                                     or not isinstance(update_threads, int)
                                                     or update_threads < 1):
            raise ValueError("update_threads must be 'auto', None or an int >= 1, got "
                             f"{update_threads!r}")
        self.update_threads = update_threads
        super().__init__(*args, **kwargs)
        self._flatten()
        self.use_cuda_graph = bool(cuda_graph) and self.compile and self.device.type == "cuda"
        # host arrays (batches, actions) are CPU float32: other devices and dtypes need a cast
        self._needs_cast = self.device.type != "cpu" or self.dtype != torch.float32
        self._np_dtype = np.float64 if self.dtype == torch.float64 else np.float32
        cpu = self.device.type == "cpu"
        self._cfg = UpdateConfig(
            obs_dim=self.obs_dim, action_dim=self.action_dim, hidden_sizes=self.hidden_sizes,
            gamma=self.gamma, tau=self.tau, target_entropy=self.target_entropy,
            log_std_min=self.actor.log_std_min, log_std_max=self.actor.log_std_max, lr=self.lr,
            tiled_mm=(cpu and self.dtype == torch.float32 and ops.EXTENSION_LOADED
                      and ops.cpu_simd() == "avx512"),
            world_size=self.world_size,
            shapes={"actor": self._flat["actor"].shapes, "critic_q": self._flat["qf_1"].shapes,
                    "critic_v": self._flat["vf"].shapes})
        self._hook_optimizers()
        self._update_fn = make_update(self._cfg, self.compile, self.device, self.dtype,
                                      self.batch_size)
        self._eager_fn = make_update(self._cfg, False, self.device, self.dtype, self.batch_size)
        # what train() runs while a background process compiles: the ahead-of-time C++ update
        # where the extension has it (fastsac.native_update), else the eager Python one
        native = native_update.available(self.device, self.world_size)
        self._bridge_fn = native_update.make_native_update(self._cfg) if native else self._eager_fn
        self._update_key = update_key(self._cfg, self.device, self.dtype, self.batch_size)
        self._training = False  # inside train(): updates may run on the bridge while compiling
        self._threads_before_bridge: int | None = None  # torch's count, during the bridge phase
        # The tuner sets the thread count of the tiled products (fastsac::mm); where the update
        # has none, its products are torch's and run on torch's thread count, which it cannot
        # change between updates without compiling the update again (torch.compile guards it).
        self._thread_tuner = (
            ThreadTuner(thread_candidates(torch.get_num_threads()), self.policy_update_freq)
            if update_threads == "auto" and any(self._cfg.tiled_layers) else None)
        self._state: UpdateState | None = None
        self._built_graphs: set[bool] = set()  # policy_step values the compiled update ran
        # wall-clock times (time.time()) at which the first compiled update, and the first
        # update by the ahead-of-time C++ op while it compiles, returned: cold-start benchmarks
        self.first_compiled_update_time: float | None = None
        self.first_native_update_time: float | None = None
        self._graphs: dict[bool, Any] = {}
        self._static: Batch | None = None
        self._static_noise: torch.Tensor | None = None
        # CUDA: recorded after the copies out of the pinned host batch; sample_batch() waits
        # for it before overwriting that memory (the copies are asynchronous)
        self._copy_done: torch.cuda.Event | None = None
        # CUDA select_action: (rows, pinned input, pinned output, event), for the most rows
        self._act_staging: tuple[Any, torch.Tensor, torch.Tensor, torch.cuda.Event] | None = None

    # ---- buffer and optimizers ----------------------------------------------------------------
    def _make_memory(self, obs_dim, size, batch_size, act_dim, seed):
        # Sampled batches land in these tensors (pinned on CUDA, for async copies); the buffer
        # writes into their numpy views, so torch reads each batch without a copy.
        pin = self.device.type == "cuda"
        shapes = {"obs": (batch_size, obs_dim), "next_obs": (batch_size, obs_dim),
                  "acts": (batch_size, act_dim), "rews": (batch_size, 1),
                  "done": (batch_size, 1)}
        self._host_batch = {k: torch.zeros(s, dtype=torch.float32, pin_memory=pin)
                            for k, s in shapes.items()}
        out = {k: t.numpy() for k, t in self._host_batch.items()}
        return ReplayBuffer(obs_dim, size, batch_size, act_dim, seed=seed, out=out)

    def _make_optimizer(self, params) -> optim.Optimizer:
        # capturable on CUDA: step counts live on the device, as a CUDA graph needs. The state
        # itself is created by _flatten (torch would create it at the first step).
        return optim.Adam(params, lr=self.lr, capturable=self.device.type == "cuda")

    def _flatten(self) -> None:
        """Lay every slot's parameters and Adam state out in flat buffers (fastsac.flat)."""
        step_device = self.device if self.device.type == "cuda" else torch.device("cpu")
        self._flat = {name: flatten_params(slot_parameters(self, name), optimizer_of(self, name),
                                           step_device)
                      for name in SLOT_NAMES}
        self._optimizers = {name: optimizer_of(self, name) for name in SLOT_NAMES
                            if optimizer_of(self, name) is not None}

    def _hook_optimizers(self) -> None:
        """Keep the optimizers' state in the flat buffers through ``load_state_dict``: a state
        the update cannot run (malformed, other Adam settings, unequal step counts) is refused
        before anything changes; an accepted one is copied into the buffers (fastsac.binding).
        Registered again on a deep copy (torch's optimizers do not copy their hooks)."""
        for name, optimizer in self._optimizers.items():
            if getattr(optimizer, "_fastsac_hooked", False):  # a shallow copy shares them
                continue
            optimizer.register_load_state_dict_pre_hook(self._refuse_unfit_state(name))
            optimizer.register_load_state_dict_post_hook(self._adopt_loaded_state(name))
            optimizer._fastsac_hooked = True
        self._bindings = Bindings(self, self._cfg.adam_settings)

    # per-process or per-device objects a copy does not take: rebuilt on first use
    _NOT_COPIED = {"_state": None, "_bindings": None, "_graphs": {}, "_static": None,
                   "_static_noise": None, "_copy_done": None, "_act_staging": None}

    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in self._NOT_COPIED}
        # which slots' parameters are still the buffers' views: a copy re-points only those
        # (one the original would refuse stays refused in the copy)
        state["_bound_slots"] = [name for name in SLOT_NAMES
                                 if self._flat[name].owns(slot_parameters(self, name))]
        return state

    def __setstate__(self, state: dict) -> None:
        """A copy: ``copy.deepcopy`` clones each parameter's data (``nn.Parameter``'s own
        deep copy) and the buffer's batch arrays apart from the host tensors the update reads;
        point both back at the copied flat buffers and tensors, then bind afresh."""
        bound = state.pop("_bound_slots")
        self.__dict__.update(self._NOT_COPIED, **state)
        self._graphs = {}
        for name in bound:
            group = self._flat[name]
            for p, view in zip(slot_parameters(self, name), unflatten(group.params, group.shapes),
                               strict=True):
                if p.data_ptr() != view.data_ptr():
                    p.data = view
        self.memory._out = self.memory._make_out(
            {k: t.numpy() for k, t in self._host_batch.items()})
        self._hook_optimizers()

    def _refuse_unfit_state(self, name: str):
        def pre_hook(optimizer, saved):
            refuse_unfit_state(OPTIMIZER_OF[name], optimizer, saved, self._cfg.adam_settings)
        return pre_hook

    def _adopt_loaded_state(self, name: str):
        def post_hook(optimizer):
            held = [p for g in optimizer.param_groups for p in g["params"]]
            adopt_optimizer_state(self._flat[name], held, optimizer)
            normalise_settings(optimizer, self._cfg.adam_settings)
        return post_hook

    def _optimizer_state_problem(self, saved: dict) -> str | None:
        """Why an optimizer ``state_dict`` (checked to fit the parameters) cannot be FastSAC's,
        or None: its Adam settings are compiled into the update, and each network keeps one
        step count."""
        return (adam_settings_problem(saved["param_groups"], self._cfg.adam_settings)
                or step_count_problem(saved))

    def _check_bound(self, full: bool = False) -> None:
        """Raise unless the update still works on what the agent shows (fastsac.binding): in
        full at each ``train`` (nothing can change it inside), before each ``update_model``
        called on its own by an identity comparison first."""
        if not full and self._bindings.unchanged(self):
            return
        check_bound(self, self._flat, self._optimizers, self._cfg.adam_settings)
        for optimizer in self._optimizers.values():  # equal settings, the update's own values
            normalise_settings(optimizer, self._cfg.adam_settings)
        self._bindings = Bindings(self, self._cfg.adam_settings)

    def _bound_state(self) -> UpdateState:
        """The flat buffers the update works on (checked in full when first bound)."""
        if self._state is None:
            check_bound(self, self._flat, self._optimizers, self._cfg.adam_settings)
            self._state = UpdateState(**{
                name: self._flat[name].params if optimizer_of(self, name) is None
                else self._flat[name].tensors() for name in SLOT_NAMES})
            self._actor_params = list(self.actor.parameters())  # for policy_action
        return self._state

    def _after_load(self) -> None:
        self._state = None
        self._graphs.clear()

    def _finite_check_tensors(self) -> dict[str, list[torch.Tensor]]:
        # one flat buffer per slot: a handful of reductions instead of one per parameter
        return {name: [self._flat[name].params] for name in SLOT_NAMES}

    # ---- acting ---------------------------------------------------------------------------------
    def _policy_action(self, state: np.ndarray) -> np.ndarray:
        # One state ([obs_dim]) or a vector env's ([n, obs_dim]); no autograd records, no
        # Distribution objects. On CPU the whole actor runs in one call of
        # fastsac::policy_action; elsewhere matrix products and the fused head (BENCHMARKS.md,
        # select_action).
        state = np.asarray(state)
        if self.device.type == "cpu":
            self._bound_state()  # binds _actor_params
            actor = self.actor
            shape = (self.obs_dim,) if state.ndim <= 1 else (-1, self.obs_dim)
            with torch.inference_mode():
                x = torch.from_numpy(np.asarray(state, dtype=self._np_dtype).reshape(shape))
                eps = self._noise((*x.shape[:-1], self.action_dim))
                return torch.ops.fastsac.policy_action(
                    x, self._actor_params, eps, actor.log_std_min,
                    actor.log_std_max).numpy().astype(np.float32, copy=False)
        return self._policy_action_cuda(state)

    def _policy_action_cuda(self, state: np.ndarray) -> np.ndarray:
        """One pinned host-to-device copy, the forward, one device-to-host copy into pinned
        memory, and one synchronisation (an event) before the host reads it, for one state or
        for the rows of a vector env."""
        self._bound_state()  # binds the actor's parameters
        rows = state.shape[0] if state.ndim == 2 else None
        # pinned buffers for the most rows seen (a vector env's acting envs vary in number
        # under NEXT_STEP autoreset); one state uses their first row
        capacity = max(rows or 1, self._act_staging[0] if self._act_staging else 1)
        if self._act_staging is None or self._act_staging[0] < capacity:
            self._act_staging = (
                capacity,
                torch.zeros((capacity, self.obs_dim), dtype=torch.float32, pin_memory=True),
                torch.zeros((capacity, self.action_dim), dtype=torch.float32, pin_memory=True),
                torch.cuda.Event())
        _, pinned_in, pinned_out, done = self._act_staging
        host_in = pinned_in[0] if rows is None else pinned_in[:rows]
        host_out = pinned_out[0] if rows is None else pinned_out[:rows]
        actor = self.actor
        with torch.inference_mode():
            # the previous call synchronised on `done`, so host_in is free to overwrite
            host_in.numpy()[:] = np.asarray(state, dtype=np.float32).reshape(host_in.shape)
            h = host_in.to(self.device, non_blocking=True).to(self.dtype)
            for layer in actor.hidden_layers():
                h = torch.relu(F.linear(h, layer.weight, layer.bias))
            mean_raw = F.linear(h, actor.mu_layer.weight, actor.mu_layer.bias)
            log_std_raw = F.linear(h, actor.log_std_layer.weight, actor.log_std_layer.bias)
            action, _ = torch.ops.fastsac.tanh_normal(
                mean_raw, log_std_raw, self._noise(mean_raw.shape), actor.log_std_min,
                actor.log_std_max)
            host_out.copy_(action, non_blocking=True)
            done.record()
            done.synchronize()
            return host_out.numpy().copy()

    # ---- updating -------------------------------------------------------------------------------
    def _sample_into_host_batch(self) -> None:
        """``sample_batch()`` into the (pinned, on CUDA) host tensors, once the asynchronous
        copies out of the previous batch are done with them."""
        if self._copy_done is not None:
            self._copy_done.synchronize()
        self.memory.sample_batch()

    def _host_batch_copied(self) -> None:
        """Mark the copies just queued from the host batch (CUDA): the next sample waits."""
        if self._copy_done is None:
            self._copy_done = torch.cuda.Event()
        self._copy_done.record()

    def _batch_tensors(self, batch: dict[str, Any] | None) -> Batch:
        """obs, next_obs, acts, rews, done on the agent's device and dtype."""
        if batch is None:
            self._sample_into_host_batch()
            if not self._needs_cast:  # the host tensors are the batch
                return Batch(*(self._host_batch[k] for k in BATCH_KEYS))
            tensors = Batch(*(self._host_batch[k].to(self.device, self.dtype, non_blocking=True)
                              for k in BATCH_KEYS))
            if self.device.type == "cuda":
                self._host_batch_copied()
            return tensors
        widths = {"obs": self.obs_dim, "next_obs": self.obs_dim, "acts": self.action_dim,
                  "rews": 1, "done": 1}
        return Batch(*(torch.as_tensor(np.asarray(batch[k]), dtype=self.dtype,
                                       device=self.device).reshape(-1, widths[k])
                       for k in BATCH_KEYS))

    def update_model(self, batch: dict[str, Any] | None = None,
                     noise: torch.Tensor | None = None,
                     policy_step: bool | None = None) -> tuple[torch.Tensor, ...]:
        """One SAC update. ``batch`` (shaped like ``sample_batch()``) and ``noise`` (the actor's
        standard-normal eps, ``[batch, action_dim]``) override the buffer and the RNG, for
        agreement checks; ``policy_step`` says whether the actor and the V target step (``None``:
        the notebook's rule on ``total_step``; ``train`` passes its update count's).
        Returns ``(actor_loss, qf_loss, vf_loss, alpha_loss)``."""
        policy_step = self._is_policy_step(policy_step)
        if not self._training:
            self._check_bound()
        if self.use_cuda_graph and batch is None and noise is None:
            losses = self._replay_graph(policy_step)
        else:
            tensors = self._batch_tensors(batch)
            if noise is None:
                noise = self._noise((tensors.obs.shape[0], self.action_dim))
            else:
                noise = noise.to(device=self.device, dtype=self.dtype)
            losses = self._run_update(policy_step, tensors, noise)
        actor_loss = losses[0] if policy_step else torch.zeros(1)
        return actor_loss, losses[1], losses[2], losses[3]

    def train(self, *args, **kwargs) -> dict[str, list[float]]:
        self._check_bound(full=True)
        self._training = True
        try:
            return super().train(*args, **kwargs)
        finally:
            self._training = False
            self._bridge_phase(False)

    train.__doc__ = AgentBase.train.__doc__

    def _compiling_elsewhere(self) -> bool:
        """In ``train``, on CPU: whether a background process is still compiling this update
        (started here if nothing has built it yet); the update then runs on the bridge."""
        # (a data-parallel update's graph holds collectives: it compiles in the ranks)
        if not (self.compile and self.background_compile and self._training
                and self.device.type == "cpu" and self.world_size == 1) \
                or is_built(self._update_key):
            return False
        if not background.enabled():
            return False
        job = background.start(self._update_key, self._compile_request())
        if job is None:
            return False
        compiling = not job.done()
        if (compiling and job.waited() > background.PATIENCE_S
                and self._bridge_fn is self._eager_fn):
            # a machine too busy to give the idle-priority child its time, and a bridge at half
            # the compiled speed: stop waiting and compile here (the child's finished kernels
            # are in the cache). The C++ op bridge runs at about the graph's speed: compiling
            # here would stop training for minutes of a busy machine's CPU to gain nothing, so
            # with it the run waits for the child however long it takes
            job.give_up()
            compiling = False
        self._bridge_phase(compiling)
        return compiling

    def _bridge_phase(self, on: bool) -> None:
        """While the background process compiles, the bridge update leaves it a core (with all
        cores busy here, the idle-priority compiler would never finish); restored after."""
        if on and self._threads_before_bridge is None:
            self._threads_before_bridge = threads = torch.get_num_threads()
            if threads >= 2:
                torch.set_num_threads(threads - 1)
        elif not on and self._threads_before_bridge is not None:
            torch.set_num_threads(self._threads_before_bridge)
            self._threads_before_bridge = None

    def _compile_request(self) -> dict[str, Any]:
        """What the background process needs to build this agent's update."""
        return {"obs_dim": self.obs_dim, "action_dim": self.action_dim,
                "batch_size": self.batch_size, "gamma": self.gamma, "tau": self.tau,
                "policy_update_freq": self.policy_update_freq,
                "hidden_sizes": self.hidden_sizes, "lr": self.lr,
                "target_entropy": self.target_entropy, "dtype": self.dtype, "device": "cpu",
                "update_threads": self.update_threads, "num_threads": torch.get_num_threads()}

    def _run_update(self, policy_step: bool, batch: Batch, noise: torch.Tensor) -> torch.Tensor:
        """While a background process compiles (``train`` on CPU), the ahead-of-time C++
        update (or, without the extension, the eager one); else the compiled one (or, with
        ``compile=False``, the eager one)."""
        if self.device.type != "cpu":
            with torch.no_grad():
                return self._update_fn(policy_step, self._bound_state(), batch, noise)
        if self._compiling_elsewhere():
            with torch.no_grad():
                losses = self._bridge_fn(policy_step, self._bound_state(), batch, noise)
            if self.first_native_update_time is None and self._bridge_fn is not self._eager_fn:
                self.first_native_update_time = time.time()
            return losses
        if self.compile:
            self._built_graphs.add(policy_step)
            if len(self._built_graphs) == 2:
                mark_built(self._update_key)
        losses = self._run_on_threads(policy_step, batch, noise)
        if self.compile and self.first_compiled_update_time is None:
            self.first_compiled_update_time = time.time()
        return losses

    def _run_on_threads(self, policy_step: bool, batch: Batch,
                        noise: torch.Tensor) -> torch.Tensor:
        """The update function on the thread count of ``update_threads``: the tuner's choice
        for the tiled products (fastsac's own count), or a fixed count for everything."""
        tuner = self._thread_tuner
        if tuner is not None:
            threads = tuner.threads()
            ops.set_product_threads(threads)
            start = time.perf_counter()
            with torch.no_grad():
                losses = self._update_fn(policy_step, self._bound_state(), batch, noise)
            tuner.record(threads, time.perf_counter() - start)
            return losses
        ops.set_product_threads(0)  # tiled products, if any, on torch's count
        fixed = self.update_threads if isinstance(self.update_threads, int) else None
        previous = torch.get_num_threads()
        switch = fixed is not None and fixed != previous
        if switch:  # one fixed count: one compiled entry
            torch.set_num_threads(fixed)
        try:
            with torch.no_grad():
                return self._update_fn(policy_step, self._bound_state(), batch, noise)
        finally:
            if switch:
                torch.set_num_threads(previous)

    # ---- CUDA graphs ----------------------------------------------------------------------------
    def _state_tensors(self) -> list[torch.Tensor]:
        return state_tensors(self._bound_state())

    def _capture(self, policy_step: bool):
        """Compile (warm-up) and capture the update for one ``policy_step`` value.

        The warm-up runs really update and draw noise; the agent's tensors and its generator are
        restored afterwards, so capturing changes nothing and a seeded CUDA-graph run draws the
        same noise stream as an uncompiled one (docs/design.md)."""
        if self._static is None:
            b, like = self.batch_size, {"device": self.device, "dtype": self.dtype}
            self._static = Batch(
                obs=torch.zeros((b, self.obs_dim), **like),
                next_obs=torch.zeros((b, self.obs_dim), **like),
                acts=torch.zeros((b, self.action_dim), **like),
                rews=torch.zeros((b, 1), **like), done=torch.zeros((b, 1), **like))
            self._static_noise = torch.zeros((b, self.action_dim), **like)
        state, batch, noise = self._bound_state(), self._static, self._static_noise
        saved = [t.detach().clone() for t in self._state_tensors()]
        generator_state = self.generator.get_state()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(3):
                noise.normal_(generator=self.generator)
                self._update_fn(policy_step, state, batch, noise)
        torch.cuda.current_stream().wait_stream(side)
        self.generator.set_state(generator_state)
        graph = torch.cuda.CUDAGraph()
        # The agent's generator must be registered with the graph to advance at each replay
        # (torch >= 2.5); older torch captures only the default generator.
        generator = self.generator if hasattr(graph, "register_generator_state") else None
        if generator is not None:
            graph.register_generator_state(generator)
        with torch.cuda.graph(graph), torch.no_grad():
            noise.normal_(generator=generator)  # fresh noise at every replay
            out = self._update_fn(policy_step, state, batch, noise)
        with torch.no_grad():
            for t, v in zip(self._state_tensors(), saved, strict=True):
                t.copy_(v)
        self.generator.set_state(generator_state)
        torch.cuda.synchronize()
        return graph, out

    def _replay_graph(self, policy_step: bool) -> torch.Tensor:
        if policy_step not in self._graphs:
            self._graphs[policy_step] = self._capture(policy_step)
        graph, out = self._graphs[policy_step]
        self._sample_into_host_batch()
        for key, static in zip(BATCH_KEYS, self._static, strict=True):
            static.copy_(self._host_batch[key], non_blocking=True)
        self._host_batch_copied()
        graph.replay()
        return out.clone()  # the graph overwrites `out` at the next replay
