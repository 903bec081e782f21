"""FastSAC: the drop-in agent. Same API, arguments and semantics as the notebook's ``SACAgent``
(and ``fastsac.reference.SACAgent``); what differs is how fast each step runs:

- the replay buffer is the Numba one (O(batch) sampling straight into reusable, on CUDA pinned,
  arrays that torch reads without a copy);
- ``update_model`` is ``fastsac.update.sac_update``: one ``torch.compile``d graph (or, with
  ``compile=False``, the same function run eagerly), using the fused ``fastsac::tanh_normal`` and
  ``fastsac::polyak_`` ops;
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
from torch import optim

from fastsac import ops
from fastsac.base import LEARNING_RATE, AgentBase
from fastsac.buffer import ReplayBuffer
from fastsac.flat import flatten_params
from fastsac.threads import ThreadTuner, thread_candidates
from fastsac.update import UpdateConfig, make_update


class FastSAC(AgentBase):
    """Soft Actor-Critic with fused ops, a Numba buffer and a compiled update.

    Takes the arguments of :class:`fastsac.base.AgentBase` (the notebook's ``SACAgent``
    arguments plus ``device``, ``dtype``, ``seed``), and:

    Args:
        compile: ``True`` (default) compiles the update as one graph with ``torch.compile``;
            ``False`` runs the same update function eagerly (no compile time).
        cuda_graph: on CUDA, replay the compiled update as a CUDA graph (default ``True``).
        update_threads: CPU threads used inside ``update_model``: ``"auto"`` (default) times
            updates on 1, 2, 4 and torch's thread count (those up to it) and keeps the fastest,
            re-checked as training goes on (:mod:`fastsac.threads`); an int fixes the count;
            ``None`` leaves torch's setting alone. Results do not depend on it.

    Example:
        >>> env = fastsac.make_env("Pendulum-v1")
        >>> agent = FastSAC(env, memory_size=100_000, batch_size=128)
        >>> agent.train(50_000)
    """

    def __init__(self, *args, compile: bool = True, cuda_graph: bool = True,
                 update_threads: int | str | None = "auto", **kwargs):
        self.compile = bool(compile)
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
        self._cfg = UpdateConfig(
            obs_dim=self.obs_dim, gamma=self.gamma, tau=self.tau,
            target_entropy=self.target_entropy, log_std_min=self.actor.log_std_min,
            log_std_max=self.actor.log_std_max, lr=LEARNING_RATE,
            shapes={"actor": self._flat["actor"].shapes, "critic_q": self._flat["qf_1"].shapes,
                    "critic_v": self._flat["vf"].shapes},
            tiled_mm=self._tiled_products())
        self._update_fn = make_update(self._cfg, self.compile, self.device)
        self._thread_tuner = (
            ThreadTuner(thread_candidates(torch.get_num_threads()), self.policy_update_freq)
            if update_threads == "auto" and self.device.type == "cpu" else None)
        self._groups: tuple | None = None
        self._graphs: dict[bool, Any] = {}
        self._static: dict[str, torch.Tensor] = {}
        self._copy_done: torch.cuda.Event | None = None

    def _tiled_products(self) -> bool:
        """Whether the update's hidden-layer products go through fastsac::mm (fastsac.update.
        Products): on CPU, in float32, where the extension runs its AVX-512 kernels."""
        return (self.device.type == "cpu" and self.dtype == torch.float32
                and ops.EXTENSION_LOADED and ops.cpu_simd() == "avx512")

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
        return optim.Adam(params, lr=LEARNING_RATE, capturable=self.device.type == "cuda")

    def _param_lists(self) -> dict[str, list[torch.Tensor]]:
        """The parameters behind each flat buffer, in registration order."""
        return {"actor": list(self.actor.parameters()), "qf_1": list(self.qf_1.parameters()),
                "qf_2": list(self.qf_2.parameters()), "vf": list(self.vf.parameters()),
                "alpha": [self.log_alpha], "vf_target": list(self.vf_target.parameters())}

    def _flatten(self) -> None:
        """Lay every network's parameters and Adam state out in flat buffers (fastsac.flat)."""
        step_device = self.device if self.device.type == "cuda" else torch.device("cpu")
        optimizers = {"actor": self.actor_optimizer, "qf_1": self.qf_1_optimizer,
                      "qf_2": self.qf_2_optimizer, "vf": self.vf_optimizer,
                      "alpha": self.alpha_optimizer, "vf_target": None}
        self._flat = {name: flatten_params(params, optimizers[name], step_device)
                      for name, params in self._param_lists().items()}

    def _bound_groups(self) -> tuple:
        """The flat buffers the update works on (checked to still hold the parameters)."""
        if self._groups is None:
            for name, params in self._param_lists().items():
                if not self._flat[name].owns(params):
                    raise RuntimeError(
                        f"FastSAC.{name}'s parameters were replaced (module.to(), "
                        "load_state_dict(assign=True), ...); FastSAC updates its own parameter "
                        "buffers. Load weights with load_state_dict() (in place) or agent.load().")
            f = self._flat
            self._groups = (f["actor"].tensors(), f["qf_1"].tensors(), f["qf_2"].tensors(),
                            f["vf"].tensors(), f["alpha"].tensors(), f["vf_target"].params)
            self._actor_params = list(self.actor.parameters())  # for policy_action
        return self._groups

    def _after_load(self) -> None:
        self._groups = None
        self._graphs.clear()

    # ---- acting ---------------------------------------------------------------------------------
    def _policy_action(self, state: np.ndarray) -> np.ndarray:
        # One state, no autograd records, no Distribution objects. On CPU the whole actor runs
        # in one call of fastsac::policy_action (~9 us); elsewhere matrix-vector products and
        # the fused head (~3x the notebook's path either way, see BENCHMARKS.md).
        actor = self.actor
        if self.device.type == "cpu":
            self._bound_groups()  # checks, once, that the parameters are still the agent's
            with torch.inference_mode():
                x = torch.from_numpy(np.asarray(state, dtype=self._np_dtype).reshape(-1))
                return torch.ops.fastsac.policy_action(
                    x, self._actor_params, self._noise((self.action_dim,)), actor.log_std_min,
                    actor.log_std_max).numpy().astype(np.float32, copy=False)
        with torch.inference_mode():
            x = torch.from_numpy(np.asarray(state, dtype=np.float32).reshape(-1))
            if self._needs_cast:
                x = x.to(self.device, self.dtype)
            h = torch.relu(torch.addmv(actor.hidden1.bias, actor.hidden1.weight, x))
            h = torch.relu(torch.addmv(actor.hidden2.bias, actor.hidden2.weight, h))
            mean_raw = torch.addmv(actor.mu_layer.bias, actor.mu_layer.weight, h)
            log_std_raw = torch.addmv(actor.log_std_layer.bias, actor.log_std_layer.weight, h)
            action, _ = torch.ops.fastsac.tanh_normal(
                mean_raw, log_std_raw, self._noise(mean_raw.shape), actor.log_std_min,
                actor.log_std_max)
            if self._needs_cast:
                action = action.to("cpu", torch.float32)
            return action.numpy()

    # ---- updating -------------------------------------------------------------------------------
    def _batch_tensors(self, batch: dict[str, Any] | None) -> list[torch.Tensor]:
        """obs, next_obs, acts, rews, done on the agent's device and dtype."""
        if batch is None:
            self.memory.sample_batch()  # writes into self._host_batch
            keys = ("obs", "next_obs", "acts", "rews", "done")
            if not self._needs_cast:  # the host tensors are the batch
                return [self._host_batch[k] for k in keys]
            return [self._host_batch[k].to(self.device, self.dtype, non_blocking=True)
                    for k in keys]
        shapes = (("obs", self.obs_dim), ("next_obs", self.obs_dim), ("acts", self.action_dim),
                  ("rews", 1), ("done", 1))
        return [torch.as_tensor(np.asarray(batch[k]), dtype=self.dtype,
                                device=self.device).reshape(-1, width) for k, width in shapes]

    def update_model(self, batch: dict[str, Any] | None = None,
                     noise: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """One SAC update. ``batch`` (shaped like ``sample_batch()``) and ``noise`` (the actor's
        standard-normal eps, ``[batch, action_dim]``) override the buffer and the RNG, for
        agreement checks. Returns ``(actor_loss, qf_loss, vf_loss, alpha_loss)``."""
        policy_step = self.total_step % self.policy_update_freq == 0
        if self.use_cuda_graph and batch is None and noise is None:
            losses = self._replay_graph(policy_step)
        else:
            tensors = self._batch_tensors(batch)
            if noise is None:
                noise = self._noise((tensors[0].shape[0], self.action_dim))
            else:
                noise = noise.to(device=self.device, dtype=self.dtype)
            losses = self._run_update(policy_step, tensors, noise)
        actor_loss = losses[0] if policy_step else torch.zeros(1)
        return actor_loss, losses[1], losses[2], losses[3]

    def _run_update(self, policy_step: bool, tensors: list[torch.Tensor],
                    noise: torch.Tensor) -> torch.Tensor:
        """The update function on the CPU thread count of ``update_threads``."""
        tuner = self._thread_tuner
        if tuner is not None:
            wanted = tuner.threads()
        elif isinstance(self.update_threads, int) and self.device.type == "cpu":
            wanted = self.update_threads
        else:
            wanted = None  # torch's setting
        threads = torch.get_num_threads()
        switch = wanted is not None and wanted != threads
        if switch:
            torch.set_num_threads(wanted)
        start = time.perf_counter()
        try:
            with torch.no_grad():
                losses = self._update_fn(policy_step, *self._bound_groups(), *tensors, noise)
        finally:
            if switch:
                torch.set_num_threads(threads)
        if tuner is not None:
            tuner.record(wanted or threads, time.perf_counter() - start)
        return losses

    # ---- CUDA graphs ----------------------------------------------------------------------------
    def _state_tensors(self) -> list[torch.Tensor]:
        groups = self._bound_groups()
        return [t for g in groups[:5] for t in g] + [groups[5]]

    def _capture(self, policy_step: bool):
        """Compile (warm-up) and capture the update for one ``policy_step`` value. The warm-up
        runs really update; the agent's state is restored afterwards, so capturing changes
        nothing."""
        b = self.batch_size
        if not self._static:
            self._static = {
                "obs": torch.zeros((b, self.obs_dim), device=self.device, dtype=self.dtype),
                "next_obs": torch.zeros((b, self.obs_dim), device=self.device, dtype=self.dtype),
                "acts": torch.zeros((b, self.action_dim), device=self.device, dtype=self.dtype),
                "rews": torch.zeros((b, 1), device=self.device, dtype=self.dtype),
                "done": torch.zeros((b, 1), device=self.device, dtype=self.dtype),
                "noise": torch.zeros((b, self.action_dim), device=self.device, dtype=self.dtype),
            }
        s = self._static
        args = (*self._bound_groups(), s["obs"], s["next_obs"], s["acts"], s["rews"], s["done"],
                s["noise"])
        saved = [t.detach().clone() for t in self._state_tensors()]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(3):
                s["noise"].normal_(generator=self.generator)
                self._update_fn(policy_step, *args)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # The agent's generator must be registered with the graph to advance at each replay
        # (torch >= 2.5); older torch captures only the default generator.
        generator = self.generator if hasattr(graph, "register_generator_state") else None
        if generator is not None:
            graph.register_generator_state(generator)
        with torch.cuda.graph(graph), torch.no_grad():
            s["noise"].normal_(generator=generator)  # fresh noise at every replay
            out = self._update_fn(policy_step, *args)
        with torch.no_grad():
            for t, v in zip(self._state_tensors(), saved, strict=True):
                t.copy_(v)
        torch.cuda.synchronize()
        return graph, out

    def _replay_graph(self, policy_step: bool) -> torch.Tensor:
        if policy_step not in self._graphs:
            self._graphs[policy_step] = self._capture(policy_step)
        graph, out = self._graphs[policy_step]
        if self._copy_done is not None:
            self._copy_done.synchronize()  # the pinned batch is free to overwrite
        self.memory.sample_batch()
        for key in ("obs", "next_obs", "acts", "rews", "done"):
            self._static[key].copy_(self._host_batch[key], non_blocking=True)
        if self._copy_done is None:
            self._copy_done = torch.cuda.Event()
        self._copy_done.record()
        graph.replay()
        return out.clone()  # the graph overwrites `out` at the next replay
