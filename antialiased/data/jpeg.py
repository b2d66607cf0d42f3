"""A faster training-image path with torchvision's exact output: JPEGs decoded by
``torchvision.io.decode_jpeg`` and the standard RandomResizedCrop + flip + ToTensor + Normalize
run on the crop only.

torchvision's ``ImageFolder`` pipeline decodes each photo into a full PIL image, crops it, resizes
the crop, and converts and normalizes it in five tensor passes. :class:`JpegFolderDataset` (an
:class:`~antialiased.data.ImageFolderDataset`) decodes JPEG files with libjpeg-turbo through
``torchvision.io.decode_jpeg`` (the same decoder PIL bundles: identical pixels, checked on all
1000 photos of ``../shared/data/imagenet-sample``, grayscale ones included) and, when its
transform is the standard training chain (what :func:`~antialiased.data.train_transform` builds:
``RandomResizedCrop``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``), runs that chain as
one :class:`FusedTrainTransform`: the same random draws in the same order, a PIL image made of the
crop alone (not of the whole photo), PIL's resize (the very function torchvision calls), and the
conversion to a normalized float tensor in one copy and three in-place passes, with torchvision's
operations and order, so the result is bit-identical. Other transforms, other file formats and
files the fast decoder refuses go through the usual PIL path (same errors, same skip reasons).
torchvision 0.29 deprecates its image decoders in favour of TorchCodec's; should a later
torchvision drop ``decode_jpeg``, every file takes the PIL path (the same tensors, slower).

Example:
    >>> chain = T.Compose([T.RandomResizedCrop(8), T.RandomHorizontalFlip(), T.ToTensor(),
    ...                    T.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))])
    >>> fused = FusedTrainTransform.from_compose(chain)
    >>> image = Image.new("RGB", (20, 16), (255, 0, 0))
    >>> _ = torch.manual_seed(0); expected = chain(image)
    >>> _ = torch.manual_seed(0); torch.equal(fused(image), expected)
    True
"""
from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

try:  # torchvision 0.29 deprecates its image decoders for TorchCodec's; without them the PIL path runs
    from torchvision.io import ImageReadMode, decode_jpeg
except ImportError:  # pragma: no cover - a torchvision that has dropped them
    decode_jpeg = None
# The deprecation is known (see above) and warned per call: not shown for every decoded image.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                        category=DeprecationWarning, module="torchvision.io.image")

from .folder import ImageFolderDataset

__all__ = ["JpegFolderDataset", "FusedTrainTransform", "decode_rgb", "jpeg_size"]

_PIL_FILTERS = {InterpolationMode.BILINEAR: Image.BILINEAR, InterpolationMode.BICUBIC: Image.BICUBIC,
                InterpolationMode.NEAREST: Image.NEAREST, InterpolationMode.LANCZOS: Image.LANCZOS}
# Start-of-frame markers (baseline, extended, progressive, lossless...; not DHT, JPG, DAC).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, components) from a JPEG's frame header, or None when ``data`` is not a JPEG."""
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker in _SOF:
            return (int.from_bytes(data[pos + 7:pos + 9], "big"), int.from_bytes(data[pos + 5:pos + 7], "big"),
                    data[pos + 9])
        pos += 2 + length
    return None


def decode_rgb(path: str) -> torch.Tensor | None:
    """A JPEG file as a (3, H, W) uint8 tensor, or None for anything else (other formats, files
    over PIL's pixel limit, data libjpeg refuses): those take the PIL path and its checks."""
    with open(path, "rb") as f:
        data = f.read()
    size = jpeg_size(data)
    limit = Image.MAX_IMAGE_PIXELS
    if decode_jpeg is None or size is None or size[2] not in (1, 3) or (limit is not None and size[0] * size[1] > limit):
        return None  # not a JPEG, CMYK/YCCK (PIL's own conversion to RGB), or over the pixel limit
    try:
        return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except RuntimeError:
        return None


class FusedTrainTransform:
    """``RandomResizedCrop`` -> ``RandomHorizontalFlip`` -> ``ToTensor`` -> ``Normalize`` in one
    step, on a decoded uint8 (3, H, W) tensor or a PIL image, bit-identical to the chain."""

    def __init__(self, crop: T.RandomResizedCrop, flip: T.RandomHorizontalFlip, normalize: T.Normalize) -> None:
        self.crop, self.flip = crop, flip
        self.filter = _PIL_FILTERS[crop.interpolation]
        self.mean = torch.as_tensor(normalize.mean, dtype=torch.get_default_dtype()).view(-1, 1, 1)
        self.std = torch.as_tensor(normalize.std, dtype=torch.get_default_dtype()).view(-1, 1, 1)

    @classmethod
    def from_compose(cls, transform: Any) -> FusedTrainTransform | None:
        """The fused form of a standard training chain, or None for any other transform."""
        steps = getattr(transform, "transforms", None)
        kinds = (T.RandomResizedCrop, T.RandomHorizontalFlip, T.ToTensor, T.Normalize)
        if not isinstance(steps, list) or len(steps) != 4 or any(type(s) is not k for s, k in zip(steps, kinds)):
            return None
        crop, flip, _, normalize = steps
        if crop.interpolation not in _PIL_FILTERS or normalize.inplace:
            return None
        return cls(crop, flip, normalize)

    def __call__(self, image: torch.Tensor | Image.Image) -> torch.Tensor:
        top, left, height, width = self.crop.get_params(image, self.crop.scale, self.crop.ratio)
        if isinstance(image, torch.Tensor):  # the crop's pixels, as the PIL image torchvision would crop
            region = image[:, top:top + height, left:left + width].permute(1, 2, 0).contiguous().numpy()
            piece = Image.fromarray(region)
        else:
            piece = image.crop((left, top, left + width, top + height))
        out_h, out_w = self.crop.size
        piece = piece.resize((out_w, out_h), self.filter)
        if torch.rand(1) < self.flip.p:
            piece = piece.transpose(Image.FLIP_LEFT_RIGHT)
        pixels = torch.from_numpy(np.array(piece)).permute(2, 0, 1)  # as ToTensor: a writable copy
        out = torch.empty(pixels.shape, dtype=torch.get_default_dtype()).copy_(pixels)  # ToTensor: float, / 255
        return out.div_(255).sub_(self.mean).div_(self.std)


class JpegFolderDataset(ImageFolderDataset):
    """:class:`~antialiased.data.ImageFolderDataset` that decodes JPEGs with ``decode_jpeg`` and runs
    the standard training chain fused (see the module docstring); same arguments, same items."""

    def __init__(self, root: str | os.PathLike, transform: Any = None, strict: bool = False, **kwargs: Any) -> None:
        fused = FusedTrainTransform.from_compose(transform)
        super().__init__(root, fused or transform, strict, **kwargs)
        self._fast = fused is not None and self.draft is None  # draft decoding is PIL's (opt-in approximation)

    def _load(self, path: str) -> torch.Tensor | Image.Image:
        decoded = decode_rgb(path) if self._fast else None
        return decoded if decoded is not None else super()._load(path)
