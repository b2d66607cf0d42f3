"""Adaptive polyphase sampling (APS): subsampling that follows the signal instead of a fixed grid.

A stride-``s`` subsampling keeps one of the ``s * s`` *polyphase components* of a feature map,
``x[:, :, i::s, j::s]``, always the one at offset ``(0, 0)``; shifting the input by one pixel
makes it keep a different component, so the output changes. APS (Chaman & Dokmanic, "Truly
shift-invariant convolutional neural networks", CVPR 2021) keeps, per sample, the component of
largest norm. A circular shift of the input permutes the components and circularly shifts each
of them, without changing their norms, so APS picks the same data again, shifted:

**Invariance statement.** Let ``s`` divide ``H`` and ``W``, let ``p(x) = (i, j)`` be the phase
APS picks (its largest norm unique), and ``roll`` the circular shift. For every ``(dh, dw)``::

    p(roll(x, (dh, dw)))   == ((i + dh) % s, (j + dw) % s)
    APS(roll(x, (dh, dw))) == roll(APS(x), ((i + dh) // s, (j + dw) // s))

so the output is a circular shift of the unshifted output. In a network whose other layers
commute with circular shifts (circular padding) and that ends in global pooling, the logits do
not change at all, for inputs whose sides are divisible by the network's total stride. Sides not
divisible by ``s`` are wrapped around to the next multiple (as the published code does); the
result has the usual ``ceil(H / s)`` size but is not exactly invariant, which a layer built with
``circular=True`` reports with a warning.

Ties (components of exactly equal norm, e.g. a constant input) go to the lowest phase index
``i * s_w + j``; exact invariance needs a unique maximum, which real-valued features have.

Where branches meet (a residual add after a strided shortcut, a concatenation), every branch
must keep the same phase, or the two shifts disagree. The phase is an explicit tensor: the first
layer is called with ``return_phase=True`` and the others receive it as ``phase=`` (what
``antialiased.antialias`` wires through the model's graph). Nothing is stored on the modules, so
this holds under activation checkpointing, ``DataParallel`` replicas, ``torch.compile`` and export.

Example:
    >>> aps = AdaptivePolyphaseSampling(stride=2, circular=True)
    >>> x = torch.randn(2, 3, 8, 8)
    >>> y, phase = aps(x, return_phase=True)
    >>> y.shape, phase.shape
    (torch.Size([2, 3, 4, 4]), torch.Size([2]))
    >>> shifted = aps(torch.roll(x, shifts=(1, 3), dims=(2, 3)))
    >>> i, j = divmod(int(phase[0]), 2)
    >>> torch.equal(shifted[0], torch.roll(y[0], shifts=((i + 1) // 2, (j + 3) // 2), dims=(1, 2)))
    True
"""
from __future__ import annotations

import warnings
from typing import Union

import torch
import torch.fx
from torch import nn

from antialiased import layers as _blur  # blur_pool2d, looked up at call time (import-order safe)
from antialiased.errors import ConfigError

__all__ = [
    "NORMS",
    "polyphase_phase",
    "polyphase_select",
    "adaptive_polyphase_sampling",
    "AdaptivePolyphaseSampling",
]

# The criteria of the published code: the norm of each component ('linf': its largest magnitude).
NORMS = {"l2": 2.0, "l1": 1.0, "linf": float("inf")}

Stride = Union[int, tuple[int, int]]


def _pair(stride: Stride) -> tuple[int, int]:
    pair = (stride, stride) if isinstance(stride, int) and not isinstance(stride, bool) else stride
    if (
        not isinstance(pair, (tuple, list)) or len(pair) != 2
        or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in pair)
    ):
        raise ConfigError(f"stride must be a positive integer or a pair of them, got {stride!r}; 2 halves each side")
    return int(pair[0]), int(pair[1])


def _check_norm(norm: str) -> float:
    try:
        return NORMS[norm]
    except (KeyError, TypeError):
        raise ConfigError(f"norm must be one of {sorted(NORMS)}, got {norm!r}; 'l2' is the paper's default") from None


def _check_input(x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        got = f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ConfigError(f"adaptive polyphase sampling expects a 4-D (N, C, H, W) tensor, got {got}")
    if 0 in x.shape:
        raise ConfigError(f"adaptive polyphase sampling got an empty tensor of shape {tuple(x.shape)}")
    return x


def _wrap_to_multiple(x: torch.Tensor, sh: int, sw: int) -> torch.Tensor:
    """Extend H and W circularly to multiples of the stride (a no-op when they already are)."""
    h, w = x.shape[-2:]
    if h % sh:
        x = x.index_select(2, torch.arange(h + (-h) % sh, device=x.device) % h)
    if w % sw:
        x = x.index_select(3, torch.arange(w + (-w) % sw, device=x.device) % w)
    return x


def _is_channels_last(x: torch.Tensor) -> bool:
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def polyphase_phase(x: torch.Tensor, stride: Stride = 2, norm: str = "l2") -> torch.Tensor:
    """The phase APS picks per sample: the flat offset ``i * s_w + j`` of the largest-norm component.

    Norms are computed in at least float32 (safe under autocast); ties go to the lowest index.

    Shape:
        - Input: :math:`(N, C, H, W)`
        - Output: :math:`(N,)`, ``torch.long``, values in ``[0, s_h s_w)``

    Example:
        >>> x = torch.zeros(1, 1, 4, 4)
        >>> x[0, 0, 1, 0] = 5.0  # row offset 1, column offset 0
        >>> polyphase_phase(x, 2)
        tensor([2])
        >>> polyphase_phase(torch.ones(2, 1, 4, 4), 2)  # a tie: the lowest phase
        tensor([0, 0])
    """
    sh, sw = _pair(stride)
    order = _check_norm(norm)
    x = _wrap_to_multiple(_check_input(x), sh, sw)
    h, w = x.shape[-2:]
    # Splitting H and W is a view in any memory format: (N, C, H/sh, sh, W/sw, sw).
    parts = x.unflatten(2, (h // sh, sh)).unflatten(4, (w // sw, sw))
    dtype = torch.promote_types(x.dtype, torch.float32) if x.is_floating_point() else torch.float32
    norms = torch.linalg.vector_norm(parts, ord=order, dim=(1, 2, 4), dtype=dtype)
    return norms.flatten(1).argmax(dim=1)  # argmax returns the first of equal maxima


def polyphase_select(x: torch.Tensor, phase: torch.Tensor, stride: Stride = 2) -> torch.Tensor:
    """Per sample ``n``, the polyphase component ``x[n, :, i::s_h, j::s_w]`` with ``phase[n] = i * s_w + j``.

    Gradients flow into the selected positions; channels_last inputs give channels_last outputs.

    Shape:
        - Input: :math:`(N, C, H, W)` and phase :math:`(N,)` (integer)
        - Output: :math:`(N, C, \\lceil H / s_h \\rceil, \\lceil W / s_w \\rceil)`

    Example:
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> polyphase_select(x, torch.tensor([3]), 2)  # offset (1, 1)
        tensor([[[[ 5.,  7.],
                  [13., 15.]]]])
    """
    sh, sw = _pair(stride)
    x = _wrap_to_multiple(_check_input(x), sh, sw)
    n, _, h, w = x.shape
    if not isinstance(phase, torch.Tensor) or phase.shape != (n,) or phase.is_floating_point():
        got = f"shape {tuple(phase.shape)}, {phase.dtype}" if isinstance(phase, torch.Tensor) else type(phase).__name__
        raise ConfigError(f"phase must be an integer tensor of shape ({n},) (one per sample), got {got}")
    phase = phase.to(device=x.device, dtype=torch.long)
    rows, cols = torch.div(phase, sw, rounding_mode="floor"), phase % sw
    batch = torch.arange(n, device=x.device)
    if _is_channels_last(x):  # index the (N, H, W, C) view so the result stays channels_last
        parts = x.permute(0, 2, 3, 1).unflatten(1, (h // sh, sh)).unflatten(3, (w // sw, sw))
        return parts[batch, :, rows, :, cols].permute(0, 3, 1, 2)
    parts = x.unflatten(2, (h // sh, sh)).unflatten(4, (w // sw, sw))
    return parts[batch, :, :, rows, :, cols]  # separated advanced indices: (N, C, H/sh, W/sw)


def _blur_padding(circular: bool, pad_type: str | None) -> str:
    if circular and pad_type not in (None, "circular"):
        raise ConfigError(f"circular=True pads the blur circularly; got pad_type={pad_type!r} (leave it unset)")
    return "circular" if circular else (pad_type or "reflect")


def _warn_not_divisible(x: torch.Tensor, sh: int, sw: int) -> None:
    h, w = x.shape[-2:]
    if h % sh or w % sw:
        warnings.warn(
            f"adaptive polyphase sampling with stride {(sh, sw)} got a {h}x{w} feature map: exact circular-shift "
            f"invariance needs sides divisible by the stride (the input's sides by the network's total stride); "
            f"resize or crop the input to a multiple of it",
            UserWarning,
            stacklevel=3,
        )


def adaptive_polyphase_sampling(
    x: torch.Tensor,
    stride: Stride = 2,
    *,
    norm: str = "l2",
    filt_size: int = 1,
    circular: bool = False,
    pad_type: str | None = None,
    phase: torch.Tensor | None = None,
    return_phase: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Optionally blur (stride 1), then keep each sample's largest-norm polyphase component.

    Args:
        x: the input, :math:`(N, C, H, W)`.
        stride: subsampling factor (an int or ``(s_h, s_w)``).
        norm: selection criterion, one of :data:`NORMS` ('l2', 'l1', 'linf').
        filt_size: binomial blur taps before sampling (1: none, APS; 2-7: APS-LPF).
        circular: pad the blur circularly and warn when a side is not divisible by the stride.
        pad_type: the blur's padding when not circular ('reflect' by default).
        phase: a phase from :func:`polyphase_phase` (another branch's) to use instead of choosing.
        return_phase: also return the phase used, to hand to the branches that must match it.

    Example:
        >>> x = torch.randn(2, 4, 6, 6)
        >>> y, p = adaptive_polyphase_sampling(x, 2, filt_size=3, circular=True, return_phase=True)
        >>> torch.equal(adaptive_polyphase_sampling(x, 2, filt_size=3, circular=True, phase=p), y)
        True
    """
    sh, sw = _pair(stride)
    _check_norm(norm)
    mode = _blur_padding(circular, pad_type)
    _check_input(x)
    if circular and x.device.type != "meta":  # meta tensors: shape probes, not data
        _warn_not_divisible(x, sh, sw)
    if filt_size != 1:
        x = _blur.blur_pool2d(x, filt_size=filt_size, stride=1, pad_type=mode)
    if phase is None:
        phase = polyphase_phase(x, (sh, sw), norm)
    out = polyphase_select(x, phase, (sh, sw))
    return (out, phase) if return_phase else out


# fx records calls to the functional as single nodes instead of tracing into its shape logic.
torch.fx.wrap("adaptive_polyphase_sampling")


class AdaptivePolyphaseSampling(nn.Module):
    """Adaptive polyphase sampling (APS), with an optional blur before it (APS-LPF).

    Replaces a fixed stride-``s`` subsampling. Holds no parameters or buffers, so inserting it
    leaves a model's state-dict keys unchanged. See the module docstring for the invariance
    statement and :func:`adaptive_polyphase_sampling` for the arguments.

    Shape:
        - Input: :math:`(N, C, H, W)`; optional ``phase`` :math:`(N,)`
        - Output: :math:`(N, C, \\lceil H / s \\rceil, \\lceil W / s \\rceil)`, and the phase
          :math:`(N,)` when called with ``return_phase=True``

    Example:
        >>> aps_lpf = AdaptivePolyphaseSampling(2, filt_size=3, circular=True)
        >>> aps_lpf
        AdaptivePolyphaseSampling(stride=(2, 2), norm='l2', filt_size=3, circular=True)
        >>> aps_lpf(torch.randn(1, 8, 16, 16)).shape
        torch.Size([1, 8, 8, 8])
    """

    def __init__(
        self, stride: Stride = 2, *, filt_size: int = 1, norm: str = "l2", circular: bool = False,
        pad_type: str | None = None,
    ) -> None:
        super().__init__()
        self.stride = _pair(stride)
        _check_norm(norm)
        self.pad_type = _blur_padding(circular, pad_type)
        if filt_size != 1:  # validates filt_size and pad_type now rather than at the first call
            _blur.blur_pool2d(torch.zeros(1, 1, 8, 8), filt_size=filt_size, stride=1, pad_type=self.pad_type)
        self.filt_size = filt_size
        self.norm = norm
        self.circular = circular

    def forward(
        self, x: torch.Tensor, phase: torch.Tensor | None = None, return_phase: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return adaptive_polyphase_sampling(
            x, self.stride, norm=self.norm, filt_size=self.filt_size, circular=self.circular,
            pad_type=None if self.circular else self.pad_type, phase=phase, return_phase=return_phase,
        )

    def extra_repr(self) -> str:
        text = f"stride={self.stride}, norm={self.norm!r}, filt_size={self.filt_size}, circular={self.circular}"
        if self.filt_size != 1 and not self.circular:
            text += f", pad_type={self.pad_type!r}"
        return text
