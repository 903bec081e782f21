"""fastsac: a fast, verified Soft Actor-Critic for PyTorch.

``FastSAC`` is a drop-in replacement for the notebook's ``SACAgent`` (SAC v1, the default) and
runs SB3's and CleanRL's SAC (``variant="v2"``); ``fastsac.reference.SACAgent`` is the eager
reference it is checked against.
"""

from fastsac import ops
from fastsac.buffer import ReplayBuffer
from fastsac.checkpoint import Policy, load_policy
from fastsac.envs import make_env
from fastsac.errors import CheckpointError, ConfigError, FastSACError, TrainingDiverged
from fastsac.fast import FastSAC
from fastsac.reference import SACAgent
from fastsac.settings import PRESETS, SACConfig

__all__ = ["FastSAC", "SACAgent", "SACConfig", "PRESETS", "ReplayBuffer", "make_env",
           "load_policy", "Policy", "FastSACError", "ConfigError", "CheckpointError",
           "TrainingDiverged", "ops"]
__version__ = "0.2.0"
