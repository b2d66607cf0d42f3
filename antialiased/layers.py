"""Anti-aliased downsampling: low-pass (binomial) filtering fused with subsampling.

``BlurPool`` replaces a strided operation: ``MaxPool(k, s)`` becomes ``MaxPool(k, 1)`` followed
by ``BlurPool(stride=s)``, and a strided conv becomes conv(stride 1) + ReLU + ``BlurPool``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "PAD_TYPES",
    "binomial_filter",
    "blur_pool1d",
    "blur_pool2d",
    "blur_pool3d",
    "BlurPool",
    "BlurPool1D",
    "BlurPool3D",
]

MAX_FILTER_SIZE = 7

# Aliases kept for compatibility with the published code ('refl', 'repl').
PAD_TYPES = {
    "reflect": "reflect",
    "refl": "reflect",
    "replicate": "replicate",
    "repl": "replicate",
    "zero": "constant",
    "circular": "circular",
}


def _check_filter_size(filt_size: int) -> None:
    if not isinstance(filt_size, int) or isinstance(filt_size, bool) or not 1 <= filt_size <= MAX_FILTER_SIZE:
        raise ValueError(
            f"filt_size must be an integer from 1 to {MAX_FILTER_SIZE} (binomial filters), got {filt_size!r}"
        )


def _pad_mode(pad_type: str) -> str:
    try:
        return PAD_TYPES[pad_type]
    except (KeyError, TypeError):
        raise ValueError(
            f"pad_type must be one of {sorted(PAD_TYPES)}, got {pad_type!r}"
        ) from None


def binomial_filter(filt_size: int, ndim: int = 2, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The normalized binomial filter of ``filt_size`` taps in ``ndim`` dimensions (sums to 1).

    Example:
        >>> binomial_filter(3, ndim=1)
        tensor([0.2500, 0.5000, 0.2500])
        >>> binomial_filter(4).shape
        torch.Size([4, 4])
    """
    _check_filter_size(filt_size)
    row = torch.tensor([math.comb(filt_size - 1, k) for k in range(filt_size)], dtype=torch.float64)
    filt = row
    for _ in range(ndim - 1):
        filt = filt[..., None] * row
    return (filt / filt.sum()).to(dtype)


def _pad_amounts(filt_size: int, pad_off: int, ndim: int) -> list[int]:
    # Asymmetric for even filters: (f-1)//2 before, ceil((f-1)/2) after, as the published layer.
    before = (filt_size - 1) // 2 + pad_off
    after = filt_size // 2 + pad_off
    return [before, after] * ndim  # F.pad takes the last dimension first; symmetric per dim here


def _pad(x: torch.Tensor, pads: list[int], mode: str) -> torch.Tensor:
    if not any(pads):
        return x
    if mode == "reflect":
        # torch's reflect padding needs pad < size; small feature maps (CIFAR-sized inputs with
        # large filters) fall back to replicate padding for the dimensions that are too small.
        spatial = x.shape[2:]
        too_small = any(
            max(pads[2 * i], pads[2 * i + 1]) >= spatial[-1 - i] for i in range(len(spatial))
        )
        if too_small:
            mode = "replicate"
    if mode == "constant":
        return F.pad(x, pads, mode="constant", value=0.0)
    return F.pad(x, pads, mode=mode)


def _blur_pool(x: torch.Tensor, filt: torch.Tensor, stride: int, pads: list[int], mode: str, ndim: int) -> torch.Tensor:
    if x.dim() != ndim + 2:
        raise ValueError(
            f"expected a {ndim + 2}-D input (batch, channels, {ndim} spatial dims), got shape {tuple(x.shape)}"
        )
    channels = x.shape[1]
    if filt.shape[0] != channels:
        raise ValueError(f"the layer was built for {filt.shape[0]} channels, got an input with {channels}")
    x = _pad(x, pads, mode)
    index = (slice(None), slice(None)) + (slice(None, None, stride),) * ndim
    if filt.shape[-1] == 1:
        return x[index]
    conv = (F.conv1d, F.conv2d, F.conv3d)[ndim - 1]
    return conv(x, filt.to(dtype=x.dtype), stride=stride, groups=channels)


def _functional(ndim: int):
    def blur_pool(
        input: torch.Tensor, filt_size: int = 4, stride: int = 2, pad_type: str = "reflect", pad_off: int = 0
    ) -> torch.Tensor:
        _check_filter_size(filt_size)
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        filt = binomial_filter(filt_size, ndim, dtype=input.dtype).to(input.device)
        filt = filt.expand(input.shape[1], 1, *filt.shape).contiguous()
        return _blur_pool(input, filt, stride, _pad_amounts(filt_size, pad_off, ndim), _pad_mode(pad_type), ndim)

    return blur_pool


blur_pool1d = _functional(1)
blur_pool1d.__name__ = blur_pool1d.__qualname__ = "blur_pool1d"
blur_pool1d.__doc__ = """Blur then subsample a (N, C, L) tensor; see :class:`BlurPool1D`.

    Example:
        >>> blur_pool1d(torch.ones(1, 2, 8), filt_size=3).shape
        torch.Size([1, 2, 4])
    """
blur_pool2d = _functional(2)
blur_pool2d.__name__ = blur_pool2d.__qualname__ = "blur_pool2d"
blur_pool2d.__doc__ = """Blur then subsample a (N, C, H, W) tensor; see :class:`BlurPool`.

    Example:
        >>> blur_pool2d(torch.ones(1, 3, 8, 8)).shape
        torch.Size([1, 3, 4, 4])
    """
blur_pool3d = _functional(3)
blur_pool3d.__name__ = blur_pool3d.__qualname__ = "blur_pool3d"
blur_pool3d.__doc__ = """Blur then subsample a (N, C, D, H, W) tensor; see :class:`BlurPool3D`.

    Example:
        >>> blur_pool3d(torch.ones(1, 2, 4, 8, 8), filt_size=2).shape
        torch.Size([1, 2, 2, 4, 4])
    """


class _BlurPoolNd(nn.Module):
    ndim = 2

    def __init__(
        self, channels: int, pad_type: str = "reflect", filt_size: int = 4, stride: int = 2, pad_off: int = 0
    ) -> None:
        super().__init__()
        _check_filter_size(filt_size)
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        if not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
        self.channels = channels
        self.filt_size = filt_size
        self.stride = stride
        self.pad_off = pad_off
        self.pad_type = pad_type
        self._mode = _pad_mode(pad_type)
        self._pads = _pad_amounts(filt_size, pad_off, self.ndim)
        filt = binomial_filter(filt_size, self.ndim)
        # A buffer, so it follows .to()/.cuda() and is saved in the state dict like the published layer.
        self.register_buffer("filt", filt.expand(channels, 1, *filt.shape).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _blur_pool(x, self.filt, self.stride, self._pads, self._mode, self.ndim)

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, pad_type={self.pad_type!r}, filt_size={self.filt_size}, "
            f"stride={self.stride}, pad_off={self.pad_off}"
        )


class BlurPool(_BlurPoolNd):
    """Anti-aliased 2-D downsampling: pad, blur with a binomial filter, subsample.

    Args:
        channels: number of input channels (the filter is applied per channel).
        pad_type: 'reflect' (alias 'refl'), 'replicate' ('repl'), 'zero' or 'circular'. Reflect
            padding needs a feature map larger than the padding; smaller maps fall back to
            replicate padding instead of failing.
        filt_size: filter taps, 1-7 (1: plain subsampling, 2: box, 3: triangle, 4-7: binomial).
        stride: subsampling factor, >= 1.
        pad_off: extra padding on every side.

    Shape:
        - Input: :math:`(N, C, H, W)`
        - Output: :math:`(N, C, \\lceil (H + 2 p + f - 1 - f + 1) / s \\rceil, \\ldots)`; for the
          defaults (f=4, s=2, p=0) :math:`(N, C, \\lceil H/2 \\rceil, \\lceil W/2 \\rceil)`.

    Example:
        >>> pool = BlurPool(3, filt_size=4, stride=2)
        >>> pool(torch.rand(1, 3, 9, 10)).shape
        torch.Size([1, 3, 5, 5])
    """

    ndim = 2


class BlurPool1D(_BlurPoolNd):
    """Anti-aliased 1-D downsampling for (N, C, L) signals; arguments as :class:`BlurPool`.

    Shape:
        - Input: :math:`(N, C, L)`
        - Output: :math:`(N, C, L_{out})`, :math:`L_{out} = \\lceil L / s \\rceil` for the defaults.

    Example:
        >>> BlurPool1D(2, filt_size=3)(torch.rand(4, 2, 17)).shape
        torch.Size([4, 2, 9])
    """

    ndim = 1


class BlurPool3D(_BlurPoolNd):
    """Anti-aliased 3-D downsampling for (N, C, D, H, W) volumes; arguments as :class:`BlurPool`.

    Shape:
        - Input: :math:`(N, C, D, H, W)`
        - Output: :math:`(N, C, D_{out}, H_{out}, W_{out})`, each halved (rounded up) for the defaults.

    Example:
        >>> BlurPool3D(2)(torch.rand(1, 2, 6, 8, 8)).shape
        torch.Size([1, 2, 3, 4, 4])
    """

    ndim = 3
