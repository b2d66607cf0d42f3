"""The blur layers alone: ours vs the previous version, the published BlurPool and the read floor.

The shapes are those the 7 BlurPool layers of resnet50_lpf4 see at 224x224 (stem: 64x111x111;
layer2-4: the block's width and the shortcut's channels at 56, 28, 14). Each round runs every
contender once on all 7 inputs (rotating order); medians of rounds. Contenders: ``floor``
(``x.sum()`` over the same inputs: reading them once, issue 20's reference), ``ours`` (the
operator's kernel for the device: on CPU the compiled kernel where it applies), ``ours_separable``
(CPU: the same operator on the ATen-op kernel), ``previous`` (the layer of ``--previous REV``,
default the commit before the operator, loaded from git), ``published`` (antialiased_cnns).
``--backward`` times forward + the input's gradient (``torch.autograd.grad`` with a fixed output
gradient, so nothing accumulates between rounds). ``vs_floor``: each time over the floor's.

Examples:
    python benchmarks/bench_blur.py --threads 1 --clock cpu --repeats 7
    python benchmarks/bench_blur.py --threads 1 --clock cpu --repeats 7 --channels-last --backward
    python benchmarks/bench_blur.py --device cuda --backward --repeats 20
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from common import (  # noqa: E402
    CLOCKS,
    _load,
    add_previous_arg,
    interleaved,
    load_previous_layers,
    machine_info,
    median,
    print_machine,
    print_table,
    write_json,
)
from antialiased.layers import BlurPool, _ops, _separable  # noqa: E402

RESNET50_BLUR_INPUTS = [(64, 111), (128, 56), (256, 56), (256, 28), (512, 28), (512, 14), (1024, 14)]


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    parser.add_argument("--filter-size", type=int, default=4, help="blur filter size (default 4)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="wall time or this process's CPU time")
    parser.add_argument("--channels-last", action="store_true", help="inputs in channels_last memory format")
    parser.add_argument("--backward", action="store_true", help="time forward + backward")
    parser.add_argument("--device", default="cpu", help="'cpu' or 'cuda[:i]' (default cpu)")
    add_previous_arg(parser)
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    return parser


class _Floor(torch.nn.Module):
    """Reading the input once: the floor of any blur of it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum()


class _OnKernel(torch.nn.Module):
    """A layer run with the operator's CPU kernel set to ``kernel`` for the call."""

    def __init__(self, layer: torch.nn.Module, kernel) -> None:
        super().__init__()
        self.layer, self.kernel = layer, kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        saved = _ops.KERNELS["cpu"]
        _ops.KERNELS["cpu"] = self.kernel
        try:
            return self.layer(x)
        finally:
            _ops.KERNELS["cpu"] = saved


def _contenders(args: argparse.Namespace, device: torch.device) -> dict[str, list[torch.nn.Module]]:
    def build(module) -> list[torch.nn.Module]:
        return [module.BlurPool(c, filt_size=args.filter_size).to(device) for c, _ in RESNET50_BLUR_INPUTS]

    layers = {"floor": [_Floor() for _ in RESNET50_BLUR_INPUTS], "ours": build(sys.modules[BlurPool.__module__])}
    if device.type == "cpu":
        layers["ours_separable"] = [_OnKernel(layer, _separable) for layer in layers["ours"]]
    previous = load_previous_layers(args.previous)
    if previous is not None:
        layers["previous"] = build(previous)
    try:
        layers["published"] = build(importlib.import_module("antialiased_cnns"))
    except ImportError:
        print("published antialiased_cnns not installed (pip install -r benchmarks/requirements.txt)")
    return layers


def _rows(times: dict[str, list[float]]) -> list[dict]:
    base = median(times["published"]) if "published" in times else None
    previous = median(times["previous"]) if "previous" in times else None
    floor = median(times["floor"])
    return [{"layers": label, "median_ms": round(1e3 * median(t), 1),
             "spread_ms": round(1e3 * (max(t) - min(t)), 1), "vs_floor": round(median(t) / floor, 2),
             "vs_previous": round(median(t) / previous, 3) if previous else "",
             "vs_published": round(median(t) / base, 3) if base else ""} for label, t in times.items()]


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was requested but torch sees no CUDA device; use --device cpu")
    info = machine_info(device)
    print_machine(info)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    inputs = [torch.randn(args.batch, c, s, s, device=device).contiguous(memory_format=fmt)
              .requires_grad_(args.backward) for c, s in RESNET50_BLUR_INPUTS]
    contenders = _contenders(args, device)
    with torch.no_grad():  # one fixed output gradient per input (the layers' outputs have one shape)
        grads = [torch.randn_like(layer(x)) for layer, x in zip(contenders["ours"], inputs)]

    def step(label, mods):
        def run() -> None:
            for layer, x, grad in zip(mods, inputs, grads):
                if args.backward and label != "floor":
                    torch.autograd.grad(layer(x), x, grad)
                else:
                    with torch.no_grad():
                        layer(x)
        return run

    times = interleaved({k: step(k, v) for k, v in contenders.items()}, args.repeats, args.warmup, device, args.clock)
    rows = _rows(times)
    print_table(rows, ["layers", "median_ms", "spread_ms", "vs_floor", "vs_previous", "vs_published"])
    info["load_average_end"] = _load()
    print(f"load average now: {info['load_average_end']}")
    if args.json:
        write_json(args.json, {"benchmark": "blur_layers", "machine": info,
                               "settings": {k: str(v) for k, v in vars(args).items()}, "results": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
