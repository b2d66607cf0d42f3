"""Content-aware adaptive blur pooling (DDAC / "pasa", Zou et al.): low-pass filters predicted per position.

"Delving Deeper into Anti-aliasing in ConvNets" (Zou, Xiao, Yu & Lee, BMVC 2020; code:
github.com/MaureenZOU/Adaptive-anti-Aliasing, ``Downsample_PASA_group_softmax``) predicts, for
every position and every group of channels, a ``k x k`` filter from the input itself, applies it,
then subsamples. With ``G`` groups of ``C / G`` consecutive channels and ``p = k // 2``::

    logits = BN(conv_{k x k, C -> G k^2, no bias}(pad_p(x)))          # (N, G k^2, H, W)
    w      = softmax(logits) over the G k^2 channels of each position ('joint', the authors' code)
             or over the k^2 taps of each group ('group': every group's filter sums to 1)
    y[n, c, i, j] = sum_{a, b < k} w[n, g(c) k^2 + a k + b, s i, s j] * pad_p(x)[n, c, s i + a, s j + b]

where ``g(c) = c // (C / G)`` and ``pad`` is reflect padding by default, both for the predictor
and for the filtering, as in the authors' layer. The authors' softmax runs over all ``G k^2``
logits of a position, so each group's filter sums to its share of 1 (the author explains this
choice, and reports a per-group softmax as "very similar", in their repository's issue #6);
``normalize='joint'`` (default) reproduces it, ``'group'`` makes every group's filter a proper
low-pass filter (unit DC gain).

**Computed only where it is kept.** The authors predict and filter at every position, then keep
one in ``s * s``. Here the filters are applied at the kept positions only, and in eval mode the
predictor conv runs at stride ``s`` too: the same values, ``s**2`` times less work. In training
mode the BatchNorm statistics must be those of all ``H x W`` positions (the authors' function),
so the predictor runs at full resolution there and only the normalization, softmax and
filtering run at the kept positions.

**Memory.** Backward keeps the layer's input (shared with the previous layer), the predictor's
full-resolution output in training (``G k^2`` channels: 72 for the defaults) and the kept-position
filters; neither the padded input nor any unfolded ``k^2``-times copy of it (custom autograd
Functions recompute the padding in backward). While traced or exported the layer runs plain ops.

Parameters: ``conv.weight`` (G k^2, C, k, k) and ``bn.{weight, bias, running_mean, running_var,
num_batches_tracked}``, the authors' keys, and ``gain`` (a buffer: the filters' constant factor, 1
for the authors' function; a state dict without it loads as 1). :meth:`AdaptiveBlurPool.reset_parameters`
initializes as they do (Kaiming-normal, fan-out, ReLU gain; BN weight 1, bias 0);
:meth:`AdaptiveBlurPool.init_from_baseline` starts a layer inserted into a trained baseline as the
binomial blur with unit gain per group (``gain = G`` in 'joint' mode).

Example:
    >>> pool = AdaptiveBlurPool(16, stride=2)
    >>> pool.extra_repr()
    "16, stride=2, filt_size=3, groups=8, pad_type='reflect'"
    >>> pool(torch.randn(2, 16, 10, 9)).shape
    torch.Size([2, 16, 5, 5])
    >>> sorted(pool.state_dict())[:3]
    ['bn.bias', 'bn.num_batches_tracked', 'bn.running_mean']
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from antialiased.errors import ConfigError
from antialiased.layers._method_args import check_input, check_int, is_traced
from antialiased.layers._padding import effective_mode, pad, pad_mode, unpad
from antialiased.layers._taps import binomial

__all__ = ["NORMALIZATIONS", "adaptive_filter2d", "AdaptiveBlurPool"]

#: ``normalize=`` values: softmax over all G k^2 logits of a position (authors) or per group.
NORMALIZATIONS = ("joint", "group")


def _check_filt_size(filt_size: object) -> int:
    if not isinstance(filt_size, int) or isinstance(filt_size, bool) or filt_size not in (3, 5, 7):
        raise ConfigError(f"adaptive filters need an odd filt_size of 3, 5 or 7 (centred k x k taps), "
                          f"got {filt_size!r}; the paper uses 3 (default) and 5")
    return filt_size


def _check_groups(groups: object, channels: int) -> int:
    check_int("groups", groups, 1, "8 is the paper's default")
    if channels % groups:
        raise ConfigError(f"groups={groups} must divide the {channels} channels (groups of consecutive channels "
                          f"share a filter); use groups={math.gcd(channels, groups)}")
    return groups


def _pads(filt_size: int) -> tuple[int, int, int, int]:
    return (filt_size // 2,) * 4


def _tap(padded: torch.Tensor, t: int, k: int, stride: int, out_hw: tuple[int, int]) -> torch.Tensor:
    """The view of ``padded`` that tap ``t = a k + b`` reads for every output position."""
    a, b = divmod(t, k)
    ho, wo = out_hw
    return padded[:, :, a:a + stride * (ho - 1) + 1:stride, b:b + stride * (wo - 1) + 1:stride]


def _filter_forward(padded: torch.Tensor, weights: torch.Tensor, k: int, stride: int) -> torch.Tensor:
    groups, out_hw = weights.shape[1] // (k * k), tuple(weights.shape[2:])
    w = weights.unflatten(1, (groups, k * k))
    out = None
    for t in range(k * k):  # k^2 output-sized products: no unfolded (k^2 x input) tensor
        term = _tap(padded, t, k, stride, out_hw).unflatten(1, (groups, -1)) * w[:, :, t, None]
        out = term if out is None else out + term
    return out.flatten(1, 2)


class _AdaptiveFilter(torch.autograd.Function):
    """Per-position filtering at the kept positions; saves the input and the filters, not the padding."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, weights: torch.Tensor, k: int, stride: int, mode: str
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weights)
        ctx.k, ctx.stride, ctx.mode = k, stride, mode
        return _filter_forward(pad(x, _pads(k), mode), weights, k, stride)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor):  # type: ignore[override]
        x, weights = ctx.saved_tensors
        k, stride, pads, out_hw = ctx.k, ctx.stride, _pads(ctx.k), tuple(grad.shape[2:])
        padded = pad(x, pads, ctx.mode)
        groups = weights.shape[1] // (k * k)
        g = grad.unflatten(1, (groups, -1))
        w = weights.unflatten(1, (groups, k * k))
        grad_padded = torch.zeros_like(padded) if ctx.needs_input_grad[0] else None
        grad_w = torch.empty_like(w) if ctx.needs_input_grad[1] else None
        for t in range(k * k):
            if grad_w is not None:
                grad_w[:, :, t] = (g * _tap(padded, t, k, stride, out_hw).unflatten(1, (groups, -1))).sum(2)
            if grad_padded is not None:
                _tap(grad_padded, t, k, stride, out_hw).add_((g * w[:, :, t, None]).flatten(1, 2))
        grad_x = unpad(grad_padded, pads, ctx.mode, tuple(x.shape[2:])) if grad_padded is not None else None
        return grad_x, (grad_w.flatten(1, 2) if grad_w is not None else None), None, None, None


def adaptive_filter2d(
    input: torch.Tensor, weights: torch.Tensor, stride: int = 2, filt_size: int = 3, pad_type: str = "reflect"
) -> torch.Tensor:
    """Filter each position of ``input`` with its own per-group ``k x k`` filter, at stride ``stride``.

    ``weights[n, g * k^2 + a * k + b, i, j]`` is tap ``(a, b)`` of group ``g``'s filter for output
    position ``(i, j)``, i.e. input position ``(s i, s j)``; groups are ``C / G`` consecutive channels.
    Reflect padding falls back to replicate on maps smaller than the padding.

    Shape:
        - Input: :math:`(N, C, H, W)` and weights :math:`(N, G k^2, \\lceil H/s \\rceil, \\lceil W/s \\rceil)`
        - Output: :math:`(N, C, \\lceil H/s \\rceil, \\lceil W/s \\rceil)`

    Example:
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> w = torch.zeros(1, 9, 2, 2); w[:, 4] = 1.0  # the centre tap only: plain subsampling
        >>> adaptive_filter2d(x, w, stride=2)
        tensor([[[[ 0.,  2.],
                  [ 8., 10.]]]])
    """
    x = check_input(input, "adaptive filtering")
    check_int("stride", stride, 1, "stride 2 halves each side")
    n, c, h, w = x.shape
    out_hw = (-(-h // stride), -(-w // stride))
    k = _check_filt_size(filt_size)
    taps = weights.shape[1] if isinstance(weights, torch.Tensor) and weights.dim() == 4 else 0
    groups = taps // (k * k)
    if not taps or weights.shape[0] != n or tuple(weights.shape[2:]) != out_hw or groups * k * k != taps \
            or c % groups:
        got = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
        raise ConfigError(f"weights must have shape ({n}, G*{k * k}, {out_hw[0]}, {out_hw[1]}) with G dividing {c} "
                          f"(filt_size={k}), got {got}; predict them as AdaptiveBlurPool does")
    mode = effective_mode(pad_mode(pad_type), _pads(k), (h, w))
    weights = weights.to(x.dtype)
    if is_traced(x):  # exporters and compilers see plain ops
        return _filter_forward(pad(x, _pads(k), mode), weights, k, stride)
    return _AdaptiveFilter.apply(x, weights, k, stride, mode)


class _PadConv(torch.autograd.Function):
    """``conv2d(pad(x), weight, stride)`` that saves ``x`` instead of its padded copy (re-padded in backward)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, pads: tuple, mode: str, stride: int
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.pads, ctx.mode, ctx.stride = pads, mode, stride
        return F.conv2d(pad(x, pads, mode), weight, stride=stride)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        padded = pad(x, ctx.pads, ctx.mode)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_padded = torch.nn.grad.conv2d_input(padded.shape, weight, grad, stride=ctx.stride)
            grad_x = unpad(grad_padded, ctx.pads, ctx.mode, tuple(x.shape[2:]))
        if ctx.needs_input_grad[1]:
            grad_w = torch.nn.grad.conv2d_weight(padded, weight.shape, grad, stride=ctx.stride)
        return grad_x, grad_w, None, None, None


def _pad_conv(x: torch.Tensor, weight: torch.Tensor, pads: tuple, mode: str, stride: int) -> torch.Tensor:
    if is_traced(x) or not torch.is_grad_enabled() or torch.is_autocast_enabled(x.device.type):
        return F.conv2d(pad(x, pads, mode), weight, stride=stride)  # autocast: its own casts and saves
    return _PadConv.apply(x, weight.to(x.dtype), pads, mode, stride)


class AdaptiveBlurPool(nn.Module):
    """Adaptive content-aware blur pooling (DDAC, Zou et al., BMVC 2020); see the module docstring.

    Replaces a stride-``s`` subsampling, like :class:`~antialiased.layers.BlurPool` (whose
    ``filt`` is one fixed filter): here a small conv + BN predicts each position's filters.

    Args:
        channels: input channels.
        stride: subsampling factor (1: filter only).
        filt_size: the predicted filters' size ``k``: 3 (default), 5 or 7.
        groups: channel groups sharing a filter (8 by default); must divide ``channels``.
        pad_type: 'reflect' (default, the authors'), 'replicate', 'zero' or 'circular'.
        normalize: 'joint' (authors' softmax over all G k^2 logits) or 'group' (per group).

    Shape:
        - Input: :math:`(N, C, H, W)`
        - Output: :math:`(N, C, \\lceil H / s \\rceil, \\lceil W / s \\rceil)`

    Example:
        >>> pool = AdaptiveBlurPool(8, groups=2, normalize="group").eval()
        >>> y = pool(torch.ones(1, 8, 6, 6))  # every filter sums to 1: a constant stays constant
        >>> torch.allclose(y, torch.ones(1, 8, 3, 3))
        True
    """

    def __init__(
        self, channels: int, stride: int = 2, filt_size: int = 3, groups: int = 8, pad_type: str = "reflect",
        *, normalize: str = "joint",
    ) -> None:
        super().__init__()
        check_int("channels", channels, 1, "pass the number of channels of the layer's input")
        check_int("stride", stride, 1, "stride 2 halves each side")
        _check_filt_size(filt_size)
        _check_groups(groups, channels)
        if normalize not in NORMALIZATIONS:
            raise ConfigError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}; "
                              f"'joint' is the authors' softmax")
        self.channels, self.stride, self.filt_size, self.groups = channels, stride, filt_size, groups
        self.pad_type, self.normalize = pad_type, normalize
        self._mode = pad_mode(pad_type)
        taps = groups * filt_size * filt_size
        self.conv = nn.Conv2d(channels, taps, filt_size, bias=False)  # padded by the layer, not the conv
        self.bn = nn.BatchNorm2d(taps)
        # The filters' constant factor: 1 is the authors' function; init_from_baseline() sets G in
        # 'joint' mode, whose filters sum to 1 over all groups (about 1/G each) where the subsampling
        # replaced had gain 1. A checkpoint without it (the authors', earlier ones) loads as 1.
        self.register_buffer("gain", torch.ones(()))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' initialization: Kaiming-normal conv (fan-out, ReLU gain), BN weight 1 and bias 0.

        Also resets the BN running statistics. Call it after loading a checkpoint that lacks this
        layer's keys (a baseline's).
        """
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        self.bn.reset_parameters()
        self.gain.fill_(1.0)

    @torch.no_grad()
    def init_from_baseline(self) -> None:
        """Start as the subsampling it replaces in a trained baseline, blurred: what ``load_baseline`` calls.

        The authors' init (:meth:`reset_parameters`) trains from scratch: its random filters vary
        from position to position and, with the 'joint' softmax, each group's filter sums to about
        ``1/G``, so every layer after it (a BatchNorm's running statistics above all) would see
        inputs ``G`` times smaller than the baseline's. Here every group's filter starts as the
        ``k x k`` binomial filter (BlurPool's, with unit gain: ``gain = G`` in 'joint' mode), the
        same at every position (BN weight 0, BN bias the filter's log-taps); the conv keeps the
        authors' init and starts to matter as the BN weight trains away from 0.
        """
        self.reset_parameters()
        log_taps = binomial(self.filt_size, 2, torch.float64).log().flatten()
        self.bn.weight.zero_()
        self.bn.bias.copy_(log_taps.repeat(self.groups).to(self.bn.bias.dtype))
        self.gain.fill_(float(self.groups) if self.normalize == "joint" else 1.0)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        state_dict.setdefault(prefix + "gain", torch.ones(()))  # the authors' keys (no gain): their function
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _logits(self, x: torch.Tensor, mode: str) -> torch.Tensor:
        """BN(conv(pad(x))) at the kept positions, with the authors' full-resolution batch statistics."""
        bn, s, pads = self.bn, self.stride, _pads(self.filt_size)
        if not (bn.training or bn.running_mean is None):  # running statistics: predict at the kept positions only
            y = _pad_conv(x, self.conv.weight, pads, mode, s)
            return F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        y = _pad_conv(x, self.conv.weight, pads, mode, 1)
        if y.dtype in (torch.float16, torch.bfloat16):
            y = y.float()  # statistics over many positions: float32
        count = y.numel() // y.shape[1]
        if count < 2:
            raise ConfigError("adaptive blur pooling's BatchNorm needs more than one value per channel in training "
                              f"mode, got a {tuple(x.shape)} input; use a larger batch or input, or eval mode")
        var, mean = torch.var_mean(y, dim=(0, 2, 3), unbiased=False)
        if bn.training and bn.track_running_stats:
            self._update_running_stats(mean, var, count)
        scale = torch.rsqrt(var + bn.eps)
        shift = -mean * scale
        if bn.affine:
            scale, shift = scale * bn.weight, shift * bn.weight + bn.bias
        return y[:, :, ::s, ::s] * scale[:, None, None] + shift[:, None, None]

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
        """nn.BatchNorm2d's update: momentum (or the cumulative average when None), unbiased variance."""
        bn = self.bn
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        bn.running_mean.mul_(1 - factor).add_(mean.to(bn.running_mean.dtype), alpha=factor)
        unbiased = var * (count / (count - 1))
        bn.running_var.mul_(1 - factor).add_(unbiased.to(bn.running_var.dtype), alpha=factor)

    def filters(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted filters at the kept positions (times ``gain``), (N, G k^2, ceil(H/s), ceil(W/s)).

        Updates the BN running statistics in training mode.
        """
        x = check_input(x, "adaptive blur pooling", self.channels)
        mode = effective_mode(self._mode, _pads(self.filt_size), tuple(x.shape[2:]))
        logits = self._logits(x, mode)
        if self.normalize == "joint":
            weights = logits.softmax(dim=1)
        else:
            weights = logits.unflatten(1, (self.groups, self.filt_size ** 2)).softmax(dim=2).flatten(1, 2)
        return weights * self.gain.to(logits.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return adaptive_filter2d(x, self.filters(x), self.stride, self.filt_size, self.pad_type)

    def extra_repr(self) -> str:
        text = (f"{self.channels}, stride={self.stride}, filt_size={self.filt_size}, groups={self.groups}, "
                f"pad_type={self.pad_type!r}")
        return text + (f", normalize={self.normalize!r}" if self.normalize != "joint" else "")
