"""``antialiased audit -a MODEL [-a MODEL ...] --data DIR --out-dir OUT``: every shift-invariance protocol, one report."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from antialiased.cli._names import resolve_names
from antialiased.cli._parser import ArgumentParser
from antialiased.cli.invariance_args import (add_invariance_options, invariance_options_from_args,
                                             segmentation_options_from_args)
from antialiased.data import default_workers
from antialiased.evaluation import DataSettings, ModelSource, RunSettings, ShiftOptions
from antialiased.evaluation.audit import (AUDIT_PROTOCOLS, PROTOCOL_ALIASES, AuditConfig, audit_task,
                                          resolve_protocols, run_audit)
from antialiased.evaluation.protocols import audit_protocols
from antialiased.reporting.audit import write_audit_report
from antialiased.support.distributed import is_main_process

__all__ = ["get_args_parser", "main", "model_sources"]


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="antialiased audit", add_help=add_help,
        description="Measure shift invariance every way the field does (random-crop, circular and sub-pixel "
                    "consistency, adversarial grid accuracy, diagonal stability, consistency by shift distance, "
                    "per-layer equivariance) on one or more models, with 95% bootstrap intervals; writes "
                    "report.md, report.json and PNG plots with the models side by side.")
    parser.add_argument("-a", "--arch", dest="models", action="append", required=True,
                        metavar="MODEL[@METHOD][=WEIGHTS]",
                        help="a model name ('antialiased models' lists them), optionally @METHOD, the anti-aliasing "
                             "method of an _lpfN name (as --aa-method: resnet18_lpf3@lps), and =PATH of a weights "
                             "file or training checkpoint; repeat for more models (methods side by side)")
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="dataset root holding val/<class>/* or test/<class>/* (or that folder itself)")
    parser.add_argument("--val-split", default=None, metavar="NAME",
                        help="the folder DIR/NAME to audit on (default: DIR/val, else DIR/test)")
    parser.add_argument("--out-dir", default="audit", metavar="DIR", help="where the report goes (default: ./audit)")
    parser.add_argument("--protocols", nargs="+", default=None, metavar="P",
                        help=f"protocols to run (default: all of the models' task): {', '.join(AUDIT_PROTOCOLS)}, or "
                             f"the flags' short names {', '.join(sorted(PROTOCOL_ALIASES))}; segmentation models: "
                             f"{', '.join(audit_protocols('segmentation'))} (the same short names)")
    parser.add_argument("--pretrained", action="store_true", help="published weights for models given without =PATH")
    parser.add_argument("--force-nonfinetuned", dest="force_nonfinetuned", action="store_true",
                        help="with --pretrained: the from-scratch weights")
    _add_protocol_args(parser)
    _add_run_args(parser)
    return parser


def _add_protocol_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("protocols")
    group.add_argument("--crop-size", type=int, default=None, metavar="N",
                       help="(default: the crop a checkpoint's training used, per model; else 224)")
    group.add_argument("--max-shift", type=int, default=None, metavar="N",
                       help="images are resized and center-cropped to crop + N; shifts up to N (default: a "
                            "checkpoint's recorded resize - crop, per model; else 32)")
    group.add_argument("--epochs-shift", type=int, default=5, metavar="N",
                       help="passes over the data for -es, -ec, -ef (default: 5)")
    group.add_argument("--independent-offsets", action="store_true", help="-es: offsets per image, not per batch")
    add_invariance_options(group)
    group.add_argument("--seed", type=int, default=0, help="offsets and bootstrap seed (default: 0)")


def _add_run_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("running")
    group.add_argument("-b", "--batch-size", type=int, default=8, metavar="N",
                       help="images per loader batch (the unit of -es's offsets; default: 8)")
    group.add_argument("-j", "--workers", type=int, default=default_workers(), metavar="N",
                       help="data loading workers (default: 4, at most the CPUs available: %(default)s here)")
    group.add_argument("--forward-batch", type=int, default=None, metavar="N",
                       help="shifted copies per forward pass (default: 256 on a GPU, one batch on the CPU)")
    group.add_argument("--gpu", type=int, default=None, metavar="N", help="GPU id (default: all/any)")
    group.add_argument("--amp", choices=("bf16", "fp16"), default=None, help="autocast dtype (default: float32)")
    group.add_argument("--no-channels-last", action="store_true", help="keep the contiguous memory format")
    group.add_argument("--cache-mb", type=int, default=4096, metavar="MB",
                       help="memory for decoded images reused by the multi-pass protocols (default: 4096)")
    group.add_argument("--class-list", default=None, metavar="FILE",
                       help="one class folder name per line, in the model's output order (a subset of classes, "
                            "each once); it must equal the class list a checkpoint recorded, and for ImageNet "
                            "weights a list of wnids must be in sorted order (as 'antialiased eval --class-list')")
    group.add_argument("--max-val-images", dest="max_val_images", type=int, default=None, metavar="N",
                       help="audit N images, evenly spaced in the folder's order (the selection of 'antialiased "
                            "eval --max-val-images'; default: all)")
    group.add_argument("--strict", action="store_true", help="stop at the first unreadable file")
    group.add_argument("--fast-decode", action="store_true", help="APPROXIMATE: JPEG draft-mode decoding")
    group.add_argument("--dist-backend", default=None, help="torchrun: process group backend (default: nccl/gloo)")
    group.add_argument("--no-plots", action="store_true", help="no PNG plots (no matplotlib needed)")
    group.add_argument("--no-progress", action="store_true", help="no progress bars")
    group.add_argument("--digits", type=int, default=2, help="decimals in report.md (default: 2)")


def model_sources(specs: Sequence[str], *, pretrained: bool, force_nonfinetuned: bool) -> tuple[ModelSource, ...]:
    """``NAME[@METHOD]`` or ``NAME[@METHOD]=PATH`` (weights file or checkpoint) -> model sources.

    Example:
        >>> [(m.name, m.aa_method, m.pretrained, m.weights) for m in model_sources(
        ...     ["resnet18", "resnet18_lpf4=w.pth", "resnet18_lpf3@lps=lps.pth"], pretrained=True,
        ...     force_nonfinetuned=False)]  # doctest: +NORMALIZE_WHITESPACE
        [('resnet18', None, True, None), ('resnet18_lpf4', None, False, 'w.pth'),
         ('resnet18_lpf3', 'lps', False, 'lps.pth')]
    """
    sources = []
    for spec in specs:
        name, _, path = spec.partition("=")
        name, _, method = name.partition("@")
        sources.append(ModelSource(name, weights=path or None, pretrained=pretrained and not path,
                                   force_nonfinetuned=force_nonfinetuned and not path, aa_method=method or None))
    return tuple(sources)


def audit_config(args: argparse.Namespace) -> AuditConfig:
    data = DataSettings(args.data, batch_size=args.batch_size, workers=args.workers, crop_size=args.crop_size,
                        max_shift=args.max_shift, strict=args.strict, class_list=args.class_list,
                        fast_decode=args.fast_decode, val_split=args.val_split, max_images=args.max_val_images)
    run = RunSettings(gpu=args.gpu, amp=args.amp, channels_last=not args.no_channels_last, seed=args.seed,
                      progress=not args.no_progress, dist_backend=args.dist_backend)
    models = model_sources(args.models, pretrained=args.pretrained, force_nonfinetuned=args.force_nonfinetuned)
    task = audit_task(models, args.task)
    protocols = resolve_protocols(args.protocols, task)
    return AuditConfig(models=models, data=data, protocols=protocols, run=run,
                       shift=ShiftOptions(epochs=args.epochs_shift, independent=args.independent_offsets,
                                          forward_batch=args.forward_batch),
                       invariance=invariance_options_from_args(args, protocols),
                       cache_mb=args.cache_mb, out_dir=args.out_dir, task=task,
                       segmentation=segmentation_options_from_args(args, args.crop_size))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the audit; the package's errors are turned into one line and exit 2 by the caller."""
    args = get_args_parser().parse_args(argv)
    for model in args.models:  # first thing: before any folder is read
        name, _, method = model.partition("=")[0].partition("@")
        resolve_names([name], method or None)
    if args.digits < 0:
        args.digits = 0
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    config = audit_config(args)
    result = run_audit(config)
    if not is_main_process():
        return 0
    for audit in result.models:
        print(f"== {audit.label}")
        for run in audit.report.runs:
            print("\n".join(run.lines))
    written = write_audit_report(result, config.out_dir, plots=not args.no_plots, digits=args.digits)
    print(f"Audit report written to {', '.join(str(p) for p in written)}")
    return 0
