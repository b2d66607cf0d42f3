"""``main.py ... -e/-es/-ed`` and ``antialiased eval``: flags -> :class:`EvalConfig` -> one library call -> print."""
from __future__ import annotations

import argparse
import logging
import sys

from antialiased.cli.eval_args import eval_config_from_args
from antialiased.evaluation import EvalReport, evaluate
from antialiased.support.distributed import is_main_process

__all__ = ["run_evaluation", "print_report"]


def print_report(report: EvalReport) -> None:
    """The lines of the paper's script (`` * Acc@1 ...``, ``Consistency ...``), skipped files, result files."""
    for run in report.runs:
        for line in run.lines:
            print(line)
        if report.skipped_files:
            print(f"Skipped {len(report.skipped_files)} unreadable or non-image file(s), e.g. "
                  f"{report.skipped_files[0]} (--strict makes this an error)")
        if run.path is not None:
            print(f"Results written to {run.path}")


def run_evaluation(args: argparse.Namespace) -> int:
    """Evaluate as the flags ask; returns the exit status (errors are raised, see :mod:`antialiased.cli._errors`)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    report = evaluate(eval_config_from_args(args))
    if is_main_process():
        print_report(report)
    return 0
