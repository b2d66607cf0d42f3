"""``-a`` left out: the model a ``--resume`` checkpoint records, else ``resnet18``.

Evaluating (or exporting the weights of) a training checkpoint without ``-a`` evaluates the model the
checkpoint was trained as: its ``arch`` entry (the name ``-a`` had in training), with the method and
options of its ``model_spec`` when ``--aa-method``/``--aa-option`` are not given either. One ``=>``
line says so. A ``-a`` typed on the command line is always kept (the loader then refuses a checkpoint
of another model, naming both). Training keeps ``resnet18`` as its default: a resumed run's ``-a``
must be given, as in the paper's script. The ``-a`` default is marked (like the task defaults of
:mod:`antialiased.cli.task_defaults`), so ``-a resnet18`` typed counts as given.
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

from antialiased.models.registry import DEFAULT_METHOD
from antialiased.support.checkpoints import read_weights_file

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


def use_recorded_arch(args: argparse.Namespace, steps: Sequence[str]) -> None:
    """Set ``args.arch`` (a plain ``str``) when ``-a`` was left out: the ``--resume`` checkpoint's model, else
    ``resnet18``; prints one line when the checkpoint's name is taken. Reads the checkpoint, no data.

    ``steps`` are the command's steps (:func:`antialiased.cli.paper.route`); training keeps ``resnet18``.
    """
    if arch_given(args):
        return
    args.arch = DEFAULT_ARCH  # plain str from here on: it reaches checkpoints and result files
    if "train" in steps or not args.resume:
        return
    metadata = read_weights_file(args.resume).metadata
    spec = metadata.get("model_spec") if isinstance(metadata.get("model_spec"), Mapping) else {}
    name = metadata.get("arch") or spec.get("name")
    if not isinstance(name, str) or not name:
        return  # nothing recorded (a bare state dict): the default, as before
    args.arch = name
    if getattr(args, "aa_method", None) is None and not getattr(args, "aa_options", None):
        method, options = spec.get("method"), dict(spec.get("options") or {})
        args.aa_method = method if method not in (None, DEFAULT_METHOD) else None
        args.aa_options = sorted(options.items()) or None
    print(f"=> -a not given: using '{name}', the model {args.resume} records (pass -a NAME to choose another)")
