"""Anti-aliased downsampling: low-pass (binomial) filtering fused with subsampling.

``BlurPool`` replaces a strided operation: ``MaxPool(k, s)`` becomes ``MaxPool(k, 1)`` followed
by ``BlurPool(stride=s)``, and a strided conv becomes conv(stride 1) + ReLU + ``BlurPool``.
"""
from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

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


def _effective_mode(mode: str, pads: list[int], spatial: tuple[int, ...]) -> str:
    # Reflect padding needs pad < size; small feature maps (CIFAR-sized inputs with large filters)
    # fall back to replicate padding instead of failing deep inside torch.
    if mode == "reflect" and any(
        max(pads[2 * i], pads[2 * i + 1]) >= spatial[-1 - i] for i in range(len(spatial))
    ):
        return "replicate"
    return mode


def _pad(x: torch.Tensor, pads: list[int], mode: str) -> torch.Tensor:
    if not any(pads):
        return x
    if mode == "constant":
        return F.pad(x, pads, mode="constant", value=0.0)
    return F.pad(x, pads, mode=mode)


def _conv_forward(x: torch.Tensor, filt: torch.Tensor, stride: int, pads: list[int], mode: str) -> torch.Tensor:
    # cuDNN's depthwise convolution is fast and the padded copy here is freed right away.
    conv = (F.conv1d, F.conv2d, F.conv3d)[x.dim() - 3]
    return conv(_pad(x, pads, mode), filt.to(dtype=x.dtype), stride=stride, groups=x.shape[1])


# ---------------------------------------------------------------------------------------------
# Implementation. The blur is separable (the 2-D/3-D binomial filter is the outer product of 1-D
# ones), so it runs as one 1-D "pad, filter, subsample" pass per spatial dimension, and no padded
# copy of the input is ever made:
# - along the innermost, contiguous dimension a pass is one matmul with a small banded (m, n)
#   matrix that already contains the stride and the padding (reflect/replicate/zero/circular);
# - along the other dimensions each tap is a strided view of the input added into the output;
#   the few (output, tap) pairs whose window reaches into the padding add their source row apart.
# CPU inputs are processed in cache-sized chunks so the first pass's output stays in cache.
#
# Autograd saves nothing input-sized: the blur is linear with a fixed filter, so its backward is the
# adjoint of each pass (the transposed matrix, or scatter-adds with the same taps), in reverse order.
# ---------------------------------------------------------------------------------------------

# Elements per chunk on CPU: a chunk plus the first pass's output stay in a typical L2/L3 cache.
_CHUNK_ELEMENTS = 1 << 20
# Between these lengths the innermost dimension is filtered with one banded matmul (n/f times the
# arithmetic of the direct sum, but vectorized, without strided loads); measured on a 2-core EPYC,
# strided views win on shorter rows (call overhead) and on longer ones (wasted arithmetic).
_MATMUL_MIN_LENGTH = 20
_MATMUL_MAX_LENGTH = 64
_MATMUL_MIN_ELEMENTS = 1 << 16  # small tensors: BLAS threading overhead exceeds the gain


def _source_index(j: int, n: int, mode: str) -> int | None:
    """Where padded position ``j`` (in input coordinates, may be < 0 or >= n) reads from."""
    if 0 <= j < n:
        return j
    if mode == "constant":
        return None
    if mode == "replicate":
        return min(max(j, 0), n - 1)
    if mode == "circular":
        return j % n
    return -j if j < 0 else 2 * (n - 1) - j  # reflect (pad < n is guaranteed by _effective_mode)


class _Pass(NamedTuple):
    """A 1-D pass along one dimension of size ``n`` producing ``m`` outputs."""

    n: int
    m: int
    stride: int
    before: int
    taps: tuple[float, ...]
    ranges: tuple[tuple[int, int], ...]  # per tap: (first output, count) reading inside the input
    extras: tuple[tuple[int, int, float], ...]  # (output, source, weight) reading the padding
    matrix: tuple[tuple[float, ...], ...]  # the whole pass as an (m, n) matrix (mid-length dims only)
    # Forward shortcut: up to two taps that cover every output initialize it in one op; weights are
    # taken relative to the first one's (``ref``), whose factor is applied once at the end.
    init: tuple[int, ...]
    ref: float


@functools.lru_cache(maxsize=1024)
def _plan(n: int, taps: tuple[float, ...], stride: int, before: int, after: int, mode: str) -> _Pass:
    f = len(taps)
    m = (n + before + after - f) // stride + 1
    ranges, extras = [], []
    matrix = [[0.0] * n for _ in range(m)] if _MATMUL_MIN_LENGTH <= n <= _MATMUL_MAX_LENGTH else []
    for k, w in enumerate(taps):
        inside = [i for i in range(m) if 0 <= stride * i + k - before < n]
        ranges.append((inside[0], len(inside)) if inside else (0, 0))
        for i in range(m):
            src = _source_index(stride * i + k - before, n, mode)
            if src is not None and matrix:
                matrix[i][src] += w
            if src is not None and not 0 <= stride * i + k - before < n:
                extras.append((i, src, w))
    full = sorted((k for k, (_, count) in enumerate(ranges) if count == m), key=lambda k: -taps[k])[:2]
    ref = taps[full[0]] if full else 1.0
    return _Pass(n, m, stride, before, taps, tuple(ranges), tuple(extras), tuple(map(tuple, matrix)), tuple(full), ref)


def _along(dim: int, index: slice) -> tuple:
    return (slice(None),) * dim + (index,)


def _tap_view(t: torch.Tensor, dim: int, p: _Pass, k: int) -> torch.Tensor:
    """The input positions tap ``k`` reads for its in-range outputs (a strided view)."""
    first, count = p.ranges[k]
    start = p.stride * first + k - p.before
    return t[_along(dim, slice(start, start + p.stride * (count - 1) + 1, p.stride))]


def _use_matmul(t: torch.Tensor, dim: int, p: _Pass) -> bool:
    return bool(p.matrix) and dim == t.dim() - 1 and t.stride(-1) == 1 and t.numel() >= _MATMUL_MIN_ELEMENTS


def _matrix(p: _Pass, t: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    matrix = torch.tensor(p.matrix, dtype=torch.float64)
    return (matrix * scale if scale != 1.0 else matrix).to(device=t.device, dtype=t.dtype)


def _like(t: torch.Tensor, shape: list[int], zero: bool = False) -> torch.Tensor:
    # Keep channels_last inputs channels_last (empty_like cannot change the shape).
    fmt = torch.contiguous_format
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        fmt = torch.channels_last
    elif t.dim() == 5 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last_3d):
        fmt = torch.channels_last_3d
    out = torch.empty(shape, dtype=t.dtype, device=t.device, memory_format=fmt)
    return out.zero_() if zero else out


def _pass_forward(
    t: torch.Tensor, dim: int, p: _Pass, out: torch.Tensor | None = None, pending: float = 1.0
) -> tuple[torch.Tensor, float]:
    """One forward pass; returns the output and the factor still to multiply it by."""
    if _use_matmul(t, dim, p):  # the matrix absorbs the factor left by earlier passes
        matrix = _matrix(p, t, pending).t()
        return (torch.matmul(t, matrix) if out is None else torch.matmul(t, matrix, out=out)), 1.0
    if out is None:
        shape = list(t.shape)
        shape[dim] = p.m
        out = _like(t, shape)
    rel = [w / p.ref for w in p.taps]
    if len(p.init) == 2:
        a, b = p.init
        torch.add(_tap_view(t, dim, p, a), _tap_view(t, dim, p, b), alpha=rel[b], out=out)
    elif p.init:
        torch.mul(_tap_view(t, dim, p, p.init[0]), 1.0, out=out)  # copy_ from strided views is slower
    else:
        out.zero_()
    for k, w in enumerate(rel):
        first, count = p.ranges[k]
        if k not in p.init and count:
            out.narrow(dim, first, count).add_(_tap_view(t, dim, p, k), alpha=w)
    for i, src, w in p.extras:
        out.select(dim, i).add_(t.select(dim, src), alpha=w / p.ref)
    if t.dtype == torch.float16:  # keep within half's range: no deferred factors
        return (out.mul_(p.ref * pending) if p.ref * pending != 1.0 else out), 1.0
    return out, pending * p.ref


def _pass_backward(g: torch.Tensor, dim: int, p: _Pass) -> torch.Tensor:
    if _use_matmul(g, dim, p):
        return torch.matmul(g, _matrix(p, g))
    shape = list(g.shape)
    shape[dim] = p.n
    grad = _like(g, shape, zero=True)
    for k, w in enumerate(p.taps):
        first, count = p.ranges[k]
        if count:
            _tap_view(grad, dim, p, k).add_(g.narrow(dim, first, count), alpha=w)
    for i, src, w in p.extras:
        grad.select(dim, src).add_(g.select(dim, i), alpha=w)
    return grad


def _forward_passes(x: torch.Tensor, plans: list[_Pass], first_dim: int, out: torch.Tensor | None = None) -> torch.Tensor:
    pending = 1.0
    for i, p in enumerate(plans):
        x, pending = _pass_forward(x, first_dim + i, p, out if i == len(plans) - 1 else None, pending)
    return x.mul_(pending) if pending != 1.0 else x


def _separable_forward(x: torch.Tensor, plans: list[_Pass]) -> torch.Tensor:
    if x.is_cuda or x.numel() <= _CHUNK_ELEMENTS:
        return _forward_passes(x, plans, 2)
    out = _like(x, list(x.shape[:2]) + [p.m for p in plans])
    if x.is_contiguous():
        # Batch and channels flatten into one dimension for free; chunk that.
        flat_in = x.view(-1, *x.shape[2:])
        flat_out = out.view(-1, *out.shape[2:])
        per = max(1, _CHUNK_ELEMENTS // math.prod(x.shape[2:]))
        for start in range(0, flat_in.shape[0], per):
            _forward_passes(flat_in[start:start + per], plans, 1, flat_out[start:start + per])
    else:
        per = max(1, _CHUNK_ELEMENTS // math.prod(x.shape[1:]))
        for start in range(0, x.shape[0], per):
            _forward_passes(x[start:start + per], plans, 2, out[start:start + per])
    return out


class _BlurPoolFunction(torch.autograd.Function):
    """Blur + subsample that saves no tensors for backward (the filter is fixed)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, plans: list[_Pass], conv_args: tuple | None) -> torch.Tensor:  # type: ignore[override]
        ctx.plans = plans
        if conv_args is not None:
            filt, pads, mode = conv_args
            return _conv_forward(x, filt, plans[0].stride, pads, mode)
        return _separable_forward(x, plans)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        for i in reversed(range(len(ctx.plans))):
            grad = _pass_backward(grad, 2 + i, ctx.plans[i])
        return grad, None, None


def _blur_pool(
    x: torch.Tensor, filt: torch.Tensor, stride: int, pads: list[int], mode: str, ndim: int
) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != ndim + 2:
        _bad_input(x, ndim)
    channels = x.shape[1]
    if filt.shape[0] != channels:
        raise ValueError(f"the layer was built for {filt.shape[0]} channels, got an input with {channels}")
    if 0 in x.shape[2:]:
        raise ValueError(f"cannot blur-pool an input with an empty spatial dimension, got shape {tuple(x.shape)}")
    filt_size = filt.shape[-1]
    mode = _effective_mode(mode, pads, tuple(x.shape[2:]))
    if filt_size == 1:  # plain subsampling: a strided view, nothing to save for backward
        return _pad(x, pads, mode)[(slice(None), slice(None)) + (slice(None, None, stride),) * ndim]
    if not x.is_floating_point():
        raise ValueError(f"blur pooling needs a floating-point input, got {x.dtype}; convert it with .float()")
    plans = _plans(x, filt_size, stride, pads, mode)
    # On GPUs (and when torch.compile traces the graph) one fused pad+depthwise conv beats the
    # separable passes; it still runs inside the Function, so nothing is saved for backward.
    conv_args = (filt, pads, mode) if x.is_cuda or torch.compiler.is_compiling() else None
    if not (torch.is_grad_enabled() and x.requires_grad):
        return _separable_forward(x, plans) if conv_args is None else _conv_forward(x, filt, stride, pads, mode)
    return _BlurPoolFunction.apply(x, plans, conv_args)


def _plans(x: torch.Tensor, filt_size: int, stride: int, pads: list[int], mode: str) -> list[_Pass]:
    taps = _binomial_taps(filt_size)
    spatial = x.shape[2:]
    # torch.compile traces plain Python but warns about caches: plan uncached while tracing.
    plan = _plan.__wrapped__ if torch.compiler.is_compiling() else _plan
    # F.pad's list runs from the last dimension backwards.
    return [
        plan(n, taps, stride, pads[2 * (len(spatial) - 1 - i)], pads[2 * (len(spatial) - 1 - i) + 1], mode)
        for i, n in enumerate(spatial)
    ]


def _binomial_taps(filt_size: int) -> tuple[float, ...]:
    # Pure Python (traceable): exact dyadic fractions, identical to binomial_filter's values.
    return tuple(math.comb(filt_size - 1, k) / 2 ** (filt_size - 1) for k in range(filt_size))


def _check_stride_and_offset(stride: int, pad_off: int) -> None:
    if not isinstance(stride, int) or isinstance(stride, bool) or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
    if not isinstance(pad_off, int) or isinstance(pad_off, bool) or pad_off < 0:
        raise ValueError(f"pad_off must be an integer >= 0, got {pad_off!r}")


def _bad_input(x: object, ndim: int) -> None:
    got = f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
    raise ValueError(f"expected a {ndim + 2}-D input tensor (batch, channels, {ndim} spatial dims), got {got}")


@functools.lru_cache(maxsize=64)
def _cached_filter(filt_size: int, ndim: int, channels: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # Only its shape is read on CPU; GPUs convolve with it. Cached so no host-to-device copy per call.
    filt = binomial_filter(filt_size, ndim)
    return filt.expand(channels, 1, *filt.shape).contiguous().to(device=device, dtype=dtype)


def _functional(ndim: int):
    def blur_pool(
        input: torch.Tensor, filt_size: int = 4, stride: int = 2, pad_type: str = "reflect", pad_off: int = 0
    ) -> torch.Tensor:
        _check_filter_size(filt_size)
        _check_stride_and_offset(stride, pad_off)
        if not isinstance(input, torch.Tensor) or input.dim() != ndim + 2:
            _bad_input(input, ndim)
        filt = _cached_filter(filt_size, ndim, input.shape[1], input.dtype, input.device)
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
        _check_stride_and_offset(stride, pad_off)
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

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):  # type: ignore[no-untyped-def]
        # The CPU path filters with the binomial taps directly, so a different stored filter
        # would be silently ignored: refuse it instead.
        filt = state_dict.get(prefix + "filt")
        if isinstance(filt, torch.Tensor) and filt.shape == self.filt.shape and not torch.allclose(
            filt.detach().to("cpu", torch.float32), binomial_filter(self.filt_size, self.ndim).expand_as(filt),
            rtol=1e-3, atol=1e-6,
        ):
            raise ValueError(
                f"{prefix}filt in the state dict is not the {self.filt_size}-tap binomial filter this "
                f"layer applies; BlurPool filters are fixed (check filt_size of the model you load into)"
            )
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)

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
