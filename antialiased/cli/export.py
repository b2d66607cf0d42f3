"""``antialiased export``: write a model as ONNX or a torch.export program, verified against PyTorch.

A thin layer over :mod:`antialiased.export`: parse the flags, build the model, export, print.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from antialiased.cli._aa_flags import aa_options_from_args, add_aa_flags
from antialiased.cli._errors import TRACEBACK_ENV
from antialiased.cli._names import resolve_names
from antialiased.cli._parser import ArgumentParser
from antialiased.errors import AntialiasedError, ConfigError
from antialiased.export import FORMATS, VerificationError, VerifySettings, check_export, export_model, load_model
from antialiased.export.metadata import input_size_for

__all__ = ["get_args_parser", "main"]

EXAMPLES = """examples:
  antialiased export -a resnet50_lpf4 --pretrained --out resnet50_lpf4.onnx --data /data/imagenet
  antialiased export -a mobilenet_v2_lpf4 --weights w.pth --out m.onnx --static-batch 1 --input-size 192
  antialiased export -a resnet18_lpf4 --resume runs/r18/model_best.pth.tar --format exported-program --out r18.pt2

The file takes one input, a normalized float32 NCHW batch (resize, center crop, ImageNet mean/std,
as recorded in the file's metadata), and returns raw logits (no softmax)."""


def get_args_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="antialiased export", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Export a model to ONNX (torch's torch.export-based exporter) or as a torch.export program, "
                    "then check the file against PyTorch on photos and random inputs.")
    parser.add_argument("-a", "--arch", required=True, metavar="NAME",
                        help="model name, as 'antialiased models' lists them (e.g. resnet50_lpf4)")
    add_aa_flags(parser)  # --aa-method, --aa-option KEY=VALUE
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", type=Path, metavar="FILE", help="local weights file (state dict or checkpoint)")
    source.add_argument("--pretrained", action="store_true", help="the model's pretrained ImageNet weights")
    source.add_argument("--resume", type=Path, metavar="CKPT",
                        help="a training checkpoint (its architecture must be NAME)")
    parser.add_argument("--format", choices=list(FORMATS), default="onnx",
                        help="onnx (default) or exported-program (torch.export.save, .pt2)")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="file to write (atomically)")
    parser.add_argument("--opset", type=int, default=None, metavar="N",
                        help="ONNX opset (default: the newest that both the exporter and onnxruntime support)")
    parser.add_argument("--static-batch", type=int, default=None, metavar="N",
                        help="fix the batch dimension to N (default: dynamic)")
    parser.add_argument("--input-size", type=int, default=None, metavar="N",
                        help="input height and width (default: the crop a checkpoint's training validated at, "
                             "e.g. 32 for CIFAR; else 224)")
    parser.add_argument("--num-classes", type=int, default=None, metavar="N",
                        help="classifier outputs, for weights trained on another number of classes")
    parser.add_argument("--data", type=Path, default=None, metavar="DIR",
                        help="photos for verification: an ImageFolder dataset or a folder of images "
                             "(default: generated images)")
    parser.add_argument("--images", type=int, default=8, metavar="N", help="photos used by verification (8)")
    parser.add_argument("--atol", type=float, default=1e-4, help="verification: absolute tolerance (1e-4)")
    parser.add_argument("--rtol", type=float, default=1e-4, help="verification: relative tolerance, times each sample's largest |logit| (1e-4)")
    parser.add_argument("--no-verify", action="store_true", help="write the file without running it")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    return parser


def _verify_settings(args: argparse.Namespace) -> VerifySettings | None:
    if args.no_verify:
        used = [flag for flag, given in (("--data", args.data is not None), ("--images", args.images != 8),
                                         ("--atol", args.atol != 1e-4), ("--rtol", args.rtol != 1e-4)) if given]
        if used:
            raise ConfigError(f"{', '.join(used)} only matter for verification; drop them or drop --no-verify")
        return None
    return VerifySettings(data=args.data, num_images=args.images, atol=args.atol, rtol=args.rtol)


def run(args: argparse.Namespace) -> int:
    # first thing: a bad name fails before any file is read or written
    resolve_names([args.arch], args.aa_method, aa_options_from_args(args))
    verify = _verify_settings(args)
    opset = check_export(args.out, format=args.format, opset=args.opset, input_size=args.input_size or 224,
                         static_batch=args.static_batch, force=args.force, verify=verify is not None)
    loaded = load_model(args.arch, pretrained=args.pretrained, weights=args.weights, checkpoint=args.resume,
                        num_classes=args.num_classes, aa_method=args.aa_method,
                        aa_options=aa_options_from_args(args))
    if not (args.pretrained or args.weights or args.resume):
        print("note: no --weights, --pretrained or --resume: exporting randomly initialized weights", file=sys.stderr)
    input_size = input_size_for(loaded.model, args.input_size)  # a checkpoint's own crop unless given
    target = f"ONNX opset {opset}" if opset is not None else "a torch.export program"
    print(f"exporting {loaded.name} ({loaded.weights_source}) as {target}...", flush=True)
    try:
        result = export_model(loaded.model, args.out, format=args.format, opset=opset, input_size=input_size,
                              static_batch=args.static_batch, force=args.force, name=loaded.name,
                              weights_source=loaded.weights_source, verify=verify)
    except VerificationError as exc:
        print(exc.report.summary())
        raise VerificationError(str(exc).split("\n", 1)[0], exc.report) from None
    print(result.summary())
    print(result.verification.summary() if result.verification else "verification skipped (--no-verify)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        return run(args)
    except AntialiasedError as exc:  # MissingDependencyError is an ImportError: handled here, one line
        if os.environ.get(TRACEBACK_ENV):
            raise
        print(f"antialiased export: error: {exc}\n(set {TRACEBACK_ENV}=1 for the full traceback)", file=sys.stderr)
        return 2
