"""Learnable polyphase sampling (LPS): a small network scores the polyphase components, one is kept.

"Learnable Polyphase Sampling for Shift Invariant and Equivariant Convolutional Networks"
(Rojas-Gomez, Lim, Schwing, Do & Yeh, NeurIPS 2022; code:
github.com/raymondyeh07/learnable_polyphase_sampling, MIT). Downsampling (LPD): the ``s_h s_w``
polyphase components ``x_p = x[:, :, i::s_h, j::s_w]`` (``p = i s_w + j``, as APS) are scored by
one shared network (the authors' ``LPSLogitLayersV2``)::

    logit_p = mean_{c, h, w} conv2(relu(conv1(x_p)))       # 3x3 convs C -> C' -> C', with bias,
                                                            # circular padding (the authors' default)

then, in training, the output is the Gumbel-softmax mixture ``sum_p g_p x_p`` with
``g = gumbel_softmax(logits, tau)`` (soft, as the authors), and in eval mode the component of the
largest logit. ``lps-lpf`` blurs first (binomial filter at stride 1, as APS-LPF).

**Invariance (eval mode).** With circular scorer padding (the default) the logits of a circularly
shifted input are the same logits, permuted as the components are; the argmax therefore picks the
same data, shifted, exactly as APS does (see :mod:`antialiased.layers.polyphase`; sides divisible
by the stride, a unique largest logit). With ``circular=True`` the blur pads circularly too.

**Phase hand-off** (branches that meet must sample alike): the protocol of
:mod:`antialiased.layers.polyphase` (``phase_role`` ``"down"`` / ``"up"``, ``stride`` a pair):
``forward(x, phase=None, return_phase=False)`` as :class:`~antialiased.layers.AdaptivePolyphaseSampling`. The phase is a
``(N,)`` integer tensor (eval: the argmax; APS's phases are accepted too) or, in training, the
``(N, s_h s_w)`` float Gumbel sample (rows sum to 1): passing it to another branch's layer makes it
mix its components with the same weights, as the authors' ``prob=`` does.
:class:`LearnablePolyphaseUpsampling` (LPU) takes either to put its input back on that phase.

**Computation.** The scorer runs once on the whole map: a 3x3 conv of dilation ``(s_h, s_w)``
over the full-resolution map is the same 3x3 conv applied to each component (circular padding of
``s`` pixels wraps each component onto itself), so no stacked copy of the components is made. In
training the scorer's activations are recomputed in backward (activation checkpointing,
``recompute=True``), so the layer keeps only its input for backward; the mixture keeps strided
views of it. Odd sides are extended circularly to a multiple of the stride (APS's rule; the
authors zero-pad), so the output has ``ceil(H / s)`` rows.

Parameters: ``scorer.conv1.{weight,bias}``, ``scorer.conv2.{weight,bias}``; buffer
``gumbel_tau`` (the temperature, saved, as the authors' buffer of the same name, for schedules
that anneal it). :meth:`reset_parameters` re-initializes as the authors' models do: PyTorch's
default conv initialization (their scorers are built after the network's init loop) and ``tau``
back to its initial value.

Example:
    >>> lps = LearnablePolyphaseSampling(4, stride=2).eval()
    >>> x = torch.randn(2, 4, 8, 8)
    >>> y, phase = lps(x, return_phase=True)
    >>> y.shape, phase.dtype
    (torch.Size([2, 4, 4, 4]), torch.int64)
    >>> i, j = divmod(int(phase[0]), 2)
    >>> torch.equal(lps(torch.roll(x, (1, 3), dims=(2, 3)))[0],
    ...             torch.roll(y[0], ((i + 1) // 2, (j + 3) // 2), dims=(1, 2)))
    True
"""
from __future__ import annotations

import warnings

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from antialiased.errors import ConfigError
from antialiased.layers._method_args import Stride, check_input, check_int, is_traced, pair, polyphase_mix
from antialiased.layers._method_args import wrap_to_multiple
from antialiased.layers._ops_polyphase import polyphase_select as _select_op
from antialiased.layers._padding import pad as _pad

__all__ = [
    "SCORER_PADDINGS",
    "PolyphaseScorer",
    "polyphase_resample",
    "polyphase_upsample",
    "LearnablePolyphaseSampling",
    "LearnablePolyphaseUpsampling",
]

#: Scorer padding modes: 'circular' (the authors' default; exact invariance) or 'zeros'.
SCORER_PADDINGS = ("circular", "zeros")


def _blur(x: torch.Tensor, filt_size: int, pad_type: str) -> torch.Tensor:
    from antialiased import layers  # the binomial blur functional (this module is imported by layers)

    return layers.blur_pool2d(x, filt_size=filt_size, stride=1, pad_type=pad_type)


def _blur_mode(circular: bool, pad_type: str | None) -> str:
    if circular and pad_type not in (None, "circular"):
        raise ConfigError(f"circular=True pads the blur circularly; got pad_type={pad_type!r} (leave it unset)")
    return "circular" if circular else (pad_type or "reflect")


def _is_phase_index(phase: torch.Tensor) -> bool:
    return not (phase.is_floating_point() or phase.is_complex())


def polyphase_resample(x: torch.Tensor, phase: torch.Tensor, stride: Stride = 2) -> torch.Tensor:
    """Keep component ``phase[n]`` (an integer phase) or mix them with weights ``phase[n, :]`` (floats).

    Sides not divisible by the stride are extended circularly first.

    Shape:
        - Input: :math:`(N, C, H, W)`, phase :math:`(N,)` integer or :math:`(N, s_h s_w)` float
        - Output: :math:`(N, C, \\lceil H / s_h \\rceil, \\lceil W / s_w \\rceil)`

    Example:
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> polyphase_resample(x, torch.tensor([1]))  # offset (0, 1)
        tensor([[[[ 1.,  3.],
                  [ 9., 11.]]]])
        >>> polyphase_resample(x, torch.tensor([[0.0, 1.0, 0.0, 0.0]]))
        tensor([[[[ 1.,  3.],
                  [ 9., 11.]]]])
    """
    sh, sw = pair(stride)
    x = wrap_to_multiple(check_input(x, "polyphase sampling"), sh, sw)
    n = x.shape[0]
    if not isinstance(phase, torch.Tensor) or phase.shape not in ((n,), (n, sh * sw)):
        got = tuple(phase.shape) if isinstance(phase, torch.Tensor) else type(phase).__name__
        raise ConfigError(f"phase must be a ({n},) integer tensor or ({n}, {sh * sw}) weights, got {got}")
    if phase.dim() == 2:
        return polyphase_mix(x, phase.to(x.device), (sh, sw))
    if not _is_phase_index(phase):
        raise ConfigError(f"a ({n},) phase must be an integer tensor (component indices), got {phase.dtype}")
    return _select_op(x, phase.to(device=x.device, dtype=torch.long), sh, sw)  # APS's registered operator


def polyphase_upsample(
    x: torch.Tensor, phase: torch.Tensor | None = None, stride: Stride = 2, size: object = None
) -> torch.Tensor:
    """Zero-insertion upsampling onto a phase: the adjoint of :func:`polyphase_resample`.

    ``out[n, c, s_h h + i, s_w w + j] = x[n, c, h, w]`` where ``phase[n] = i s_w + j`` (zeros
    elsewhere), or ``x[n, c, h, w] * phase[n, i s_w + j]`` for float weights (the authors' LPU in
    training); ``phase=None`` is phase 0. ``size`` (an int or ``(H, W)``) crops the result at the
    bottom and right (the downsampler's input size, for odd sides).

    Shape:
        - Input: :math:`(N, C, H, W)`, phase :math:`(N,)` integer or :math:`(N, s_h s_w)` float
        - Output: :math:`(N, C, s_h H, s_w W)`, or ``size``

    Example:
        >>> polyphase_upsample(torch.ones(1, 1, 2, 2), torch.tensor([3]))[0, 0]
        tensor([[0., 0., 0., 0.],
                [0., 1., 0., 1.],
                [0., 0., 0., 0.],
                [0., 1., 0., 1.]])
    """
    sh, sw = pair(stride)
    x = check_input(x, "polyphase upsampling")
    n, c, h, w = x.shape
    if phase is None:
        phase = torch.zeros(n, dtype=torch.long, device=x.device)
    if not isinstance(phase, torch.Tensor) or phase.shape not in ((n,), (n, sh * sw)):
        got = tuple(phase.shape) if isinstance(phase, torch.Tensor) else type(phase).__name__
        raise ConfigError(f"phase must be a ({n},) integer tensor or ({n}, {sh * sw}) weights, got {got}; "
                          f"pass the phase the matching downsampler returned (return_phase=True)")
    if phase.dim() == 2:
        weights = phase.to(device=x.device, dtype=x.dtype).view(n, 1, 1, sh, 1, sw)
        out = (x[:, :, :, None, :, None] * weights).reshape(n, c, h * sh, w * sw)
    else:
        if not _is_phase_index(phase):
            raise ConfigError(f"a ({n},) phase must be an integer tensor (component indices), got {phase.dtype}")
        phase = phase.to(device=x.device, dtype=torch.long)
        mask = torch.zeros(n, 1, 1, sh, 1, sw, dtype=torch.bool, device=x.device)
        mask[torch.arange(n, device=x.device), 0, 0, torch.div(phase, sw, rounding_mode="floor"), 0, phase % sw] = True
        out = torch.where(mask, x[:, :, :, None, :, None], x.new_zeros(())).reshape(n, c, h * sh, w * sw)
    if size is not None:
        oh, ow = (size, size) if isinstance(size, int) else tuple(size)[-2:]
        if not (0 < oh <= h * sh and 0 < ow <= w * sw):
            raise ConfigError(f"size {size!r} must fit in the upsampled {h * sh}x{w * sw} map "
                              f"(the matching downsampler's input size)")
        out = out[:, :, :oh, :ow]
    return out


torch.fx.wrap("polyphase_resample")
torch.fx.wrap("polyphase_upsample")


class PolyphaseScorer(nn.Module):
    """The authors' component scorer: ``mean(conv2(relu(conv1(x_p))))`` per polyphase component.

    Both convs are 3x3 with bias, ``channels -> hidden -> hidden``, padded by 1 (circularly by
    default) within each component. Computed on the full map with dilation ``stride``.

    Shape:
        - Input: :math:`(N, C, H, W)` with sides divisible by the stride
        - Output: :math:`(N, s_h s_w)` logits, ``p = i s_w + j``

    Example:
        >>> scorer = PolyphaseScorer(3, 4)
        >>> scorer(torch.randn(2, 3, 6, 8), (2, 2)).shape
        torch.Size([2, 4])
    """

    def __init__(self, channels: int, hidden_channels: int, padding: str = "circular") -> None:
        super().__init__()
        if padding not in SCORER_PADDINGS:
            raise ConfigError(f"scorer padding must be one of {SCORER_PADDINGS}, got {padding!r}; "
                              f"'circular' keeps the layer exactly shift-invariant")
        self.padding = padding
        self.conv1 = nn.Conv2d(channels, hidden_channels, 3, padding=0)
        self.conv2 = nn.Conv2d(hidden_channels, hidden_channels, 3, padding=0)

    def _conv(self, x: torch.Tensor, conv: nn.Conv2d, stride: tuple[int, int]) -> torch.Tensor:
        sh, sw = stride
        if self.padding == "zeros":  # a zero pad of s around the map is a zero pad of 1 around each component
            return F.conv2d(x, conv.weight, conv.bias, padding=(sh, sw), dilation=(sh, sw))
        return F.conv2d(_pad(x, (sw, sw, sh, sh), "circular"), conv.weight, conv.bias, dilation=(sh, sw))

    def forward(self, x: torch.Tensor, stride: tuple[int, int]) -> torch.Tensor:
        sh, sw = stride
        y = self._conv(F.relu(self._conv(x, self.conv1, stride)), self.conv2, stride)
        parts = y.unflatten(2, (y.shape[2] // sh, sh)).unflatten(4, (y.shape[3] // sw, sw))
        return parts.mean(dim=(1, 2, 4)).flatten(1)  # (N, s_h, s_w) -> (N, s_h s_w)

    def extra_repr(self) -> str:
        return f"padding={self.padding!r}"


def _gumbel_softmax(logits: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """``F.gumbel_softmax(logits, tau, hard=False)`` (the same noise draw) with a tensor temperature:
    no ``.item()`` (no GPU sync, works on meta tensors); in float32 at least (autocast)."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    gumbels = -torch.empty_like(logits, memory_format=torch.legacy_contiguous_format).exponential_().log()
    return ((logits + gumbels) / tau.to(logits.dtype)).softmax(dim=-1)


def _warn_not_divisible(x: torch.Tensor, sh: int, sw: int) -> None:
    h, w = x.shape[-2:]
    if (h % sh or w % sw) and x.device.type != "meta":
        warnings.warn(f"learnable polyphase sampling with stride {(sh, sw)} got a {h}x{w} map: exact circular-shift "
                      f"invariance needs sides divisible by the stride; resize or crop the input to a multiple of "
                      f"the network's total stride", UserWarning, stacklevel=3)


class LearnablePolyphaseSampling(nn.Module):
    """Learnable polyphase downsampling (LPD; Rojas-Gomez et al., NeurIPS 2022); see the module docstring.

    Args:
        channels: input channels.
        stride: subsampling factor, an int or ``(s_h, s_w)``.
        hidden_channels: the scorer's width (default: ``channels``, the authors' default; their
            ImageNet ResNet-18 config uses ``channels // 8``).
        filt_size: binomial blur taps before sampling (1: none, ``lps``; 2-7: ``lps-lpf``).
        circular: pad the blur circularly and warn when a side is not divisible by the stride.
        pad_type: the blur's padding when not circular ('reflect' by default).
        scorer_padding: 'circular' (default, exact invariance) or 'zeros'.
        tau: initial Gumbel-softmax temperature (the authors start at 1 and anneal it).
        recompute: recompute the scorer's activations in backward instead of keeping them.

    Shape:
        - Input: :math:`(N, C, H, W)`; optional ``phase`` :math:`(N,)` or :math:`(N, s_h s_w)`
        - Output: :math:`(N, C, \\lceil H / s_h \\rceil, \\lceil W / s_w \\rceil)`, and the phase
          with ``return_phase=True``

    Example:
        >>> lps = LearnablePolyphaseSampling(8, 2, filt_size=3, circular=True)
        >>> lps.extra_repr()
        '8, stride=(2, 2), hidden_channels=8, filt_size=3, circular=True, tau=1.0'
        >>> y, weights = lps(torch.randn(2, 8, 6, 6), return_phase=True)  # training: a Gumbel sample
        >>> y.shape, weights.shape
        (torch.Size([2, 8, 3, 3]), torch.Size([2, 4]))
    """

    phase_role = "down"  # the phase hand-off protocol of antialiased.layers.polyphase

    def __init__(
        self, channels: int, stride: Stride = 2, *, hidden_channels: int | None = None, filt_size: int = 1,
        circular: bool = False, pad_type: str | None = None, scorer_padding: str = "circular", tau: float = 1.0,
        recompute: bool = True,
    ) -> None:
        super().__init__()
        check_int("channels", channels, 1, "pass the number of channels of the layer's input")
        hidden = channels if hidden_channels is None else hidden_channels
        check_int("hidden_channels", hidden, 1, "the authors use the input's channels (or a fraction of them)")
        if not (isinstance(tau, (int, float)) and not isinstance(tau, bool) and tau > 0):
            raise ConfigError(f"tau must be a positive number, got {tau!r}; the authors start at 1.0")
        self.channels, self.stride, self.hidden_channels = channels, pair(stride), hidden
        self.pad_type = _blur_mode(circular, pad_type)
        if filt_size != 1:  # validates filt_size and pad_type now rather than at the first call
            _blur(torch.zeros(1, 1, 8, 8), filt_size, self.pad_type)
        self.filt_size, self.circular, self.recompute, self.initial_tau = filt_size, circular, recompute, float(tau)
        self.scorer = PolyphaseScorer(channels, hidden, scorer_padding)
        self.register_buffer("gumbel_tau", torch.tensor(float(tau)))

    def reset_parameters(self) -> None:
        """PyTorch's default conv initialization for the scorer (as the authors') and ``tau`` back to its start."""
        self.scorer.conv1.reset_parameters()
        self.scorer.conv2.reset_parameters()
        with torch.no_grad():
            self.gumbel_tau.fill_(self.initial_tau)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The scorer's logits of ``x`` (blurred and extended as in forward): (N, s_h s_w)."""
        if self.recompute and self.training and torch.is_grad_enabled() and not is_traced(x):
            return checkpoint(self.scorer, x, self.stride, use_reentrant=False)
        return self.scorer(x, self.stride)

    def forward(
        self, x: torch.Tensor, phase: torch.Tensor | None = None, return_phase: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        sh, sw = self.stride
        x = check_input(x, "learnable polyphase sampling", self.channels)
        if self.circular:
            _warn_not_divisible(x, sh, sw)
        if self.filt_size != 1:
            x = _blur(x, self.filt_size, self.pad_type)
        x = wrap_to_multiple(x, sh, sw)
        if phase is None:
            logits = self.logits(x)
            if self.training:
                phase = _gumbel_softmax(logits, self.gumbel_tau)
            else:
                phase = logits.argmax(dim=1)  # the first of equal maxima
        out = polyphase_resample(x, phase, (sh, sw))
        return (out, phase) if return_phase else out

    def extra_repr(self) -> str:
        text = f"{self.channels}, stride={self.stride}, hidden_channels={self.hidden_channels}"
        if self.filt_size != 1:
            text += f", filt_size={self.filt_size}"
        if self.circular:
            text += ", circular=True"
        elif self.filt_size != 1:
            text += f", pad_type={self.pad_type!r}"
        if self.scorer.padding != "circular":
            text += f", scorer_padding={self.scorer.padding!r}"
        return text + f", tau={float(self.gumbel_tau)}"


class LearnablePolyphaseUpsampling(nn.Module):
    """Learnable polyphase upsampling (LPU): zero-insertion onto the phase the matching downsampler chose.

    No parameters: the phase comes from the paired :class:`LearnablePolyphaseSampling` (or APS)
    layer, ``return_phase=True``. An integer phase puts the input on that component (eval; the
    result is the adjoint of the downsampler's selection); float weights scale each component's
    copy (training, the authors' ``lps_upsampleV2``). ``filt_size > 1`` then applies the binomial
    blur with gain ``s_h s_w`` (interpolation, as the authors' ``antialias_scale``).

    Args:
        stride: upsampling factor, an int or ``(s_h, s_w)``.
        filt_size: blur taps after the zero insertion (1: none).
        circular: pad the blur circularly.
        pad_type: the blur's padding when not circular ('reflect' by default).

    Shape:
        - Input: :math:`(N, C, H, W)` and phase :math:`(N,)` or :math:`(N, s_h s_w)` (None: phase 0)
        - Output: :math:`(N, C, s_h H, s_w W)`, or ``size``

    Example:
        >>> down, up = LearnablePolyphaseSampling(2).eval(), LearnablePolyphaseUpsampling(2)
        >>> x = torch.randn(1, 2, 4, 4)
        >>> y, phase = down(x, return_phase=True)
        >>> torch.equal(down(up(y, phase), phase=phase), y)  # up, then the same selection: identity
        True
    """

    phase_role = "up"  # the phase hand-off protocol of antialiased.layers.polyphase

    def __init__(self, stride: Stride = 2, *, filt_size: int = 1, circular: bool = False,
                 pad_type: str | None = None) -> None:
        super().__init__()
        self.stride = pair(stride)
        self.pad_type = _blur_mode(circular, pad_type)
        if filt_size != 1:
            _blur(torch.zeros(1, 1, 8, 8), filt_size, self.pad_type)
        self.filt_size, self.circular = filt_size, circular

    def forward(self, x: torch.Tensor, phase: torch.Tensor | None = None, size: object = None) -> torch.Tensor:
        out = polyphase_upsample(x, phase, self.stride, size)
        if self.filt_size != 1:
            out = _blur(out, self.filt_size, self.pad_type) * (self.stride[0] * self.stride[1])
        return out

    def extra_repr(self) -> str:
        text = f"stride={self.stride}"
        if self.filt_size != 1:
            padding = "circular=True" if self.circular else f"pad_type={self.pad_type!r}"
            text += f", filt_size={self.filt_size}, {padding}"
        return text
