"""Anti-aliased downsampling: low-pass (binomial) filtering fused with subsampling.

``BlurPool`` replaces a strided operation: ``MaxPool(k, s)`` becomes ``MaxPool(k, 1)`` followed
by ``BlurPool(stride=s)``, and a strided conv becomes conv(stride 1) + ReLU + ``BlurPool``.

Every call applies the filter the layer holds (its ``filt`` buffer; the functionals: the binomial
filter) through one registered operator, ``torch.ops.antialiased.blur_pool`` (``_ops``), whose
implementation the dispatcher picks per device: ``_separable`` on CPU (one pad-free 1-D pass per
dimension; pad + conv for filters that do not factor), ``_conv`` (pad + depthwise conv, cuDNN) on
CUDA and elsewhere. Eager mode, ``torch.compile`` and ``torch.export`` all see that operator;
exported programs decompose it into plain Pad + Conv (:data:`DECOMPOSITIONS`, which ONNX export
applies by itself). Its backward is an operator too, keeps nothing input-sized, and is differentiable.
APS's selection of a polyphase component is an operator the same way (``_ops_polyphase``).
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from . import _ops, _ops_polyphase, _taps
from ._padding import PAD_TYPES, effective_mode, pad_amounts, pad_mode

__all__ = [
    "DECOMPOSITIONS",
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

#: The layers' operators (``antialiased::blur_pool``, ``antialiased::polyphase_select`` and their
#: backwards) decomposed into standard ATen ops: ``program.run_decompositions(DECOMPOSITIONS)``
#: turns an exported program into one that loads without this package (Pad + Conv, indexing).
#: ``torch.onnx.export`` applies them by itself.
DECOMPOSITIONS = {**_ops.DECOMPOSITIONS, **_ops_polyphase.DECOMPOSITIONS}


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
    return _taps.binomial(filt_size, ndim, dtype)


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


def _blur_pool(x: torch.Tensor, filt: torch.Tensor | None, size: int, stride: int, pads: tuple[int, ...],
               mode: str) -> torch.Tensor:
    """Check the input, resolve the padding for its size, and call the operator (no other branch)."""
    _check_input(x, len(pads) // 2)
    if filt is not None:
        _check_filter_fits(x, filt)
    mode = effective_mode(mode, pads, tuple(x.shape[2:]))
    return _ops.blur_pool(x, filt, size, stride, pads, mode)


def _functional(x: torch.Tensor, filt_size: int, stride: int, pad_type: str, pad_off: int, ndim: int) -> torch.Tensor:
    _check_filter_size(filt_size)
    _check_stride_and_offset(stride, pad_off)
    mode = pad_mode(pad_type)
    return _blur_pool(x, None, filt_size, stride, pad_amounts(filt_size, pad_off, ndim), mode)


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
        return _blur_pool(x, self.filt, self.filt_size, self.stride, self._pads, self._mode)

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
    PolyphaseConvTranspose2d,
    PolyphaseUpsampling,
    adaptive_polyphase_sampling,
    compose_phases,
    phase_role,
    polyphase_phase,
    polyphase_select,
    polyphase_upsampling,
)

__all__ += ["AdaptivePolyphaseSampling", "adaptive_polyphase_sampling", "polyphase_phase", "polyphase_select",
            "PolyphaseUpsampling", "PolyphaseConvTranspose2d", "polyphase_upsampling", "compose_phases", "phase_role"]

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
