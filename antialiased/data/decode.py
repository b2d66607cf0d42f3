"""Decoding any image file to 8-bit RGB, and a short reason for each file that cannot be decoded."""
from __future__ import annotations

import os
import re
import struct
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["READ_ERRORS", "load_rgb", "read_error_reason", "to_rgb"]

# What decoding a broken, truncated or hostile file raises (PIL's plugins use all of these).
READ_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError)


class _OverPixelLimit(Image.DecompressionBombError):
    """More pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (PIL itself only warns up to twice that)."""

    def __init__(self, pixels: int, limit: int) -> None:
        super().__init__(f"Image size ({pixels} pixels) exceeds limit of {limit} pixels")
        self.pixels = pixels


def _from_16bit(values: np.ndarray) -> np.ndarray:
    return (np.clip(values, 0, 65535).astype(np.uint32) >> 8).astype(np.uint8)


def _from_unit_float(values: np.ndarray) -> np.ndarray:
    unit = np.clip(np.nan_to_num(values.astype(np.float64), nan=0.0), 0.0, 1.0)
    return np.rint(unit * 255).astype(np.uint8)


# Single-channel modes with more than 8 bits, and how their values become 0..255. PIL's own
# convert("RGB") clips them at 255, which turns a 16-bit image white.
_HIGH_DEPTH_TO_8BIT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "I;16": _from_16bit, "I;16L": _from_16bit, "I;16B": _from_16bit, "I;16N": _from_16bit,
    "I": _from_16bit,  # 32-bit integers, as PIL opens 16-bit PGM/TIFF data: read as 0..65535
    "F": _from_unit_float,  # floats: 0.0..1.0 (torchvision's convention), NaN -> 0
}


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB of an image in any PIL mode, as torchvision's loader does, but right for deep images.

    - RGB, L, 1, P, CMYK, YCbCr, ...: ``img.convert("RGB")`` (torchvision's loader); alpha (RGBA, LA,
      PA, P with transparency) is dropped, not composited, and PIL's warning about palette
      transparency is not raised, since the alpha is not used.
    - 16-bit grayscale (I;16, I;16B, I;16L, I;16N) and 32-bit integer (I, as PIL opens 16-bit PGM):
      the 0..65535 range maps to 0..255 by keeping the high byte (``v >> 8``; values outside are
      clipped). 16-bit RGB(A) PNGs are already reduced this way by PIL.
    - 32-bit float (F): 0.0..1.0 maps to 0..255 (``round(v * 255)``, clipped; NaN -> 0).

    Example:
        >>> deep = Image.fromarray(np.array([[0, 256, 65535]], dtype=np.uint16))
        >>> deep.mode, np.asarray(to_rgb(deep))[0, :, 0].tolist()
        ('I;16', [0, 1, 255])
    """
    scale = _HIGH_DEPTH_TO_8BIT.get(img.mode)
    if scale is not None:
        return Image.fromarray(scale(np.asarray(img))).convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        transparency = img.info.pop("transparency")  # only used for alpha, which RGB drops
        try:
            return img.convert("RGB")
        finally:
            img.info["transparency"] = transparency
    return img.convert("RGB")


def load_rgb(path: str, draft: int | None = None) -> Image.Image:
    """Open an image file as 8-bit RGB (see :func:`to_rgb` for the modes).

    Images over ``PIL.Image.MAX_IMAGE_PIXELS`` raise ``PIL.Image.DecompressionBombError`` before
    any pixel is decoded (PIL itself only warns below twice the limit).

    ``draft``: let libjpeg decode a JPEG at a reduced scale (1/2, 1/4, 1/8) whose shorter side stays
    >= ``draft`` pixels. Faster, but not the paper's exact pixels: an opt-in approximation.
    """
    with open(path, "rb") as f:
        img = Image.open(f)
        width, height = img.size
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and width * height > limit:
            raise _OverPixelLimit(width * height, limit)
        if draft is not None and img.format == "JPEG":
            scale = draft / min(width, height)
            img.draft("RGB", (max(1, int(width * scale + 0.5)), max(1, int(height * scale + 0.5))))
        return to_rgb(img)


def _bomb_reason(err: Image.DecompressionBombError) -> str:
    pixels = getattr(err, "pixels", None)
    if pixels is None:  # PIL's own refusal: "Image size (N pixels) exceeds limit of 2M pixels ..."
        found = re.search(r"\((\d+) pixels\)", str(err))
        pixels = found.group(1) if found else "?"
    return f"over the decompression-bomb limit ({pixels} pixels > {Image.MAX_IMAGE_PIXELS})"


# Failures with a fixed reason, checked in order (before the file's size and the error's message).
_FIXED_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (IsADirectoryError, "a folder, not an image file"),
    (FileNotFoundError, "file not found (removed after the folder was scanned?)"),
    (PermissionError, "permission denied"),
)


def read_error_reason(path: str, err: BaseException) -> str:
    """A short reason for a file that failed to decode, e.g. 'truncated image: ...'."""
    if isinstance(err, Image.DecompressionBombError):
        return _bomb_reason(err)
    for kind, reason in _FIXED_REASONS:
        if isinstance(err, kind):
            return reason
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
    except OSError:
        pass
    if isinstance(err, UnidentifiedImageError):
        return "cannot identify image file"
    message = str(err) or type(err).__name__
    if "truncated" in message.lower():
        return f"truncated image: {message}"
    kind = "" if type(err) is OSError else f"{type(err).__name__}: "
    return f"cannot decode image: {kind}{message}"
