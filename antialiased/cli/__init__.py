"""The ``antialiased`` command: one sub-command per job, each a thin layer over the library.

``antialiased eval`` and ``antialiased train`` take the paper's ``main.py`` flags.
"""
from __future__ import annotations

import difflib
import importlib
import sys
from typing import Sequence

from antialiased.cli._errors import user_errors
from antialiased.cli._parser import package_version

__all__ = ["main", "COMMANDS"]

# sub-command -> (module with main(argv), one-line help); modules load lazily so `--help` is fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("antialiased.cli.paper", "evaluate a model: accuracy (-e), shift consistency (-es), diagonal (-ed), "
                                      "circular/sub-pixel/adversarial shifts (-ec/-ef/-ea), equivariance (-eq)"),
    "audit": ("antialiased.cli.audit", "every shift-invariance protocol on one or more models: report.md/json, plots"),
    "train": ("antialiased.cli.paper", "train or fine-tune a model (the paper's recipes, DDP with torchrun)"),
    "prepare-imagenet": ("antialiased.cli.prepare", "move ILSVRC2012 val images into <wnid>/ folders"),
    "demo": ("antialiased.cli.demo", "train and compare baseline vs anti-aliased nets on generated images"),
    "report": ("antialiased.cli.report", "paper-style tables and Pareto plots from result JSON files"),
    "bench-runtime": ("antialiased.cli.runtime", "forward-pass time of baseline vs anti-aliased models"),
    "models": ("antialiased.cli.models", "list the available model names and published weights"),
    "export": ("antialiased.cli.export", "export a model to ONNX or torch.export, verified against PyTorch"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: antialiased [--version] COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'antialiased COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``antialiased COMMAND ...``; returns the exit status (see :mod:`antialiased.cli._errors`)."""
    return user_errors("antialiased")(_dispatch)(list(sys.argv[1:] if argv is None else argv))


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"antialiased {package_version()}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        print(f"antialiased: unknown command {name!r}.{hint}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    run = user_errors(f"antialiased {name}")(module.main)
    if name in ("eval", "train"):
        return run(rest, mode=name) or 0
    return run(rest) or 0
