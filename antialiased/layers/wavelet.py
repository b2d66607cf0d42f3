"""Haar wavelet downsampling: the low-frequency (LL) band of a 2-D Haar DWT (WaveCNet).

WaveCNet ("Wavelet Integrated CNNs for Noise-Robust Image Classification", Li, Shen, Guo & Lai,
CVPR 2020; code: github.com/LiQiufu/WaveCNet) replaces each stride-2 max-pool, average pool or
strided conv by the LL band of a 2-D DWT and drops the three high bands. Its simplest variant
uses the Haar wavelet, whose 1-D low-pass analysis filter is ``(1/sqrt 2, 1/sqrt 2)`` (pywt's
``'haar'`` ``rec_lo``, the filter the authors' ``DWT_2D_tiny`` builds its matrices from), so::

    LL[i, j] = (x[2i, 2j] + x[2i, 2j+1] + x[2i+1, 2j] + x[2i+1, 2j+1]) / 2

twice the 2x2 average: the orthonormal scaling, which keeps the signal's energy, as the authors'
layer does (a constant ``c`` becomes ``2c``).

**Odd sides and other strides.** The authors' matrices have ``floor(n / 2)`` rows, dropping the
last row/column of an odd side (``odd='crop'``). The default ``odd='symmetric'`` instead extends
an odd side by one sample in pywt's ``'symmetric'`` mode (a copy of the last one), giving
``ceil(n / 2)``, the output size of the strided conv or pool being replaced. Stride ``2**k`` is
``k`` DWT levels (the LL band of the LL band ...; WaveCNet's stride-4 stem is two layers in
sequence), each scaling by 2.

Runs as ``avg_pool2d(x, 2) * 2`` per level: plain ops that export to ONNX, any device, autocast.

Example:
    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> haar_pool2d(x)
    tensor([[[[ 5.,  9.],
              [21., 25.]]]])
    >>> HaarPool(2)(torch.randn(2, 3, 7, 8)).shape
    torch.Size([2, 3, 4, 4])
"""
from __future__ import annotations

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from antialiased.errors import ConfigError
from antialiased.layers._method_args import check_input

__all__ = ["ODD_RULES", "haar_pool2d", "HaarPool"]

#: ``odd=`` values: extend an odd side symmetrically (``ceil(n/2)``) or drop its last sample (``floor``).
ODD_RULES = ("symmetric", "crop")


def _levels(stride: object) -> int:
    if isinstance(stride, int) and not isinstance(stride, bool) and stride >= 2 and stride & (stride - 1) == 0:
        return stride.bit_length() - 1
    raise ConfigError(f"the Haar DWT subsamples by 2 per level: stride must be 2, 4, 8, ..., got {stride!r}; "
                      f"use stride=2 (one level)")


def _check_odd(odd: object) -> None:
    if odd not in ODD_RULES:
        raise ConfigError(f"odd must be one of {ODD_RULES}, got {odd!r}; 'symmetric' gives ceil(n / 2) samples")


def _one_level(x: torch.Tensor, odd: str) -> torch.Tensor:
    h, w = x.shape[-2:]
    if (h < 2 or w < 2) and odd == "crop":
        raise ConfigError(f"odd='crop' drops the last sample of an odd side: a {h}x{w} map would be empty; "
                          f"use odd='symmetric' or a larger input")
    if odd == "symmetric" and (h % 2 or w % 2):
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")  # half-sample symmetric extension by one
    return F.avg_pool2d(x, 2) * 2.0  # avg_pool2d floors odd sides: odd='crop' needs nothing else


def haar_pool2d(input: torch.Tensor, stride: int = 2, *, odd: str = "symmetric") -> torch.Tensor:
    """The LL band of ``log2(stride)`` levels of the 2-D Haar DWT; see :class:`HaarPool`.

    Shape:
        - Input: :math:`(N, C, H, W)`
        - Output: :math:`(N, C, \\lceil H / s \\rceil, \\lceil W / s \\rceil)` for ``odd='symmetric'``
          (level by level), :math:`\\lfloor \\cdot \\rfloor` for ``'crop'``

    Example:
        >>> haar_pool2d(torch.ones(1, 1, 8, 8), 4)[0, 0, 0, 0]  # two levels: 2 * 2 * 1
        tensor(4.)
    """
    levels = _levels(stride)
    _check_odd(odd)
    x = check_input(input, "Haar pooling")
    for _ in range(levels):
        x = _one_level(x, odd)
    return x


torch.fx.wrap("haar_pool2d")


class HaarPool(nn.Module):
    """Haar wavelet downsampling (WaveCNet, Li et al., CVPR 2020): the DWT's LL band replaces subsampling.

    No parameters or buffers (adds no state-dict keys).

    Args:
        stride: 2, or a power of 2 (that many DWT levels: 4 is two).
        odd: ``'symmetric'`` (default, ``ceil(n/2)`` per level) or ``'crop'`` (the authors' ``floor``).

    Shape:
        - Input: :math:`(N, C, H, W)`
        - Output: :math:`(N, C, \\lceil H / s \\rceil, \\lceil W / s \\rceil)` (``odd='symmetric'``)

    Example:
        >>> HaarPool()
        HaarPool(stride=2)
        >>> HaarPool(4, odd="crop")(torch.randn(1, 2, 9, 9)).shape
        torch.Size([1, 2, 2, 2])
    """

    def __init__(self, stride: int = 2, *, odd: str = "symmetric") -> None:
        super().__init__()
        _levels(stride)
        _check_odd(odd)
        self.stride = stride
        self.odd = odd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return haar_pool2d(x, self.stride, odd=self.odd)

    def extra_repr(self) -> str:
        return f"stride={self.stride}" + (f", odd={self.odd!r}" if self.odd != "symmetric" else "")
