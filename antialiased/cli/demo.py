"""``antialiased demo``: baseline vs anti-aliased nets on generated images, in minutes on a CPU.

``--task classification`` (default): a small CNN, accuracy and shift consistency. ``--task
segmentation``: a small U-Net on generated shapes, mIoU and segmentation consistency, with BlurPool
on the subsamplings only, on the subsamplings and the upsamplings, and APS with polyphase
upsampling. The flags are shared; a flag left out takes the task's default.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, fields
from typing import Any, Callable, Sequence

from antialiased.cli._parser import ArgumentParser

__all__ = ["get_args_parser", "main", "QUICK", "SEG_QUICK"]

# --quick: a smoke run for tests and a first look (about half a minute on 2 cores)
QUICK = {"epochs": 3, "train_size": 1024, "test_size": 200, "width": 8, "epochs_shift": 1}
SEG_QUICK = {"epochs": 2, "train_size": 64, "test_size": 16, "width": 4, "epochs_shift": 1}
# flags whose default is the task's (the names of the config fields)
_TASK_DEFAULTS = ("epochs", "width", "train_size", "test_size", "epochs_shift", "filter_sizes", "net", "crop_size",
                  "max_shift", "batch_size", "lr")


@dataclass(frozen=True)
class _DemoTask:
    """What ``--task`` chooses: the config class (its fields are the defaults), ``--quick``'s sizes, the run,
    the line before the table, and the flags of this task alone (flag -> why not the other's)."""

    config: type
    quick: dict[str, Any]
    run: Callable[[Any], Any]
    header: Callable[[Any, Any], str]
    refused: dict[str, str]


def _tasks() -> dict[str, _DemoTask]:
    from antialiased.demo.run import DemoConfig, run_demo
    from antialiased.demo.seg_run import SegDemoConfig, run_seg_demo

    def classification(cfg: Any, result: Any) -> str:
        source = "generated shapes" if cfg.data is None else cfg.data
        return f"{cfg.net} on {source}, seed {cfg.seed}. {cfg.describe_protocols(result.total_stride)}"

    def segmentation(cfg: Any, result: Any) -> str:
        return (f"{cfg.net} on generated shapes ({cfg.train_size} training, {cfg.test_size} test images of "
                f"{cfg.image_size}px), seed {cfg.seed}. {cfg.describe_protocols()}")

    no_data = ("the segmentation demo trains on generated shapes (written as a Pascal VOC folder into --out-dir); "
               "to train on a folder of your own, use 'antialiased train --task segmentation --data DIR'")
    return {"classification": _DemoTask(DemoConfig, QUICK, run_demo, classification, {}),
            "segmentation": _DemoTask(SegDemoConfig, SEG_QUICK, run_seg_demo, segmentation, {"data": no_data})}


def _both(field: str) -> str:
    from antialiased.demo.run import DemoConfig
    from antialiased.demo.seg_run import SegDemoConfig

    def text(value: Any) -> str:
        return " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)

    return f"default: {text(getattr(DemoConfig, field))}; segmentation: {text(getattr(SegDemoConfig, field))}"


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    from antialiased.demo.nets import NETS
    from antialiased.demo.seg_nets import SEG_NETS

    p = ArgumentParser(
        prog="antialiased demo", add_help=add_help,
        description="Train a small CNN as a baseline and anti-aliased by antialias() (BlurPool, filter sizes 2-5, "
                    "and any --methods) on generated shapes with aliasing-prone textures (or --data DIR), then "
                    "print accuracy, crop-shift and circular-shift consistency and write the results JSON and a plot. "
                    "--task segmentation: a small U-Net as a baseline, with BlurPool on the subsamplings only and on "
                    "the subsamplings and upsamplings, and APS with polyphase upsampling (circular), on generated "
                    "shapes; mIoU, segmentation consistency and circular segmentation consistency.")
    p.add_argument("--task", choices=("classification", "segmentation"), default="classification",
                   help="what the nets predict: a class per image, or a class per pixel (default: classification)")
    p.add_argument("--out-dir", default="demo_out", metavar="DIR", help="output folder (default: demo_out)")
    p.add_argument("--seed", type=int, default=0, help="seed of init, crops, batch order and evaluation, and of the "
                                                       "generated classification data (default: 0)")
    p.add_argument("--epochs", type=int, default=None, help=f"training epochs per variant ({_both('epochs')})")
    p.add_argument("--steps", type=int, default=None, help="cap on training iterations per epoch (default: none)")
    p.add_argument("--filter-sizes", type=int, nargs="+", default=None, metavar="N",
                   help="filter sizes of the paper's recipe (method blurpool) to train besides the baseline; "
                        f"segmentation: each down only and down + up ({_both('filter_sizes')})")
    p.add_argument("--methods", nargs="+", default=[], metavar="METHOD[:N]",
                   help="further variants, each an antialias() method with an optional filter size (none: 1, no "
                        "blur), e.g. blur-first:4 aps aps-lpf:3; methods that support it (APS) are built with "
                        "circular=True; segmentation: upsamplings converted too, unless the variant ends in /down "
                        "(e.g. blur-first:4/down) (default: none)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="ImageFolder dataset with DIR/train and DIR/test (or DIR/val) class folders instead of "
                        "the generated shapes, e.g. ../shared/data/cifar10; images are resized to "
                        "crop-size + max-shift (classification only)")
    p.add_argument("--net", choices=sorted({*NETS, *SEG_NETS}), default=None,
                   help=f"network ({_both('net')}; {', '.join(sorted(SEG_NETS))} for segmentation)")
    p.add_argument("--width", type=int, default=None, help=f"channels of the first layer ({_both('width')})")
    p.add_argument("--crop-size", type=int, default=None,
                   help=f"network input size in training and -es; the -es protocol's 224 ({_both('crop_size')})")
    p.add_argument("--max-shift", type=int, default=None,
                   help=f"largest crop offset and circular shift; the -es protocol's 32; images are crop-size + "
                        f"max-shift ({_both('max_shift')})")
    p.add_argument("--train-size", type=int, default=None,
                   help=f"training images (generated, or a random subset of --data; 0: all of --data) "
                        f"({_both('train_size')})")
    p.add_argument("--test-size", type=int, default=None, help=f"test images, as --train-size ({_both('test_size')})")
    p.add_argument("-b", "--batch-size", type=int, default=None, help=f"({_both('batch_size')})")
    p.add_argument("--lr", type=float, default=None, help=f"SGD learning rate, cosine-decayed ({_both('lr')})")
    p.add_argument("--epochs-shift", type=int, default=None,
                   help=f"passes over the test set for shift consistency ({_both('epochs_shift')})")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    # The demo's nets are tiny: a second intra-op thread saves little on an idle machine but, on a
    # busy one, threads spin at every op's barrier (measured: 7x the CPU time at load average 3).
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch (default: 1; about 2 CPU-minutes for the whole demo)")
    p.add_argument("--quick", action="store_true",
                   help="a fast smoke run: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()) + "; segmentation: "
                        + ", ".join(f"{k}={v}" for k, v in SEG_QUICK.items()) + " (explicit flags still win)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _config(args: argparse.Namespace, task: _DemoTask) -> Any:
    """The task's config from the flags: each flag given, else ``--quick``'s size, else the task's default."""
    quick = task.quick if args.quick else {}
    chosen = {}
    for name in _TASK_DEFAULTS:
        value = getattr(args, name)
        chosen[name] = value if value is not None else quick.get(name, getattr(task.config, name))
    chosen["filter_sizes"] = tuple(chosen["filter_sizes"])
    common = {"out_dir": args.out_dir, "seed": args.seed, "steps": args.steps, "methods": tuple(args.methods),
              "device": args.device, "progress": not args.no_progress, "plot": not args.no_plot}
    if "data" in {f.name for f in fields(task.config)}:
        common["data"] = args.data
    return task.config(**common, **chosen)


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    import torch

    from antialiased.demo.report import describe_builds
    from antialiased.errors import AntialiasedError

    task = _tasks()[args.task]
    for flag, why in task.refused.items():
        if getattr(args, flag) is not None:
            print(f"antialiased demo: --{flag} does not apply to --task {args.task}: {why}", file=sys.stderr)
            return 2
    if args.threads < 1:
        print("antialiased demo: --threads must be >= 1", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    cfg = _config(args, task)
    start = time.perf_counter()
    try:
        result = task.run(cfg)
    except AntialiasedError as exc:
        print(f"antialiased demo: {exc}", file=sys.stderr)
        return 2
    print(f"\n{task.header(cfg, result)}\n")
    print(result.table)
    print("\nVariants (the baseline net, converted by antialias(); all start from the same weights):\n  "
          + "\n  ".join(describe_builds(result.records)))
    print(f"\nwrote {result.results_path}" + (f" and {result.plot_path}" if result.plot_path else "")
          + f" in {time.perf_counter() - start:.0f}s ({os.cpu_count()} CPUs visible, {torch.get_num_threads()} threads)")
    return 0
