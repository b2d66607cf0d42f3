#!/usr/bin/env python
"""Throughput of every shift-invariance protocol, end to end, against the model's bare forward pass.

Each protocol runs as ``antialiased eval`` runs it: JPEG decode in DataLoader workers (real photos
from ../shared/data/imagenet-sample), one decode per image, shifted copies made on the device,
forward passes of about ``--forward-batch`` samples. Its throughput is counted in forward samples
(crops or shifted copies) per second and set against the bare forward pass of the same model on
the same device at the same batch (random tensors already on the device, no data loading). The
issue's target: at least 90% of the bare throughput. ``all`` runs every protocol in one loop
(one decode shared by all). Runs are interleaved (one of each per repeat, order rotated); medians.

    python benchmarks/bench_protocols.py --model resnet18 --images 64 --repeats 3
    python benchmarks/bench_protocols.py --model resnet50 --device cuda --images 512 --forward-batch 256 -j 8
    python benchmarks/bench_protocols.py --model tiny --images 8 --repeats 1 --warmup 0   # a quick check
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from common import imagenet_sample_folder, interleaved, machine_info, median, print_table, write_json  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import antialiased  # noqa: E402
from antialiased.data import ImageFolderDataset, uint8_transform  # noqa: E402
from antialiased.evaluation import AccuracyScorer, DiagonalScorer, LoopOptions, ShiftConsistencyScorer  # noqa: E402
from antialiased.evaluation import run_protocols  # noqa: E402
from antialiased.evaluation.adversarial import AdversarialScorer  # noqa: E402
from antialiased.evaluation.circular import CircularConsistencyScorer  # noqa: E402
from antialiased.evaluation.distance import ShiftDistanceScorer  # noqa: E402
from antialiased.evaluation.equivariance import EquivarianceScorer  # noqa: E402
from antialiased.evaluation.fractional import FractionalConsistencyScorer  # noqa: E402

PROTOCOLS = ("e", "es", "ed", "ec", "ef", "ea-crop", "ea-circular", "eq", "distance", "all")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "imagenet-sample"),
                   help="flat folder of <wnid>_<name>.JPEG files (default: ../shared/data/imagenet-sample)")
    p.add_argument("--images", type=int, default=64, help="first N images (default: 64)")
    p.add_argument("--model", default="resnet18", help="a model name (random weights) or 'tiny' (default: resnet18)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--forward-batch", type=int, default=64,
                   help="samples per forward pass, for the protocols and the bare forward alike (default: 64)")
    p.add_argument("-b", "--batch-size", type=int, default=8, help="loader batch, images (default: 8, -es's)")
    p.add_argument("-j", "--workers", type=int, default=2, help="DataLoader workers (default: 2)")
    p.add_argument("--epochs-shift", type=int, default=5, help="passes of -es/-ec/-ef (default: 5)")
    p.add_argument("--shift-grid", type=int, default=8, help="-ea grid (default: 8)")
    p.add_argument("--max-shift", type=int, default=32, help="(default: 32)")
    p.add_argument("--crop-size", type=int, default=224, help="(default: 224)")
    p.add_argument("--amp", default=None, choices=[None, "bf16", "fp16"], help="autocast dtype (default: none)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats; medians reported (default: 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default: 1)")
    p.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    return p


class Counted(nn.Module):
    """The model, counting the samples of every forward pass (the protocols' work in samples)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.samples = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.samples += x.shape[0]
        return self.model(x)


def build_model(name: str) -> nn.Module:
    if name == "tiny":
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 16, 7, stride=4), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 1000))
    return antialiased.create_model(name)


def scorers(name: str, args: argparse.Namespace) -> list:
    """Fresh scorers of a protocol, with forward passes of about --forward-batch samples."""
    c, m, n, ep = args.crop_size, args.max_shift, args.forward_batch, args.epochs_shift
    table: dict[str, Callable[[], object]] = {
        "e": lambda: AccuracyScorer(c),
        "es": lambda: ShiftConsistencyScorer(c, m, ep, seed=0, min_forward=n),
        "ed": lambda: DiagonalScorer(c, m, forward_batch=n),
        "ec": lambda: CircularConsistencyScorer(c, m, ep, seed=0, min_forward=n),
        "ef": lambda: FractionalConsistencyScorer(c, ep, seed=0, min_forward=n),
        "ea-crop": lambda: AdversarialScorer(c, m, args.shift_grid, "crop", forward_batch=n),
        "ea-circular": lambda: AdversarialScorer(c, m, args.shift_grid, "circular", forward_batch=n),
        "eq": lambda: EquivarianceScorer(c, forward_batch=n),
        "distance": lambda: ShiftDistanceScorer(c, m, forward_batch=n),
    }
    names = [p for p in PROTOCOLS if p not in ("all", "ea-circular")] if name == "all" else [name]
    return [table[p]() for p in names]


def protocol_step(name: str, model: Counted, folder: Path, args: argparse.Namespace, device: torch.device,
                  amp: torch.dtype | None, record: dict) -> Callable[[], None]:
    def step() -> None:
        found = scorers(name, args)
        decode = max(s.input_size or args.crop_size for s in found)
        batch = args.forward_batch if name == "e" else args.batch_size
        dataset = ImageFolderDataset(folder, transform=uint8_transform(args.crop_size + args.max_shift, decode),
                                     return_index=True)
        loader = DataLoader(dataset, batch_size=batch, num_workers=args.workers, pin_memory=device.type == "cuda")
        for scorer in found:
            if hasattr(scorer, "prepare"):
                scorer.prepare(model, device)  # layer discovery, before the timed work
        before = model.samples
        run_protocols(model, loader, device, found,
                      LoopOptions(amp_dtype=amp, channels_last=True, progress=False, cache_bytes=4 << 30))
        record.setdefault(name, []).append(model.samples - before)
    return step


def bare_step(model: nn.Module, args: argparse.Namespace, device: torch.device, amp: torch.dtype | None,
              passes: int) -> Callable[[], None]:
    x = torch.randn(args.forward_batch, 3, args.crop_size, args.crop_size, device=device)
    x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            for _ in range(passes):
                model(x)
    return step


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[args.amp]
    folder = imagenet_sample_folder(Path(args.data), args.images, "val")
    model = build_model(args.model).to(device).eval().to(memory_format=torch.channels_last)
    counted = Counted(model)
    samples: dict[str, list[int]] = {}
    passes = max(1, (4 * args.images) // args.forward_batch)
    steps = {"bare forward": bare_step(model, args, device, amp, passes)}
    steps.update({p: protocol_step(p, counted, folder, args, device, amp, samples) for p in args.protocols})
    times = interleaved(steps, args.repeats, args.warmup, device)
    bare = passes * args.forward_batch / median(times["bare forward"])
    rows = [{"protocol": "bare forward", "samples": passes * args.forward_batch,
             "seconds": f"{median(times['bare forward']):.3f}", "samples/s": f"{bare:.1f}", "vs bare": "1.00"}]
    for p in args.protocols:
        count = samples[p][-1]
        rate = count / median(times[p])
        rows.append({"protocol": p, "samples": count, "seconds": f"{median(times[p]):.3f}",
                     "samples/s": f"{rate:.1f}", "vs bare": f"{rate / bare:.2f}",
                     "images/s": f"{args.images / median(times[p]):.1f}"})
    info = machine_info(device)
    print(f"model {args.model}, device {device}, forward batch {args.forward_batch}, loader batch "
          f"{args.batch_size}, {args.images} images, {args.workers} workers, amp {args.amp}")
    print_table(rows, ["protocol", "samples", "seconds", "samples/s", "vs bare", "images/s"])
    if args.json:
        write_json(Path(args.json), {"args": vars(args), "machine": info, "rows": rows,
                                     "times": {k: v for k, v in times.items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
