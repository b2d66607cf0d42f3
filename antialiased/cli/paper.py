"""The paper's ``main.py`` interface: one parser for evaluation and training, as researchers know it.

``python main.py --data DIR -a resnet50_lpf4 --pretrained -e`` (accuracy), ``... -es -b 8`` (shift
consistency), ``... --out-dir out --lr .01 -ep 60 --finetune`` (fine-tuning) all run verbatim.

What runs, by flags (``antialiased train`` always trains; ``antialiased eval`` always evaluates):

==============================================  =========================================
flags                                           does
==============================================  =========================================
``-e/-es/-ed``                                  evaluate
``--resume CKPT --save_weights W``              export CKPT's weights to W
``--resume CKPT --save_weights W -e``           export, then evaluate CKPT
``--save_weights W -e`` (no ``--resume``)       error: nothing to export, name ``--resume``
``--data D --save_weights W`` (no ``-e``)       train, then export model_best to W
anything else                                   train
==============================================  =========================================

``--resume auto`` means the newest readable checkpoint in ``--out-dir``. Training resolves it itself
(and starts a new run when there is none); for an export or an evaluation it is resolved here
first, and a missing ``--out-dir`` or a folder without a readable checkpoint is an error.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from antialiased.cli._aa_flags import aa_options_from_args
from antialiased.cli._errors import CommandInterrupted, user_errors
from antialiased.cli._names import resolve_names
from antialiased.cli._parser import ArgumentParser, package_version
from antialiased.cli._recorded_arch import arch_given, use_recorded_arch
from antialiased.cli._training_only import warn_training_only
from antialiased.cli.common_args import add_common_args
from antialiased.cli.eval_args import add_eval_args, wants_evaluation
from antialiased.cli.evaluate import run_evaluation
from antialiased.cli.train import export_weights_from_args, interrupted_training, run_training
from antialiased.cli.train_args import add_distributed_args, add_train_args
from antialiased.errors import CheckpointError, ConfigError
from antialiased.training.checkpoint import describe_progress, find_mid_epoch, find_resumable

__all__ = ["get_args_parser", "main", "add_common_args"]


def get_args_parser(add_help: bool = True, prog: str = "main.py") -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=prog, add_help=add_help,
        description="Evaluate or train anti-aliased (shift-invariant) CNNs with the paper's protocol.",
    )
    parser.add_argument("--version", action="version", version=f"antialiased {package_version()}")
    add_common_args(parser)
    add_eval_args(parser)
    add_train_args(parser)
    add_distributed_args(parser)
    return parser


def _export(args: argparse.Namespace) -> int:
    """``--save_weights`` outside training: the ``--resume`` checkpoint's weights, nothing else."""
    if not args.resume:
        raise ConfigError(f"--save_weights {args.save_weights} exports the weights of a training checkpoint: add "
                          f"--resume CHECKPOINT (e.g. --resume out/model_best.pth.tar); to evaluate a weights file, "
                          f"use --weights PATH without --save_weights")
    return export_weights_from_args(args)


def resolve_resume_auto(args: argparse.Namespace) -> None:
    """``--resume auto`` for an export or an evaluation: the newest readable end-of-epoch checkpoint of ``--out-dir``.

    A newer mid-epoch recovery checkpoint (weights between two validations) is named, not taken: pass it
    with ``--resume PATH`` to evaluate or export it.
    """
    if args.resume != "auto":
        return
    if not args.out_dir:
        raise ConfigError("--resume auto takes the newest readable checkpoint in --out-dir: add --out-dir DIR (the "
                          "training run's folder), or name the file: --resume DIR/checkpoint.pth.tar")
    # only reads: a torn file is named, not renamed
    found = find_resumable(args.out_dir, set_aside=False, mid_epoch=False)
    newer = find_mid_epoch(args.out_dir, found)
    recovery = (f"{newer[0]} ({describe_progress(newer[1])})" if newer else "")
    if found is None:
        hint = (f"its mid-epoch recovery checkpoint {recovery} can be named: --resume {newer[0]}" if newer else
                "give the run's --out-dir, or name the file with --resume PATH")
        raise CheckpointError(f"--resume auto: {args.out_dir} holds no training checkpoint (checkpoint.pth.tar, "
                              f"checkpoint_prev.pth.tar, checkpoint_NNN.pth.tar or model_best.pth.tar: the end of an "
                              f"epoch); {hint}")
    path, checkpoint = found
    note = (f"; a newer mid-epoch recovery checkpoint, {recovery}, holds weights not validated yet: name it with "
            f"--resume {newer[0]} to use it" if newer else "")
    print(f"=> --resume auto: {path} ({describe_progress(checkpoint)}){note}")
    args.resume = str(path)


def route(args: argparse.Namespace, mode: str | None) -> list[str]:
    """The steps the flags ask for, in order: 'export', 'evaluate', 'train' (see the module's table)."""
    evaluating = wants_evaluation(args)
    if mode == "train":
        return ["train"]
    if args.save_weights and (evaluating or args.resume or not args.data):
        return ["export", "evaluate"] if evaluating else ["export"]
    return ["evaluate"] if evaluating else ["train"]


def main(argv: Sequence[str] | None = None, mode: str | None = None) -> int:
    """Run evaluation, training or a weight export, as the flags ask; returns the exit status.

    ``mode`` is set by the sub-commands: 'eval' (defaults to ``-e`` when no protocol is given) or
    'train'; ``main.py`` leaves it to the flags, like the paper's script. The package's errors end
    in one line, ``PROG: error: ...``, and exit status 2.
    """
    prog = {"eval": "antialiased eval", "train": "antialiased train"}.get(mode, "main.py")
    return user_errors(prog)(_main)(argv, mode, prog)


def _main(argv: Sequence[str] | None, mode: str | None, prog: str) -> int:
    parser = get_args_parser(prog=prog)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if arch_given(args):  # first thing: a bad name fails before any folder is read
        resolve_names([args.arch], args.aa_method, aa_options_from_args(args))
    if mode == "eval" and not wants_evaluation(args):
        args.evaluate = True
    if mode == "train" and wants_evaluation(args):
        parser.error("'antialiased train' does not take -e/-es/-ed; use 'antialiased eval'")
    steps = {"export": _export, "evaluate": run_evaluation, "train": run_training}
    todo = route(args, mode)
    warn_training_only(parser, argv, todo)  # e.g. -e --lr 0.3: said, not silently ignored
    if "train" not in todo:  # training resolves 'auto' itself (a new run when there is no checkpoint)
        resolve_resume_auto(args)
    if not arch_given(args):  # -a left out: the model --resume/--weights records (read before any data), else resnet18
        use_recorded_arch(args, todo)
        resolve_names([args.arch], args.aa_method, aa_options_from_args(args))
    for step in todo:
        try:
            status = steps[step](args) or 0
        except KeyboardInterrupt:
            if step != "train":
                raise
            raise CommandInterrupted(interrupted_training(args.out_dir, prog, argv)) from None
        if status:
            return status
    return 0
