"""Inference time of anti-aliased models against torchvision's baseline and the peers, in one run.

For every architecture and batch size the contenders (torchvision baseline, ours with filter size N
and 1, the published ``antialiased_cnns``, timm's ``resnetblur*`` where it exists) run round-robin
on the same input; the table shows medians and ratios to the baseline. Target: ours_lpfN / baseline
at most ours_lpf1 / baseline + 0.02 (the blur layers themselves cost at most 2%).

Examples:
    python benchmarks/bench_inference.py                       # resnet50, batch 16, CPU (a few minutes)
    python benchmarks/bench_inference.py --archs resnet18 resnet50 densenet121 mobilenet_v2 vgg16 \\
        --batches 16 48 --json results/bench_inference.json
    python benchmarks/bench_inference.py --device cuda --amp bf16 --channels-last --batches 48

``--previous REV`` (default: the commit before the layer's kernels were split) adds the same
anti-aliased model with that version's blur layers, timed in the same rounds; ``vs_previous`` is
each model's time over it.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from common import (  # noqa: E402
    run_per_arch,
    CLOCKS,
    add_common_args,
    contenders,
    interleaved,
    load_previous_layers,
    median,
    print_table,
    synchronize,
    _load,
)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--batches", nargs="+", type=int, default=[16], help="batch sizes (default 16)")
    parser.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    parser.add_argument("--amp", choices=sorted(AMP_DTYPES), default=None,
                        help="autocast to this dtype (GPU runs; on CPU only bf16 is meaningful)")
    parser.add_argument("--channels-last", action="store_true", help="models and inputs in channels_last memory format")
    parser.add_argument("--blur-share", action="store_true",
                        help="also time the blur layers alone (forward hooks on every *BlurPool* module; "
                             "median over --repeats instrumented passes): their share of the forward time")
    return parser


def blur_share(model: torch.nn.Module, step, repeats: int, device: torch.device, clock: str) -> float | None:
    """Fraction of one forward pass spent inside blur layers (None if the model has none)."""
    now = CLOCKS["wall" if device.type == "cuda" else clock]
    spent: list[float] = []
    starts: dict[int, float] = {}

    def pre(module, inputs):
        synchronize(device)
        starts[id(module)] = now()

    def post(module, inputs, output):
        synchronize(device)
        spent.append(now() - starts.pop(id(module)))

    handles = []
    for module in model.modules():
        if "BlurPool" in type(module).__name__:
            handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    if not handles:
        return None
    shares = []
    try:
        for _ in range(repeats):
            spent.clear()
            synchronize(device)
            start = now()
            step()
            synchronize(device)
            shares.append(sum(spent) / (now() - start))
    finally:
        for handle in handles:
            handle.remove()
    return median(shares)


def _forward(model: torch.nn.Module, x: torch.Tensor, device: torch.device, amp: str | None):
    def step() -> None:
        autocast = torch.autocast(device.type, dtype=AMP_DTYPES[amp]) if amp else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            model(x)

    return step


def bench_arch(arch: str, args: argparse.Namespace, device: torch.device) -> tuple[list[dict], list[str]]:
    found, notes = contenders(arch, args.filter_size, peers=not args.no_peers,
                              previous=load_previous_layers(args.previous))
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    models = {c.label: c.build().eval().to(device, memory_format=fmt) for c in found}
    rows = []
    for batch in args.batches:
        if batch < 1:
            raise SystemExit(f"--batches must be >= 1, got {batch}")
        x = torch.randn(batch, 3, args.size, args.size, device=device).contiguous(memory_format=fmt)
        steps = {label: _forward(model, x, device, args.amp) for label, model in models.items()}
        times = interleaved(steps, args.repeats, args.warmup, device, args.clock)
        base = median(times["baseline"])
        lpf1 = median(times["ours_lpf1"]) / base
        previous = median(times[f"previous_lpf{args.filter_size}"]) if f"previous_lpf{args.filter_size}" in times else None
        for label, values in times.items():
            t = median(values)
            row = {
                "arch": arch,
                "batch": batch,
                "model": label,
                "median_ms": round(1e3 * t, 1),
                "spread_ms": round(1e3 * (max(values) - min(values)), 1),
                "images_per_s": round(batch / t, 1),
                "ratio": round(t / base, 3),
                "vs_previous": round(t / previous, 3) if previous else "",
            }
            if args.blur_share:
                share = blur_share(models[label], steps[label], args.repeats, device, args.clock)
                row["blur_share"] = "" if share is None else f"{100 * share:.1f}%"
            if label == f"ours_lpf{args.filter_size}":
                row["target"] = f"<= {lpf1 + 0.02:.3f}"
                row["met"] = "yes" if t / base <= lpf1 + 0.02 else "NO"
            rows.append(row)
        print_table([r for r in rows if r["batch"] == batch], ["arch", "batch", "model", "median_ms", "spread_ms",
                                                                  "images_per_s", "ratio", "vs_previous", "target", "met",
                                                                  "blur_share"])
        print(f"load average now: {_load()}\n", flush=True)
    del models
    gc.collect()
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    return run_per_arch("inference", args, bench_arch)


if __name__ == "__main__":
    raise SystemExit(main())
