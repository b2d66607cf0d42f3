"""Training and distributed flags of the paper's ``main.py`` (and our additions).

The ``dest`` names are what :func:`antialiased.cli.train.config_from_args` reads; keep them stable.
"""
from __future__ import annotations

import argparse
from typing import Any

from antialiased.cli.task_defaults import LR_SCHEDULE_CHOICES, flag_default
from antialiased.training import DataConfig
from antialiased.training.config import CHECKPOINT_EVERY_MINUTES

__all__ = ["add_train_args", "add_distributed_args", "data_config_from_args"]


def _flag(args: argparse.Namespace, name: str, default: Any) -> Any:
    # Flags shared with evaluation (--crop-size, --strict) are absent from a namespace built by hand
    # or by a parser without the evaluation group.
    return getattr(args, name, default)


def data_config_from_args(args: argparse.Namespace) -> DataConfig:
    """The :class:`DataConfig` of the data flags (the common ones, and --crop-size/--strict where present)."""
    normalization = {k: tuple(v) for k in ("mean", "std") if (v := _flag(args, k, None)) is not None}
    return DataConfig(root=args.data, crop_size=_flag(args, "crop_size", None) or 224, batch_size=args.batch_size,
                      workers=args.workers, augment=not args.no_data_aug, strict=_flag(args, "strict", False),
                      val_split=_flag(args, "val_split", None), max_val_images=_flag(args, "max_val_images", None),
                      seg_size=_flag(args, "seg_size", DataConfig.seg_size),
                      **normalization)


def add_train_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    # '--ep' is listed explicitly: the seed's MobileNet command uses it, and as a mere prefix it
    # would be ambiguous between --epochs and --epochs-shift.
    group.add_argument("-ep", "--epochs", "--ep", dest="epochs", default=flag_default(90), type=int, metavar="N",
                       help="total epochs (default: 90; segmentation: 30)")
    group.add_argument("--start-epoch", dest="start_epoch", default=0, type=int, metavar="N",
                       help="manual epoch number (useful on restarts)")
    group.add_argument("--lr", "--learning-rate", dest="lr", default=flag_default(0.1), type=float, metavar="LR",
                       help="initial learning rate (default: 0.1; segmentation: 0.02, torchvision's reference)")
    group.add_argument("--lr_step", "--lr-step", dest="lr_step", default=30, type=int, metavar="N",
                       help="multiply the learning rate by 0.1 every N epochs (default: 30)")
    group.add_argument("--cos_lr", "--cos-lr", dest="cos_lr", action="store_true",
                       help="cosine learning-rate schedule instead of steps")
    group.add_argument("--lr-schedule", dest="lr_schedule", default=None, choices=LR_SCHEDULE_CHOICES,
                       help="step (x0.1 every --lr_step epochs), cosine (per epoch) or poly ((1 - step/steps)^0.9 "
                            "per optimizer step, torchvision's segmentation reference) (default: step; "
                            "segmentation: poly)")
    group.add_argument("--momentum", default=0.9, type=float, metavar="M", help="SGD momentum (default: 0.9)")
    group.add_argument("--wd", "--weight-decay", dest="weight_decay", default=1e-4, type=float, metavar="W",
                       help="weight decay (default: 1e-4)")
    group.add_argument("-ba", "--batch-accum", "--ba", dest="batch_accum", default=1, type=int, metavar="N",
                       help="accumulate gradients over N batches (effective batch b x N)")
    group.add_argument("--finetune", action="store_true",
                       help="start from the baseline's ImageNet weights (torchvision's IMAGENET1K_V1, or timm's "
                            "for timm/ names): copied by role into the paper's layout, or the baseline converted "
                            "by antialias() for every other name")
    group.add_argument("--no-data-aug", dest="no_data_aug", action="store_true",
                       help="train without RandomResizedCrop and flips (resize + center crop)")
    group.add_argument("-mti", "--max-train-iters", dest="max_train_iters", default=None, type=int, metavar="N",
                       help="stop each epoch after N iterations")
    group.add_argument("--checkpoint-every", dest="checkpoint_every", default=CHECKPOINT_EVERY_MINUTES, type=float,
                       metavar="MINUTES",
                       help="also write a recovery checkpoint (checkpoint_recovery.pth.tar) every MINUTES of an epoch, "
                            "from which --resume auto continues exactly: a kill costs at most that much work "
                            f"(default: {CHECKPOINT_EVERY_MINUTES:g}; 0: only at the end of each epoch)")
    group.add_argument("--checkpoint-every-steps", dest="checkpoint_every_steps", default=0, type=int, metavar="N",
                       help="also write the recovery checkpoint every N batches (at the end of an accumulation "
                            "step; default: 0, off)")
    group.add_argument("--max-val-images", dest="max_val_images", default=None, type=int, metavar="N",
                       help="validate each epoch on N images, evenly spaced in the validation folder's order (the "
                            "same ones every epoch; default: all); evaluating (-e, -es, ...): evaluate those N images")
    group.add_argument("--amp", nargs="?", const="auto", default=None, choices=["auto", "bf16", "fp16"],
                       help="mixed precision: bf16, or fp16 with a grad scaler ('auto': bf16 where supported)")
    group.add_argument("--channels-last", dest="channels_last", action="store_true",
                       help="channels_last memory format (faster convolutions on GPUs)")
    group.add_argument("--compile", action="store_true", help="torch.compile the model")
    group.add_argument("--tensorboard", action="store_true", help="also log to TensorBoard in --out-dir")
    group.add_argument("--num-classes", dest="num_classes", default=None, type=int, metavar="N",
                       help="classifier outputs when training from scratch (default: the number of class "
                            "folders in DIR/train, e.g. 10 for CIFAR-10; --pretrained/--finetune need 1000)")
    group.add_argument("--baseline-weights", dest="baseline_weights", default=None, metavar="PATH",
                       help="with --finetune: a local torchvision state-dict file of the baseline, instead of "
                            "downloading torchvision's ImageNet weights (for machines without internet)")


def add_distributed_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("distributed (torchrun sets these through the environment)")
    group.add_argument("--world-size", dest="world_size", default=-1, type=int,
                       help="number of nodes (with --multiprocessing-distributed) or processes")
    group.add_argument("--rank", default=-1, type=int, help="node rank for distributed training")
    group.add_argument("--dist-url", dest="dist_url", default="env://", help="url used to set up distributed training")
    group.add_argument("--dist-backend", dest="dist_backend", default=None, choices=["nccl", "gloo"],
                       help="nccl on GPUs, gloo on CPU (default: chosen by device)")
    group.add_argument("--multiprocessing-distributed", dest="multiprocessing_distributed", action="store_true",
                       help="launch one process per GPU on this node (the paper's mode; torchrun is preferred)")
