"""``main.py``/``antialiased train``: the parsed flags become a :class:`TrainConfig`, then one library call.

Also the paper's export step, ``main.py -a ARCH --resume CKPT --save_weights OUT`` (no training).
The flags themselves are defined in :mod:`antialiased.cli.train_args`.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import warnings
from typing import Sequence

from antialiased.cli._aa_flags import aa_options_from_args
from antialiased.errors import AntialiasedError, ConfigError
from antialiased.support.checkpoints import export_weights
from antialiased.cli.task_defaults import with_task_defaults
from antialiased.cli.train_args import data_config_from_args
from antialiased.training import LaunchConfig, ModelConfig, OptimConfig, TrainConfig, train
from antialiased.training.checkpoint import describe_progress, find_resumable
from antialiased.training.config import CHECKPOINT_EVERY_MINUTES

__all__ = ["config_from_args", "run_training", "export_weights_from_args", "interrupted_training",
           "resume_command"]


def _flag(args: argparse.Namespace, name: str, default):
    # Flags shared with evaluation (--crop-size, --strict, --no-progress) are absent from a namespace
    # built by hand or by a parser without the evaluation group.
    return getattr(args, name, default)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The typed configuration of the training flags (dest names as in :mod:`antialiased.cli.train_args`)."""
    args = with_task_defaults(args)  # -b, --lr, -ep, --crop-size, --lr-schedule left out: the task's recipe
    data = data_config_from_args(args)
    model = ModelConfig(arch=args.arch, pretrained=args.pretrained, force_nonfinetuned=args.force_nonfinetuned,
                        weights=args.weights, finetune=args.finetune,
                        baseline_weights=_flag(args, "baseline_weights", None),
                        num_classes=_flag(args, "num_classes", None), aa_method=_flag(args, "aa_method", None),
                        aa_options=aa_options_from_args(args))
    optim = OptimConfig(epochs=args.epochs, start_epoch=args.start_epoch, lr=args.lr,
                        schedule=args.lr_schedule, lr_step=args.lr_step, momentum=args.momentum,
                        weight_decay=args.weight_decay, batch_accum=args.batch_accum,
                        max_train_iters=args.max_train_iters)
    launch = LaunchConfig(gpu=args.gpu, world_size=args.world_size, rank=args.rank, dist_url=args.dist_url,
                          dist_backend=args.dist_backend, spawn_per_gpu=args.multiprocessing_distributed)
    return TrainConfig(data=data, out_dir=args.out_dir, model=model, optim=optim, launch=launch,
                       resume=args.resume or None, task=_flag(args, "task", None), save_weights=args.save_weights,
                       seed=args.seed, amp=args.amp,
                       channels_last=args.channels_last, compile=args.compile, tensorboard=args.tensorboard,
                       print_freq=args.print_freq, progress=not _flag(args, "no_progress", False),
                       checkpoint_every=_flag(args, "checkpoint_every", CHECKPOINT_EVERY_MINUTES),
                       checkpoint_every_steps=_flag(args, "checkpoint_every_steps", 0))


def export_weights_from_args(args: argparse.Namespace) -> int:
    """``main.py -a ARCH --resume CKPT --save_weights OUT``: the paper's post-processing step.

    Without ``--resume`` but with ``--data`` it trains first and then exports ``model_best``.
    """
    if not args.resume and getattr(args, "data", None):
        return run_training(args)
    if not args.resume:
        raise ConfigError("--save_weights needs --resume CHECKPOINT (the training checkpoint to export), e.g. "
                          "main.py -a resnet18_lpf4 --resume out/model_best.pth.tar --save_weights weights.pth.tar")
    out = export_weights(args.resume, args.save_weights, arch=args.arch)
    print(f"=> wrote weights of {args.resume} to {out}")
    return 0


def run_training(args: argparse.Namespace) -> int:
    """Train as the flags ask (or only export weights: ``--resume`` and ``--save_weights`` without ``--data``)."""
    if not args.data:
        if args.resume and args.save_weights:
            return export_weights_from_args(args)
        raise ConfigError("training needs --data DIR (DIR/train/<class>/*, DIR/val/<class>/*)")
    train(config_from_args(args))
    return 0


def resume_command(prog: str, argv: Sequence[str]) -> str:
    """The command that continues an interrupted run: the same flags, ``--resume auto`` instead of any other.

    Example:
        >>> resume_command("antialiased train", ["--data", "d", "--resume", "x.pth", "--out-dir", "o b"])
        "antialiased train --data d --out-dir 'o b' --resume auto"
    """
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--resume":
            skip = True
        elif not arg.startswith("--resume="):
            args.append(arg)
    head = prog
    if prog == "main.py":  # the paper's script, run as the user ran it
        head = f"python {shlex.quote(sys.argv[0]) if sys.argv[0].endswith('.py') else 'main.py'}"
    return " ".join([head, shlex.join([*args, "--resume", "auto"])])


def interrupted_training(out_dir: str | None, prog: str, argv: Sequence[str]) -> str:
    """The one line Ctrl-C ends training with: the newest checkpoint and the command that continues from it.

    Empty on the ranks other than 0 of a multi-process run (rank 0 speaks for the run).
    """
    if os.environ.get("RANK", "0") != "0":
        return ""
    command = resume_command(prog, argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a torn file is named by the resume itself
            found = find_resumable(out_dir, set_aside=False) if out_dir else None
    except AntialiasedError:
        found = None
    if found is None:
        return (f"interrupted before the first checkpoint was written in {out_dir}; nothing to resume (the same "
                f"command starts again): {command}")
    path, checkpoint = found
    return f"interrupted; the newest checkpoint is {path} ({describe_progress(checkpoint)}). Continue with: {command}"
