"""Inputs that verification runs through both PyTorch and the exported file.

Real photos from a folder (an ImageFolder-layout dataset or a flat folder of images), images
generated here when no folder is given, and random normal tensors. Photos and generated images
go through the model's evaluation preprocessing: resize the shorter side (256 for a 224 crop,
scaled with the input size), center crop, ImageNet mean/std.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torchvision import transforms as T
from torchvision.datasets.folder import IMG_EXTENSIONS

from antialiased.data import IMAGENET_MEAN, IMAGENET_STD, load_rgb
from antialiased.errors import DataError, MissingFileError
from antialiased.export.metadata import ExportMetadata

__all__ = ["SampleSet", "photo_transform", "find_images", "photo_samples", "generated_samples", "random_samples"]

# What PIL raises for files that are not readable images.
_READ_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclass(frozen=True)
class SampleSet:
    """A named batch of normalized float inputs, ``(N, 3, H, W)``."""

    kind: str
    description: str
    inputs: torch.Tensor


def photo_transform(meta: ExportMetadata) -> T.Compose:
    """The evaluation preprocessing that ``meta`` records: resize, center crop, scale, normalize.

    For the paper's models at 224 it is :func:`antialiased.data.eval_transform` (256 / 224, ImageNet).

    Example:
        >>> meta = ExportMetadata("m", "4", "random", (128, 96), 10)
        >>> photo_transform(meta)(Image.new("RGB", (300, 200))).shape
        torch.Size([3, 128, 96])
    """
    h, w = meta.input_size
    return T.Compose([T.Resize(meta.resize), T.CenterCrop(h if h == w else (h, w)), T.ToTensor(),
                      T.Normalize(meta.mean, meta.std)])


def _meta(hw: tuple[int, int]) -> ExportMetadata:
    return ExportMetadata("", "", "", hw, 0, IMAGENET_MEAN, IMAGENET_STD)


def find_images(folder: str | os.PathLike) -> list[Path]:
    """The image files under ``folder`` (its ``val/`` split if it has one), sorted, recursively.

    Raises:
        MissingFileError: no such folder.
        DataError: a file instead of a folder, or no images in it.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise MissingFileError(f"--data {root}: no such folder (give a folder of images, or an ImageFolder "
                               f"dataset such as DIR with DIR/val/<class>/*.JPEG)")
    if not root.is_dir():
        raise DataError(f"--data {root} is a file; give a folder of images (or an ImageFolder dataset)")
    if (root / "val").is_dir():
        root = root / "val"
    files = sorted(Path(dirpath) / name for dirpath, _, names in os.walk(root, followlinks=True)
                   for name in names if name.lower().endswith(IMG_EXTENSIONS) and not name.startswith("."))
    if not files:
        raise DataError(f"--data {root}: no image files ({', '.join(IMG_EXTENSIONS)}) found in it or below it")
    return files


def _spread(files: list[Path], n: int) -> list[Path]:
    # every (len/n)-th file first, so the photos come from across the folder (several classes)
    picked = [files[i * len(files) // n] for i in range(min(n, len(files)))]
    chosen = set(picked)
    return picked + [f for f in files if f not in chosen]


def photo_samples(folder: str | os.PathLike, n: int, hw: tuple[int, int] | ExportMetadata) -> SampleSet:
    """Up to ``n`` readable photos from ``folder``, preprocessed as ``hw`` (ImageNet's preprocessing
    for that size) or an :class:`ExportMetadata` says.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> for i in range(3): Image.new("RGB", (40, 30), (80 * i, 20, 40)).save(f"{d}/{i}.png")
        >>> s = photo_samples(d, 2, (32, 32))
        >>> s.inputs.shape, s.description.startswith("2 photos from")
        (torch.Size([2, 3, 32, 32]), True)
    """
    transform = photo_transform(hw if isinstance(hw, ExportMetadata) else _meta(hw))
    tensors, unreadable = [], 0
    for path in _spread(find_images(folder), n):
        if len(tensors) == n:
            break
        try:
            tensors.append(transform(load_rgb(str(path))))
        except _READ_ERRORS:
            unreadable += 1
    if not tensors:
        raise DataError(f"--data {folder}: none of the image files could be read ({unreadable} tried)")
    skipped = f", {unreadable} unreadable skipped" if unreadable else ""
    return SampleSet("photos", f"{len(tensors)} photos from {folder}{skipped}", torch.stack(tensors))


def _generated_image(index: int, seed: int) -> Image.Image:
    g = torch.Generator().manual_seed(seed * 1000 + index)
    size = (300, 400) if index % 2 else (400, 300)  # landscape and portrait: resize + crop both ways
    field = F.interpolate(torch.rand(1, 3, 5, 7, generator=g), size=size, mode="bicubic", align_corners=False)
    texture = 0.08 * torch.randn(1, 3, *size, generator=g)
    pixels = ((field + texture).clamp(0, 1)[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(6):  # sharp edges: where aliasing and numerical differences show
        x0, y0 = (int(v) for v in torch.randint(0, min(size) - 40, (2,), generator=g))
        x1, y1 = x0 + int(torch.randint(20, 160, (1,), generator=g)), y0 + int(torch.randint(20, 160, (1,), generator=g))
        color = tuple(int(c) for c in torch.randint(0, 256, (3,), generator=g))
        (draw.ellipse if torch.rand(1, generator=g) < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=color)
    return image


def generated_samples(n: int, hw: tuple[int, int] | ExportMetadata, seed: int = 0) -> SampleSet:
    """``n`` generated photo-like images (smooth color fields, texture, sharp shapes), preprocessed.

    Example:
        >>> s = generated_samples(2, (64, 48))
        >>> s.inputs.shape, torch.equal(s.inputs, generated_samples(2, (64, 48)).inputs)
        (torch.Size([2, 3, 64, 48]), True)
    """
    transform = photo_transform(hw if isinstance(hw, ExportMetadata) else _meta(hw))
    images = torch.stack([transform(_generated_image(i, seed)) for i in range(n)])
    return SampleSet("generated", f"{n} generated images (no --data)", images)


def random_samples(batch_sizes: tuple[int, ...], hw: tuple[int, int], seed: int = 0) -> list[SampleSet]:
    """One batch of standard-normal inputs per batch size.

    Example:
        >>> [s.inputs.shape[0] for s in random_samples((1, 3), (8, 8))]
        [1, 3]
    """
    g = torch.Generator().manual_seed(seed)
    return [SampleSet("random", f"random normal inputs, batch {b}", torch.randn(b, 3, *hw, generator=g))
            for b in batch_sizes]
