"""Part 2 of ``bench_gpu.py``: ``antialiased train`` and the evaluation protocols end to end.

Each run is a subprocess started the way users start it (the ``antialiased`` command; the
protocols through ``bench_protocols.py``), on synthetic JPEG folders (``synthetic_data.py``)
unless real ones are given, with a timeout from what is left of the budget.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from synthetic_data import make_flat_folder, make_folder

__all__ = ["run_end_to_end", "e2e_rows"]

HERE = Path(__file__).resolve().parent
CLI = [sys.executable, "-c", "import sys; from antialiased.cli import main; sys.exit(main(sys.argv[1:]))"]
# Below this share of a batch spent waiting for data, the GPU (the model) sets the pace.
DATA_BOUND_SHARE = 0.10


def _env(device: torch.device) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    if device.type == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # --device cpu on a GPU machine: the CLI must not pick the GPU
    return env


def _run(command: list[str], device: torch.device, timeout: float) -> tuple[float, str | None]:
    """Wall seconds of ``command`` and None, or the seconds and why it failed."""
    start = time.perf_counter()
    try:
        done = subprocess.run(command, env=_env(device), capture_output=True, text=True, timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        return time.perf_counter() - start, f"stopped after {timeout:.0f} s (the budget)"
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return seconds, f"exit status {done.returncode}: {' | '.join(tail)}"
    return seconds, None


def _device_flags(device: torch.device) -> list[str]:
    return ["--amp", "bf16", "--channels-last", "--gpu", str(device.index or 0)] if device.type == "cuda" \
        else ["--channels-last"]


def _train(label: str, data: Path, arch: str, crop: int, args: argparse.Namespace, device: torch.device,
           work: Path, timeout: float, iters: int) -> dict:
    """Two epochs of ``iters`` batches; the second epoch's images/s and data wait (the first warms up)."""
    out = work / f"train_{arch}_{crop}"
    command = CLI + ["train", "--data", str(data), "-a", arch, "--crop-size", str(crop), "-b", str(args.batch),
                     "-j", str(args.e2e_workers), "-ep", "2", "-mti", str(iters), "--max-val-images",
                     str(args.batch), "--lr", "0.01", "--seed", "0", "--out-dir", str(out), "--no-progress",
                     "-p", "1000"] + _device_flags(device)
    seconds, error = _run(command, device, timeout)
    row = {"run": label, "command": " ".join(command[3:]), "seconds": seconds, "error": error}
    log = out / "log.jsonl"
    if error is None and log.is_file():
        last = json.loads(log.read_text().strip().splitlines()[-1])
        batch_s = last["train_images"] / last["images_per_s"] / iters
        row.update({"images/s": last["images_per_s"], "data wait share": last["data_time"] / batch_s,
                    "batch s": batch_s})
    return row


def _protocols(data: Path, args: argparse.Namespace, device: torch.device, work: Path, timeout: float,
               images: int) -> list[dict]:
    """``bench_protocols.py`` for -e, -es, -ec: each protocol's samples/s against the bare forward pass."""
    result = work / "protocols.json"
    quick = ["--crop-size", "64", "--max-shift", "8", "--epochs-shift", "1"] if args.quick else []
    command = [sys.executable, str(HERE / "bench_protocols.py"), "--data", str(data), "--images", str(images),
               "--model", "resnet50_lpf4", "--device", str(device), "--forward-batch", str(args.infer_batch),
               "-b", str(max(1, args.infer_batch // 8)), "-j", str(args.e2e_workers), "--protocols", "e", "es",
               "ec", "--repeats", "1", "--warmup", "1", "--json", str(result)] + quick
    if device.type == "cuda":
        command += ["--amp", "bf16"]
    seconds, error = _run(command, device, timeout)
    if error is not None or not result.is_file():
        return [{"run": "protocols -e -es -ec", "seconds": seconds, "error": error or "no result file"}]
    rows = json.loads(result.read_text())["rows"]
    return [{"run": f"protocol {r['protocol']}", "images/s": float(r.get("images/s") or 0) or None,
             "samples/s": float(r["samples/s"]), "vs bare forward": float(r["vs bare"]), "seconds": seconds,
             "error": None} for r in rows]


def _datasets(args: argparse.Namespace, work: Path, iters: int) -> tuple[Path, Path, Path]:
    """(ImageNet-sized folder, CIFAR folder, flat folder for the protocols): given or synthetic."""
    size, small = ((96, 72), (32, 32)) if args.quick else ((500, 375), (32, 32))
    per_class = max(1, args.batch * iters // 10)
    imagenet = args.imagenet or make_folder(work / "imagenet_sized", 10, per_class, size, val_per_class=8)
    cifar = args.cifar or make_folder(work / "cifar_sized", 10, per_class * 4, small, val_per_class=50)
    flat = make_flat_folder(work / "flat", args.protocol_images, size)
    return Path(imagenet), Path(cifar), flat


def run_end_to_end(args: argparse.Namespace, device: torch.device, budget, model_rows: list[dict],
                   notes: list[str]) -> list[dict]:
    """Train (ImageNet-sized, CIFAR) and the protocols, each while the budget lasts."""
    args.e2e_workers = args.workers or max(1, (os.cpu_count() or 2) - 2)
    args.protocol_images = 8 if args.quick else 256
    iters = 2 if args.quick else 20
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_gpu_"))
    start = time.perf_counter()
    imagenet, cifar, flat = _datasets(args, work, iters)
    print(f"  synthetic data ready in {time.perf_counter() - start:.0f} s ({budget.elapsed():.0f} s)", flush=True)
    crop = 64 if args.quick else 224
    plans = [
        ("train resnet50_lpf4, ImageNet-sized", 0.40,
         lambda t: [_train("train resnet50_lpf4, ImageNet-sized", imagenet, "resnet50_lpf4", crop, args, device,
                           work, t, iters)]),
        ("protocols -e -es -ec", 0.35, lambda t: _protocols(flat, args, device, work, t, args.protocol_images)),
        ("train resnet18_lpf4, CIFAR-10", 1.0,
         lambda t: [_train("train resnet18_lpf4, CIFAR-10", cifar, "resnet18_lpf4", 32, args, device, work, t,
                           iters)]),
    ]
    rows = []
    for label, share, run in plans:
        left = budget.left() - 5.0
        if left < 20.0:
            notes.append(f"{label}: skipped (the budget was spent)")
            continue
        rows += run(max(20.0, left * share))
        print(f"  {label}: done ({budget.elapsed():.0f} s)", flush=True)
    _model_only(rows, model_rows)
    return rows


def _model_only(rows: list[dict], model_rows: list[dict]) -> None:
    """Set the ImageNet-sized training run against part 1's model-only training rate (same batch)."""
    paper = next((r for r in model_rows if r["key"] == "lpf4"), {})
    for row in rows:
        if row["run"].startswith("train resnet50_lpf4") and row.get("images/s") and paper.get("train img/s"):
            row["model-only img/s"] = paper["train img/s"]
            row["vs model-only"] = row["images/s"] / paper["train img/s"]


def e2e_rows(rows: list[dict], device: torch.device) -> list[dict]:
    """The rows with 'limited by' filled in: the model on the device, or the input pipeline."""
    model = "the model (GPU)" if device.type == "cuda" else "the model (CPU compute)"
    for row in rows:
        if row.get("error"):
            row["limited by"] = f"not measured: {row['error']}"
        elif "data wait share" in row:
            row["limited by"] = model if row["data wait share"] < DATA_BOUND_SHARE else \
                "input pipeline (JPEG decode + augmentation)"
        elif "vs bare forward" in row:
            row["limited by"] = model if row["vs bare forward"] >= 0.9 else \
                "input pipeline or per-copy work (below 0.90 of the bare forward pass)"
    return rows
