"""``antialiased demo``: baseline vs anti-aliased nets on generated images, in minutes on a CPU."""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Sequence

from antialiased.cli._parser import ArgumentParser

__all__ = ["get_args_parser", "main"]

# --quick: a smoke run for tests and a first look (about half a minute on 2 cores)
QUICK = {"epochs": 3, "train_size": 1024, "test_size": 200, "width": 8, "epochs_shift": 1}


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    from antialiased.demo.nets import NETS
    from antialiased.demo.run import DemoConfig

    d = DemoConfig()
    p = ArgumentParser(
        prog="antialiased demo", add_help=add_help,
        description="Train a small CNN as a baseline and anti-aliased by antialias() (BlurPool, filter sizes 2-5, "
                    "and any --methods) on generated shapes with aliasing-prone textures (or --data DIR), then "
                    "print accuracy, crop-shift and circular-shift consistency and write the results JSON and a plot.")
    p.add_argument("--out-dir", default=d.out_dir, metavar="DIR", help=f"output folder (default: {d.out_dir})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of data, init and evaluation (default: {d.seed})")
    p.add_argument("--epochs", type=int, default=None, help=f"training epochs per variant (default: {d.epochs})")
    p.add_argument("--steps", type=int, default=None, help="cap on training iterations per epoch (default: none)")
    p.add_argument("--filter-sizes", type=int, nargs="+", default=list(d.filter_sizes), metavar="N",
                   help="filter sizes of the paper's recipe (method blurpool) to train besides the baseline "
                        "(default: 2 3 4 5)")
    p.add_argument("--methods", nargs="+", default=list(d.methods), metavar="METHOD[:N]",
                   help="further variants, each an antialias() method with an optional filter size (none: 1, no "
                        "blur), e.g. blur-first:4 aps aps-lpf:3; methods that support it (APS) are built with "
                        "circular=True (default: none)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="ImageFolder dataset with DIR/train and DIR/test (or DIR/val) class folders instead of "
                        "the generated shapes, e.g. ../shared/data/cifar10; images are resized to "
                        "crop-size + max-shift")
    p.add_argument("--net", choices=sorted(NETS), default=d.net, help=f"network (default: {d.net})")
    p.add_argument("--width", type=int, default=None, help=f"channels of the first layer (default: {d.width})")
    p.add_argument("--crop-size", type=int, default=d.crop_size,
                   help=f"network input size; the -es protocol's 224 (default: {d.crop_size})")
    p.add_argument("--max-shift", type=int, default=d.max_shift,
                   help=f"largest crop offset; the -es protocol's 32 (default: {d.max_shift})")
    p.add_argument("--train-size", type=int, default=None,
                   help=f"training images (generated, or a random subset of --data; 0: all of --data) "
                        f"(default: {d.train_size})")
    p.add_argument("--test-size", type=int, default=None, help=f"test images, as --train-size (default: {d.test_size})")
    p.add_argument("-b", "--batch-size", type=int, default=d.batch_size, help=f"(default: {d.batch_size})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"SGD learning rate, cosine-decayed (default: {d.lr})")
    p.add_argument("--epochs-shift", type=int, default=None,
                   help=f"passes over the test set for shift consistency (default: {d.epochs_shift})")
    p.add_argument("--device", default=d.device, help=f"cpu, cuda or cuda:N (default: {d.device})")
    # The demo's nets are tiny: a second intra-op thread saves little on an idle machine but, on a
    # busy one, threads spin at every op's barrier (measured: 7x the CPU time at load average 3).
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch (default: 1; about 2 CPU-minutes for the whole demo)")
    p.add_argument("--quick", action="store_true",
                   help="a fast smoke run: " + ", ".join(f"{k}={v}" for k, v in QUICK.items())
                        + " (explicit flags still win)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    import torch

    from antialiased.demo.report import describe_builds
    from antialiased.demo.run import DemoConfig, run_demo
    from antialiased.errors import AntialiasedError

    defaults = QUICK if args.quick else {}
    chosen = {k: getattr(args, k) for k in ("epochs", "width", "train_size", "test_size", "epochs_shift")}
    sized = {k: v if v is not None else defaults.get(k, getattr(DemoConfig, k)) for k, v in chosen.items()}
    if args.threads < 1:
        print("antialiased demo: --threads must be >= 1", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    cfg = DemoConfig(out_dir=args.out_dir, seed=args.seed, steps=args.steps, filter_sizes=tuple(args.filter_sizes),
                     methods=tuple(args.methods), data=args.data, net=args.net, crop_size=args.crop_size,
                     max_shift=args.max_shift, batch_size=args.batch_size, lr=args.lr, device=args.device, progress=not args.no_progress,
                     plot=not args.no_plot, **sized)
    start = time.perf_counter()
    try:
        result = run_demo(cfg)
    except AntialiasedError as exc:
        print(f"antialiased demo: {exc}", file=sys.stderr)
        return 2
    source = "generated shapes" if cfg.data is None else cfg.data
    print(f"\n{cfg.net} on {source}, seed {cfg.seed}. {cfg.describe_protocols(result.total_stride)}\n")
    print(result.table)
    print("\nVariants (the baseline net, converted by antialias(); all start from the same weights):\n  "
          + "\n  ".join(describe_builds(result.records)))
    print(f"\nwrote {result.results_path}" + (f" and {result.plot_path}" if result.plot_path else "")
          + f" in {time.perf_counter() - start:.0f}s ({os.cpu_count()} CPUs visible, {torch.get_num_threads()} threads)")
    return 0
