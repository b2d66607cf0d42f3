"""Training flags given to a run that does not train: one warning naming them, never silently ignored.

``main.py`` and ``antialiased eval`` share the paper's whole flag set, so ``... -e --lr 0.3`` parses; the
evaluation (or a weight export) has no use for ``--lr``. :data:`TRAINING_ONLY` lists the training
flags evaluation and export do not read (by ``dest``); those of the training group they do read
(``--amp``, ``--compile``, ``--channels-last``, ``--max-val-images``) are not in it. Only flags typed on
the command line count (:func:`given_dests`), a value equal to the default included.
"""
from __future__ import annotations

import argparse
import warnings
from typing import Sequence

__all__ = ["TRAINING_ONLY", "given_dests", "training_only_given", "warn_training_only"]

# dests of the training flags that only training reads (antialiased.cli.train_args)
TRAINING_ONLY: tuple[str, ...] = (
    "epochs", "start_epoch", "lr", "lr_step", "cos_lr", "lr_schedule", "momentum", "weight_decay", "batch_accum",
    "finetune", "no_data_aug", "max_train_iters", "checkpoint_every", "checkpoint_every_steps", "tensorboard",
    "num_classes", "baseline_weights",
)

# what a run without training does, by its steps (antialiased.cli.paper.route)
_DOING = {("evaluate",): "only evaluating (-e/-es/..., or 'antialiased eval')",
          ("export",): "only exporting weights (--resume with --save_weights)",
          ("export", "evaluate"): "only exporting weights and evaluating"}

_UNSET = object()


def given_dests(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The ``dest`` of every option ``argv`` gives (any alias or prefix, ``--flag=value`` too).

    argparse fills in a default only where the namespace has no value yet: parsing into a namespace
    holding a marker for every option leaves the marker exactly where nothing was given.

    Example:
        >>> p = argparse.ArgumentParser()
        >>> _ = p.add_argument("--lr", "--learning-rate", type=float, default=0.1)
        >>> _ = p.add_argument("--wd", dest="weight_decay", type=float, default=1e-4)
        >>> sorted(given_dests(p, ["--learning-rate=0.1"]))
        ['lr']
    """
    marked = argparse.Namespace(**{a.dest: _UNSET for a in parser._actions if a.dest is not argparse.SUPPRESS})
    parsed, _ = parser.parse_known_args(list(argv), namespace=marked)
    return {dest for dest, value in vars(parsed).items() if value is not _UNSET}


def _label(parser: argparse.ArgumentParser, dest: str) -> str:
    """How the help names an option: ``-ep/--epochs`` (short form first), else its first long form."""
    flags = next(a.option_strings for a in parser._actions if a.dest == dest)
    return "/".join(flags[:2]) if not flags[0].startswith("--") and len(flags) > 1 else flags[0]


def training_only_given(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """The training-only flags ``argv`` gives, named as the help does, in :data:`TRAINING_ONLY`'s order."""
    given = given_dests(parser, argv)
    return [_label(parser, dest) for dest in TRAINING_ONLY if dest in given]


def warn_training_only(parser: argparse.ArgumentParser, argv: Sequence[str], steps: Sequence[str]) -> None:
    """One warning naming the training-only flags of ``argv`` when ``steps`` do not train; nothing otherwise."""
    if "train" in steps:
        return
    named = training_only_given(parser, argv)
    if named:
        doing = _DOING.get(tuple(steps), "not training")
        warnings.warn(f"{', '.join(named)} {'has' if len(named) == 1 else 'have'} no effect when {doing}: "
                      f"{'it is a training flag' if len(named) == 1 else 'they are training flags'}; leave "
                      f"{'it' if len(named) == 1 else 'them'} out", UserWarning, stacklevel=2)
