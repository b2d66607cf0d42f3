"""``-a`` left out: the model the run's checkpoint or weights file records, else ``resnet18``.

Evaluating, exporting or resuming the training of a checkpoint without ``-a`` uses the model the
checkpoint was trained as: its ``arch`` entry (the name ``-a`` had in training), with the method and
options of its ``model_spec`` when ``--aa-method``/``--aa-option`` are not given either. The file read
is ``--resume`` (training's ``--resume auto``: the newest readable checkpoint of ``--out-dir``, none
in a new run), else ``--weights`` (a file written by ``--save_weights`` records the same entries).
One ``=>`` line says so. A file that records nothing (a bare state dict) leaves ``resnet18``. A ``-a``
typed on the command line is always kept (the loader then refuses a file of another model, naming
both). The ``-a`` default is marked (like the task defaults of :mod:`antialiased.cli.task_defaults`),
so ``-a resnet18`` typed counts as given.
"""
from __future__ import annotations

import argparse
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from antialiased.models.registry import DEFAULT_METHOD
from antialiased.support.checkpoints import read_weights_file
from antialiased.training.checkpoint import find_resumable, load_for_resume
from antialiased.training.config import RESUME_AUTO

__all__ = ["DEFAULT_ARCH", "arch_default", "arch_given", "use_recorded_arch"]

DEFAULT_ARCH = "resnet18"


class _DefaultArch(str):
    """The ``-a`` default (not typed on the command line)."""


def arch_default() -> str:
    """``resnet18`` marked as the ``-a`` default: it works as the string, and :func:`arch_given` tells it apart.

    Example:
        >>> arch_default() == "resnet18", arch_given(argparse.Namespace(arch=arch_default()))
        (True, False)
    """
    return _DefaultArch(DEFAULT_ARCH)


def arch_given(args: argparse.Namespace) -> bool:
    """Whether ``-a`` was typed on the command line (a value equal to the default counts as given)."""
    return args.arch is not None and not isinstance(args.arch, _DefaultArch)


def _training_checkpoint(args: argparse.Namespace) -> tuple[str, Mapping[str, Any]] | None:
    """The checkpoint training will resume: the named one (its errors name the readable others), or for
    'auto' the newest readable one of ``--out-dir`` (None in a new run). Reads only: the run renames torn
    files and warns about them itself."""
    if args.resume != RESUME_AUTO:
        return args.resume, load_for_resume(args.resume)
    if not getattr(args, "out_dir", None):
        return None  # training says that --out-dir is needed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = find_resumable(args.out_dir, set_aside=False)
    return None if found is None else (str(found[0]), found[1])


def _recording_file(args: argparse.Namespace, training: bool) -> tuple[str, Mapping[str, Any]] | None:
    """``(path, entries)`` of the file the weights come from, or None: ``--resume``, else ``--weights``
    (not when ``--pretrained``, or training's ``--finetune``, chooses the weights instead)."""
    if args.resume:
        if training:
            return _training_checkpoint(args)
        return args.resume, read_weights_file(args.resume).metadata
    weights = getattr(args, "weights", None)
    if not weights or getattr(args, "pretrained", False) or (training and getattr(args, "finetune", False)):
        return None
    return weights, read_weights_file(weights).metadata


def use_recorded_arch(args: argparse.Namespace, steps: Sequence[str]) -> None:
    """Set ``args.arch`` (a plain ``str``) when ``-a`` was left out: the model the ``--resume`` checkpoint
    (else the ``--weights`` file) records, else ``resnet18``; prints one line when a recorded name is
    taken. Reads that file, no data.

    ``steps`` are the command's steps (:func:`antialiased.cli.paper.route`): with 'train', ``--resume auto``
    is resolved here as training will (evaluation and export resolve it before).
    """
    if arch_given(args):
        return
    args.arch = DEFAULT_ARCH  # plain str from here on: it reaches checkpoints and result files
    found = _recording_file(args, "train" in steps)
    if found is None:
        return
    path, metadata = found
    spec = metadata.get("model_spec") if isinstance(metadata.get("model_spec"), Mapping) else {}
    name = metadata.get("arch") or spec.get("name")
    if not isinstance(name, str) or not name:
        return  # nothing recorded (a bare state dict): the default, as before
    args.arch = name
    if getattr(args, "aa_method", None) is None and not getattr(args, "aa_options", None):
        method, options = spec.get("method"), dict(spec.get("options") or {})
        args.aa_method = method if method not in (None, DEFAULT_METHOD) else None
        args.aa_options = sorted(options.items()) or None
    print(f"=> -a not given: using '{name}', the model {path} records (pass -a NAME to choose another)")
