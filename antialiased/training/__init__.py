"""Training: the paper's recipes with exact resume, DDP (torchrun/SLURM) and mixed precision.

``runner.run(args)`` is what ``main.py``/``antialiased train`` call; the pieces are usable alone:
``train_one_epoch`` and ``evaluate`` (the inner loops), ``save_checkpoint``/``load_checkpoint``
(atomic, ``weights_only``-safe) and ``export_weights`` (the ``--save_weights`` step).
"""
from antialiased.training.checkpoint import (
    CheckpointError,
    export_weights,
    load_checkpoint,
    save_checkpoint,
    strip_prefixes,
)
from antialiased.training.engine import NonFiniteLossError, evaluate, train_one_epoch
from antialiased.training.optim import build_lr_scheduler, build_optimizer

__all__ = [
    "CheckpointError",
    "NonFiniteLossError",
    "build_lr_scheduler",
    "build_optimizer",
    "evaluate",
    "export_weights",
    "load_checkpoint",
    "save_checkpoint",
    "strip_prefixes",
    "train_one_epoch",
]
