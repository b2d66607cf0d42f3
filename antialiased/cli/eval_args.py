"""Evaluation flags of the paper's ``main.py`` (and our additions), and the :class:`EvalConfig` they make."""
from __future__ import annotations

import argparse

from antialiased.cli._aa_flags import aa_options_from_args
from antialiased.cli.invariance_args import (PROTOCOL_FLAGS, add_invariance_options, add_protocol_flags,
                                             invariance_options_from_args, segmentation_options_from_args,
                                             task_from_args)
from antialiased.errors import ConfigError
from antialiased.evaluation import (DataSettings, EnsembleOptions, EvalConfig, ModelSource, RunSettings,
                                    ShiftOptions)

__all__ = ["add_eval_args", "wants_evaluation", "protocols_from_args", "eval_config_from_args"]

# flag dest -> protocol name (``-e`` becomes "ensemble" with ``-ens E``), in the order results are reported:
# made from the protocol registry (antialiased.evaluation.protocols), as the flags themselves are
_PROTOCOL_FLAGS = PROTOCOL_FLAGS


def add_eval_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("evaluation")
    add_protocol_flags(group)  # -e -es -ed -ec -ef -ea -eq, from the protocol registry
    group.add_argument("--epochs-shift", dest="epochs_shift", default=5, type=int, metavar="N",
                       help="passes over the validation set for -es (default: 5)")
    group.add_argument("--evaluate-save", dest="evaluate_save", action="store_true",
                       help="write the evaluated images (denormalized) as PNG into --out-dir")
    group.add_argument("-ens", "--ensemble", dest="ens", default=0, type=int, metavar="E",
                       help="average over E random 224 crops of the 256 image (0: center crop only)")
    group.add_argument("-ens_sm", "--ensemble-softmax", dest="ens_sm", action="store_true",
                       help="with -ens: average softmax outputs instead of logits")
    group.add_argument("-ens_cf", "--ensemble-center-first", dest="ens_cf", action="store_true",
                       help="with -ens: always include the center crop")
    _add_protocol_options(parser)


def _add_protocol_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("evaluation options (beyond the paper's script)")
    group.add_argument("--crop-size", dest="crop_size", default=None, type=int, metavar="N",
                       help="crop fed to the model (default: the crop a checkpoint's training validated at, and "
                            "weights exported from it; else 224; training: 224, segmentation training: 480)")
    group.add_argument("--max-shift", dest="max_shift", default=None, type=int, metavar="N",
                       help="images are resized and center-cropped to crop-size + max-shift (256); -es draws "
                            "offsets in {0..N-1}, -ed uses k = 0..N (default: a checkpoint's recorded resize - "
                            "crop, e.g. 37 - 32 = 5 for CIFAR; else 32)")
    group.add_argument("--independent-offsets", dest="independent_offsets", action="store_true",
                       help="-es: draw the two offsets per image instead of per batch (the paper: per batch)")
    group.add_argument("--strict", action="store_true",
                       help="stop at the first unreadable or non-image file instead of skipping and counting it")
    group.add_argument("--cache-mb", dest="cache_mb", default=4096, type=int, metavar="MB",
                       help="-es: keep the first pass's decoded 256x256 images in memory for the other passes "
                            "when they fit in MB megabytes: normalized when all of them fit so, else uint8 "
                            "(0: decode every pass; default: 4096)")
    group.add_argument("--forward-batch", dest="forward_batch", default=None, type=int, metavar="N",
                       help="-es: gather the crop pairs of several -b batches (each keeps its own offsets) into "
                            "forward passes of at least N crops (default: 256 on a GPU, one batch on the CPU)")
    group.add_argument("--fast-decode", dest="fast_decode", action="store_true",
                       help="APPROXIMATE: let libjpeg decode at a reduced scale (draft mode) before the resize; "
                            "faster, slightly different pixels than the paper's protocol")
    group.add_argument("--no-channels-last", dest="no_channels_last", action="store_true",
                       help="keep the contiguous memory format (evaluation uses channels_last by default; "
                            "--channels-last is implied)")
    group.add_argument("--class-list", dest="class_list", default=None, metavar="FILE",
                       help="text file with one class folder name per line, in the model's output order, "
                            "for a dataset holding only some of the model's classes (each folder once). It must "
                            "equal the class list a checkpoint recorded (weights trained on other classes are "
                            "refused); for ImageNet weights (published, torchvision, timm ImageNet-1k) outputs "
                            "follow the sorted order of the 1000 WordNet ids, so a list of wnids must be sorted")
    group.add_argument("--no-progress", dest="no_progress", action="store_true", help="no progress bar")
    add_invariance_options(group)


def wants_evaluation(args: argparse.Namespace) -> bool:
    return any(getattr(args, flag) for flag, _ in _PROTOCOL_FLAGS)


def protocols_from_args(args: argparse.Namespace) -> tuple[str, ...]:
    """The protocol names of the flags, checking the combinations only flags can get wrong."""
    checks = [(args.ens < 0, f"-ens must be >= 0, got {args.ens}"),
              (args.ens > 0 and not args.evaluate, "-ens E averages crops for the accuracy; add -e"),
              ((args.ens_sm or args.ens_cf) and not args.ens, "-ens_sm and -ens_cf need -ens E")]
    for failed, message in checks:
        if failed:
            raise ConfigError(message)
    names = [name for flag, name in _PROTOCOL_FLAGS if getattr(args, flag)]
    return tuple("ensemble" if name == "accuracy" and args.ens else name for name in names)


def _run_settings(args: argparse.Namespace) -> RunSettings:
    if args.multiprocessing_distributed:
        raise ConfigError("evaluation does not spawn processes itself (--multiprocessing-distributed); launch "
                          "one process per GPU with torchrun: torchrun --nproc_per_node=N main.py ... -e")
    return RunSettings(gpu=args.gpu, amp=args.amp, channels_last=not args.no_channels_last, compile=args.compile,
                       seed=args.seed, progress=not args.no_progress, print_freq=args.print_freq,
                       dist_backend=args.dist_backend, dist_url=args.dist_url, world_size=args.world_size,
                       rank=args.rank)


def eval_config_from_args(args: argparse.Namespace) -> EvalConfig:
    """The typed configuration of the evaluation flags (dest names as defined above and in common_args)."""
    model = ModelSource(args.arch, pretrained=args.pretrained, force_nonfinetuned=args.force_nonfinetuned,
                        weights=args.weights, checkpoint=args.resume or None,
                        aa_method=getattr(args, "aa_method", None), aa_options=aa_options_from_args(args))
    data = DataSettings(args.data, batch_size=args.batch_size, workers=args.workers, crop_size=args.crop_size,
                        max_shift=args.max_shift, strict=args.strict, class_list=args.class_list,
                        fast_decode=args.fast_decode, val_split=args.val_split, max_images=args.max_val_images,
                        mean=None if args.mean is None else tuple(args.mean),
                        std=None if args.std is None else tuple(args.std))
    protocols = protocols_from_args(args)
    return EvalConfig(model=model, data=data, protocols=protocols, run=_run_settings(args),
                      shift=ShiftOptions(epochs=args.epochs_shift, independent=args.independent_offsets,
                                         forward_batch=args.forward_batch),
                      ensemble=EnsembleOptions(crops=args.ens, softmax=args.ens_sm, center_first=args.ens_cf),
                      invariance=invariance_options_from_args(args, protocols),
                      cache_mb=args.cache_mb, out_dir=args.out_dir or "results", save_images=args.evaluate_save,
                      task=task_from_args(args), segmentation=segmentation_options_from_args(args, args.crop_size))
