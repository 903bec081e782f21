"""What both agents share: construction and validation, the interaction loop (select_action,
step, train, test) on a plain or a vectorized env, checkpoints. Subclasses provide the replay
buffer, the policy's actions, and ``update_model``; that is where the eager reference and
FastSAC differ."""

from __future__ import annotations

import math
import os
import time
from fractions import Fraction
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from torch import optim

from fastsac import checkpoint, distributed
from fastsac.curves import LossCurves
from fastsac.divergence import TrainingDiverged, check_losses, check_rewards
from fastsac.envs import space_dims
from fastsac.networks import DEFAULT_HIDDEN_SIZES, Actor, CriticQ, CriticV, check_hidden_sizes
from fastsac.plotting import PlotSchedule, curves_figure, in_notebook
from fastsac.run_log import CHECKPOINT_MAX_SECONDS, CheckpointSchedule, MetricsLog
from fastsac.state import MODULES, SLOT_NAMES, slot_parameters
from fastsac.vector import VectorSteps

LEARNING_RATE = 3e-4
INITIAL_RANDOM_STEPS = 10_000  # the notebook's warm-up of uniform random actions


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` means CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'cpu', 'cuda' or None, got {device!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for, but torch sees no CUDA device")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device}")
    return device


def devices_for(choice: str) -> list[str]:
    """The devices a ``--device auto|cpu|cuda`` option means: auto is CPU, and CUDA if present."""
    if choice == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device")
    return [choice]


def _check_int(name: str, value: Any, low: int, high: float = math.inf) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        bound = f"in [{low}, {high}]" if high != math.inf else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


def _check_unit_interval(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if not 0.0 < float(value) <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}")
    return float(value)


def _check_positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if not (math.isfinite(float(value)) and float(value) > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def _check_updates_per_step(value: Any) -> Fraction:
    """As an exact fraction (0.29 is 29/100), so the count of updates never drifts."""
    ratio = _check_positive_float("updates_per_step", value)
    exact = Fraction(ratio).limit_denominator(1_000_000)
    if exact == 0:
        raise ValueError(f"updates_per_step must be at least 1e-6, got {value}")
    return exact


def _check_target_entropy(value: Any, action_dim: int) -> float:
    """``None`` means the SAC paper's heuristic, -action_dim."""
    if value is None:
        return -float(action_dim)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"target_entropy must be a float or None, got {type(value).__name__}")
    if not math.isfinite(float(value)):
        raise ValueError(f"target_entropy must be finite, got {value}")
    return float(value)


def check_settings(memory_size: Any, batch_size: Any, gamma: Any = 0.99, tau: Any = 5e-3,
                   initial_random_steps: Any = INITIAL_RANDOM_STEPS, policy_update_freq: Any = 2,
                   hidden_sizes: Any = DEFAULT_HIDDEN_SIZES, lr: Any = LEARNING_RATE,
                   updates_per_step: Any = 1.0, seed: Any = None) -> dict[str, Any]:
    """The agent's settings that need no env, checked (``ValueError``/``TypeError`` saying
    which is bad); ``updates_per_step`` as an exact fraction. The constructor's checks, and
    the CLI's before it starts a data-parallel run's processes (one message, not one a rank)."""
    memory_size = _check_int("memory_size", memory_size, 1)
    return {
        "memory_size": memory_size,
        "batch_size": _check_int("batch_size", batch_size, 1, memory_size),
        "gamma": _check_unit_interval("gamma", gamma),
        "tau": _check_unit_interval("tau", tau),
        "initial_random_steps": _check_int("initial_random_steps", initial_random_steps, 0),
        "policy_update_freq": _check_int("policy_update_freq", policy_update_freq, 1),
        "hidden_sizes": check_hidden_sizes(hidden_sizes),
        "lr": _check_positive_float("lr", lr),
        "updates_per_step": _check_updates_per_step(updates_per_step),
        "seed": None if seed is None else _check_int("seed", seed, 0),
    }


class AgentBase:
    """SAC agent interacting with a gymnasium environment (the notebook's ``SACAgent`` API).

    Args:
        env: a gymnasium env with a flat Box observation space and a bounded flat Box action
            space. The agent acts in [-1, 1]: wrap the env with
            :class:`fastsac.envs.ActionNormalizer` (as the notebook does) to reach its bounds.
            Or a ``gymnasium.vector.VectorEnv`` of such envs (``fastsac.make_env(env_id,
            num_envs=N)``): the agent then acts for all N at once and stores each env's
            transitions, whatever the env's autoreset mode (NEXT_STEP or SAME_STEP;
            :mod:`fastsac.vector`).
        memory_size: replay buffer capacity.
        batch_size: transitions per update.
        gamma: discount factor, in (0, 1].
        tau: Polyak factor of the V target, in (0, 1].
        initial_random_steps: steps of uniform random actions before the policy acts and
            updates start.
        policy_update_freq: the actor and the V target are updated every this many updates.
            Updates are numbered on from the frame at which the first one runs, so with one env
            and ``updates_per_step=1`` an update's number is its frame, the notebook's rule
            (docs/design.md, "Updates per step").
        hidden_sizes: widths of the hidden ReLU layers of every network, e.g. ``(256, 256)``
            or ``(256, 256, 256)`` (at least one layer; default: the notebook's 128-128).
            The layers are named ``hidden1`` ... ``hiddenN`` (docs/design.md).
        lr: Adam's learning rate, for every network and for log_alpha.
        updates_per_step: gradient updates per collected transition (default 1.0, the
            notebook's ratio at any number of envs; 0.25 or 4 are valid). ``train`` runs them
            as whole updates after each (vector) step, carrying the fraction over.
        target_entropy: the entropy the temperature is tuned towards; ``None`` (default):
            ``-action_dim``.
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when available).
        dtype: ``torch.float32``, or ``torch.float64`` for exact agreement runs.
        seed: seeds torch, the random warm-up actions, the replay sampling and the first env
            reset, so two runs with the same seed match.
        data_parallel: train as one rank of a data-parallel job (``torch.distributed``
            initialised, e.g. by ``torchrun``; :mod:`fastsac.distributed`): the starting weights
            are rank 0's, every update averages its gradients over the ranks, and the random
            streams are seeded ``seed + rank``. A vector env must use SAME_STEP autoreset, so
            every rank collects as many transitions per step and the ranks update in lockstep.
    """

    def __init__(
        self,
        env: gym.Env,
        memory_size: int,
        batch_size: int,
        gamma: float = 0.99,
        tau: float = 5e-3,
        initial_random_steps: int = INITIAL_RANDOM_STEPS,
        policy_update_freq: int = 2,
        *,
        hidden_sizes: tuple[int, ...] = DEFAULT_HIDDEN_SIZES,
        lr: float = LEARNING_RATE,
        updates_per_step: float = 1.0,
        target_entropy: float | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        seed: int | None = None,
        data_parallel: bool = False,
    ):
        obs_dim, action_dim = space_dims(env)
        checked = check_settings(memory_size, batch_size, gamma, tau, initial_random_steps,
                                 policy_update_freq, hidden_sizes, lr, updates_per_step, seed)
        self.memory_size, self.batch_size = checked["memory_size"], checked["batch_size"]
        self.gamma, self.tau = checked["gamma"], checked["tau"]
        self.initial_random_steps = checked["initial_random_steps"]
        self.policy_update_freq = checked["policy_update_freq"]
        self.hidden_sizes, self.lr = checked["hidden_sizes"], checked["lr"]
        self._update_ratio = checked["updates_per_step"]
        self.updates_per_step = float(updates_per_step)
        self.target_entropy = _check_target_entropy(target_entropy, action_dim)
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.world = distributed.current_world() if data_parallel else None
        if data_parallel and self.world is None:
            raise ValueError("data_parallel=True needs torch.distributed initialised with more "
                             "than one process (torchrun --nproc-per-node N ...)")
        self.rank = self.world.rank if self.world else 0
        self.world_size = self.world.size if self.world else 1
        seed = checked["seed"]
        if seed is not None:
            torch.manual_seed(seed)
        self.seed = seed
        # each rank its own streams: envs, warm-up actions, replay sampling, noise
        rank_seed = None if seed is None else seed + self.rank
        self.env = env
        vector = isinstance(env, VectorEnv)
        self.num_envs: int | None = int(env.num_envs) if vector else None
        self._vec = VectorSteps(env) if vector else None
        if self._vec is not None and self.world is not None and \
                self._vec.mode != AutoresetMode.SAME_STEP:
            raise ValueError("data-parallel training on a vector env needs SAME_STEP autoreset "
                             "(fastsac.make_env(..., autoreset=AutoresetMode.SAME_STEP)): "
                             "every rank then collects num_envs transitions per step and the "
                             "ranks update in lockstep")
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.device = resolve_device(device)
        self.dtype = dtype
        self._np_rng = np.random.default_rng(rank_seed)
        self._reset_seed = rank_seed
        # The agent's own noise stream (policy samples, update noise): two agents in one
        # process do not disturb each other. Without a seed it is drawn from torch's global RNG,
        # so the notebook's torch.manual_seed(...) still makes runs repeat.
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(
            rank_seed if seed is not None else int(torch.randint(0, 2**62, ()).item()))

        self.memory = self._make_memory(obs_dim, self.memory_size, self.batch_size, action_dim,
                                        rank_seed)

        # automatic entropy tuning; then the networks, in the notebook's construction order so a
        # seed gives both agents the same initial weights.
        self.log_alpha = torch.zeros(1, requires_grad=True, device=self.device, dtype=dtype)
        self.alpha_optimizer = self._make_optimizer([self.log_alpha])
        factory = {"device": self.device, "dtype": dtype}
        sizes = self.hidden_sizes
        self.actor = Actor(obs_dim, action_dim, sizes).to(**factory)
        self.vf = CriticV(obs_dim, sizes).to(**factory)
        self.vf_target = CriticV(obs_dim, sizes).to(**factory)
        self.vf_target.load_state_dict(self.vf.state_dict())
        self.qf_1 = CriticQ(obs_dim + action_dim, sizes).to(**factory)
        self.qf_2 = CriticQ(obs_dim + action_dim, sizes).to(**factory)
        self.actor_optimizer = self._make_optimizer(self.actor.parameters())
        self.vf_optimizer = self._make_optimizer(self.vf.parameters())
        self.qf_1_optimizer = self._make_optimizer(self.qf_1.parameters())
        self.qf_2_optimizer = self._make_optimizer(self.qf_2.parameters())

        self.transition: list = []
        self.total_step = 0
        # the number of the last update, the clock of policy_update_freq (0: none yet)
        self.update_step = 0
        # collected transitions since learning started, and the updates run for them
        self._learn_frames, self._learn_updates = 0, 0
        self.is_test = False
        self.history: dict[str, list[float]] = {k: [] for k in checkpoint.HISTORY_KEYS}
        self.loss_curves = LossCurves()  # every update's losses, for the plot
        # settings of the run that trains this agent (the CLI's arguments), kept in checkpoints
        self.run_config: dict[str, Any] | None = None
        self._gathered_rows = 0  # data-parallel: history rows already gathered on rank 0
        self._metrics = MetricsLog(None)  # train()'s metrics file
        if self.world is not None:  # every rank starts from rank 0's weights
            distributed.broadcast_([self.log_alpha, *(
                t for name in MODULES for t in getattr(self, name).state_dict().values())])

    # ---- what subclasses provide ------------------------------------------------------------
    def _make_memory(self, obs_dim, size, batch_size, act_dim, seed):
        raise NotImplementedError

    def _make_optimizer(self, params) -> optim.Optimizer:
        return optim.Adam(params, lr=self.lr)

    def _policy_action(self, state: np.ndarray) -> np.ndarray:
        """The policy's sample for one state ``[obs_dim]`` or for a batch ``[n, obs_dim]``."""
        raise NotImplementedError

    def update_model(self, batch=None, noise=None, policy_step=None):
        raise NotImplementedError

    def _is_policy_step(self, policy_step: bool | None) -> bool:
        """``update_model``'s rule: as given, or the notebook's (``total_step`` a multiple of
        ``policy_update_freq``) when called on its own."""
        if policy_step is None:
            return self.total_step % self.policy_update_freq == 0
        return bool(policy_step)

    def _noise(self, shape) -> torch.Tensor:
        """Standard-normal noise from the agent's own generator, on its device and dtype."""
        return torch.randn(shape, generator=self.generator, dtype=self.dtype, device=self.device)

    # ---- interaction ------------------------------------------------------------------------
    def select_action(self, state: np.ndarray) -> np.ndarray:
        """Uniform random in [-1, 1] during the warm-up steps, else a sample of the policy.

        With a vector env, ``state`` is ``[num_envs, obs_dim]`` and the actions
        ``[num_envs, action_dim]``, drawn in one forward (or one draw) for the envs whose step
        is a transition; an env about to be reset by its NEXT_STEP autoreset gets a zero action
        (the env ignores it) and draws nothing."""
        if self._vec is not None:
            return self._select_actions(state)
        if self.total_step < self.initial_random_steps and not self.is_test:
            selected_action = self._np_rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)
        else:
            selected_action = self._policy_action(state)
        self.transition = [state, selected_action]
        return selected_action

    def _select_actions(self, state: np.ndarray) -> np.ndarray:
        # a copy: a vector env made with copy=False overwrites its observation array in place
        states = np.array(state)
        n = self.num_envs
        if states.shape != (n, self.obs_dim):
            raise ValueError(f"a vector env of {n} envs needs states of shape "
                             f"({n}, {self.obs_dim}), got {states.shape}")
        acting = self._vec.acting
        k = int(acting.sum())
        if k == 0:
            actions = np.zeros((n, self.action_dim), dtype=np.float32)
        else:
            if self.total_step < self.initial_random_steps and not self.is_test:
                drawn = self._np_rng.uniform(-1.0, 1.0, (k, self.action_dim)).astype(np.float32)
            else:
                drawn = self._policy_actions(states if k == n else states[acting])
            if k == n:
                actions = drawn
            else:
                actions = np.zeros((n, self.action_dim), dtype=np.float32)
                actions[acting] = drawn
        self.transition = [states, actions]
        return actions

    def _policy_actions(self, states: np.ndarray) -> np.ndarray:
        """``[n, action_dim]`` policy samples; one state goes the one-state way, so a vector env
        of one acts exactly like the plain env."""
        if states.shape[0] == 1:
            return self._policy_action(states[0]).reshape(1, -1)
        return self._policy_action(states)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, Any, Any]:
        """Step the env; store the transition unless testing.

        Returns ``(next_state, reward, done)`` with ``done = terminated or truncated``; the
        stored bootstrap flag is ``terminated`` alone (a time limit is not a terminal state).
        With a vector env: arrays of ``num_envs`` rows, and the transitions stored are those of
        ``last_transitions`` (:mod:`fastsac.vector`).
        """
        if self._vec is not None:
            return self._step_vector(action)
        next_state, reward, terminated, truncated, _ = self.env.step(action)
        if not self.is_test:
            check_rewards(self.total_step, reward, next_state)
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
            check_rewards(self.total_step, found.rews, found.next_obs)
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

    def _updates_due(self, new_frames: int) -> int:
        """Whole updates owed for ``new_frames`` more transitions at ``updates_per_step``; the
        fraction carries over (counted exactly, from the start of learning)."""
        self._learn_frames += new_frames
        ratio = self._update_ratio
        due = self._learn_frames * ratio.numerator // ratio.denominator - self._learn_updates
        self._learn_updates += due
        return due

    def _scheduled_update(self) -> tuple:
        """One update of the training loop, numbered by ``update_step``: the first is numbered
        with its frame, the next ones count on; a multiple of ``policy_update_freq`` is a
        policy step."""
        if self.update_step == 0:
            self.update_step = self.total_step - 1
        self.update_step += 1
        return self.update_model(policy_step=self.update_step % self.policy_update_freq == 0)

    def train(self, num_frames: int, plotting_interval: int = 200,
              plot_path: str | os.PathLike | None = "fastsac_training.png",
              progress: bool = True, *,
              checkpoint_path: str | os.PathLike | None = None,
              checkpoint_every: int | None = None,
              metrics_path: str | os.PathLike | None = None) -> dict[str, list[float]]:
        """Train for ``num_frames`` transitions (env steps; with N envs, N per vector step; the
        last vector step may overshoot by up to N - 1), continuing from ``total_step``.

        After each step, ``updates_per_step`` updates per new transition once the warm-up is
        over. Shows a progress bar (transitions, recent score, frames/s) and the notebook's
        five-panel plot: inline every ``plotting_interval`` frames in a notebook; in a script it
        is written to ``plot_path``, drawn by a child process, at the end and at most at each
        tenth of the run (:class:`fastsac.plotting.PlotSchedule`; ``None`` disables it). A
        plain env is closed at the end, as the notebook does; a vector env stays open (close it
        when done). Returns ``self.history``: one row per finished episode (frame, env index,
        score, mean losses, alpha, fps).

        ``checkpoint_path``: write a resumable checkpoint there (``save(include_buffer=True)``)
        each time ``total_step`` passes a multiple of ``checkpoint_every`` frames (default: a
        tenth of ``num_frames``), at least every 10 minutes, and at the end. ``load`` it into an
        agent built the same way and ``train`` on to continue the run exactly (docs/design.md,
        "Resume"). ``metrics_path``: a CSV of the history, one row appended per episode.

        Raises :class:`fastsac.divergence.TrainingDiverged` when a loss, a parameter or a reward
        is not finite (checked at every episode end and before every checkpoint, which is never
        overwritten with a diverged state).

        Data-parallel agents: call ``train`` on every rank with the same ``num_frames``,
        ``checkpoint_path`` (a path on every rank, or None on every rank) and
        ``checkpoint_every``: the ranks meet at each checkpoint. Rank 0 gathers every rank's
        episode rows and alone writes the checkpoint and the metrics (give the other ranks
        ``plot_path=None``).
        """
        from tqdm.auto import tqdm

        _check_int("num_frames", num_frames, 1)
        _check_int("plotting_interval", plotting_interval, 1)
        if checkpoint_every is not None:
            _check_int("checkpoint_every", checkpoint_every, 1)
        self.is_test = False
        inline = in_notebook()
        vector = self._vec is not None
        saves = CheckpointSchedule(checkpoint_path, checkpoint_every or max(1, num_frames // 10),
                                   # data-parallel ranks meet at checkpoints: by frames only
                                   max_seconds=math.inf if self.world else CHECKPOINT_MAX_SECONDS)
        metrics = MetricsLog(metrics_path if self.rank == 0 else None)
        self._metrics = metrics
        metrics.open(self.history)
        state = self._reset_env()
        scores = np.zeros(self.num_envs or 1)  # the running episode return of each env
        losses: list[tuple] = []
        finished = self.history["score"]
        episode_start, episode_frames = time.perf_counter(), 0
        start, collected = self.total_step, 0
        plots = PlotSchedule(plot_path, num_frames)
        plots.start()
        bar = tqdm(total=num_frames, disable=not progress, smoothing=0.05, dynamic_ncols=True,
                   unit="transition" if vector else "frame")
        try:
            while collected < num_frames:
                self.total_step = start + collected + 1  # the frame of the next transition
                action = self.select_action(state)
                if not np.isfinite(action).all():  # diverged: say where, before the env sees it
                    self._check_losses(losses)
                    self._check_parameters()
                    raise TrainingDiverged(self.total_step, "the policy's action", "not finite",
                                           "the actor's output")
                next_state, reward, done = self.step(action)
                if vector:
                    found = self.last_transitions
                    new = len(found.rows)
                    scores[found.rows] += found.rews
                    ended = found.rows[found.ended]
                else:
                    new = 1
                    scores[0] += reward
                    ended = (0,) if done else ()
                collected += new
                self.total_step = start + collected
                episode_frames += new
                if (new and len(self.memory) >= self.batch_size
                        and self.total_step > self.initial_random_steps):
                    for _ in range(self._updates_due(new)):
                        losses.append(self._scheduled_update())
                if len(ended):
                    fps = episode_frames / max(time.perf_counter() - episode_start, 1e-9)
                    ended_scores = [float(scores[i]) for i in ended]
                    self._end_episodes(list(ended), ended_scores, fps, losses)
                    if self.world is None:  # data-parallel: rank 0 writes at checkpoints
                        metrics.append(self.history)
                    scores[list(ended)] = 0.0
                    bar.set_postfix(score=f"{np.mean(finished[-10:]):.1f}", fps=f"{fps:.0f}")
                    losses = []
                    episode_start, episode_frames = time.perf_counter(), 0
                before = self.total_step - new
                last = collected >= num_frames
                # before the env is reset: at an episode boundary, a resumed run's first reset
                # is the reset this run makes next (the last one too: the run's end)
                if saves.due(before, self.total_step) or (last and saves.path is not None):
                    self._write_checkpoint(saves)
                # the last step's episode is reset by the next train() (which starts with one)
                state = self._reset_env() if (not vector and done and not last) else next_state
                bar.update(new)
                if inline and self.total_step // plotting_interval > before // plotting_interval:
                    plots.show(lambda: curves_figure(self.total_step, finished,
                                                     self.loss_curves))
                if plots.due(collected):
                    plots.write(self.total_step, finished, self.loss_curves)
            if saves.path is None:
                self._gather_history()
            if plots.path is not None:
                plots.write(self.total_step, finished, self.loss_curves)
        except TrainingDiverged as exc:
            if saves.path is None:
                raise
            kept = (f"the last checkpoint, {saves.path} (frame {saves.frame}), is kept"
                    if saves.frame is not None else
                    f"the checkpoint at {saves.path} is kept" if os.path.exists(saves.path)
                    else "no checkpoint was written")
            hint = f"{exc.hint}; {kept}" if exc.hint else kept
            raise TrainingDiverged(exc.frame, exc.what, exc.value, hint) from None
        finally:
            metrics.close()
            plots.close()
            bar.close()
            if not vector:  # as the notebook does; a vector env (async: its workers) stays
                self.env.close()  # open for the next train() call: its owner closes it
        self.output_seconds = plots.seconds + saves.seconds
        return self.history

    def _write_checkpoint(self, saves: CheckpointSchedule) -> None:
        """A resumable checkpoint, unless the parameters have diverged (then the last good one
        stays and TrainingDiverged is raised). Data-parallel: every rank's episode rows are
        gathered first, and rank 0 alone writes."""
        started = time.perf_counter()
        self._check_parameters()  # on every rank (equal parameters): all stop together
        self._gather_history()
        if self.world is not None and self.rank != 0:  # its own buffer and streams, first
            checkpoint.save_rank(self, saves.path)
        if self.world is not None:
            distributed.barrier()  # every rank file is whole before rank 0's file names its frame
        if self.rank == 0:
            self.save(saves.path, include_buffer=True)
        if self.world is not None:
            distributed.barrier()  # rank 0's file is whole: the older rank files can go
            if self.rank != 0:
                checkpoint.remove_older_rank_files(saves.path, self.rank, self.total_step)
        saves.written(self.total_step, time.perf_counter() - started)

    def _gather_history(self) -> None:
        """Data-parallel: the episode rows every rank finished since the last gather join rank
        0's history, ordered by (frame, rank, env), and its metrics file."""
        if self.world is None:
            return
        keys, first = checkpoint.HISTORY_KEYS, self._gathered_rows
        mine = [{k: self.history[k][i] for k in keys}
                for i in range(first, len(self.history["frame"]))]
        rows = distributed.gather_rows(mine)
        if rows is not None:
            rows.sort(key=lambda r: (r["frame"], r["rank"], r["env"]))
            for k in keys:
                del self.history[k][first:]
                self.history[k].extend(r[k] for r in rows)
            self._metrics.append(self.history)
        self._gathered_rows = len(self.history["frame"])

    def _end_episodes(self, envs: list[int], scores: list[float], fps: float,
                      losses: list[tuple]) -> None:
        """History rows for the episodes that ended at this step (several with N envs; they
        share the mean losses of the updates since the last episode end). The losses come to
        the host once (one sync per episode end, not per step), and are checked, with the
        parameters, for divergence."""
        row = {"frame": float(self.total_step), "fps": float(fps),
               "alpha": float(self.log_alpha.detach().exp().item())}
        if losses:
            cols = self._check_losses(losses)
            self._check_parameters()
            self.loss_curves.extend(cols)
            means = cols.mean(axis=0)
            row.update(actor_loss=means[0], qf_loss=means[1], vf_loss=means[2],
                       alpha_loss=means[3])
        else:
            row.update(actor_loss=math.nan, qf_loss=math.nan, vf_loss=math.nan,
                       alpha_loss=math.nan)
        for env_index, score in zip(envs, scores, strict=True):
            row.update(env=float(env_index), score=float(score), rank=float(self.rank))
            for key in checkpoint.HISTORY_KEYS:
                self.history[key].append(float(row[key]))

    def _check_losses(self, losses: list[tuple]) -> np.ndarray:
        """The losses of these updates as ``[updates, 4]`` on the host (one copy from the
        device), checked to be finite."""
        if not losses:
            return np.zeros((0, 4))
        if self.device.type == "cpu":  # float() per value beats stacking tensors on CPU
            cols = np.array([[float(x) for x in step] for step in losses], dtype=np.float64)
        else:  # one device-to-host copy for the whole episode
            cols = torch.stack([torch.stack([x.reshape(()).to(self.device) for x in step])
                                for step in losses]).double().cpu().numpy()
        check_losses(self.total_step, cols)
        return cols

    def _finite_check_tensors(self) -> dict[str, list[torch.Tensor]]:
        """The tensors divergence checks look at, by name (FastSAC: its flat buffers)."""
        return {name: slot_parameters(self, name) for name in SLOT_NAMES}

    def _check_parameters(self) -> None:
        """Raise TrainingDiverged if a parameter is not finite (one host sync)."""
        groups = self._finite_check_tensors()
        with torch.no_grad():
            flags = torch.stack([torch.stack([torch.isfinite(t).all() for t in ts]).all()
                                 for ts in groups.values()]).cpu()
        if not bool(flags.all()):
            name = list(groups)[int((~flags).nonzero()[0])]
            raise TrainingDiverged(self.total_step, f"a parameter of {name}", "not finite",
                                   "a learning rate too large?")

    def _plain_env(self, env: gym.Env | None, what: str) -> gym.Env:
        env = env if env is not None else self.env
        if isinstance(env, VectorEnv):
            raise TypeError(f"{what} plays whole episodes in a plain gymnasium.Env; this agent's "
                            "env is a vector env: pass one, e.g. agent.evaluate(env="
                            "fastsac.make_env(env_id))")
        return env

    def test(self) -> list[np.ndarray]:
        """Play one episode with the policy; returns the rendered frames (``[]`` if the env
        does not render ``rgb_array``). The score is printed and kept in ``last_test_score``.
        Needs a plain env (for a vector env's agent: ``evaluate(env=...)``)."""
        self._plain_env(None, "test()")
        self.is_test = True
        state, _ = self.env.reset()
        done = False
        score = 0.0
        frames: list[np.ndarray] = []
        renders = getattr(self.env, "render_mode", None) == "rgb_array"
        while not done:
            if renders:
                frames.append(self.env.render())
            action = self.select_action(state)
            state, reward, done = self.step(action)
            score += reward
        print("score: ", score)
        self.last_test_score = score
        self.env.close()
        return frames

    def evaluate(self, n_episodes: int = 10, env: gym.Env | None = None) -> list[float]:
        """Returns of ``n_episodes`` policy episodes (stochastic actions, as in ``test``), on
        ``env`` or the agent's own; nothing is stored in the buffer."""
        env = self._plain_env(env, "evaluate()")
        was_test, self.is_test = self.is_test, True
        scores = []
        try:
            for _ in range(_check_int("n_episodes", n_episodes, 1)):
                state, _ = env.reset()
                done, score = False, 0.0
                while not done:  # the policy's action, as select_action's in test mode
                    action = self._policy_action(np.asarray(state))
                    state, reward, terminated, truncated, _ = env.step(action)
                    score += float(reward)
                    done = terminated or truncated
                scores.append(score)
        finally:
            self.is_test = was_test
        return scores

    # ---- checkpoints ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, include_buffer: bool = False) -> None:
        """Write weights, optimizer states, log_alpha, the step and update counters, every
        random stream (the agent's, the env's, the buffer's sampler), the training history and
        loss curves (and the replay buffer if asked: then ``load`` + ``train`` continue the run
        exactly) to ``path``, atomically (temp file + rename)."""
        checkpoint.save(self, path, include_buffer)

    def load(self, path: str | os.PathLike) -> None:
        """Load a checkpoint written by ``save``, and its random streams into this agent and its
        env. A truncated, foreign or mismatched file raises ``ValueError`` and leaves the agent
        exactly as it was."""
        checkpoint.load(self, path)
        if self.world is not None and self.rank != 0:
            checkpoint.load_rank(self, path)
        self._after_load()

    def _optimizer_state_problem(self, saved: dict) -> str | None:
        """Why an optimizer ``state_dict`` (already checked to fit the parameters) cannot be
        loaded into this agent, or None: the reference takes any Adam state, as torch does."""
        return None

    def _after_load(self) -> None:
        """Hook: FastSAC re-binds its compiled update to the loaded tensors."""
