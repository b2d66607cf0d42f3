"""Cost of ``antialias(model)``: time to convert, inference time and saved activations, side by side.

For each architecture: the torchvision baseline, ``antialias(baseline)`` with each method asked
for, and (for the paper's architectures) the paper's model ``create_model("<arch>_lpf<N>")`` (the
same recipe in the published layout, verified against the published code by the golden tests), which
must cost the same as ``antialias`` with ``method="blurpool"`` (it computes the same function).

- convert: seconds of ``antialias(torchvision model)`` (fresh model each time; building it not
  counted), median of ``--conversions``. Target for ResNet-50: under one second.
- infer: eval-mode forward of a batch under ``torch.inference_mode``, interleaved round-robin
  with the other contenders (``common.interleaved``), median of ``--repeats``.
- saved: bytes autograd saves for backward in one training-mode forward (exact, via
  ``torch.autograd.graph.saved_tensors_hooks``; ``bench_memory.saved_bytes``). Target: the same
  bytes as the paper's model.

Examples:
    python benchmarks/bench_antialias.py                                   # resnet50, efficientnet_b0, blurpool
    python benchmarks/bench_antialias.py --methods all --batch 16 --repeats 7 --json results/bench_antialias.json
    python benchmarks/bench_antialias.py --archs resnet50 --batch 1 --size 64 --repeats 1 --conversions 1  # smoke
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402

from bench_memory import MIB, saved_bytes  # noqa: E402
from common import interleaved, median, print_table, run_per_arch  # noqa: E402

from antialiased.models import copy_params_buffers, create_model, list_archs  # noqa: E402
from antialiased.models.antialias import METHODS, antialias  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["resnet50", "efficientnet_b0"], metavar="ARCH",
                        help="torchvision classification models (default: resnet50 efficientnet_b0)")
    parser.add_argument("--methods", nargs="+", default=["blurpool"], metavar="METHOD",
                        help=f"antialias() methods, or 'all' ({', '.join(sorted(METHODS))}); default blurpool")
    parser.add_argument("--filter-size", type=int, default=4, help="blur filter size (default 4)")
    parser.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    parser.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    parser.add_argument("--conversions", type=int, default=5, help="timed conversions per method (default 5)")
    parser.add_argument("--repeats", type=int, default=5, help="timed inference rounds (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed inference rounds first (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall time, or this process's CPU time (robust on a shared machine with --threads 1)")
    parser.add_argument("--device", default="cpu", help="'cpu' or 'cuda[:i]' (default cpu)")
    parser.add_argument("--no-memory", action="store_true", help="skip the saved-activation measurement")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    return parser


def _methods(names: list[str]) -> list[str]:
    if names == ["all"]:
        return sorted(METHODS)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise SystemExit(f"--methods: unknown {unknown}; choose from {sorted(METHODS)} or 'all'")
    return names


def conversion_seconds(arch: str, method: str, args: argparse.Namespace) -> float:
    """Median seconds of ``antialias()`` on a fresh torchvision ``arch`` (building it not counted)."""
    antialias(torchvision.models.get_model(arch), filter_size=args.filter_size, method=method)  # warm-up: imports
    times = []
    for _ in range(args.conversions):
        model = torchvision.models.get_model(arch)
        start = time.perf_counter()
        antialias(model, filter_size=args.filter_size, method=method)
        times.append(time.perf_counter() - start)
    return median(times)


def build_contenders(arch: str, methods: list[str], args: argparse.Namespace) -> dict[str, nn.Module]:
    """The baseline, antialias(baseline) per method and, for the paper's archs, the paper's model."""
    torch.manual_seed(0)
    baseline = torchvision.models.get_model(arch)
    models = {"baseline": baseline}
    for method in methods:
        models[f"antialias_{method}"] = antialias(copy.deepcopy(baseline), filter_size=args.filter_size, method=method)
    if arch in list_archs("paper"):
        paper = create_model(f"{arch}_lpf{args.filter_size}")
        copy_params_buffers(baseline, paper)
        models[f"paper_lpf{args.filter_size}"] = paper
    return models


def _same_function(models: dict[str, nn.Module], x: torch.Tensor, hand: str | None) -> float | None:
    if hand is None or "antialias_blurpool" not in models:
        return None
    with torch.inference_mode():
        return (models["antialias_blurpool"](x) - models[hand](x)).abs().max().item()


def bench_arch(arch: str, args: argparse.Namespace, device: torch.device) -> tuple[list[dict], list[str]]:
    methods = _methods(args.methods)
    convert = {m: conversion_seconds(arch, m, args) for m in methods}
    models = {k: m.to(device).eval() for k, m in build_contenders(arch, methods, args).items()}
    x = torch.rand(args.batch, 3, args.size, args.size, device=device)
    hand = next((k for k in models if k.startswith("paper_lpf")), None)

    def forward(model: nn.Module):
        def step() -> None:
            with torch.inference_mode():
                model(x)
        return step

    times = interleaved({k: forward(m) for k, m in models.items()}, args.repeats, args.warmup, device, args.clock)
    saved = {} if args.no_memory else {k: saved_bytes(m, x)[0] for k, m in models.items()}
    reference = hand or "baseline"
    rows = []
    for label in models:
        ms = median(times[label]) * 1e3
        row = {"arch": arch, "model": label, "infer_ms": round(ms, 2),
               "vs_" + reference: round(ms / (median(times[reference]) * 1e3), 3)}
        if label.startswith("antialias_"):
            row["convert_s"] = round(convert[label[len("antialias_"):]], 3)
        if saved:
            row["saved_MiB"] = round(saved[label] / MIB, 1)
            row["saved_vs_" + reference] = round(saved[label] / saved[reference], 4)
        rows.append(row)
    columns = ["arch", "model", "convert_s", "infer_ms", "vs_" + reference, "saved_MiB", "saved_vs_" + reference]
    print_table(rows, columns)
    notes = []
    diff = _same_function(models, x, hand)
    if diff is not None:
        notes.append(f"antialias_blurpool vs {hand}: max |difference| of the outputs {diff:.2e} (same function)")
    if arch == "resnet50" and "blurpool" in convert:
        notes.append(f"convert target (< 1 s): {'met' if convert['blurpool'] < 1 else 'NOT met'}")
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.conversions < 1 or args.batch < 1:
        raise SystemExit("--conversions and --batch must be >= 1")
    return run_per_arch("bench_antialias", args, bench_arch)


if __name__ == "__main__":
    raise SystemExit(main())
