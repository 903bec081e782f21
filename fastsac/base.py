"""What both agents share: construction and validation, the interaction loop (select_action,
step, train, test), checkpoints. Subclasses provide the replay buffer, the policy's action for
one state, and ``update_model``; that is where the eager reference and FastSAC differ."""

from __future__ import annotations

import math
import os
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import optim

from fastsac import checkpoint
from fastsac.envs import space_dims
from fastsac.networks import DEFAULT_HIDDEN_SIZES, Actor, CriticQ, CriticV, check_hidden_sizes
from fastsac.plotting import in_notebook, show_or_save, training_figure

LEARNING_RATE = 3e-4


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


def _check_target_entropy(value: Any, action_dim: int) -> float:
    """``None`` means the SAC paper's heuristic, -action_dim."""
    if value is None:
        return -float(action_dim)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"target_entropy must be a float or None, got {type(value).__name__}")
    if not math.isfinite(float(value)):
        raise ValueError(f"target_entropy must be finite, got {value}")
    return float(value)


class AgentBase:
    """SAC agent interacting with a gymnasium environment (the notebook's ``SACAgent`` API).

    Args:
        env: a gymnasium env with a flat Box observation space and a bounded flat Box action
            space. The agent acts in [-1, 1]: wrap the env with
            :class:`fastsac.envs.ActionNormalizer` (as the notebook does) to reach its bounds.
        memory_size: replay buffer capacity.
        batch_size: transitions per update.
        gamma: discount factor, in (0, 1].
        tau: Polyak factor of the V target, in (0, 1].
        initial_random_steps: steps of uniform random actions before the policy acts and
            updates start.
        policy_update_freq: the actor and the V target are updated every this many steps
            (counted by ``total_step``).
        hidden_sizes: widths of the hidden ReLU layers of every network, e.g. ``(256, 256)``
            or ``(256, 256, 256)`` (at least one layer; default: the notebook's 128-128).
            The layers are named ``hidden1`` ... ``hiddenN`` (docs/design.md).
        lr: Adam's learning rate, for every network and for log_alpha.
        target_entropy: the entropy the temperature is tuned towards; ``None`` (default):
            ``-action_dim``.
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when available).
        dtype: ``torch.float32``, or ``torch.float64`` for exact agreement runs.
        seed: seeds torch, the random warm-up actions, the replay sampling and the first env
            reset, so two runs with the same seed match.
    """

    def __init__(
        self,
        env: gym.Env,
        memory_size: int,
        batch_size: int,
        gamma: float = 0.99,
        tau: float = 5e-3,
        initial_random_steps: int = int(1e4),
        policy_update_freq: int = 2,
        *,
        hidden_sizes: tuple[int, ...] = DEFAULT_HIDDEN_SIZES,
        lr: float = LEARNING_RATE,
        target_entropy: float | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        seed: int | None = None,
    ):
        obs_dim, action_dim = space_dims(env)
        self.memory_size = _check_int("memory_size", memory_size, 1)
        self.batch_size = _check_int("batch_size", batch_size, 1, self.memory_size)
        self.gamma = _check_unit_interval("gamma", gamma)
        self.tau = _check_unit_interval("tau", tau)
        self.initial_random_steps = _check_int("initial_random_steps", initial_random_steps, 0)
        self.policy_update_freq = _check_int("policy_update_freq", policy_update_freq, 1)
        self.hidden_sizes = check_hidden_sizes(hidden_sizes)
        self.lr = _check_positive_float("lr", lr)
        self.target_entropy = _check_target_entropy(target_entropy, action_dim)
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if seed is not None:
            seed = _check_int("seed", seed, 0)
            torch.manual_seed(seed)
        self.seed = seed
        self.env = env
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.device = resolve_device(device)
        self.dtype = dtype
        self._np_rng = np.random.default_rng(seed)
        self._reset_seed = seed
        # The agent's own noise stream (policy samples, update noise): two agents in one
        # process do not disturb each other. Without a seed it is drawn from torch's global RNG,
        # so the notebook's torch.manual_seed(...) still makes runs repeat.
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(
            seed if seed is not None else int(torch.randint(0, 2**62, ()).item()))

        self.memory = self._make_memory(obs_dim, self.memory_size, self.batch_size, action_dim,
                                        seed)

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
        self.is_test = False
        self.history: dict[str, list[float]] = {k: [] for k in checkpoint.HISTORY_KEYS}

    # ---- what subclasses provide ------------------------------------------------------------
    def _make_memory(self, obs_dim, size, batch_size, act_dim, seed):
        raise NotImplementedError

    def _make_optimizer(self, params) -> optim.Optimizer:
        return optim.Adam(params, lr=self.lr)

    def _policy_action(self, state: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def update_model(self, batch=None, noise=None):
        raise NotImplementedError

    def _noise(self, shape) -> torch.Tensor:
        """Standard-normal noise from the agent's own generator, on its device and dtype."""
        return torch.randn(shape, generator=self.generator, dtype=self.dtype, device=self.device)

    # ---- interaction ------------------------------------------------------------------------
    def select_action(self, state: np.ndarray) -> np.ndarray:
        """Uniform random in [-1, 1] during the warm-up steps, else a sample of the policy."""
        if self.total_step < self.initial_random_steps and not self.is_test:
            selected_action = self._np_rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)
        else:
            selected_action = self._policy_action(state)
        self.transition = [state, selected_action]
        return selected_action

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """Step the env; store the transition unless testing.

        Returns ``(next_state, reward, done)`` with ``done = terminated or truncated``; the
        stored bootstrap flag is ``terminated`` alone (a time limit is not a terminal state).
        """
        next_state, reward, terminated, truncated, _ = self.env.step(action)
        if not self.is_test:
            self.transition += [reward, next_state, terminated]
            self.memory.store(*self.transition)
        return next_state, float(reward), bool(terminated or truncated)

    def _reset_env(self):
        state, _ = self.env.reset(seed=self._reset_seed)
        self._reset_seed = None  # seed the first reset only; later ones continue the stream
        return state

    def train(self, num_frames: int, plotting_interval: int = 200,
              plot_path: str | os.PathLike | None = "fastsac_training.png",
              progress: bool = True) -> dict[str, list[float]]:
        """Train for ``num_frames`` env steps, continuing from ``total_step``.

        Shows a progress bar (recent score, frames/s) and the notebook's five-panel plot: inline
        every ``plotting_interval`` frames in a notebook; in a script it is written to
        ``plot_path`` (every tenth of the run and at the end; ``None`` disables it). Returns
        ``self.history``: one row per finished episode (frame, score, mean losses, alpha, fps).
        """
        from tqdm.auto import tqdm

        _check_int("num_frames", num_frames, 1)
        _check_int("plotting_interval", plotting_interval, 1)
        self.is_test = False
        inline = in_notebook()
        file_every = max(plotting_interval, num_frames // 10)
        state = self._reset_env()
        losses: list[tuple] = []
        curves: dict[str, list[float]] = {"actor": [], "qf": [], "vf": [], "alpha": []}
        scores: list[float] = []
        score = 0.0
        episode_start, episode_frames = time.perf_counter(), 0
        start = self.total_step
        bar = tqdm(total=num_frames, disable=not progress, unit="frame", smoothing=0.05,
                   dynamic_ncols=True)
        try:
            for self.total_step in range(start + 1, start + num_frames + 1):
                action = self.select_action(state)
                next_state, reward, done = self.step(action)
                state = next_state
                score += reward
                episode_frames += 1
                if (len(self.memory) >= self.batch_size
                        and self.total_step > self.initial_random_steps):
                    losses.append(self.update_model())
                if done:
                    fps = episode_frames / max(time.perf_counter() - episode_start, 1e-9)
                    self._end_episode(score, fps, losses, curves)
                    scores.append(score)
                    bar.set_postfix(score=f"{np.mean(scores[-10:]):.1f}", fps=f"{fps:.0f}")
                    losses, score = [], 0.0
                    episode_start, episode_frames = time.perf_counter(), 0
                    state = self._reset_env()
                bar.update(1)
                at_plot = self.total_step % plotting_interval == 0
                at_file = (self.total_step - start) % file_every == 0
                if (inline and at_plot) or (plot_path is not None and at_file):
                    fig = training_figure(self.total_step, scores, curves["actor"], curves["qf"],
                                          curves["vf"], curves["alpha"])
                    show_or_save(fig, plot_path)
        finally:
            bar.close()
            self.env.close()
        return self.history

    def _end_episode(self, score: float, fps: float, losses: list[tuple],
                     curves: dict[str, list[float]]) -> None:
        """Bring the episode's losses to the host once (one sync per episode, not per step)."""
        row = {"frame": float(self.total_step), "score": float(score), "fps": float(fps),
               "alpha": float(self.log_alpha.detach().exp().item())}
        if losses:
            if self.device.type == "cpu":  # float() per value beats stacking tensors on CPU
                cols = np.array([[float(x) for x in step] for step in losses], dtype=np.float64)
            else:  # one device-to-host copy for the whole episode
                cols = torch.stack([torch.stack([x.reshape(()).to(self.device) for x in step])
                                    for step in losses]).double().cpu().numpy()
            for key, j in (("actor", 0), ("qf", 1), ("vf", 2), ("alpha", 3)):
                curves[key].extend(cols[:, j].tolist())
            means = cols.mean(axis=0)
            row.update(actor_loss=means[0], qf_loss=means[1], vf_loss=means[2],
                       alpha_loss=means[3])
        else:
            row.update(actor_loss=math.nan, qf_loss=math.nan, vf_loss=math.nan,
                       alpha_loss=math.nan)
        for key in checkpoint.HISTORY_KEYS:
            self.history[key].append(float(row[key]))

    def test(self) -> list[np.ndarray]:
        """Play one episode with the policy; returns the rendered frames (``[]`` if the env
        does not render ``rgb_array``). The score is printed and kept in ``last_test_score``."""
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
        env = env if env is not None else self.env
        was_test, self.is_test = self.is_test, True
        scores = []
        try:
            for _ in range(_check_int("n_episodes", n_episodes, 1)):
                state, _ = env.reset()
                done, score = False, 0.0
                while not done:
                    state, reward, terminated, truncated, _ = env.step(self.select_action(state))
                    score += float(reward)
                    done = terminated or truncated
                scores.append(score)
        finally:
            self.is_test = was_test
        return scores

    # ---- checkpoints ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, include_buffer: bool = False) -> None:
        """Write weights, optimizer states, log_alpha, the step count and the training history
        (and the replay buffer if asked) to ``path``, atomically (temp file + rename)."""
        checkpoint.save(self, path, include_buffer)

    def load(self, path: str | os.PathLike) -> None:
        """Load a checkpoint written by ``save``. A truncated, foreign or mismatched file raises
        ``ValueError`` and leaves the agent exactly as it was."""
        checkpoint.load(self, path)
        self._after_load()

    def _after_load(self) -> None:
        """Hook: FastSAC re-binds its compiled update to the loaded tensors."""
