"""Segmentation evidence on data no one tuned to (issue 18, deliver 6): anti-aliased decoders on generated shapes.

One command generates the segmentation dataset of :mod:`antialiased.demo.seg_shapes` (shapes with
fine, aliasing-prone textures, several per image, per-pixel labels; written as a Pascal VOC folder,
nothing to download), trains a small U-Net (three 2x max-pools, three 2x2 transposed convs, skip
concatenations; :class:`antialiased.demo.seg_nets.SegUNet`) as

- the baseline,
- ``antialias(unet, method="blurpool", filter_size=N, upsample=False)``: BlurPool on the subsamplings only,
- ``antialias(unet, method="blurpool", filter_size=N)``: also a stride-1 blur after every upsampling,
- ``antialias(unet, method="aps", circular=True)``: APS with polyphase upsampling and circular padding
  (exactly equivariant to circular shifts),

each seed's variants from the same initial weights on the same crops in the same order, and measures
them with the package's own segmentation protocols (the scorers ``antialiased eval --task segmentation``
runs): mIoU (``-e``), segmentation consistency (``-es``) and circular segmentation consistency (``-ec``).
Prints a Markdown table (mean ± std over seeds) and writes it with the command, budget, machine and wall
time into ``--out`` (``seg_evidence.md``, ``seg_evidence.json`` with every run, ``seg_evidence.png``).
Runs go seed by seed, so ``--budget-seconds`` leaves every variant with fewer seeds rather than some
with none; the runs it skips are listed. Outputs are rewritten after every run.

The stated CPU budget: 3 seeds x 4 variants, 480 training and 100 test images of 72px, 26 epochs of
64px crops, two runs at once (one process per core, one torch thread each); about 11 minutes on 2
quiet cores, estimated from CPU time measured on the busy shared VM (one thread, per 64px training
image: 6.1-6.8 ms for the baseline, 7.7-8.4 ms with BlurPool down + up, 9.7-10.1 ms for APS),
never starting a run expected to end after 15 minutes:

    .venv/bin/python benchmarks/seg_evidence.py --out results/seg_evidence

The small version run for BENCHMARKS.md on the busy VM (14 epochs instead of 26):

    .venv/bin/python benchmarks/seg_evidence.py --epochs 14 --budget-seconds 1500 --out results/seg_evidence_small
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import shlex
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _methods_common import RunBudget  # noqa: E402
from common import machine_info  # noqa: E402
from antialiased.demo.report import methods_table, plot_methods, summarize_variants  # noqa: E402
from antialiased.demo.run import _device  # noqa: E402
from antialiased.demo.seg_data import SegDemoData, read_seg_data  # noqa: E402
from antialiased.demo.seg_run import (SEG_COLUMNS, SegDemoConfig, seg_data_for,  # noqa: E402
                                      train_seg_variant)
from antialiased.demo.seg_variants import parse_seg_variant  # noqa: E402
from antialiased.demo.seg_shapes import SEG_CLASSES  # noqa: E402
from antialiased.errors import AntialiasedError  # noqa: E402
from antialiased.support.files import atomic_write_text  # noqa: E402

# the full run's settings (the stated budget); every one a flag
DEFAULTS = dict(seeds=[0, 1, 2], images=480, val_images=100, size=72, max_shift=8, shapes=[6, 10], epochs=26,
                width=8, batch_size=8, lr=0.1, filter_size=3, epochs_shift=2, jobs=2, threads=1, budget_seconds=900.0)


def get_args_parser() -> argparse.ArgumentParser:
    d = DEFAULTS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=d["seeds"], help=f"training seeds (default: {d['seeds']})")
    p.add_argument("--images", type=int, default=d["images"], help=f"training images (default: {d['images']})")
    p.add_argument("--val-images", type=int, default=d["val_images"], help=f"test images (default: {d['val_images']})")
    p.add_argument("--size", type=int, default=d["size"],
                   help=f"side of the generated images, a multiple of 8; the network trains on (size - max-shift) "
                        f"crops (default: {d['size']})")
    p.add_argument("--max-shift", type=int, default=d["max_shift"],
                   help=f"-es crop offsets and -ec circular shifts, a multiple of 8 (default: {d['max_shift']})")
    p.add_argument("--shapes", type=int, nargs=2, default=d["shapes"], metavar=("MIN", "MAX"),
                   help=f"shapes per generated image (default: {d['shapes'][0]} {d['shapes'][1]})")
    p.add_argument("--epochs", type=int, default=d["epochs"], help=f"training epochs per run (default: {d['epochs']})")
    p.add_argument("--width", type=int, default=d["width"], help=f"U-Net's first width (default: {d['width']})")
    p.add_argument("-b", "--batch-size", type=int, default=d["batch_size"], help=f"(default: {d['batch_size']})")
    p.add_argument("--lr", type=float, default=d["lr"], help=f"SGD learning rate, cosine-decayed (default: {d['lr']})")
    p.add_argument("--filter-size", type=int, default=d["filter_size"],
                   help=f"BlurPool's filter size (default: {d['filter_size']})")
    p.add_argument("--epochs-shift", type=int, default=d["epochs_shift"],
                   help=f"passes over the test images for -es and -ec (default: {d['epochs_shift']})")
    p.add_argument("--jobs", type=int, default=d["jobs"],
                   help=f"runs at once, each in its own process (default: {d['jobs']}: one per core of 2)")
    p.add_argument("--threads", type=int, default=d["threads"],
                   help=f"torch CPU threads per run (default: {d['threads']}: the U-Net's small convolutions scale "
                        f"poorly over threads, and spin on a busy machine)")
    p.add_argument("--budget-seconds", type=float, default=d["budget_seconds"],
                   help=f"start no run expected to end after this many seconds from the start; 0: no limit "
                        f"(default: {d['budget_seconds']:g})")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--out", type=Path, default=Path("results/seg_evidence"), help="output folder")
    return p


def config_of(args: argparse.Namespace) -> SegDemoConfig:
    """The demo's config for these flags (its ``seed`` is set per run)."""
    return SegDemoConfig(out_dir=str(args.out), epochs=args.epochs, filter_sizes=(args.filter_size,), width=args.width,
                         crop_size=args.size - args.max_shift, max_shift=args.max_shift, train_size=args.images,
                         test_size=args.val_images, batch_size=args.batch_size, lr=args.lr,
                         epochs_shift=args.epochs_shift, shapes=tuple(args.shapes), device=args.device,
                         progress=False, plot=False)


def _line(record: dict[str, Any], elapsed: float) -> str:
    if "metrics" not in record:
        return f"seed {record['seed']} {record['spec']}: {record['status']}"
    m = record["metrics"]
    return (f"seed {record['seed']} {record['label']}: mIoU {m['miou']:.2f}  -es {m['consistency']:.2f}  "
            f"-ec {m['circular_consistency']:.2f}  ({m['train_time_s']:.0f}s training, {elapsed:.0f}s so far)")


_DATA: dict[str, SegDemoData] = {}  # per process: the written folder, read once


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def run_one(cfg: SegDemoConfig, folder: Path, spec: str, seed: int) -> dict[str, Any]:
    """Train and measure one variant at one seed (in a worker process, or in this one); its record."""
    if str(folder) not in _DATA:
        _DATA[str(folder)] = read_seg_data(folder, seed=cfg.data_seed)
    start = time.perf_counter()
    record = train_seg_variant(dataclasses.replace(cfg, seed=seed), _DATA[str(folder)], parse_seg_variant(spec),
                               _device(cfg.device))
    return {**record, "spec": spec, "status": "done", "run_seconds": round(time.perf_counter() - start, 2)}


class _InProcess:
    """``--jobs 1``: each run here, at once (an executor's ``submit``, without a pool)."""

    def __enter__(self) -> "_InProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def submit(self, fn, *args: Any) -> Future:
        done: Future = Future()
        done.set_result(fn(*args))
        return done


def _pool(args: argparse.Namespace) -> Any:
    if args.jobs == 1:
        return _InProcess()
    return ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                               initargs=(args.threads,))


def run_all(cfg: SegDemoConfig, args: argparse.Namespace, start: float, save) -> list[dict[str, Any]]:
    """Every seed's variants, seed by seed, ``--jobs`` at a time, each started only when the budget counted
    from ``start`` expects it to end in time; ``save(runs, data)`` after each."""
    budget, runs = RunBudget(args.budget_seconds or None, start), []
    data = seg_data_for(cfg, args.out / "seg_shapes")
    _DATA[str(data.folder)] = data
    tasks = [(seed, variant) for seed in args.seeds for variant in cfg.variants()]
    order = {(seed, variant.spec): i for i, (seed, variant) in enumerate(tasks)}

    def finished(record: dict[str, Any]) -> None:
        if record["status"] == "done":
            budget.record(record["spec"], record["run_seconds"])
        runs.append(record)
        runs.sort(key=lambda r: order[r["seed"], r["spec"]])
        print(_line(record, budget.elapsed()), file=sys.stderr, flush=True)
        save(runs, data)

    with _pool(args) as pool:
        pending: set[Future] = set()
        for seed, variant in tasks:
            while len(pending) >= args.jobs:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    finished(future.result())
            if budget.fits(variant.spec):
                pending.add(pool.submit(run_one, cfg, data.folder, variant.spec, seed))
            else:
                finished({"spec": variant.spec, "label": variant.label, "seed": seed,
                          "status": "skipped: over --budget-seconds"})
        for future in wait(pending).done:
            finished(future.result())
    return runs


def _per_class(done: list[dict[str, Any]]) -> str:
    """Mean ± std over seeds of each class's IoU (-e), one row per variant."""
    columns = {f"iou_{name}": name for name in SEG_CLASSES}
    flat = [{**r, "metrics": {f"iou_{k}": v for k, v in r["metrics"]["per_class_iou"].items()}} for r in done]
    return methods_table(summarize_variants(flat, columns), digits=1, columns=columns)


def report(cfg: SegDemoConfig, args: argparse.Namespace, runs: list[dict[str, Any]], data, machine: dict[str, Any],
           seconds: float, command: str) -> str:
    """The Markdown report: what was run where, the table, the per-class IoU, the protocols, what was skipped."""
    done = [r for r in runs if r["status"] == "done"]
    skipped = [f"{r['spec']} (seed {r['seed']})" for r in runs if r["status"] != "done"]
    seeds = sorted({r["seed"] for r in done})
    params = done[0]["metrics"]["params"] if done else "?"
    lines = [
        f"Command: `{command}`",
        f"Budget: --budget-seconds {args.budget_seconds:g}; wall time {seconds:.0f} s ({seconds / 60:.1f} min). "
        f"Machine: {machine['cpu']}, {machine['cpu_cores']} CPUs visible, {args.jobs} run(s) at once with "
        f"{args.threads} torch thread(s) each, torch {machine['torch']}, device {machine['device']}; load average "
        f"{machine['load_average_start']} at the start, {machine.get('load_average_end')} at the end.",
        f"Data: generated shapes ({len(data.train_images)} training, {data.test_count} test images of "
        f"{data.image_size}px, {cfg.shapes[0]}-{cfg.shapes[1]} shapes each, data seed {cfg.data_seed}); U-Net width "
        f"{cfg.width} ({params} parameters), {cfg.epochs} epochs of {cfg.crop_size}px random crops and flips, batch "
        f"{cfg.batch_size}, SGD lr {cfg.lr:g} (Nesterov, cosine), seeds {seeds}: mean ± std over seeds.",
        methods_table(summarize_variants(done, SEG_COLUMNS), columns=SEG_COLUMNS) if done else "(no run finished)",
        "Per-class IoU (-e):",
        _per_class(done) if done else "",
        "Protocols: " + cfg.describe_protocols() + ".",
    ]
    if skipped:
        lines.append("Not run (over --budget-seconds): " + ", ".join(skipped) + ".")
    return "\n\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    command = "python benchmarks/seg_evidence.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.threads < 1 or args.jobs < 1:
        print("seg_evidence: --threads and --jobs must be >= 1", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    cfg = config_of(args)
    try:
        cfg.validate()
        machine = {**machine_info(_device(cfg.device)), "jobs": args.jobs}
        args.out.mkdir(parents=True, exist_ok=True)

        def save(runs: list[dict[str, Any]], data) -> str:
            seconds = time.perf_counter() - start
            machine["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
            text = report(cfg, args, runs, data, machine, seconds, command)
            atomic_write_text(args.out / "seg_evidence.md", text)
            atomic_write_text(args.out / "seg_evidence.json", json.dumps(
                {"command": command, "budget_seconds": args.budget_seconds, "wall_seconds": round(seconds, 1),
                 "machine": machine, "settings": dataclasses.asdict(cfg), "dataset": str(data.folder),
                 "runs": runs}, indent=2, default=str) + "\n")
            return text

        runs = run_all(cfg, args, start, save)
    except AntialiasedError as exc:
        print(f"seg_evidence: {exc}", file=sys.stderr)
        return 2
    done = [r for r in runs if r["status"] == "done"]
    if done:
        plot_methods(summarize_variants(done, SEG_COLUMNS), args.out / "seg_evidence.png", columns=SEG_COLUMNS,
                     title=f"U-Net on generated shapes, seeds {sorted({r['seed'] for r in done})}")
    print((args.out / "seg_evidence.md").read_text())
    print(f"wrote {args.out / 'seg_evidence.md'}, seg_evidence.json" + (" and seg_evidence.png" if done else ""),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
