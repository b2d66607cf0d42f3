"""Anti-aliased downsampling: low-pass (binomial) filtering fused with subsampling.

``BlurPool`` replaces a strided operation: ``MaxPool(k, s)`` becomes ``MaxPool(k, 1)`` followed
by ``BlurPool(stride=s)``, and a strided conv becomes conv(stride 1) + ReLU + ``BlurPool``.

Every call applies the filter the layer holds (its ``filt`` buffer), through one of two kernels
that :func:`_blur_pool` picks:

- ``_separable``: on CPU, for filters that factor into one 1-D filter per dimension (the binomial
  ones do): one pad-free 1-D pass per dimension, the fastest on CPUs;
- ``_conv``: pad + depthwise convolution, on GPUs, under ``torch.compile``, for filters that do
  not factor, and, as plain differentiable ops, when the model is traced or exported (exporters
  see Pad + Conv).

Both save nothing input-sized for backward (custom autograd Functions with linear adjoints).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from . import _conv, _separable, _taps
from ._padding import PAD_TYPES, effective_mode, pad_amounts, pad_mode

__all__ = [
    "MAX_FILTER_SIZE",
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


def _check_int(name: str, value: object, low: int, high: int | None, hint: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f">= {low}"
        raise ConfigError(f"{name} must be an integer {bounds}, got {value!r}; {hint}")


def _check_filter_size(filt_size: int) -> None:
    _check_int("filt_size", filt_size, 1, MAX_FILTER_SIZE, "binomial filters have 1 to 7 taps (4 is the default)")


def _check_stride_and_offset(stride: int, pad_off: int) -> None:
    _check_int("stride", stride, 1, None, "stride 2 halves each spatial dimension")
    _check_int("pad_off", pad_off, 0, None, "0 pads as the published layer")


def binomial_filter(filt_size: int, ndim: int = 2, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The normalized binomial filter of ``filt_size`` taps in ``ndim`` dimensions (sums to 1).

    Shape:
        - Output: :math:`(f,)` for ``ndim=1``, :math:`(f, f)` for 2, :math:`(f, f, f)` for 3.

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


def _check_input(x: object, ndim: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != ndim + 2:
        got = f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ConfigError(f"expected a {ndim + 2}-D input tensor (batch, channels, {ndim} spatial dims), got {got}; "
                          f"add the missing dimensions (e.g. x.unsqueeze(0) for a single sample)")
    if 0 in x.shape[2:]:
        raise ConfigError(f"cannot blur-pool an input with an empty spatial dimension, got shape {tuple(x.shape)}; "
                          f"the input is too small for the downsampling before this layer")
    if not x.is_floating_point():
        raise ConfigError(f"blur pooling needs a floating-point input, got {x.dtype}; convert it with .float()")


def _check_filter_fits(x: torch.Tensor, filt: torch.Tensor) -> None:
    if x.shape[1] != filt.shape[0]:
        raise ConfigError(f"the layer was built for {filt.shape[0]} channels, got an input with {x.shape[1]}; "
                          f"build it with channels={x.shape[1]}")
    if x.device != filt.device:
        raise ConfigError(f"the layer's filter is on {filt.device} but the input is on {x.device}; "
                          f"move the model with .to({str(x.device)!r})")


def _blur_pool(x: torch.Tensor, filt: torch.Tensor, stride: int, pads: tuple[int, ...], mode: str) -> torch.Tensor:
    """The dispatch: check the input, then run the kernel that fits it (see the module docstring)."""
    _check_input(x, filt.dim() - 2)
    _check_filter_fits(x, filt)
    mode = effective_mode(mode, pads, tuple(x.shape[2:]))
    grad = torch.is_grad_enabled() and x.requires_grad
    # torch.compile traces the conv kernel's Function (nothing saved for backward; the conv fuses).
    eager = not (torch.compiler.is_compiling() and not torch.compiler.is_exporting())
    if eager and _conv.needs_standard_ops(x, filt):  # traced, exported, fake, or a learned filter
        return _conv.conv_forward(x, filt, stride, pads, mode)
    if eager and not any(pads) and _taps.is_identity(filt):  # plain subsampling: a strided view
        return x[(slice(None), slice(None)) + (slice(None, None, stride),) * (x.dim() - 2)]
    taps = _taps.separable_taps(filt) if eager and x.device.type == "cpu" else None
    if taps is not None:
        plans = _separable.plans_for(tuple(x.shape[2:]), taps, stride, pads, mode)
        return _separable.SeparableBlur.apply(x, plans) if grad else _separable.separable_forward(x, plans)
    # GPUs, torch.compile, and filters that do not factor into 1-D ones.
    return _conv.PadConvBlur.apply(x, filt, stride, pads, mode) if grad else _conv.conv_forward(x, filt, stride, pads, mode)


_FILTERS: dict[tuple, torch.Tensor] = {}


def _functional_filter(filt_size: int, ndim: int, x: torch.Tensor) -> torch.Tensor:
    # One filter tensor per configuration: no host-to-device copy per call, and the kernels'
    # caches (derived taps, matrices) stay warm. Bounded: configurations are few. Tracers get a
    # fresh one (a tensor made while tracing may be fake: it must not outlive the trace).
    def build() -> torch.Tensor:
        base = binomial_filter(filt_size, ndim)
        return base.expand(x.shape[1], 1, *base.shape).contiguous().to(device=x.device, dtype=x.dtype)

    if _conv.is_traced(x):
        return build()
    key = (filt_size, ndim, x.shape[1], x.dtype, x.device)
    filt = _FILTERS.get(key)
    if filt is None:
        with torch.inference_mode(False):  # a normal tensor even if first made under inference mode
            filt = build()
        if len(_FILTERS) >= 64:
            _FILTERS.clear()
        _FILTERS[key] = filt
    return filt


def _functional(x: torch.Tensor, filt_size: int, stride: int, pad_type: str, pad_off: int, ndim: int) -> torch.Tensor:
    _check_filter_size(filt_size)
    _check_stride_and_offset(stride, pad_off)
    mode = pad_mode(pad_type)
    _check_input(x, ndim)  # before a filter of the input's dtype is made
    return _blur_pool(x, _functional_filter(filt_size, ndim, x), stride, pad_amounts(filt_size, pad_off, ndim), mode)


def blur_pool1d(
    input: torch.Tensor, filt_size: int = 4, stride: int = 2, pad_type: str = "reflect", pad_off: int = 0
) -> torch.Tensor:
    """Blur then subsample a (N, C, L) tensor; see :class:`BlurPool1D`.

    Shape:
        - Input: :math:`(N, C, L)`
        - Output: :math:`(N, C, L_{out})`, :math:`L_{out} = \\lceil L / s \\rceil` for the defaults.

    Example:
        >>> blur_pool1d(torch.ones(1, 2, 8), filt_size=3).shape
        torch.Size([1, 2, 4])
    """
    return _functional(input, filt_size, stride, pad_type, pad_off, 1)


def blur_pool2d(
    input: torch.Tensor, filt_size: int = 4, stride: int = 2, pad_type: str = "reflect", pad_off: int = 0
) -> torch.Tensor:
    """Blur then subsample a (N, C, H, W) tensor; see :class:`BlurPool`.

    Shape:
        - Input: :math:`(N, C, H, W)`
        - Output: :math:`(N, C, H_{out}, W_{out})`, each halved (rounded up) for the defaults.

    Example:
        >>> blur_pool2d(torch.ones(1, 3, 8, 8)).shape
        torch.Size([1, 3, 4, 4])
    """
    return _functional(input, filt_size, stride, pad_type, pad_off, 2)


def blur_pool3d(
    input: torch.Tensor, filt_size: int = 4, stride: int = 2, pad_type: str = "reflect", pad_off: int = 0
) -> torch.Tensor:
    """Blur then subsample a (N, C, D, H, W) tensor; see :class:`BlurPool3D`.

    Shape:
        - Input: :math:`(N, C, D, H, W)`
        - Output: :math:`(N, C, D_{out}, H_{out}, W_{out})`, each halved (rounded up) for the defaults.

    Example:
        >>> blur_pool3d(torch.ones(1, 2, 4, 8, 8), filt_size=2).shape
        torch.Size([1, 2, 2, 4, 4])
    """
    return _functional(input, filt_size, stride, pad_type, pad_off, 3)


class _BlurPoolNd(nn.Module):
    """The modules' shared body; subclasses set ``ndim`` (and may override ``forward``)."""

    ndim = 2

    def __init__(
        self,
        channels: int,
        pad_type: str = "reflect",
        filt_size: int = 4,
        stride: int = 2,
        pad_off: int = 0,
        *,
        persistent: bool = True,
    ) -> None:
        super().__init__()
        _check_int("channels", channels, 1, None, "pass the number of channels of the layer's input")
        _check_filter_size(filt_size)
        _check_stride_and_offset(stride, pad_off)
        self.channels = channels
        self.filt_size = filt_size
        self.stride = stride
        self.pad_off = pad_off
        self.pad_type = pad_type
        self._mode = pad_mode(pad_type)
        self._pads = pad_amounts(filt_size, pad_off, self.ndim)
        filt = binomial_filter(filt_size, self.ndim)
        # A buffer, so it follows .to()/.cuda(); saved in the state dict like the published layer's
        # unless persistent=False (models whose checkpoints must keep the original keys).
        self.register_buffer("filt", filt.expand(channels, 1, *filt.shape).contiguous(), persistent=persistent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _blur_pool(x, self.filt, self.stride, self._pads, self._mode)

    def extra_repr(self) -> str:
        persistent = "" if "filt" not in self._non_persistent_buffers_set else ", persistent=False"
        return (
            f"{self.channels}, pad_type={self.pad_type!r}, filt_size={self.filt_size}, "
            f"stride={self.stride}, pad_off={self.pad_off}{persistent}"
        )


class BlurPool(_BlurPoolNd):
    """Anti-aliased 2-D downsampling: pad, blur with a binomial filter, subsample.

    The layer applies whatever filter its ``filt`` buffer holds (the binomial one unless a state
    dict or code puts another there).

    Args:
        channels: number of input channels (the filter is applied per channel).
        pad_type: 'reflect' (alias 'refl'), 'replicate' ('repl'), 'zero' or 'circular'. Reflect
            padding needs a feature map larger than the padding; smaller maps fall back to
            replicate padding instead of failing.
        filt_size: filter taps, 1-7 (1: plain subsampling, 2: box, 3: triangle, 4-7: binomial).
        stride: subsampling factor, >= 1.
        pad_off: extra padding on every side.
        persistent: keyword only; False keeps ``filt`` out of the state dict (it still follows
            ``.to()``), so the layer adds no keys to a model's checkpoints.

    Shape:
        - Input: :math:`(N, C, H, W)`
        - Output: :math:`(N, C, \\lceil (H + 2p) / s \\rceil, \\lceil (W + 2p) / s \\rceil)` with
          :math:`p` = ``pad_off`` and :math:`s` = ``stride``, whatever the filter size; for the
          defaults :math:`(N, C, \\lceil H/2 \\rceil, \\lceil W/2 \\rceil)`.

    Example:
        >>> pool = BlurPool(3, filt_size=4, stride=2)
        >>> pool(torch.rand(1, 3, 9, 10)).shape
        torch.Size([1, 3, 5, 5])
        >>> list(BlurPool(3, persistent=False).state_dict())
        []
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


# Adaptive polyphase sampling (APS): imported last, since it blurs with this module's functionals.
from antialiased.layers.polyphase import (  # noqa: E402
    AdaptivePolyphaseSampling,
    adaptive_polyphase_sampling,
    polyphase_phase,
    polyphase_select,
)

__all__ += ["AdaptivePolyphaseSampling", "adaptive_polyphase_sampling", "polyphase_phase", "polyphase_select"]

# The field's other methods (issue 19): learned, adaptive, Fourier and wavelet downsampling layers.
from antialiased.layers.adaptive import AdaptiveBlurPool, adaptive_filter2d  # noqa: E402
from antialiased.layers.fourier import ASAPPool, FLCPool, asap_pool2d, flc_pool2d, fourier_low_cut  # noqa: E402
from antialiased.layers.lps import (  # noqa: E402
    LearnablePolyphaseSampling,
    LearnablePolyphaseUpsampling,
    polyphase_resample,
    polyphase_upsample,
)
from antialiased.layers.tips import TranslationInvariantPolyphaseSampling, tips_fm_loss, tips_undo_loss  # noqa: E402
from antialiased.layers.wavelet import HaarPool, haar_pool2d  # noqa: E402

#: The method layers an fx tracer should keep as single calls (their forwards branch on shapes and mode).
METHOD_LAYERS = (AdaptiveBlurPool, FLCPool, HaarPool, LearnablePolyphaseSampling, LearnablePolyphaseUpsampling,
                 TranslationInvariantPolyphaseSampling)

__all__ += [
    "AdaptiveBlurPool", "adaptive_filter2d", "FLCPool", "ASAPPool", "flc_pool2d", "asap_pool2d", "fourier_low_cut",
    "LearnablePolyphaseSampling", "LearnablePolyphaseUpsampling", "polyphase_resample", "polyphase_upsample",
    "TranslationInvariantPolyphaseSampling", "tips_fm_loss", "tips_undo_loss", "HaarPool", "haar_pool2d",
    "METHOD_LAYERS",
]
