"""What every agent is: its settings (``fastsac.settings``), its networks and optimizers
(``fastsac.state``), a replay buffer and an update engine (each agent's own), and the API around
them: acting, stepping the env, updating, training (``fastsac.training``), evaluating and
checkpoints (``fastsac.checkpoint``). ``fastsac.FastSAC`` and ``fastsac.reference.SACAgent``
are this class with their own buffer and engine."""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv

from fastsac import checkpoint, distributed, run_log, training
from fastsac.envs import action_space_of, rescaled, space_dims, unscale
from fastsac.errors import ConfigError
from fastsac.networks import Actor, CriticQ, CriticV
from fastsac.settings import DEFAULTS, SACConfig
from fastsac.state import Slot, parameters, slots_of
from fastsac.variants import VARIANTS
from fastsac.vector import VectorSteps

_D = DEFAULTS


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` (or None): CUDA when available, else CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}") from exc
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {device}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' was asked for, but torch sees no CUDA device")
    return device


def _settings_property(name: str) -> property:
    return property(lambda self: getattr(self.config, name),
                    doc=f"{name}: read-only ({SACConfig.__doc__.split(':')[0]} field)")


class Agent:
    """A SAC agent on a gymnasium env (the notebook's ``SACAgent`` API, and SB3's habits)."""

    def __init__(
        self,
        env: gym.Env | VectorEnv,
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
    ):
        config = SACConfig(memory_size=memory_size, batch_size=batch_size, gamma=gamma, tau=tau,
                           initial_random_steps=initial_random_steps,
                           policy_update_freq=policy_update_freq, variant=variant,
                           n_critics=n_critics, hidden_sizes=hidden_sizes, lr=lr,
                           updates_per_step=updates_per_step, target_entropy=target_entropy,
                           seed=seed)
        self._build(env, config, device, dtype, data_parallel)

    # ---- construction ------------------------------------------------------------------------
    def _build(self, env, config: SACConfig, device, dtype, data_parallel: bool) -> None:
        self.config = config
        self._variant = VARIANTS[config.variant]
        obs_dim, action_dim = space_dims(env)
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.world = distributed.current_world() if data_parallel else None
        if data_parallel and self.world is None:
            raise ConfigError("data_parallel=True needs torch.distributed initialised with more "
                              "than one process (torchrun --nproc-per-node N ...)")
        self.rank = self.world.rank if self.world else 0
        self.world_size = self.world.size if self.world else 1
        if config.seed is not None:
            torch.manual_seed(config.seed)
        # each rank its own streams: envs, warm-up actions, replay sampling, noise
        rank_seed = None if config.seed is None else config.seed + self.rank
        self.action_space = action_space_of(env)  # the env's own bounds (predict returns those)
        self.env = rescaled(env)  # the agent acts in [-1, 1]
        self.num_envs: int | None = int(env.num_envs) if isinstance(env, VectorEnv) else None
        self._vec = VectorSteps(env) if self.num_envs is not None else None
        if self._vec is not None and self.world is not None and \
                self._vec.mode != AutoresetMode.SAME_STEP:
            raise ConfigError("data-parallel training on a vector env needs SAME_STEP autoreset "
                              "(fastsac.make_env(..., autoreset=AutoresetMode.SAME_STEP))")
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.target_entropy = (-float(action_dim) if config.target_entropy is None
                               else config.target_entropy)
        self.device, self.dtype = resolve_device(device), dtype
        self._np_rng = np.random.default_rng(rank_seed)
        self._reset_seed = rank_seed
        # The agent's own noise stream: agents sharing a process do not disturb each other.
        # Unseeded, it is drawn from torch's global RNG (the notebook's torch.manual_seed works).
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(
            rank_seed if config.seed is not None else int(torch.randint(0, 2**62, ()).item()))
        self.memory = self._make_memory(rank_seed)
        self.slots: tuple[Slot, ...] = slots_of(self._variant, config.n_critics)
        self._make_networks()
        self.transition: list = []
        self.total_step = 0
        self.update_step = 0  # the last update's number, the clock of policy_update_freq
        self._learn_frames, self._learn_updates = 0, 0  # counts of the update ratio
        self.is_test = False
        self.history: dict[str, list[float]] = {k: [] for k in self.history_keys}
        self.loss_curves = training.LossCurves(self.loss_names)
        self.eval_history: dict[str, list[float]] = {k: [] for k in run_log.EVAL_KEYS}
        self._gathered_rows = 0  # data-parallel: history rows already gathered on rank 0
        self.run_config: dict[str, Any] | None = None  # the CLI's settings of the run
        if self.world is not None:  # every rank starts from rank 0's weights
            distributed.broadcast_([self.log_alpha, *(
                t for s in self.slots if s.name != "log_alpha"
                for t in getattr(self, s.name).state_dict().values())])
        self.engine = self._make_engine()

    def _make_networks(self) -> None:
        """log_alpha first, then the networks in the variant's order (the notebook's for v1), so
        a seed gives both agents the same initial weights; targets start as copies."""
        factory = {"device": self.device, "dtype": self.dtype}
        self.log_alpha = torch.zeros(1, requires_grad=True, **factory)
        self.alpha_optimizer = self._make_optimizer([self.log_alpha])
        o, a, sizes = self.obs_dim, self.action_dim, self.config.hidden_sizes
        for spec in self._variant.networks(self.config.n_critics):
            module = (Actor(o, a, sizes, self._variant.head) if spec.kind == "actor"
                      else CriticQ(o + a, sizes) if spec.kind == "q" else CriticV(o, sizes))
            module.to(**factory)
            if spec.target_of is not None:
                module.load_state_dict(getattr(self, spec.target_of).state_dict())
            setattr(self, spec.name, module)
        for slot in self.slots:
            if slot.optimizer is not None and slot.name != "log_alpha":
                setattr(self, slot.optimizer, self._make_optimizer(parameters(self, slot)))

    def _make_memory(self, seed: int | None):
        raise NotImplementedError

    def _make_optimizer(self, params) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.config.lr)

    def _make_engine(self):
        raise NotImplementedError

    memory_size = _settings_property("memory_size")
    batch_size = _settings_property("batch_size")
    gamma = _settings_property("gamma")
    tau = _settings_property("tau")
    initial_random_steps = _settings_property("initial_random_steps")
    policy_update_freq = _settings_property("policy_update_freq")
    variant = _settings_property("variant")
    n_critics = _settings_property("n_critics")
    hidden_sizes = _settings_property("hidden_sizes")
    lr = _settings_property("lr")
    updates_per_step = _settings_property("updates_per_step")
    seed = _settings_property("seed")

    @property
    def loss_names(self) -> tuple[str, ...]:
        """The losses ``update_model`` returns, in order (v1: actor, qf, vf, alpha)."""
        return self._variant.loss_names(self.config.n_critics)

    @property
    def history_keys(self) -> tuple[str, ...]:
        """The columns of ``history`` and metrics.csv: one row per finished episode."""
        return ("frame", "rank", "env", "score", *(f"{k}_loss" for k in self.loss_names),
                "alpha", "fps")

    # ---- acting --------------------------------------------------------------------------------
    def _warming_up(self) -> bool:
        return self.total_step < self.config.initial_random_steps and not self.is_test

    def select_action(self, state: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """An action in [-1, 1] (the rescaled env takes it): uniform at random during the
        warm-up steps, else the policy's sample, or with ``deterministic`` its squashed mean
        (never random). A vector env's ``[num_envs, obs_dim]`` states get ``[num_envs,
        action_dim]`` actions from one forward; an env about to be reset by NEXT_STEP autoreset
        gets zeros (the env ignores them)."""
        if self._vec is not None:
            return self._select_actions(state, deterministic)
        if self._warming_up() and not deterministic:
            action = self._np_rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)
        else:
            action = self.engine.act(np.asarray(state), deterministic)
        self.transition = [state, action]
        return action

    def _select_actions(self, state: np.ndarray, deterministic: bool) -> np.ndarray:
        # a copy: a vector env made with copy=False overwrites its observation array in place
        states = np.array(state)
        n = self.num_envs
        if states.shape != (n, self.obs_dim):
            raise ConfigError(f"a vector env of {n} envs needs states of shape "
                              f"({n}, {self.obs_dim}), got {states.shape}")
        acting = self._vec.acting
        k = int(acting.sum())
        actions = np.zeros((n, self.action_dim), dtype=np.float32)
        if k:
            if self._warming_up() and not deterministic:
                drawn = self._np_rng.uniform(-1.0, 1.0, (k, self.action_dim)).astype(np.float32)
            else:  # one state goes the one-state way: a vector env of one acts as the plain env
                chosen = states if k == n else states[acting]
                drawn = (self.engine.act(chosen[0], deterministic).reshape(1, -1) if k == 1
                         else self.engine.act(chosen, deterministic))
            actions[acting] = drawn
        self.transition = [states, actions]
        return actions

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        """SB3's ``predict``: the policy's action for one observation ``[obs_dim]`` or a batch
        ``[n, obs_dim]``, in the env's own action bounds, and ``None`` (no recurrent state).
        Deterministic by default; it never acts at random and stores nothing."""
        obs = np.asarray(observation, dtype=np.float32)
        if obs.shape[-1:] != (self.obs_dim,) or obs.ndim not in (1, 2):
            raise ConfigError(f"predict takes an observation of shape ({self.obs_dim},) or "
                              f"(n, {self.obs_dim}), got {obs.shape}")
        return unscale(self.engine.act(obs, deterministic), self.action_space), None

    def step(self, action: np.ndarray) -> tuple[np.ndarray, Any, Any]:
        """Step the env with an action in [-1, 1]; store the transition unless testing. Returns
        ``(next_state, reward, done)``, ``done = terminated or truncated``; the stored bootstrap
        flag is ``terminated`` alone (a time limit is not a terminal state)."""
        if self._vec is not None:
            return self._step_vector(action)
        next_state, reward, terminated, truncated, _ = self.env.step(action)
        if not self.is_test:
            training.check_env_output(self.total_step, reward, next_state)
            self.transition += [reward, next_state, terminated]
            self.memory.store(*self.transition)
        return next_state, float(reward), bool(terminated or truncated)

    def _step_vector(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        actions = np.asarray(action, dtype=np.float32).reshape(self.num_envs, self.action_dim)
        next_state, reward, terminated, truncated, info = self.env.step(actions)
        found = self._vec.transitions(self.transition[0], actions, reward, next_state,
                                      terminated, truncated, info)
        self.last_transitions = found
        if not self.is_test and len(found.rows):
            training.check_env_output(self.total_step, found.rews, found.next_obs)
            self.memory.store_batch(found.obs, found.acts, found.rews, found.next_obs,
                                    found.terminated)
        return next_state, np.asarray(reward, dtype=np.float64), np.logical_or(terminated,
                                                                               truncated)

    def _reset_env(self):
        state, _ = self.env.reset(seed=self._reset_seed)
        self._reset_seed = None  # seed the first reset only; later ones continue the stream
        if self._vec is not None:
            self._vec.restart()
        return state

    # ---- updating ------------------------------------------------------------------------------
    def _noise(self, shape) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, dtype=self.dtype, device=self.device)

    def update_model(self, batch: dict[str, Any] | None = None,
                     noise: torch.Tensor | None = None,
                     policy_step: bool | None = None) -> tuple[torch.Tensor, ...]:
        """One SAC update. ``batch`` (shaped like ``sample_batch()``) and ``noise`` (the actor's
        standard-normal eps: ``[batch, action_dim]``, v2 ``[2, batch, action_dim]``: states,
        next states) replace the buffer's sample and the agent's draw, for agreement checks;
        ``policy_step``: whether the actor steps (None: the notebook's rule on ``total_step``).
        Returns the losses of ``loss_names`` (v1: ``actor, qf, vf, alpha``); the actor's is
        ``zeros(1)`` on updates without a policy step, as in the notebook."""
        if policy_step is None:
            policy_step = self.total_step % self.config.policy_update_freq == 0
        losses = self.engine.update(bool(policy_step), batch, self._noise_of(noise))
        return tuple(torch.zeros(1) if k == "actor" and not policy_step else losses[i]
                     for i, k in enumerate(self.loss_names))

    def _noise_of(self, noise: torch.Tensor | None) -> torch.Tensor | None:
        """The agreement hook's noise as ``[draws, batch, action_dim]``."""
        if noise is None:
            return None
        noise = torch.as_tensor(noise).to(device=self.device, dtype=self.dtype)
        return noise.reshape(self._variant.noise_draws, -1, self.action_dim)

    def _updates_due(self, new_frames: int) -> int:
        """Whole updates owed for ``new_frames`` more transitions at ``updates_per_step``; the
        fraction carries over (counted exactly, from the start of learning)."""
        from fastsac.settings import update_ratio

        self._learn_frames += new_frames
        ratio = update_ratio(self.config.updates_per_step)
        due = self._learn_frames * ratio.numerator // ratio.denominator - self._learn_updates
        self._learn_updates += due
        return due

    def _scheduled_update(self) -> tuple[torch.Tensor, bool]:
        """One update of the training loop, numbered by ``update_step`` (the first with its frame,
        then on by one); a multiple of ``policy_update_freq`` is a policy step. Returns the
        raw losses (the actor's NaN without a policy step) and whether it was one."""
        if self.update_step == 0:
            self.update_step = self.total_step - 1
        self.update_step += 1
        policy_step = self.update_step % self.config.policy_update_freq == 0
        return self.engine.update(policy_step, None, None), policy_step

    # ---- training and evaluation ---------------------------------------------------------------
    def train(self, num_frames: int, plotting_interval: int = 200,
              plot_path: str | os.PathLike | None = None, progress: bool | None = None, *,
              checkpoint_path: str | os.PathLike | None = None,
              checkpoint_every: int | None = None,
              metrics_path: str | os.PathLike | None = None,
              tensorboard_dir: str | os.PathLike | None = None,
              eval_every: int | None = None, eval_episodes: int = 5,
              eval_env: gym.Env | None = None,
              callback: training.Callback | None = None) -> dict[str, list[float]]:
        """Train for ``num_frames`` transitions, continuing from ``total_step``.

        Args:
            num_frames: transitions to collect (with N envs, N per vector step).
            plotting_interval: frames between inline plots, in a notebook.
            plot_path: write the learning-curve PNG there (at the end, and during the run at
                most every tenth of it); None: no file.
            progress: a progress bar; None: only where the output is a terminal or a notebook.
            checkpoint_path: write a resumable checkpoint there every ``checkpoint_every``
                frames (default a tenth of the run), at least every 10 minutes, and at the end.
            metrics_path: a CSV of the history, one row appended per finished episode.
            tensorboard_dir: TensorBoard event files there, with the scalars of metrics.csv
                (needs the ``tensorboard`` package: ``pip install fastsac[tensorboard]``).
            eval_every: every this many frames, evaluate ``eval_episodes`` deterministic
                episodes on ``eval_env`` (default: a new env like the agent's) into
                ``eval_history``, the plot, the metrics' eval.csv and TensorBoard.
            callback: called after each finished episode with its metrics (a dict); returning
                False stops training there.

        Returns ``history``: one row per finished episode (frame, env index, score, the mean
        losses of the updates since the previous episode end, alpha, fps). Raises
        :class:`fastsac.errors.TrainingDiverged` on a non-finite loss, parameter or reward.
        A plain env is closed at the end, as the notebook does; a vector env stays open.
        """
        return training.train(self, num_frames, plotting_interval=plotting_interval,
                              plot_path=plot_path, progress=progress,
                              checkpoint_path=checkpoint_path, checkpoint_every=checkpoint_every,
                              metrics_path=metrics_path, tensorboard_dir=tensorboard_dir,
                              eval_every=eval_every, eval_episodes=eval_episodes,
                              eval_env=eval_env, callback=callback)

    def evaluate(self, n_episodes: int = 10, env: gym.Env | None = None,
                 deterministic: bool = True) -> list[float]:
        """Returns of ``n_episodes`` episodes of the policy (deterministic by default: its
        squashed mean, the way published returns are measured), on ``env`` (its actions
        rescaled like the agent's) or the agent's own plain env. Stores nothing, draws no
        noise from the agent's streams when deterministic."""
        return training.evaluate(self, n_episodes, env, deterministic)

    def test(self, deterministic: bool = True) -> list[np.ndarray]:
        """Play one episode with the policy on the agent's env (deterministic by default);
        returns the rendered frames (``[]`` unless the env renders ``rgb_array``). The score is
        printed and kept in ``last_test_score``. The env is closed after, as in the notebook."""
        if self._vec is not None:
            raise ConfigError("test() plays a plain env; this agent's env is a vector env: use "
                              "agent.evaluate(env=fastsac.make_env(env_id))")
        self.is_test = True
        state, _ = self.env.reset()
        done, score, frames = False, 0.0, []
        renders = getattr(self.env, "render_mode", None) == "rgb_array"
        while not done:
            if renders:
                frames.append(self.env.render())
            state, reward, done = self.step(self.select_action(state, deterministic))
            score += reward
        print("score: ", score)
        self.last_test_score = score
        self.env.close()
        return frames

    # ---- checkpoints ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, include_buffer: bool = False) -> None:
        """Write the agent (its settings, weights, optimizer states, counters, random streams,
        history, and with ``include_buffer`` its replay buffer: then ``load`` + ``train``
        continue the run exactly) to ``path``, atomically."""
        checkpoint.save(self, path, include_buffer)

    def load(self, path: str | os.PathLike) -> None:
        """Load a checkpoint into this agent. One whose settings differ is refused, naming
        them; a truncated, foreign or older file raises ``CheckpointError``. Either way the agent
        is left exactly as it was."""
        checkpoint.load(self, path)
        if self.world is not None and self.rank != 0:
            checkpoint.load_rank(self, path)
        self.engine.after_load()

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, env: gym.Env | VectorEnv | None = None,
                        device: str | torch.device = "auto", **options: Any) -> Agent:
        """The agent saved at ``path``, rebuilt from the file alone: its settings, spaces and
        weights (and buffer, if saved). ``env``: the env to act in (default: ``gym.make`` of
        the env id the checkpoint records). ``options``: this class's own (``compile=False``)."""
        state = checkpoint.read(path)
        env = checkpoint.env_for(state, env)
        agent = cls(env, **SACConfig.from_dict(state["settings"]).to_dict(), device=device,
                    dtype=getattr(torch, state["dtype"]), **options)
        agent.load(path)
        return agent

    def save_policy(self, path: str | os.PathLike) -> None:
        """Write the actor alone (weights, head, spaces, settings; no buffer, no optimizer) for
        deployment: ``fastsac.load_policy(path)`` reads it back as an object with ``predict``."""
        checkpoint.save_policy(self, path)
