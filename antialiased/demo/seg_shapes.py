"""A generated segmentation dataset where aliasing matters, written as a Pascal VOC folder.

Every image holds several shapes (disks, squares, triangles, plus signs, bars; they may overlap,
later ones on top) on a striped background. Each class has its own fine texture, rich in
frequencies above what a stride-2 subsampling keeps: stripes of a 2-3 pixel period (disks,
triangles, bars, at their own angle ranges) or checkerboards of 2-3 pixel cells (squares, plus
signs), in random colors, at sub-pixel positions, with a little noise. Masks label each pixel with
its class (0: background) and, as VOC's masks do, mark a band of ``ignore_border`` pixels along
every object's outline with 255 (not scored).

Everything is drawn from one seed (the same seed gives the same files, byte for byte), in seconds,
with nothing to download. :func:`write_seg_shapes` writes ``JPEGImages/`` (lossless PNG files:
JPEG would smear the textures this dataset is about), ``SegmentationClass/`` (palette PNGs with
VOC's colors) and ``ImageSets/Segmentation/{train,val}.txt``, the layout
:class:`~antialiased.data.segmentation.SegmentationDataset` reads.
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from antialiased.data.segmentation import IGNORE_INDEX
from antialiased.demo.shapes import SHAPES
from antialiased.errors import ConfigError
from antialiased.support.files import atomic_write_text, output_error

__all__ = ["SEG_CLASSES", "generate_segmentation", "voc_palette", "write_seg_shapes"]

# class index -> name; index 0 is the background (VOC's convention)
SEG_CLASSES: tuple[str, ...] = ("background", "disk", "square", "triangle", "plus", "bar")
# per class (1..): the texture ("stripes" or "checks"), its period range in pixels, the angle range (radians)
_TEXTURES = {"disk": ("stripes", (2.0, 3.0), (0.0, math.pi / 3)), "square": ("checks", (2.0, 3.0), (0.0, math.pi / 2)),
             "triangle": ("stripes", (2.0, 3.0), (math.pi / 3, 2 * math.pi / 3)),
             "plus": ("checks", (2.5, 3.5), (0.0, math.pi / 2)),
             "bar": ("stripes", (2.0, 3.0), (2 * math.pi / 3, math.pi))}


def voc_palette() -> list[int]:
    """Pascal VOC's 256-color palette (index i: the bits of i spread over red, green and blue), flat RGB.

    Example:
        >>> voc_palette()[3:9], voc_palette()[255 * 3:]
        ([128, 0, 0, 0, 128, 0], [224, 224, 192])
    """
    palette = []
    for index in range(256):
        rgb, value = [0, 0, 0], index
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << (7 - bit)
            value >>= 3
        palette += rgb
    return palette


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return float(torch.rand((), generator=g)) * (high - low) + low


def _texture(g: torch.Generator, kind: str, period: tuple[float, float], angles: tuple[float, float],
             xx: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
    """A hard-edged two-tone texture (0/1) of the image's grid: stripes or a checkerboard at a random angle."""
    angle, p = _uniform(g, *angles), _uniform(g, *period)
    u = xx * math.cos(angle) + yy * math.sin(angle) + _uniform(g, 0, p)
    if kind == "stripes":
        return (torch.remainder(u, p) < p / 2).float()
    v = -xx * math.sin(angle) + yy * math.cos(angle) + _uniform(g, 0, p)
    return ((torch.floor(u / (p / 2)) + torch.floor(v / (p / 2))) % 2).float()


def _colors(g: torch.Generator) -> torch.Tensor:
    return torch.rand(2, 3, 1, 1, generator=g) * 0.8 + 0.1


def _draw_shape(g: torch.Generator, name: str, size: int, xx: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
    """The (size, size) bool mask of one shape of class ``name`` at a random place, size and angle."""
    radius = _uniform(g, 0.1 * size, 0.22 * size)
    cx, cy = _uniform(g, radius * 0.5, size - radius * 0.5), _uniform(g, radius * 0.5, size - radius * 0.5)
    theta = _uniform(g, 0, 2 * math.pi)
    dx, dy = xx - cx, yy - cy
    x = dx * math.cos(theta) + dy * math.sin(theta)
    y = -dx * math.sin(theta) + dy * math.cos(theta)
    r = torch.tensor(radius)
    return SHAPES[name](x, y, r, torch.tensor(2.0))


def _outline(mask: torch.Tensor, width: int) -> torch.Tensor:
    """The pixels within ``width`` of a change of label (both sides), for the ignore band."""
    if width <= 0:
        return torch.zeros_like(mask, dtype=torch.bool)
    m = mask.float()[None, None]
    k = 2 * width + 1
    high = F.max_pool2d(m, k, stride=1, padding=width)
    low = -F.max_pool2d(-m, k, stride=1, padding=width)
    return (high != low)[0, 0]


def _one_image(g: torch.Generator, size: int, shapes: tuple[int, int], ignore_border: int, noise: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
    coords = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    background = _texture(g, "stripes", (3.0, 6.0), (0.0, math.pi), xx, yy)
    colors = _colors(g)
    image = colors[0] * background + colors[1] * (1 - background)
    labels = torch.zeros(size, size, dtype=torch.int64)
    count = int(torch.randint(shapes[0], shapes[1] + 1, (), generator=g))
    for _ in range(count):
        index = int(torch.randint(1, len(SEG_CLASSES), (), generator=g))
        name = SEG_CLASSES[index]
        where = _draw_shape(g, name, size, xx, yy)
        kind, period, angles = _TEXTURES[name]
        texture, colors = _texture(g, kind, period, angles, xx, yy), _colors(g)
        image = torch.where(where, colors[0] * texture + colors[1] * (1 - texture), image)
        labels[where] = index
    image = (image + noise * torch.randn(image.shape, generator=g)).clamp(0, 1)
    labels[_outline(labels, ignore_border)] = IGNORE_INDEX
    return (image * 255).round().to(torch.uint8), labels.to(torch.uint8)


def generate_segmentation(n: int, *, size: int = 96, shapes: tuple[int, int] = (2, 4), seed: int = 0,
                          ignore_border: int = 1, noise: float = 0.03) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``n`` images with 2-4 (``shapes``) textured shapes each and their label maps, from ``seed``.

    Returns:
        images: uint8 :math:`(n, 3, size, size)`; masks: uint8 :math:`(n, size, size)`, class indices of
        :data:`SEG_CLASSES` and 255 along the outlines.

    Example:
        >>> x, y = generate_segmentation(3, size=48, seed=1)
        >>> x.shape, y.shape, sorted(set(y.unique().tolist()) - {255})[:1]
        (torch.Size([3, 3, 48, 48]), torch.Size([3, 48, 48]), [0])
        >>> torch.equal(generate_segmentation(3, size=48, seed=1)[1], y)
        True
    """
    if n < 1 or size < 16 or not 1 <= shapes[0] <= shapes[1] or ignore_border < 0:
        raise ConfigError(f"need n >= 1, size >= 16, 1 <= shapes[0] <= shapes[1] and ignore_border >= 0; got n={n}, "
                          f"size={size}, shapes={shapes}, ignore_border={ignore_border}")
    g = torch.Generator().manual_seed(seed)
    pairs = [_one_image(g, size, shapes, ignore_border, noise) for _ in range(n)]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def _png(array: np.ndarray, palette: list[int] | None = None) -> bytes:
    """PNG bytes of an RGB image, or of an index map as a palette image (the indices kept as they are)."""
    if palette is None:
        img = Image.fromarray(array)
    else:
        img = Image.frombytes("P", (array.shape[1], array.shape[0]), np.ascontiguousarray(array, np.uint8).tobytes())
        img.putpalette(palette)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _put(path: Path, data: bytes) -> None:
    """Write through a temporary file and a rename: a reader never sees half a PNG. No fsync per file
    (hundreds of files; the split lists, written last with a full atomic write, make the folder whole)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise output_error(exc, path) from exc


def write_seg_shapes(folder: str | os.PathLike, *, train: int = 200, val: int = 50, size: int = 96, seed: int = 0,
                     shapes: tuple[int, int] = (2, 4), ignore_border: int = 1) -> Path:
    """Write the generated dataset as a Pascal VOC folder (``train`` + ``val`` images); returns the folder.

    Ids are ``train_00000``, ..., ``val_00000``, ...; the validation images come from their own
    seed stream (``seed + 1``), so adding training images changes none of them.

    Example:
        >>> import tempfile
        >>> from antialiased.data.segmentation import SegmentationDataset
        >>> with tempfile.TemporaryDirectory() as d:
        ...     root = write_seg_shapes(d, train=2, val=3, size=32)
        ...     data = SegmentationDataset(root, size=None, num_classes=len(SEG_CLASSES))
        ...     len(data), tuple(data[0][0].shape), data.layout
        (3, (3, 32, 32), 'voc')
    """
    root = Path(folder)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    palette, lists = voc_palette(), {}
    for split, count, stream in (("train", train, seed), ("val", val, seed + 1)):
        lists[split] = [f"{split}_{i:05d}" for i in range(count)]
        if count:
            images, masks = generate_segmentation(count, size=size, shapes=shapes, seed=stream,
                                                  ignore_border=ignore_border)
            for name, image, mask in zip(lists[split], images, masks):
                _put(root / "JPEGImages" / f"{name}.png", _png(image.permute(1, 2, 0).numpy()))
                _put(root / "SegmentationClass" / f"{name}.png", _png(mask.numpy(), palette))
    for split, ids in lists.items():
        atomic_write_text(root / "ImageSets" / "Segmentation" / f"{split}.txt", "".join(f"{i}\n" for i in ids))
    return root
