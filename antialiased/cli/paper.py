"""The paper's ``main.py`` interface: one parser for evaluation and training, as researchers know it.

``python main.py --data DIR -a resnet50_lpf4 --pretrained -e`` (accuracy), ``... -es -b 8`` (shift
consistency), ``... --out-dir out --lr .01 -ep 60 --finetune`` (fine-tuning) all run verbatim.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from antialiased.cli._errors import user_errors
from antialiased.evaluation.cli_args import add_eval_args
from antialiased.training.cli_args import add_distributed_args, add_train_args

__all__ = ["get_args_parser", "main"]


def add_common_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model and data")
    group.add_argument("--data", metavar="DIR", default=None,
                       help="dataset root in ImageNet layout: DIR/train/<class>/*, DIR/val/<class>/*")
    group.add_argument("-a", "--arch", metavar="ARCH", default="resnet18",
                       help="model name, e.g. resnet50_lpf4 (anti-aliased, filter size 4) or resnet50 "
                            "(torchvision baseline); 'antialiased models' lists them (default: resnet18)")
    group.add_argument("-j", "--workers", default=4, type=int, metavar="N",
                       help="data loading worker processes (default: 4)")
    group.add_argument("-b", "--batch-size", default=256, type=int, metavar="N",
                       help="mini-batch size, per process under DDP (default: 256)")
    group.add_argument("-p", "--print-freq", default=10, type=int, metavar="N",
                       help="log every N batches (default: 10)")
    group.add_argument("--pretrained", action="store_true",
                       help="use the published weights (fine-tuned file for filter size 4)")
    group.add_argument("--force_nonfinetuned", "--force-nonfinetuned", dest="force_nonfinetuned",
                       action="store_true", help="with --pretrained: the from-scratch weights, as in the paper's tables")
    group.add_argument("--weights", default=None, metavar="PATH",
                       help="load model weights from a local file ({'state_dict': ...} or a bare state dict)")
    group.add_argument("--resume", default="", metavar="PATH",
                       help="resume from a training checkpoint (also usable for evaluation)")
    group.add_argument("--save_weights", "--save-weights", dest="save_weights", default=None, metavar="PATH",
                       help="write {'state_dict': ...} without optimizer or DataParallel/DDP prefixes and exit")
    group.add_argument("--gpu", default=None, type=int, metavar="N",
                       help="GPU id to use; falls back to the CPU with a warning when CUDA is absent")
    group.add_argument("--seed", default=None, type=int, help="seed for reproducible runs")
    group.add_argument("--out-dir", "--out_dir", dest="out_dir", default=None, metavar="DIR",
                       help="where results, checkpoints and logs are written")


def get_args_parser(add_help: bool = True, prog: str = "main.py") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, add_help=add_help,
        description="Evaluate or train anti-aliased (shift-invariant) CNNs with the paper's protocol.",
    )
    add_common_args(parser)
    add_eval_args(parser)
    add_train_args(parser)
    add_distributed_args(parser)
    return parser


def _wants_evaluation(args: argparse.Namespace) -> bool:
    return bool(args.evaluate or args.evaluate_shift or args.evaluate_diagonal)


@user_errors("main.py")
def main(argv: Sequence[str] | None = None, mode: str | None = None) -> int:
    """Run evaluation, training or a weight export, as the flags ask.

    ``mode`` is set by the sub-commands: 'eval' (defaults to ``-e`` when no protocol is given) or
    'train'; ``main.py`` leaves it to the flags, like the paper's script.
    """
    prog = {"eval": "antialiased eval", "train": "antialiased train"}.get(mode, "main.py")
    parser = get_args_parser(prog=prog)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if mode == "eval" and not _wants_evaluation(args):
        args.evaluate = True
    if mode == "train" and _wants_evaluation(args):
        parser.error("'antialiased train' does not take -e/-es/-ed; use 'antialiased eval'")

    if args.save_weights and not _wants_evaluation(args) and mode != "train":
        from antialiased.training.checkpoint import export_weights_from_args

        return export_weights_from_args(args) or 0
    if _wants_evaluation(args):
        from antialiased.evaluation.runner import run

        return run(args) or 0
    from antialiased.training.runner import run

    return run(args) or 0
