#!/usr/bin/env python
"""Whole-model GPU throughput: ours against torchvision's ResNet-50 and timm's anti-aliased ResNets,
then ``antialiased train`` and ``eval`` end to end, in one run that fits a time budget.

Part 1, models (one process, interleaved rounds, medians): for every model, training steps
(SGD, bf16 autocast, channels_last) eager and under ``torch.compile``, and inference
(``inference_mode``, bf16, channels_last): images/s, peak memory of a step over the resident
weights (CUDA), bytes autograd saves for backward, and the overhead over the baseline of its group:

- ResNet-50: torchvision's ``resnet50`` (baseline); ours ``resnet50_lpf4`` (the paper's recipe),
  ``antialias(resnet50, method="blur-first")``, ``antialias(resnet50, method="aps")``; timm's
  ``resnetblur50`` (timm's hand-built blur, filter 3) and ours ``timm/resnet50_lpf3`` (timm's
  ResNet-50 converted by our ``antialias``, filter 3; it also blurs the strided shortcuts, which
  ``resnetblur50`` does not).
- ResNet-50-D: timm's ``resnet50d`` (baseline), ``resnetaa50d`` (timm's hand-built anti-aliasing:
  a 2x2 average pool) and ours ``timm/resnet50d_lpf3``.

Targets (issue 20): ours at least as fast as timm's hand-built model of its group and no more
memory; the paper's recipe at most +13% at inference over its baseline (the paper's figure, on a
2080 Ti); blur-first at most +10% in training.

Part 2, end to end (subprocesses, as users run them; synthetic JPEG folders unless --cifar or
--imagenet name real ones): ``antialiased train`` on CIFAR-10-sized (32x32, resnet18_lpf4) and
ImageNet-sized (500x375, resnet50_lpf4) images, images/s of the second epoch, set against the
model-only training rate of part 1 and the share of each batch spent waiting for data; and the
protocols ``-e``, ``-es``, ``-ec`` (``bench_protocols.py``: each against the bare forward pass).
"What limits it" says GPU when data waits take under 10% of a batch, else the input pipeline.

Every phase is planned against ``--budget-seconds`` (default 450, under 8 minutes on an H100 with
start-up); what does not fit is skipped and listed, never extrapolated. ``--device cpu --quick``
runs the same code paths with small inputs (32x32, batch 2, one step per round, ``aot_eager``
compile of one model, tiny end-to-end runs) in a few minutes on a CPU.

    python benchmarks/bench_gpu.py --json results/bench_gpu.json              # on a CUDA machine
    python benchmarks/bench_gpu.py --device cpu --quick                       # the same paths, tiny
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from gpu_models import MODELS, Runner, build_runners, model_rows, target_rows  # noqa: E402
from gpu_e2e import e2e_rows, run_end_to_end  # noqa: E402
from common import machine_info, write_json  # noqa: E402
from gpu_report import device_header, markdown_table  # noqa: E402


class Budget:
    """Seconds left of ``--budget-seconds``, and the share reserved for the end-to-end part."""

    def __init__(self, total: float, e2e_share: float) -> None:
        self.start, self.total, self.e2e_share = time.perf_counter(), total, e2e_share

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.total - self.elapsed()

    def models_left(self) -> float:
        """What part 1 may still spend: the total less the end-to-end share."""
        return self.total * (1.0 - self.e2e_share) - self.elapsed()


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--quick", action="store_true",
                   help="small inputs and batches, aot_eager compile, tiny end-to-end runs: checks the code paths")
    p.add_argument("--budget-seconds", type=float, default=None,
                   help="the whole run's time budget; phases that do not fit are skipped (default 450; 900 with "
                        "--quick)")
    p.add_argument("--e2e-share", type=float, default=0.4,
                   help="share of the budget kept for the end-to-end part (default 0.4)")
    p.add_argument("--models", nargs="+", default=[m.key for m in MODELS], choices=[m.key for m in MODELS],
                   metavar="KEY", help=f"models to time (default: all: {', '.join(m.key for m in MODELS)})")
    p.add_argument("--compile", nargs="*", default=None, metavar="KEY",
                   help="models also timed under torch.compile (default: tv50 lpf4 blurfirst timm50d ours50d; "
                        "none: --compile with no KEY)")
    p.add_argument("--compile-backend", default=None,
                   help="torch.compile backend (default: inductor; aot_eager with --quick)")
    p.add_argument("--batch", type=int, default=None, help="training batch (default 128; 2 with --quick)")
    p.add_argument("--infer-batch", type=int, default=None, help="inference batch (default 256; 2 with --quick)")
    p.add_argument("--size", type=int, default=None, help="input side (default 224; 32 with --quick)")
    p.add_argument("--steps", type=int, default=None, help="steps per model per round (default 5; 1 with --quick)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per model first (default 3; 1 with --quick)")
    p.add_argument("--repeats", type=int, default=5, help="at most this many timed rounds (default 5)")
    p.add_argument("--no-e2e", action="store_true", help="skip the end-to-end part")
    p.add_argument("--cifar", type=Path, default=None,
                   help="a CIFAR-10 folder (train/, test/) for the end-to-end run (default: synthetic 32x32 images)")
    p.add_argument("--imagenet", type=Path, default=None,
                   help="an ImageNet-layout folder (train/, val/) (default: synthetic 500x375 JPEGs)")
    p.add_argument("-j", "--workers", type=int, default=None, help="loader workers end to end (default: cores - 2)")
    p.add_argument("--work-dir", type=Path, default=None, help="where synthetic data and runs go (default: a temp dir)")
    p.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    return p


def _settings(args: argparse.Namespace) -> argparse.Namespace:
    quick = args.quick
    if args.budget_seconds is None:
        args.budget_seconds = 900.0 if quick else 450.0
    for name, full, small in (("batch", 128, 2), ("infer_batch", 256, 2), ("size", 224, 32), ("steps", 5, 1),
                              ("warmup", 3, 1)):
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    if args.compile is None:
        args.compile = ["tv50"] if quick else ["tv50", "lpf4", "blurfirst", "timm50d", "ours50d"]
    args.compile = [k for k in args.compile if k in args.models]
    args.compile_backend = args.compile_backend or ("aot_eager" if quick else "inductor")
    for name in ("batch", "infer_batch", "size", "steps", "repeats", "warmup"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def _device(args: argparse.Namespace) -> torch.device:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was requested but torch sees no CUDA device; use --device cpu --quick")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # what a training script on a fixed input size does
    return device


def _timed_rounds(runners: list[Runner], args: argparse.Namespace, budget: Budget) -> tuple[int, list[str]]:
    """Interleaved rounds (order rotated) until --repeats or part 1's budget: each runner's times."""
    notes, rounds = [], 0
    round_cost = None
    while rounds < args.repeats:
        if round_cost is not None and budget.models_left() < round_cost:
            notes.append(f"timed rounds: {rounds} of {args.repeats} fitted the budget")
            break
        start = time.perf_counter()
        shift = rounds % len(runners)
        for runner in runners[shift:] + runners[:shift]:
            runner.timed(args.steps)
        round_cost = time.perf_counter() - start
        rounds += 1
    return rounds, notes


def main(argv: list[str] | None = None) -> int:
    args = _settings(get_args_parser().parse_args(argv))
    device = _device(args)
    budget = Budget(args.budget_seconds, 0.0 if args.no_e2e else args.e2e_share)
    info = {**machine_info(device), **device_header(device)}
    print(f"bench_gpu: {info.get('gpu') or info['cpu']}, torch {torch.__version__}, budget {args.budget_seconds:.0f} s",
          flush=True)
    runners, notes = build_runners(args, device, budget)
    rounds, round_notes = _timed_rounds(runners, args, budget)
    notes += round_notes
    rows = model_rows(runners, args)
    targets = target_rows(rows)
    e2e = [] if args.no_e2e else run_end_to_end(args, device, budget, rows, notes)
    print()
    print(markdown_table(info, args, rows, targets, e2e_rows(e2e, device), rounds, notes, budget.elapsed()))
    if args.json:
        write_json(args.json, {"benchmark": "gpu", "machine": info,
                               "settings": {k: str(v) for k, v in vars(args).items()}, "rounds": rounds,
                               "models": rows, "targets": targets, "end_to_end": e2e, "notes": notes,
                               "seconds": round(budget.elapsed(), 1)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
