"""``antialiased bench-runtime``: forward-pass time of baseline vs anti-aliased models."""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
from pathlib import Path
from typing import Sequence

import torch

from antialiased.cli._errors import user_errors
from antialiased.cli._parser import ArgumentParser
from antialiased.errors import AntialiasedError, ConfigError
from antialiased.models import get_model_spec
from antialiased.runtime import DEFAULT_ARCHS, benchmark_runtime, plot_runtime, runtime_markdown
from antialiased.support.files import atomic_write_text

__all__ = ["get_args_parser", "main"]


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="antialiased bench-runtime", add_help=add_help,
        description="The paper's 'Extra Run-Time' figure: forward time of a batch (48 images at 224x224 by "
                    "default) for each network's baseline and anti-aliased variants on this machine, median "
                    "of interleaved rounds, as a Markdown table, JSON and a plot against the paper's "
                    "accuracy/consistency.")
    p.add_argument("--archs", nargs="+", default=list(DEFAULT_ARCHS), metavar="ARCH",
                   help=f"baseline model names, each timed beside its ARCH_lpfN variants: the paper's and torchvision's "
                        f"architectures, timm/NAME with timm installed ('antialiased models' lists them; default: "
                        f"{' '.join(DEFAULT_ARCHS)})")
    p.add_argument("--filter-sizes", nargs="+", type=int, default=[2, 3, 4, 5], metavar="N",
                   help="anti-aliased variants timed beside the baseline (default: 2 3 4 5)")
    p.add_argument("-b", "--batch-size", type=int, default=48, help="images per forward pass (default: 48)")
    p.add_argument("--image-size", type=int, default=224, help="input height and width (default: 224)")
    p.add_argument("--repeats", type=int, default=10, help="timed rounds (default: 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default: 2)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--out-dir", default="runtime", metavar="DIR",
                   help="where runtime.md, runtime.json and runtime.png go (default: ./runtime)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _model_problems(archs: Sequence[str], filter_sizes: Sequence[int]) -> list[str]:
    """Why some of the names to time cannot be built: the registry's own resolution, as create_model uses it."""
    problems = []
    for arch in archs:
        try:
            spec = get_model_spec(arch)
        except AntialiasedError as exc:  # ModelError (unknown name), MissingDependencyError (timm not installed)
            problems.append(str(exc))
            continue
        if spec.filter_size is not None:
            problems.append(f"--archs takes baseline names: {arch!r} is anti-aliased; give "
                            f"{spec.baseline().name!r} (--filter-sizes picks the _lpfN variants timed beside it)")
            continue
        for fs in filter_sizes:
            try:
                get_model_spec(dataclasses.replace(spec, filter_size=fs))
            except AntialiasedError as exc:  # a filter size out of range, a model antialias() refuses
                problems.append(str(exc))
    return problems


def _checked_device(args: argparse.Namespace) -> torch.device:
    problems = _model_problems(args.archs, args.filter_sizes)
    problems = list(dict.fromkeys(problems))
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError("cannot time every model asked for (--archs ARCH gives ARCH and ARCH_lpfN for each "
                          "--filter-sizes N):\n  " + "\n  ".join(problems))
    if args.repeats < 1 or args.warmup < 0:
        raise ConfigError("--repeats must be >= 1 and --warmup >= 0")
    if args.threads is not None and args.threads < 1:
        raise ConfigError("--threads must be >= 1")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise ConfigError(f"--device {args.device!r} is not a device name (e.g. cpu, cuda, cuda:0)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {args.device!r} asked for CUDA, but no CUDA GPU is available; use --device cpu")
    return device


@user_errors("antialiased bench-runtime")
def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    device = _checked_device(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rows = benchmark_runtime(args.archs, args.filter_sizes, batch_size=args.batch_size,
                             image_size=args.image_size, device=device, repeats=args.repeats,
                             warmup=args.warmup, channels_last=args.channels_last,
                             progress=not args.no_progress)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    title = (f"Forward pass of {args.batch_size} images at {args.image_size}x{args.image_size} on {where} "
             f"(median of {args.repeats})")
    table = runtime_markdown(rows)
    print(f"{title}\n\n{table}")
    out = Path(args.out_dir)
    settings = {k: v for k, v in vars(args).items() if k not in ("out_dir", "no_plot", "no_progress")}
    written = [atomic_write_text(out / "runtime.md", f"{title}\n\n{table}\n"),
               atomic_write_text(out / "runtime.json", json.dumps(
                   {"settings": {**settings, "device": str(device), "device_name": where, "torch": torch.__version__},
                    "rows": [r.to_dict() for r in rows]}, indent=2) + "\n")]
    if not args.no_plot:
        written.append(plot_runtime(rows, out / "runtime.png", title=title))
    print(f"\nwrote {', '.join(map(str, written))}", file=sys.stderr)
    return 0
