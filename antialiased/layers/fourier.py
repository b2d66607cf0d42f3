"""Fourier low-cut downsampling: FLC pooling and ASAP (Grabinski et al.).

**FLC** ("FrequencyLowCut Pooling - Plug & Play against Catastrophic Overfitting", Grabinski,
Jung, Keuper & Keuper, ECCV 2022; code: github.com/GeJulia/flc_pooling, MIT) keeps only the
lowest frequencies of each channel's spectrum and transforms them back at the lower resolution.
For stride 2 and sides divisible by 4 the authors' code computes::

    Re(ifft2(ifftshift(fftshift(fft2(x, norm="forward"))[..., H/4:3H/4, W/4:3W/4]), norm="forward"))

**ASAP** ("Fix your downsampling ASAP! Be natively more robust via Aliasing and Spectral Artifact
free Pooling", Grabinski, Keuper & Keuper, arXiv:2307.09804, same repository) multiplies the
centred spectrum by ``sqrt(outer(hamming(H'), hamming(W')))`` (numpy's symmetric Hamming window
of the transformed size) before the crop, against the sinc ripples of a hard cut. Its ResNet uses
the variant that first zero-pads one row and one column at the bottom and right
(``ASAP_padding_one``, so ``H' = H + 1``): ``pad_one=True``, the default here.

**The crop rule, any size and stride.** Per spatial side of length ``n`` (``n + 1`` with
``pad_one``) and stride ``s``, the output has ``m = ceil(n / s)`` samples (the size a strided
conv or pool with "same" padding gives), and the kept band is the ``m`` lowest frequencies,
centred on DC: ``-(m // 2) ... m - 1 - m // 2`` (one Nyquist bin, the negative one, when ``m`` is
even). For stride 2 and ``n`` divisible by 4 this is exactly the authors' ``[n/4 : 3n/4]`` crop.
``crop="authors"`` instead takes the published code's indices ``[int(N/4) : int(3N/4)]`` of the
shifted spectrum literally (stride 2 only): for ``n % 4 == 2`` they are one bin off centre (the
result is that band, modulated), and with ``pad_one`` the output has ``n/2 + 1`` samples when
``n % 4 == 2``. Use it to reproduce the published code, not in converted models.

**How it is computed.** The whole map is linear and separable: ``out = Re(A_h x A_w^T)`` with
``A = iDFT_m . crop . window . DFT_N`` (complex ``m x n`` per side), so for feature maps up to
128 pixels a side the layer runs two real matrix products with cached ``A`` matrices (exact to
float rounding, fast on GPUs, exported to ONNX as MatMul, and the backward saves nothing the size
of the input); larger maps go through ``torch.fft`` (the authors' sequence of operations).
Half-precision inputs and autocast: computed in float32 (cast up, cast back), since FFTs and long
DFT sums in float16 lose too much; float64 stays float64.

**Export.** The matrix path exports to ONNX (any opset with MatMul); the FFT path is never used
while tracing or exporting (ONNX has no complex FFT operator at opset <= 20 that torch exports).

Example:
    >>> x = torch.randn(1, 2, 8, 8)
    >>> flc_pool2d(x).shape
    torch.Size([1, 2, 4, 4])
    >>> ref = torch.fft.ifft2(torch.fft.ifftshift(torch.fft.fftshift(torch.fft.fft2(x, norm="forward"))
    ...                       [..., 2:6, 2:6]), norm="forward").real
    >>> torch.allclose(flc_pool2d(x), ref, atol=1e-6)
    True
    >>> ASAPPool(2)(torch.randn(1, 3, 7, 9)).shape
    torch.Size([1, 3, 4, 5])
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.fx
from torch import nn

from antialiased.errors import ConfigError
from antialiased.layers._method_args import Stride, check_input, is_traced, pair

__all__ = ["CROP_RULES", "fourier_low_cut", "flc_pool2d", "asap_pool2d", "FLCPool", "ASAPPool"]

#: ``crop=`` values: the centred band of ``ceil(n / s)`` frequencies, or the published indices.
CROP_RULES = ("centered", "authors")

# Sides above this go through torch.fft: the dense matrices cost O(n) per output sample.
_MATRIX_MAX_SIDE = 128
_MATRICES: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _check_options(stride: Stride, crop: str) -> tuple[int, int]:
    sh, sw = pair(stride)
    if crop not in CROP_RULES:
        raise ConfigError(f"crop must be one of {CROP_RULES}, got {crop!r}; 'centered' defines every size and stride")
    if crop == "authors" and (sh, sw) != (2, 2):
        raise ConfigError(f"crop='authors' is the published code's stride-2 crop, got stride {(sh, sw)}; "
                          f"use crop='centered' for other strides")
    return sh, sw


def _band(n: int, s: int, pad_one: bool, crop: str) -> tuple[int, int]:
    """(transformed length N, first kept index of the fftshifted spectrum) and the output length."""
    big = n + 1 if pad_one else n
    if crop == "authors":
        start, stop = int(big / 4), int(big / 4 * 3)  # the published indices, literally
        return start, stop - start
    m = -(-n // s)
    return big // 2 - m // 2, m


def _hamming(n: int, dtype: torch.dtype, device: torch.device | None) -> torch.Tensor:
    """numpy's symmetric ``abs(hamming(n))`` (``0.54 - 0.46 cos(2 pi k / (n - 1))``), from Python floats:
    a constant for exporters, which have no ``hamming_window`` operator."""
    values = [1.0] if n == 1 else [abs(0.54 - 0.46 * math.cos(2 * math.pi * k / (n - 1))) for k in range(n)]
    return torch.tensor(values, dtype=dtype, device=device)


def _side_matrix(n: int, s: int, hamming: bool, pad_one: bool, crop: str) -> torch.Tensor:
    """The complex (m, n) float64 matrix of one side: iDFT_m . crop . window . DFT_N (norm 'forward')."""
    big = n + 1 if pad_one else n
    start, m = _band(n, s, pad_one, crop)
    c = torch.arange(m, dtype=torch.int64)
    freq = start + c - big // 2  # the frequency each kept bin holds (fftshift puts DC at N // 2)
    t = torch.arange(n, dtype=torch.int64)  # a padded zero contributes nothing: columns 0..n-1 only
    # Integer products reduced mod N before scaling keep the angles exact for large sizes.
    forward = torch.polar(torch.full((m, n), 1.0 / big, dtype=torch.float64),
                          -2 * math.pi * ((freq[:, None] * t[None, :]) % big).double() / big)
    if hamming:
        forward = forward * _hamming(big, torch.float64, None)[start + c].sqrt()[:, None]
    k = c - m // 2  # after ifftshift, crop index c sits at position (c - m // 2) mod m
    out = torch.arange(m, dtype=torch.int64)
    inverse = torch.polar(torch.ones(m, m, dtype=torch.float64),
                          2 * math.pi * ((out[:, None] * k[None, :]) % m).double() / m)
    return inverse @ forward.to(torch.complex128)


def _matrices(shape: tuple[int, int], stride: tuple[int, int], options: tuple, x: torch.Tensor):
    """(Bw, M): ``out = M @ stack(x @ Bw)``; Bw (W, 2 m_w) = [Re A_w; Im A_w]^T, M (m_h, 2H) = [Re A_h, -Im A_h]."""
    def build() -> tuple[torch.Tensor, torch.Tensor]:
        a_h = _side_matrix(shape[0], stride[0], *options)
        a_w = _side_matrix(shape[1], stride[1], *options)
        bw = torch.cat([a_w.real, a_w.imag]).T.contiguous()
        m = torch.cat([a_h.real, -a_h.imag], dim=1).contiguous()
        return bw.to(device=x.device, dtype=x.dtype), m.to(device=x.device, dtype=x.dtype)

    if is_traced(x):
        return build()
    key = (shape, stride, options, x.dtype, x.device)
    found = _MATRICES.get(key)
    if found is None:
        with torch.inference_mode(False):  # normal tensors even if first made under inference mode
            found = build()
        if len(_MATRICES) >= 64:
            _MATRICES.clear()
        _MATRICES[key] = found
    return found


def _by_matrices(x: torch.Tensor, stride: tuple[int, int], options: tuple) -> torch.Tensor:
    h, w = x.shape[-2:]
    bw, m = _matrices((h, w), stride, options, x)
    mw = bw.shape[1] // 2
    t = torch.matmul(x, bw)  # (..., H, 2 m_w): real and imaginary parts of x A_w^T
    t = t.unflatten(-1, (2, mw)).transpose(-3, -2).reshape(*x.shape[:-2], 2 * h, mw)
    return torch.matmul(m, t)  # Re(A_h (x A_w^T)) = Re(A_h) Re(.) - Im(A_h) Im(.)


def _by_fft(x: torch.Tensor, stride: tuple[int, int], hamming: bool, pad_one: bool, crop: str) -> torch.Tensor:
    """The authors' sequence: (pad) -> fft2 -> fftshift -> (window) -> crop -> ifftshift -> ifft2 -> real."""
    h, w = x.shape[-2:]
    if pad_one:
        x = torch.nn.functional.pad(x, (0, 1, 0, 1))
    spectrum = torch.fft.fftshift(torch.fft.fft2(x, norm="forward"), dim=(-2, -1))
    if hamming:
        rows, cols = _hamming(x.shape[-2], x.dtype, x.device), _hamming(x.shape[-1], x.dtype, x.device)
        spectrum = spectrum * torch.outer(rows, cols).sqrt()
    (r0, mh), (c0, mw) = _band(h, stride[0], pad_one, crop), _band(w, stride[1], pad_one, crop)
    low = spectrum[..., r0:r0 + mh, c0:c0 + mw]
    return torch.fft.ifft2(torch.fft.ifftshift(low, dim=(-2, -1)), norm="forward").real


def _no_autocast(device_type: str):
    """Autocast off for this device (meta and other devices without autocast: nothing to switch off)."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def fourier_low_cut(
    input: torch.Tensor, stride: Stride = 2, *, hamming: bool = False, pad_one: bool = False, crop: str = "centered"
) -> torch.Tensor:
    """Keep the lowest frequencies of each channel (optionally Hamming-windowed), back at the low resolution.

    ``hamming=False, pad_one=False`` is FLC; ``hamming=True, pad_one=True`` is ASAP (see the module
    docstring for the crop rule). Computed in float32 for half-precision inputs and under autocast.

    Shape:
        - Input: :math:`(N, C, H, W)`
        - Output: :math:`(N, C, \\lceil H / s_h \\rceil, \\lceil W / s_w \\rceil)` (``crop='centered'``)

    Example:
        >>> y = fourier_low_cut(torch.full((1, 1, 6, 6), 3.0))  # a constant keeps its value
        >>> y.shape, torch.allclose(y, torch.full((1, 1, 3, 3), 3.0))
        (torch.Size([1, 1, 3, 3]), True)
    """
    stride = _check_options(stride, crop)
    x = check_input(input, "Fourier low-cut pooling")
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    with _no_autocast(x.device.type):
        xc = x.to(compute)
        if is_traced(x) or max(x.shape[-2:]) <= _MATRIX_MAX_SIDE:
            out = _by_matrices(xc, stride, (hamming, pad_one, crop))
        else:
            out = _by_fft(xc, stride, hamming, pad_one, crop)
    return out.to(x.dtype)


def flc_pool2d(input: torch.Tensor, stride: Stride = 2, *, crop: str = "centered") -> torch.Tensor:
    """FrequencyLowCut pooling (FLC); see :class:`FLCPool`.

    Shape:
        - Input: :math:`(N, C, H, W)`
        - Output: :math:`(N, C, \\lceil H / s \\rceil, \\lceil W / s \\rceil)`

    Example:
        >>> flc_pool2d(torch.randn(2, 3, 9, 12), 3).shape
        torch.Size([2, 3, 3, 4])
    """
    return fourier_low_cut(input, stride, crop=crop)


def asap_pool2d(input: torch.Tensor, stride: Stride = 2, *, pad_one: bool = True, crop: str = "centered") -> torch.Tensor:
    """ASAP: Hamming-windowed low-cut pooling; see :class:`ASAPPool`.

    Shape:
        - Input: :math:`(N, C, H, W)`
        - Output: :math:`(N, C, \\lceil H / s \\rceil, \\lceil W / s \\rceil)`

    Example:
        >>> asap_pool2d(torch.randn(1, 2, 16, 16)).shape
        torch.Size([1, 2, 8, 8])
    """
    return fourier_low_cut(input, stride, hamming=True, pad_one=pad_one, crop=crop)


torch.fx.wrap("fourier_low_cut")  # shape logic: recorded as one call by fx tracers


class FLCPool(nn.Module):
    """FrequencyLowCut pooling (Grabinski et al., ECCV 2022): an ideal low-pass cut in the Fourier domain.

    Replaces a stride-``s`` subsampling; no parameters or buffers (adds no state-dict keys). The
    kept band and odd sizes are defined in the module docstring.

    Args:
        stride: subsampling factor, an int or ``(s_h, s_w)``.
        crop: ``'centered'`` (every size and stride) or ``'authors'`` (the published indices, stride 2).

    Shape:
        - Input: :math:`(N, C, H, W)`
        - Output: :math:`(N, C, \\lceil H / s_h \\rceil, \\lceil W / s_w \\rceil)`

    Example:
        >>> pool = FLCPool(2)
        >>> pool
        FLCPool(stride=(2, 2))
        >>> pool(torch.randn(4, 8, 14, 14)).shape
        torch.Size([4, 8, 7, 7])
    """

    hamming = False

    def __init__(self, stride: Stride = 2, *, crop: str = "centered", pad_one: bool = False) -> None:
        super().__init__()
        self.stride = _check_options(stride, crop)
        self.crop = crop
        self.pad_one = pad_one

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fourier_low_cut(x, self.stride, hamming=self.hamming, pad_one=self.pad_one, crop=self.crop)

    def extra_repr(self) -> str:
        text = f"stride={self.stride}"
        if self.pad_one != type(self)._default_pad_one:
            text += f", pad_one={self.pad_one}"
        return text + (f", crop={self.crop!r}" if self.crop != "centered" else "")

    _default_pad_one = False


class ASAPPool(FLCPool):
    """ASAP (Grabinski et al., 2023): FLC with a Hamming window on the spectrum, after a one-pixel zero pad.

    ``pad_one=True`` is the authors' ResNet default (``ASAP_padding_one``); ``False`` is their plain
    ``ASAP`` module (without its transpose of H and W, which only their non-square fix needed).
    No parameters or buffers.

    Args:
        stride: subsampling factor, an int or ``(s_h, s_w)``.
        pad_one: zero-pad one row and column (bottom, right) before the transform.
        crop: ``'centered'`` or ``'authors'``, as :class:`FLCPool`.

    Shape:
        - Input: :math:`(N, C, H, W)`
        - Output: :math:`(N, C, \\lceil H / s_h \\rceil, \\lceil W / s_w \\rceil)`

    Example:
        >>> ASAPPool(2)
        ASAPPool(stride=(2, 2))
        >>> ASAPPool(2)(torch.ones(1, 1, 8, 8)).shape
        torch.Size([1, 1, 4, 4])
    """

    hamming = True
    _default_pad_one = True

    def __init__(self, stride: Stride = 2, *, pad_one: bool = True, crop: str = "centered") -> None:
        super().__init__(stride, crop=crop, pad_one=pad_one)
