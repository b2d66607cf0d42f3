"""Evaluation flags of the paper's ``main.py`` (and our additions)."""
from __future__ import annotations

import argparse

__all__ = ["add_eval_args"]


def add_eval_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("evaluation")
    group.add_argument("-e", "--evaluate", action="store_true", help="accuracy on the validation set")
    group.add_argument("-es", "--evaluate-shift", dest="evaluate_shift", action="store_true",
                       help="shift consistency: how often two random 224 crops of the 256 image agree")
    group.add_argument("--epochs-shift", dest="epochs_shift", default=5, type=int, metavar="N",
                       help="passes over the validation set for -es (default: 5)")
    group.add_argument("-ed", "--evaluate-diagonal", dest="evaluate_diagonal", action="store_true",
                       help="diagonal stability: the 33 crops at offsets (k, k), k = 0..32")
    group.add_argument("--evaluate-save", dest="evaluate_save", action="store_true",
                       help="write the evaluated images (denormalized) as PNG into --out-dir")
    group.add_argument("-ens", "--ensemble", dest="ens", default=0, type=int, metavar="E",
                       help="average over E random 224 crops of the 256 image (0: center crop only)")
    group.add_argument("-ens_sm", "--ensemble-softmax", dest="ens_sm", action="store_true",
                       help="with -ens: average softmax outputs instead of logits")
    group.add_argument("-ens_cf", "--ensemble-center-first", dest="ens_cf", action="store_true",
                       help="with -ens: always include the center crop")
