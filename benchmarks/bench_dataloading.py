#!/usr/bin/env python
"""Data loading alone, images/s per worker: decode + transforms, ours vs torchvision's standard transforms.

Each pipeline is run in one process over the same real JPEGs (../shared/data/imagenet-sample), which
is what one DataLoader worker does; repeats are interleaved and medians reported.

- train: RandomResizedCrop(224) + horizontal flip + ToTensor + Normalize. Ours is
  ``ImageFolderDataset`` + ``antialiased.data.train_transform()``: the same torchvision ops, plus
  the corrupt-file guard; ``ours_jpeg`` is ``antialiased.data.jpeg.JpegFolderDataset`` with the same
  transform (JPEGs decoded by ``torchvision.io.decode_jpeg``, the chain fused on the crop). Every
  item of every contender is compared with torchvision's under the same seed: ``identical`` counts
  the bit-identical ones.
- eval (-e): torchvision Resize(256) + CenterCrop(224) + ToTensor + Normalize vs ours, which hands
  uint8 Resize(256) + CenterCrop(224) crops to the main process (``-e`` alone decodes straight to
  224; normalized there, or on the GPU, in batches, bit-identical; that batched cost is measured
  and printed separately).
- eval-256 (-es/-ed): the same with CenterCrop(256), the shift protocols' input.
- ``--with-draft``: ours with JPEG draft-mode decoding (opt-in approximation) for the eval pipelines.

    python benchmarks/bench_dataloading.py --images 200 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from common import imagenet_sample_folder  # noqa: E402
from torchvision import datasets  # noqa: E402
from torchvision import transforms as T  # noqa: E402

from antialiased.data import (IMAGENET_MEAN, IMAGENET_STD, ImageFolderDataset, to_float_normalized,  # noqa: E402
                              train_transform, uint8_transform)
from antialiased.data.jpeg import JpegFolderDataset  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "imagenet-sample"),
                   help="flat folder of <wnid>_<name>.JPEG files (default: ../shared/data/imagenet-sample)")
    p.add_argument("--images", type=int, default=200, help="first N images in name order (default: 200)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats (default: 3)")
    p.add_argument("--pipelines", nargs="+", default=["train", "eval", "eval-256"],
                   choices=["train", "eval", "eval-256"])
    p.add_argument("--with-draft", action="store_true", help="also time ours with JPEG draft-mode decoding")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    return p


def standard(resize: int, crop: int) -> T.Compose:
    return T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def contenders(root: Path, pipeline: str, draft: bool) -> dict:
    tv_train = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
                          T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    if pipeline == "train":
        out = {"torchvision": datasets.ImageFolder(str(root), tv_train),
               "ours": ImageFolderDataset(root, train_transform()),
               "ours_jpeg": JpegFolderDataset(root, train_transform())}
    else:
        crop = 224 if pipeline == "eval" else 256
        out = {"torchvision": datasets.ImageFolder(str(root), standard(256, crop)),
               "ours": ImageFolderDataset(root, uint8_transform(256, crop))}
        if draft:
            out["ours+draft"] = ImageFolderDataset(root, uint8_transform(256, crop), draft=256)
    return out


def run_once(ds) -> float:
    t0 = time.perf_counter()
    for i in range(len(ds)):
        torch.manual_seed(i)  # the same random crops and flips for every contender
        ds[i]
    return time.perf_counter() - t0


def identical(sets: dict) -> dict[str, int]:
    """Per contender, how many items equal torchvision's bit for bit (same seed per item; uint8
    crops are compared after the batched normalization the loop applies to them)."""
    reference = sets["torchvision"]
    counts = {}
    for name, ds in sets.items():
        same = 0
        for i in range(len(ds)):
            torch.manual_seed(i)
            want = reference[i][0]
            torch.manual_seed(i)
            got = ds[i][0]
            if got.dtype == torch.uint8:
                got = to_float_normalized(got[None])[0]
            same += int(got.shape == want.shape and torch.equal(got, want))
        counts[name] = same
    return counts


def normalization_cost(batch: int = 64, size: int = 224) -> float:
    """Seconds per image to normalize uint8 crops in batches (what ours moves out of the worker)."""
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
    to_float_normalized(x)
    t0 = time.perf_counter()
    for _ in range(3):
        to_float_normalized(x)
    return (time.perf_counter() - t0) / (3 * batch)


def main(argv=None) -> int:
    a = get_args_parser().parse_args(argv)
    torch.set_num_threads(1)  # as in a DataLoader worker
    root = imagenet_sample_folder(Path(a.data), a.images, "train")
    load0 = os.getloadavg()[0]
    print(f"{a.images} images, {a.repeats} interleaved repeats, one process (= one worker), "
          f"load average at start {load0:.2f}")
    results = {"args": vars(a), "loadavg_start": os.getloadavg(), "pipelines": {}}
    for pipeline in a.pipelines:
        sets = contenders(root, pipeline, a.with_draft)
        times = {k: [] for k in sets}
        for _ in range(a.repeats):
            for name, ds in sets.items():
                times[name].append(run_once(ds))
        med = {k: statistics.median(v) for k, v in times.items()}
        same = identical(sets)
        rows = {k: {"median_s": med[k], "images_per_s": a.images / med[k], "ratio": med["torchvision"] / med[k],
                    "identical": same[k], "runs_s": times[k]} for k in sets}
        results["pipelines"][pipeline] = rows
        print(f"\n{pipeline}")
        print(f"{'pipeline':<12} {'median s':>9} {'img/s/worker':>13} {'vs torchvision':>15} {'identical':>10}")
        for name, r in rows.items():
            print(f"{name:<12} {r['median_s']:>9.2f} {r['images_per_s']:>13.1f} {r['ratio']:>14.2f}x "
                  f"{r['identical']:>5}/{a.images}")
    cost = {size: normalization_cost(size=size) for size in (224, 256)}
    results["batched_normalization_s_per_image"] = cost
    results["loadavg_end"] = os.getloadavg()
    print(f"\nours normalizes in the main process (or on the GPU), batched: {1e3 * cost[224]:.3f} ms per 224x224 "
          f"image, {1e3 * cost[256]:.3f} ms per 256x256 (1 thread); load average at end "
          f"{results['loadavg_end'][0]:.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
