"""``antialiased prepare-imagenet``: sort the ILSVRC2012 validation images into ``<wnid>/`` folders."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from antialiased.cli._parser import ArgumentParser
from antialiased.data import prepare as prep
from antialiased.errors import AntialiasedError

__all__ = ["get_args_parser", "main"]


def get_args_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="antialiased prepare-imagenet",
        description="Move the 50,000 ILSVRC2012 validation images (ILSVRC2012_val_XXXXXXXX.JPEG) into one folder "
                    "per class (<wnid>/), the layout that evaluation expects. Idempotent; never deletes a file. "
                    "Every label is checked first: an ImageId that is not a plain file name, a duplicated ImageId "
                    "or a link leading out of --val-dir rejects the label file, and then nothing moves.",
        epilog="Examples:\n"
               "  antialiased prepare-imagenet --val-dir ILSVRC2012/val --solution LOC_val_solution.csv\n"
               "  antialiased prepare-imagenet --val-dir ILSVRC2012/val \\\n"
               "      --ground-truth ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt \\\n"
               "      --devkit ILSVRC2012_devkit_t12      # reads data/meta.mat: needs SciPy\n"
               "  antialiased prepare-imagenet --val-dir ILSVRC2012/val --ground-truth GT.txt --synsets synsets.txt\n"
               "  antialiased prepare-imagenet --val-dir ILSVRC2012/val --torchvision-meta ILSVRC2012/meta.bin",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--val-dir", required=True, metavar="DIR", help="the flat validation folder")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--solution", metavar="CSV", help="Kaggle's LOC_val_solution.csv")
    source.add_argument("--ground-truth", metavar="TXT",
                        help="the devkit's ILSVRC2012_validation_ground_truth.txt (needs --devkit or --synsets)")
    source.add_argument("--torchvision-meta", metavar="BIN", help="meta.bin written by torchvision.datasets.ImageNet")
    table = parser.add_mutually_exclusive_group()
    table.add_argument("--devkit", metavar="DIR", help="unpacked ILSVRC2012_devkit_t12 folder (data/meta.mat; SciPy)")
    table.add_argument("--synsets", metavar="FILE",
                       help="id -> wnid table: 1000 lines 'wnid ...' (line i = id i) or 'id wnid'")
    parser.add_argument("--expect", type=int, default=50000, metavar="N",
                        help="number of labelled images to insist on (default: 50000; 0 accepts any)")
    parser.add_argument("--dry-run", action="store_true", help="report what would move, move nothing")
    return parser


def _labels(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, str]:
    if args.solution:
        return prep.labels_from_solution_csv(args.solution)
    if args.torchvision_meta:
        return prep.labels_from_torchvision_meta(args.torchvision_meta)
    if not (args.devkit or args.synsets):
        parser.error("--ground-truth needs the id -> wnid table: --devkit DIR (SciPy) or --synsets FILE")
    synsets = prep.synsets_from_devkit(args.devkit) if args.devkit else prep.read_synsets(args.synsets)
    return prep.labels_from_ground_truth(args.ground_truth, synsets)


def main(argv: Sequence[str] | None = None) -> int:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    try:
        labels = _labels(args, parser)
        report = prep.prepare_val_folder(args.val_dir, labels, dry_run=args.dry_run, expected=args.expect or None)
    except AntialiasedError as err:  # expected failures (unsafe labels, missing files), the fix in the message
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report.summary())
    if not report.ok:
        print("error: the folder is not fully prepared (see above); nothing was deleted", file=sys.stderr)
        return 1
    if not args.dry_run:
        print(f"verified: all {len(labels) - len(report.missing)} labelled images are in their class folders")
    return 0
