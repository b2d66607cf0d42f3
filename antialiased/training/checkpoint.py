"""Training checkpoints: atomic writes, safe loading, and the paper's weight export.

A checkpoint is a dict with ``epoch`` (epochs completed), ``arch``, ``state_dict`` (no DataParallel,
DDP or ``torch.compile`` prefixes), ``best_acc1``, ``optimizer``, ``lr_scheduler``, ``scaler`` and
``rng_state`` (one entry per rank). Everything in it loads with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "link_checkpoint",
    "load_checkpoint",
    "remove_stale_temporaries",
    "strip_prefixes",
    "export_weights",
    "export_weights_from_args",
]

from antialiased.errors import CheckpointError
from antialiased.support.checkpoints import (check_arch, export_weights, link_checkpoint, load_checkpoint,
                                             remove_stale_temporaries, save_checkpoint, strip_prefixes)


def model_state_from(checkpoint: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The de-prefixed model weights of a training checkpoint, weights file or bare state dict."""
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(f"{source} has no model state dict (expected a 'state_dict' entry)")
    return strip_prefixes(state)


def export_weights_from_args(args: argparse.Namespace) -> int:
    """``main.py -a ARCH --resume CKPT --save_weights OUT``: the paper's post-processing step.

    Without ``--resume`` but with ``--data`` it trains first and then exports ``model_best``.
    """
    if not args.resume and getattr(args, "data", None):
        from antialiased.training.runner import run

        return run(args)
    if not args.resume:
        raise SystemExit("--save_weights needs --resume CHECKPOINT (the training checkpoint to export), e.g. "
                         "main.py -a resnet18_lpf4 --resume out/model_best.pth.tar --save_weights weights.pth.tar")
    try:
        out = export_weights(args.resume, args.save_weights, arch=args.arch)
    except CheckpointError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"=> wrote weights of {args.resume} to {out}")
    return 0
