"""An embedded, procedurally generated image dataset where aliasing matters.

Classes are shapes (filled and thin-stroked outlines); everything else is random nuisance chosen to
make strided subsampling alias: shapes are filled with high-frequency stripe textures (periods of
2-5 pixels), lie on a striped background of another frequency and orientation, sit at sub-pixel
positions with random size and rotation, and outlines are 1-2 pixels thin. Nothing is downloaded.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from antialiased.errors import ConfigError

__all__ = ["SHAPES", "generate_shapes"]

Mask = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _disk(x, y, r, t):
    return x**2 + y**2 < r**2


def _square(x, y, r, t):
    return torch.maximum(x.abs(), y.abs()) < 0.8 * r


def _triangle_sdf(x, y, r):
    # equilateral triangle with circumradius r: the largest of its three half-plane distances
    s3 = math.sqrt(3.0)
    return torch.maximum(torch.maximum(y, (s3 * x - y) / 2), (-s3 * x - y) / 2) - r / 2


def _triangle(x, y, r, t):
    return _triangle_sdf(x, y, r) < 0


def _plus(x, y, r, t):
    arm = torch.clamp(0.22 * r, min=1.5)
    return ((x.abs() < arm) & (y.abs() < r)) | ((y.abs() < arm) & (x.abs() < r))


def _bar(x, y, r, t):
    return (x.abs() < r) & (y.abs() < torch.clamp(0.28 * r, min=1.5))


def _ring(x, y, r, t):
    return ((x**2 + y**2).sqrt() - 0.85 * r).abs() < t / 2


def _frame(x, y, r, t):
    return (torch.maximum(x.abs(), y.abs()) - 0.75 * r).abs() < t / 2


def _triangle_outline(x, y, r, t):
    return _triangle_sdf(x, y, r).abs() < t / 2


# class name -> mask of (x, y, radius, stroke thickness), coordinates centred on the shape
SHAPES: dict[str, Mask] = {
    "disk": _disk,
    "square": _square,
    "triangle": _triangle,
    "plus": _plus,
    "bar": _bar,
    "ring": _ring,
    "frame": _frame,
    "triangle_outline": _triangle_outline,
}


def _uniform(g: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return torch.rand(n, 1, 1, generator=g) * (high - low) + low


def _stripes(g: torch.Generator, xx: torch.Tensor, yy: torch.Tensor, n: int, period: tuple[float, float]):
    angle = _uniform(g, n, 0, math.pi)
    p = _uniform(g, n, *period)
    phase = _uniform(g, n, 0, 2 * math.pi)
    wave = torch.sin(2 * math.pi * (xx * torch.cos(angle) + yy * torch.sin(angle)) / p + phase)
    return (wave > 0).float()  # hard-edged: rich in frequencies above the subsampled Nyquist limit


def generate_shapes(n: int, *, image_size: int = 40, crop_size: int = 32, seed: int = 0,
                    classes: tuple[str, ...] | None = None, noise: float = 0.04) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``n`` images of random shapes, balanced over classes, deterministic given ``seed``.

    Shapes stay inside the central ``crop_size`` window, so every crop of the ``image_size`` image
    at an offset up to ``image_size - crop_size`` shows the whole shape (the shift-consistency
    protocol crops such windows).

    Returns:
        images: uint8 tensor :math:`(n, 3, S, S)`; labels: int64 tensor :math:`(n,)` indexing ``classes``.

    Example:
        >>> x, y = generate_shapes(16, image_size=40, crop_size=32, seed=0)
        >>> x.shape, x.dtype, y.shape, int(y.max()) < len(SHAPES)
        (torch.Size([16, 3, 40, 40]), torch.uint8, torch.Size([16]), True)
    """
    names = tuple(SHAPES) if classes is None else tuple(classes)
    unknown = [c for c in names if c not in SHAPES]
    if unknown:
        raise ConfigError(f"unknown shape classes {unknown}; choose from {sorted(SHAPES)}")
    if n < 1 or crop_size < 8 or image_size < crop_size:
        raise ConfigError(f"need n >= 1, crop_size >= 8 and image_size >= crop_size; got n={n}, "
                         f"crop_size={crop_size}, image_size={image_size}")
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(names)
    labels = labels[torch.randperm(n, generator=g)]
    coords = torch.arange(image_size, dtype=torch.float32)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    yy, xx = yy.expand(n, -1, -1), xx.expand(n, -1, -1)

    radius = _uniform(g, n, 0.2 * crop_size, 0.36 * crop_size)
    slack = (crop_size / 2 - radius).clamp(min=0)
    centre = image_size / 2 - 0.5
    cx = centre + (torch.rand(n, 1, 1, generator=g) * 2 - 1) * slack * 0.6
    cy = centre + (torch.rand(n, 1, 1, generator=g) * 2 - 1) * slack * 0.6
    theta = _uniform(g, n, 0, 2 * math.pi)
    thickness = _uniform(g, n, 1.0, 2.2)
    dx, dy = xx - cx, yy - cy
    x = dx * torch.cos(theta) + dy * torch.sin(theta)
    y = -dx * torch.sin(theta) + dy * torch.cos(theta)
    mask = torch.zeros(n, image_size, image_size, dtype=torch.bool)
    for index, name in enumerate(names):
        pick = labels == index
        if pick.any():
            mask[pick] = SHAPES[name](x[pick], y[pick], radius[pick], thickness[pick])

    # Foreground and background: two-colour stripe textures with independent frequency/orientation.
    bg_colors = torch.rand(n, 2, 3, generator=g) * 0.5 + 0.05
    flip = torch.rand(n, 1, 1, generator=g) < 0.5  # dark shapes on light ground, or the reverse
    fg_colors = torch.rand(n, 2, 3, generator=g) * 0.5 + 0.45
    bg_colors, fg_colors = torch.where(flip, fg_colors, bg_colors), torch.where(flip, bg_colors, fg_colors)
    fg_tex = _stripes(g, xx, yy, n, (2.0, 5.0))[:, None]
    bg_tex = _stripes(g, xx, yy, n, (2.0, 6.0))[:, None]
    fg = fg_colors[:, 0, :, None, None] * fg_tex + fg_colors[:, 1, :, None, None] * (1 - fg_tex)
    bg = bg_colors[:, 0, :, None, None] * bg_tex + bg_colors[:, 1, :, None, None] * (1 - bg_tex)
    img = torch.where(mask[:, None], fg, bg)
    img = img + noise * torch.randn(img.shape, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8), labels
