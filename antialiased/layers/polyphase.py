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

**Upsampling (APS-U).** The inverse operation puts a low-resolution map back on the phase that the
matching subsampling chose: zero-insertion at ``(i, j)``, then the upsampling's own kernel
(:class:`PolyphaseUpsampling`: nearest, bilinear, bicubic, pixel shuffle;
:class:`PolyphaseConvTranspose2d`: a transposed convolution's weights). With ``phase=None`` both
compute exactly the layer they replace. A U-Net whose subsamplings are APS and whose upsamplings
take the phase of the subsampling they undo (several levels: :func:`compose_phases`) is exactly
equivariant to circular shifts: ``f(roll(x, s)) == roll(f(x), s)``.

**The phase hand-off protocol** (what ``antialiased.antialias`` wires, and what other polyphase
layers implement to take part): a class attribute ``phase_role`` (:func:`phase_role`) of ``"down"``
marks a layer called as ``layer(x, phase=None, return_phase=False)`` that returns ``(y, phase)`` when
asked, ``"up"`` one called as ``layer(x, phase=...)``; both have ``stride``, the ``(s_h, s_w)``
factor. A phase is a ``(N,)`` integer tensor of flat offsets ``i * s_w + j`` (or ``(N, s_h s_w)``
weights, for learned samplers in training).

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

import math
import warnings
from typing import Sequence

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from antialiased import layers as _blur  # blur_pool2d, looked up at call time (import-order safe)
from antialiased.errors import ConfigError
from antialiased.layers._method_args import Stride
from antialiased.layers._method_args import pair as _pair
from antialiased.layers._method_args import wrap_to_multiple as _wrap_to_multiple
from antialiased.layers._ops_polyphase import polyphase_select as _select_op  # antialiased::polyphase_select
from antialiased.layers._padding import pad as _pad_any  # circular padding that may wrap several times

__all__ = [
    "NORMS",
    "PHASE_ROLES",
    "UPSAMPLING_MODES",
    "phase_role",
    "compose_phases",
    "polyphase_phase",
    "polyphase_select",
    "adaptive_polyphase_sampling",
    "AdaptivePolyphaseSampling",
    "polyphase_upsampling",
    "PolyphaseUpsampling",
    "PolyphaseConvTranspose2d",
]

# The criteria of the published code: the norm of each component ('linf': its largest magnitude).
NORMS = {"l2": 2.0, "l1": 1.0, "linf": float("inf")}



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
    n = x.shape[0]
    if not isinstance(phase, torch.Tensor) or phase.shape != (n,) or phase.is_floating_point():
        got = f"shape {tuple(phase.shape)}, {phase.dtype}" if isinstance(phase, torch.Tensor) else type(phase).__name__
        raise ConfigError(f"phase must be an integer tensor of shape ({n},) (one per sample), got {got}")
    # One registered operator for every caller (eager, torch.compile, export, ONNX): layers._ops_polyphase.
    return _select_op(x, phase.to(device=x.device, dtype=torch.long), sh, sw)


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

    phase_role = "down"  # the phase hand-off protocol (module doc)

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


# ---------------------------------------------------------------------------------------------
# The phase hand-off protocol, and polyphase upsampling (APS-U).
# ---------------------------------------------------------------------------------------------

#: The roles of the phase hand-off protocol (see the module doc).
PHASE_ROLES = ("down", "up")
#: How :class:`PolyphaseUpsampling` fills the positions between the inserted samples.
UPSAMPLING_MODES = ("nearest", "nearest-exact", "bilinear", "bicubic", "pixel_shuffle")
# Low-resolution pixels of border added before the kernel runs: the reach of bicubic's taps (2)
# plus a phase offset of less than one pixel.
_INTERPOLATION_MARGIN = 3


def phase_role(module: object) -> str | None:
    """``"down"``, ``"up"`` (the layer's class declares it, see the module doc) or None.

    Example:
        >>> phase_role(AdaptivePolyphaseSampling(2)), phase_role(PolyphaseUpsampling(2)), phase_role(nn.ReLU())
        ('down', 'up', None)
    """
    role = getattr(type(module), "phase_role", None)
    return role if role in PHASE_ROLES else None


def _is_index(phase: torch.Tensor) -> bool:
    return not (phase.is_floating_point() or phase.is_complex())


def _phase_weights(phase: torch.Tensor, sh: int, sw: int) -> torch.Tensor:
    """``(N, s_h, s_w)`` weights of a phase: one-hot for an index, the row itself for weights."""
    if _is_index(phase):
        return F.one_hot(phase.long(), sh * sw).float().view(-1, sh, sw)
    return phase.view(-1, sh, sw)


def compose_phases(phases: Sequence[torch.Tensor], strides: Sequence[Stride]) -> torch.Tensor:
    """The phase of several subsamplings in a row, as the phase of one subsampling by their product.

    ``phases[k]`` is the phase the ``k``-th subsampling picked (finest first), at stride
    ``strides[k]``. A sample at ``m`` of the last map sits at ``i_1 + s_1 (i_2 + s_2 (i_3 + ...))``
    (rows; columns alike) of the first one: the composed phase is that offset at stride
    ``prod(s_k)``. Integer phases give an integer phase; weights (learned samplers in training)
    give the product weights.

    Shape:
        - Input: each phase :math:`(N,)` integer or :math:`(N, s_h s_w)` weights
        - Output: :math:`(N,)` integer, or :math:`(N, \\prod s_h \\prod s_w)` weights

    Example:
        >>> # (1, 1) at stride 2, then (0, 1) at stride 2: offset (1, 1 + 2) at stride 4
        >>> compose_phases([torch.tensor([3]), torch.tensor([1])], [2, 2])
        tensor([7])
    """
    pairs = [_pair(s) for s in strides]
    if not phases or len(phases) != len(pairs):
        raise ConfigError(f"compose_phases needs one stride per phase, got {len(phases)} phases and {len(pairs)} strides")
    if all(_is_index(p) for p in phases):
        rows = cols = torch.zeros_like(phases[0], dtype=torch.long)
        span_h = span_w = 1
        for phase, (sh, sw) in zip(phases, pairs):
            phase = phase.long()
            rows = rows + span_h * torch.div(phase, sw, rounding_mode="floor")
            cols = cols + span_w * (phase % sw)
            span_h, span_w = span_h * sh, span_w * sw
        return rows * span_w + cols
    weights = _phase_weights(phases[0], *pairs[0])
    for phase, (sh, sw) in zip(phases[1:], pairs[1:]):
        coarse = _phase_weights(phase, sh, sw).to(weights.dtype)  # the coarser level is the major index
        weights = (coarse[:, :, None, :, None] * weights[:, None, :, None, :]).flatten(3, 4).flatten(1, 2)
    return weights.flatten(1)


def _phase_offsets(phase: torch.Tensor | None, n: int, sh: int, sw: int, device: torch.device):
    """Per-sample row and column offsets of an integer phase (0, 0 when None)."""
    if phase is None:
        return 0, 0
    if not isinstance(phase, torch.Tensor) or phase.shape != (n,) or not _is_index(phase):
        got = f"shape {tuple(phase.shape)}, {phase.dtype}" if isinstance(phase, torch.Tensor) else type(phase).__name__
        raise ConfigError(
            f"polyphase upsampling takes an integer phase of shape ({n},) (the matching subsampling's, "
            f"return_phase=True), got {got}; for soft (N, s_h s_w) phases use LearnablePolyphaseUpsampling"
        )
    phase = phase.to(device=device, dtype=torch.long)
    return torch.div(phase, sw, rounding_mode="floor"), phase % sw


def _window(full: torch.Tensor, top, left, out_h: int, out_w: int) -> torch.Tensor:
    """``full[..., top:top + out_h, left:left + out_w]``, with a start per sample when given as tensors."""
    if not isinstance(top, torch.Tensor):
        return full[..., top:top + out_h, left:left + out_w]
    device = full.device
    rows = top[:, None] + torch.arange(out_h, device=device)  # (N, out_h)
    cols = left[:, None] + torch.arange(out_w, device=device)  # (N, out_w)
    batch = torch.arange(full.shape[0], device=device)[:, None, None]
    # Advanced indices around a slice go first: (N, out_h, out_w, C) -> (N, C, out_h, out_w).
    return full[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def _shifted_window(full: torch.Tensor, start: tuple[int, int], phase, stride: tuple[int, int],
                    out_size: tuple[int, int]) -> torch.Tensor:
    """The ``out_size`` window of ``full`` from ``start``, moved back by each sample's phase offset."""
    rows, cols = _phase_offsets(phase, full.shape[0], *stride, full.device)
    return _window(full, start[0] - rows, start[1] - cols, *out_size)


def _out_size(size: object, default: tuple[int, int]) -> tuple[int, int]:
    if size is None:
        return default
    values = (size, size) if isinstance(size, int) else tuple(size)[-2:]
    if len(values) != 2 or any(not isinstance(v, int) or v < 1 for v in values):
        raise ConfigError(f"size must be a positive integer or (H, W), got {size!r}")
    return int(values[0]), int(values[1])


def _fit(y: torch.Tensor, size: tuple[int, int], circular: bool) -> torch.Tensor:
    """``y`` cut (or extended: circularly, else by its edge) to ``size``; pixel ``n`` stays at ``n``."""
    h, w = y.shape[-2:]
    if (h, w) == size:
        return y
    y = y[..., : size[0], : size[1]]
    grow = (0, max(0, size[1] - w), 0, max(0, size[0] - h))
    return _pad_any(y, grow, "circular" if circular else "replicate") if any(grow) else y


def _up_blur(y: torch.Tensor, filt_size: int, pad_mode: str) -> torch.Tensor:
    return y if filt_size == 1 else _blur.blur_pool2d(y, filt_size=filt_size, stride=1, pad_type=pad_mode)


def _check_mode(mode: str) -> str:
    if mode not in UPSAMPLING_MODES:
        raise ConfigError(f"mode must be one of {list(UPSAMPLING_MODES)}, got {mode!r}")
    return mode


def polyphase_upsampling(
    x: torch.Tensor,
    stride: Stride = 2,
    *,
    mode: str = "nearest",
    phase: torch.Tensor | None = None,
    size: object = None,
    circular: bool = False,
    filt_size: int = 1,
    pad_type: str | None = None,
) -> torch.Tensor:
    """Upsample by an integer factor onto a phase: zero-insertion at ``phase``, then ``mode``'s kernel.

    ``phase=None`` is phase 0 and gives exactly ``F.interpolate(x, scale_factor=stride, mode=mode)``
    (``align_corners=False``), or ``F.pixel_shuffle`` for ``mode="pixel_shuffle"``; with a phase
    ``(i, j)`` the output is that, moved by ``(i, j)`` pixels (what inserting the samples at
    ``(s m + i, s m + j)`` and interpolating between them gives). The border: interpolation clamps
    at the edges (as torch does), pixel shuffle has none; ``circular=True`` wraps around instead, which
    makes the layer commute with circular shifts. ``filt_size > 1`` blurs the result at stride 1
    (the binomial filter of APS-LPF).

    Args:
        x: the input, :math:`(N, C, H, W)`.
        stride: the upsampling factor, an int or ``(s_h, s_w)``.
        mode: one of :data:`UPSAMPLING_MODES`.
        phase: the matching subsampling's phase at ``stride`` (:func:`compose_phases` for several).
        size: output ``(H, W)`` (e.g. an ``F.interpolate`` call's ``size=``); default ``s * (H, W)``.
            Other sizes cut (or extend) the result at the bottom and right.
        circular, filt_size, pad_type: borders, the blur, the blur's padding when not circular.

    Shape:
        - Input: :math:`(N, C, H, W)`, phase :math:`(N,)` integer
        - Output: :math:`(N, C', s_h H, s_w W)` (:math:`C' = C / s^2` for pixel shuffle), or ``size``

    Example:
        >>> x = torch.randn(1, 2, 3, 3)
        >>> torch.allclose(polyphase_upsampling(x, 2, mode="bilinear"),
        ...                F.interpolate(x, scale_factor=2, mode="bilinear"))
        True
        >>> y = polyphase_upsampling(x, 2, mode="bilinear", circular=True, phase=torch.tensor([1]))  # (0, 1)
        >>> torch.allclose(y, torch.roll(polyphase_upsampling(x, 2, mode="bilinear", circular=True), 1, dims=3))
        True
    """
    sh, sw = _pair(stride)
    _check_input(x)
    mode = _check_mode(mode)
    blur_mode = _blur_padding(circular, pad_type)
    h, w = x.shape[-2:]
    if mode == "pixel_shuffle":
        if sh != sw:
            raise ConfigError(f"pixel shuffle upsamples both sides by one factor, got stride {(sh, sw)}")
        margin = 1
        padded = _pad_any(x, (margin,) * 4, "circular" if circular else "constant")
        full = F.pixel_shuffle(padded, sh)
    else:
        margin = _INTERPOLATION_MARGIN
        padded = _pad_any(x, (margin,) * 4, "circular" if circular else "replicate")
        if mode.startswith("nearest"):  # exact integer indexing (n // s), as torch's nearest at integer scales
            full = padded.repeat_interleave(sh, dim=2).repeat_interleave(sw, dim=3)
        else:
            full = F.interpolate(padded, scale_factor=(sh, sw), mode=mode, align_corners=False)
    y = _shifted_window(full, (sh * margin, sw * margin), phase, (sh, sw), (sh * h, sw * w))
    return _up_blur(_fit(y, _out_size(size, (sh * h, sw * w)), circular), filt_size, blur_mode)


torch.fx.wrap("polyphase_upsampling")


class PolyphaseUpsampling(nn.Module):
    """Upsampling (nearest, bilinear, bicubic, pixel shuffle) onto the phase of a matching subsampling.

    The polyphase twin of ``nn.Upsample`` / ``F.interpolate`` (``align_corners=False``) and
    ``nn.PixelShuffle`` by an integer factor: called without a phase it computes exactly the layer
    it replaces (with circular borders if ``circular=True``); with the phase of the subsampling it
    undoes, zero-insertion happens on that phase (APS-U). Holds no parameters or buffers. See
    :func:`polyphase_upsampling` for the arguments.

    Shape:
        - Input: :math:`(N, C, H, W)`; optional ``phase`` :math:`(N,)` and ``size`` ``(H', W')``
        - Output: :math:`(N, C', s H, s W)` (:math:`C' = C / s^2` for pixel shuffle), or ``size``

    Example:
        >>> down, up = AdaptivePolyphaseSampling(2, circular=True), PolyphaseUpsampling(2, circular=True)
        >>> x = torch.randn(1, 3, 8, 8)
        >>> y, phase = down(x, return_phase=True)
        >>> z = up(y, phase=phase)  # the kept samples land where they were taken
        >>> torch.equal(down(z, phase=phase), y)
        True
    """

    phase_role = "up"  # the phase hand-off protocol (module doc)

    def __init__(self, stride: Stride = 2, *, mode: str = "nearest", circular: bool = False, filt_size: int = 1,
                 pad_type: str | None = None, size: object = None) -> None:
        super().__init__()
        self.stride = _pair(stride)
        self.mode = _check_mode(mode)
        if self.mode == "pixel_shuffle" and self.stride[0] != self.stride[1]:
            raise ConfigError(f"pixel shuffle upsamples both sides by one factor, got stride {self.stride}")
        self.pad_type = _blur_padding(circular, pad_type)
        if filt_size != 1:  # validates filt_size and pad_type now rather than at the first call
            _blur.blur_pool2d(torch.zeros(1, 1, 8, 8), filt_size=filt_size, stride=1, pad_type=self.pad_type)
        self.circular, self.filt_size = circular, filt_size
        self.size = None if size is None else _out_size(size, (1, 1))

    def forward(self, x: torch.Tensor, phase: torch.Tensor | None = None, size: object = None) -> torch.Tensor:
        return polyphase_upsampling(
            x, self.stride, mode=self.mode, phase=phase, size=size if size is not None else self.size,
            circular=self.circular, filt_size=self.filt_size, pad_type=None if self.circular else self.pad_type,
        )

    def extra_repr(self) -> str:
        text = f"stride={self.stride}, mode={self.mode!r}, circular={self.circular}"
        if self.filt_size != 1:
            text += f", filt_size={self.filt_size}" + ("" if self.circular else f", pad_type={self.pad_type!r}")
        return text + (f", size={self.size}" if self.size is not None else "")


class PolyphaseConvTranspose2d(nn.ConvTranspose2d):
    """A strided ``nn.ConvTranspose2d`` that zero-inserts on a given phase (APS-U with its own weights).

    A transposed convolution is zero-insertion at phase 0 followed by a convolution with its
    weights; this layer inserts at ``phase`` instead (the output moves by that offset) and, with
    ``circular=True``, wraps the kernel around the borders, keeping the size ``s * H`` (instead of
    ``(H - 1) s - 2 p + d (k - 1) + p_out + 1``, the same when the layer already doubles exactly).
    Called without a phase and with ``circular=False`` it is the ``nn.ConvTranspose2d`` it was
    built from. :meth:`from_conv` builds one that shares an existing layer's parameters, so a model's
    state-dict keys do not change. ``filt_size > 1`` blurs the result at stride 1 (APS-LPF).

    Shape:
        - Input: :math:`(N, C_{in}, H, W)`; optional ``phase`` :math:`(N,)`
        - Output: :math:`(N, C_{out}, H', W')` (see above), or ``output_size``

    Example:
        >>> conv = nn.ConvTranspose2d(4, 2, 2, stride=2)
        >>> up = PolyphaseConvTranspose2d.from_conv(conv)
        >>> x = torch.randn(1, 4, 3, 3)
        >>> torch.allclose(up(x), conv(x)), up.weight is conv.weight
        (True, True)
    """

    phase_role = "up"  # the phase hand-off protocol (module doc)

    def __init__(self, *args, circular: bool = False, filt_size: int = 1, pad_type: str | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise ConfigError(f"PolyphaseConvTranspose2d needs padding_mode='zeros' and integer padding, "
                              f"got {self.padding_mode!r}, {self.padding!r}")
        self.pad_type = _blur_padding(circular, pad_type)
        if filt_size != 1:
            _blur.blur_pool2d(torch.zeros(1, 1, 8, 8), filt_size=filt_size, stride=1, pad_type=self.pad_type)
        self.circular, self.filt_size = circular, filt_size

    @classmethod
    def from_conv(cls, conv: nn.ConvTranspose2d, *, circular: bool = False, filt_size: int = 1,
                  pad_type: str | None = None) -> "PolyphaseConvTranspose2d":
        """A polyphase twin of ``conv`` holding the same ``weight`` and ``bias`` objects (same keys)."""
        layer = cls(  # built on "meta" (no memory, no init), then given conv's own parameters
            conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
            output_padding=conv.output_padding, groups=conv.groups, bias=conv.bias is not None,
            dilation=conv.dilation, padding_mode=conv.padding_mode, circular=circular, filt_size=filt_size,
            pad_type=pad_type, device="meta",
        )
        layer.weight = conv.weight
        if conv.bias is not None:
            layer.bias = conv.bias
        return layer.train(conv.training)

    def _margin(self) -> int:
        """Input pixels of border so that every output position sees all its taps (and a phase offset)."""
        span = max(self.dilation[0] * (self.kernel_size[0] - 1), self.dilation[1] * (self.kernel_size[1] - 1))
        return math.ceil((span + max(self.padding) + max(self.stride)) / min(self.stride)) + 1

    def _default_size(self, h: int, w: int) -> tuple[int, int]:
        if self.circular:
            return self.stride[0] * h, self.stride[1] * w
        return tuple(  # torch's ConvTranspose2d output size
            (n - 1) * s - 2 * p + d * (k - 1) + o + 1
            for n, s, p, d, k, o in zip((h, w), self.stride, self.padding, self.dilation, self.kernel_size,
                                        self.output_padding)
        )

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None,
                phase: torch.Tensor | None = None) -> torch.Tensor:
        _check_input(input)
        h, w = input.shape[-2:]
        margin = self._margin()
        padded = _pad_any(input, (margin,) * 4, "circular" if self.circular else "constant")
        full = F.conv_transpose2d(padded, self.weight, self.bias, self.stride, 0, 0, self.groups, self.dilation)
        start = (self.stride[0] * margin + self.padding[0], self.stride[1] * margin + self.padding[1])
        size = self._default_size(h, w) if output_size is None else _out_size(output_size, (1, 1))
        y = _shifted_window(full, start, phase, self.stride, size)
        return _up_blur(y, self.filt_size, self.pad_type)

    def extra_repr(self) -> str:
        text = super().extra_repr() + f", circular={self.circular}"
        if self.filt_size != 1:
            text += f", filt_size={self.filt_size}" + ("" if self.circular else f", pad_type={self.pad_type!r}")
        return text
