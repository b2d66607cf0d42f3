"""Flags shared by evaluation and training in the paper's ``main.py``: the model and the data."""
from __future__ import annotations

import argparse

from antialiased.cli._aa_flags import add_aa_flags
from antialiased.cli._recorded_arch import arch_default
from antialiased.cli.task_defaults import flag_default
from antialiased.data import default_workers

__all__ = ["add_common_args"]


def add_common_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model and data")
    group.add_argument("--data", metavar="DIR", default=None,
                       help="dataset root: DIR/train/<class>/* and DIR/val/<class>/* (or DIR/test/<class>/*, "
                            "CIFAR-10's usual layout)")
    group.add_argument("--val-split", "--val_split", dest="val_split", default=None, metavar="NAME",
                       help="the validation folder DIR/NAME (default: DIR/val, else DIR/test)")
    group.add_argument("-a", "--arch", metavar="ARCH", default=arch_default(),
                       help="model name, e.g. resnet50_lpf4 (anti-aliased, filter size 4) or resnet50 "
                            "(torchvision baseline), efficientnet_b0_lpf4 (any torchvision classifier, converted), "
                            "timm/resnet50d_lpf4 (timm installed); 'antialiased models' lists them (default: the model "
                            "the --resume checkpoint, else the --weights file, records; else resnet18)")
    add_aa_flags(group)  # --aa-method, --aa-option KEY=VALUE
    group.add_argument("-j", "--workers", default=default_workers(), type=int, metavar="N",
                       help="data loading worker processes (default: the paper's 4, at most the CPUs available: "
                            "%(default)s here)")
    group.add_argument("-b", "--batch-size", default=flag_default(256), type=int, metavar="N",
                       help="mini-batch size, per process under DDP (default: 256; segmentation training: 4)")
    group.add_argument("-p", "--print-freq", default=10, type=int, metavar="N",
                       help="log every N batches (default: 10)")
    group.add_argument("--pretrained", action="store_true",
                       help="ImageNet weights: for the paper's ARCH_lpfN names its published files (the fine-tuned "
                            "one for filter size 4); for baselines torchvision's IMAGENET1K_V1 (the paper's "
                            "baselines) or timm's; for every other ARCH_lpfN name (other torchvision or timm "
                            "models, --aa-method) the baseline's weights in the converted model, to fine-tune")
    group.add_argument("--force_nonfinetuned", "--force-nonfinetuned", dest="force_nonfinetuned",
                       action="store_true", help="with --pretrained: the from-scratch weights, as in the paper's tables")
    group.add_argument("--weights", default=None, metavar="PATH",
                       help="load model weights from a local file ({'state_dict': ...} or a bare state dict)")
    group.add_argument("--resume", default="", metavar="PATH",
                       help="resume from a training checkpoint (also usable for evaluation and --save_weights), or "
                            "'auto': the newest readable checkpoint in --out-dir (training starts a new run when "
                            "there is none; evaluation and --save_weights need one)")
    group.add_argument("--save_weights", "--save-weights", dest="save_weights", default=None, metavar="PATH",
                       help="write {'state_dict': ...} without optimizer or DataParallel/DDP prefixes: of the "
                            "--resume checkpoint (then evaluate, with -e/-es/-ed), or of model_best after training")
    group.add_argument("--mean", default=None, type=float, nargs=3, metavar=("R", "G", "B"),
                       help="input normalization: per-channel mean of [0, 1] pixels (default: ImageNet's "
                            "0.485 0.456 0.406; evaluation of a checkpoint: what its training used)")
    group.add_argument("--std", default=None, type=float, nargs=3, metavar=("R", "G", "B"),
                       help="input normalization: per-channel standard deviation (default: ImageNet's "
                            "0.229 0.224 0.225; evaluation of a checkpoint: what its training used)")
    group.add_argument("--gpu", default=None, type=int, metavar="N",
                       help="GPU id to use; falls back to the CPU with a warning when CUDA is absent")
    group.add_argument("--seed", default=None, type=int, help="seed for reproducible runs")
    group.add_argument("--out-dir", "--out_dir", dest="out_dir", default=None, metavar="DIR",
                       help="where results, checkpoints and logs are written")
