"""Training: the paper's recipes with exact resume, DDP (torchrun/SLURM) and mixed precision.

:func:`train` runs what a :class:`TrainConfig` describes (``main.py``/``antialiased train`` build
one from their flags); the pieces are usable alone: :func:`train_one_epoch` and :func:`evaluate`
(the inner loops), :func:`build_optimizer` and :func:`build_lr_scheduler`. Checkpoint I/O lives in
:mod:`antialiased.support.checkpoints`; the layout of a run's folder in
:mod:`antialiased.training.checkpoint`.
"""
from antialiased.training.config import DataConfig, LaunchConfig, ModelConfig, OptimConfig, TrainConfig, check_config
from antialiased.training.engine import NonFiniteLossError, evaluate, train_one_epoch
from antialiased.training.metrics_log import EpochLogger
from antialiased.training.optim import build_lr_scheduler, build_optimizer
from antialiased.training.runner import TrainSummary, train

__all__ = [
    "DataConfig",
    "EpochLogger",
    "LaunchConfig",
    "ModelConfig",
    "NonFiniteLossError",
    "OptimConfig",
    "TrainConfig",
    "TrainSummary",
    "build_lr_scheduler",
    "build_optimizer",
    "check_config",
    "evaluate",
    "train",
    "train_one_epoch",
]
