"""Synthetic JPEG image folders for the end-to-end benchmarks (no dataset needed on the machine).

``make_folder(root, classes, per_class, (w, h))`` writes ``root/train/<class>/*.JPEG`` and
``root/val/<class>/*.JPEG``, the layout ``antialiased train`` and ``eval`` read. Images are smooth
random colour fields with mild noise, encoded at JPEG quality 90: about the size and decode cost
of photographs (500x375: ~78 KB, decoding 1.1-1.3x as long as the photos of
``../shared/data/imagenet-sample``, ~109 KB on average), unlike pure noise (which compresses badly
and decodes slowly) or flat colour (which decodes too fast). ``flat=True``
writes one flat folder of ``<wnid>_<name>.JPEG`` files instead, the layout of
``../shared/data/imagenet-sample`` that ``bench_protocols.py --data`` reads.

    python benchmarks/synthetic_data.py /tmp/synthetic --classes 10 --per-class 100 --size 500 375
"""
from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["make_image", "make_folder", "make_flat_folder"]


def make_image(seed: int, size: tuple[int, int]) -> Image.Image:
    """A smooth random image of ``size`` (width, height): upsampled coarse noise plus fine noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    coarse = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.float32)
    pixels = np.clip(smooth + rng.normal(0.0, 7.0, smooth.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def _write(job: tuple[str, int, tuple[int, int]]) -> None:
    path, seed, size = job
    make_image(seed, size).save(path, "JPEG", quality=90)


def _run(jobs: list[tuple[str, int, tuple[int, int]]], workers: int | None) -> None:
    workers = workers or min(16, os.cpu_count() or 1)
    if workers <= 1 or len(jobs) < 64:
        for job in jobs:
            _write(job)
        return
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write, jobs, chunksize=32))


def make_folder(root: Path, classes: int, per_class: int, size: tuple[int, int], val_per_class: int | None = None,
                workers: int | None = None) -> Path:
    """``root/train`` and ``root/val`` with ``classes`` folders of ``per_class`` (``val_per_class``) images."""
    root = Path(root)
    jobs = []
    for split, count in (("train", per_class), ("val", per_class if val_per_class is None else val_per_class)):
        for c in range(classes):
            folder = root / split / f"class{c:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            jobs += [(str(folder / f"{i:05d}.JPEG"), (c * 1_000_003 + i) * 2 + (split == "val"), size) for i in range(count)]
    _run(jobs, workers)
    return root


def make_flat_folder(root: Path, count: int, size: tuple[int, int], workers: int | None = None) -> Path:
    """``count`` images named like ImageNet's (``n<8 digits>_synthetic<i>.JPEG``) in one folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _run([(str(root / f"n{i:08d}_synthetic{i}.JPEG"), i, size) for i in range(count)], workers)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="folder to write (train/ and val/ inside)")
    parser.add_argument("--classes", type=int, default=10, help="class folders (default 10)")
    parser.add_argument("--per-class", type=int, default=100, help="training images per class (default 100)")
    parser.add_argument("--size", type=int, nargs=2, default=(500, 375), metavar=("W", "H"),
                        help="image width and height (default 500 375, ImageNet-sized)")
    args = parser.parse_args(argv)
    print(make_folder(args.root, args.classes, args.per_class, tuple(args.size)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
