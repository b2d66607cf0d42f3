"""The CPU kernel: a separable blur as one 1-D "pad, filter, subsample" pass per spatial dimension.

A rank-1 filter (the binomial ones, or any outer product of 1-D filters, see ``_taps``) is applied
one dimension at a time, and no padded copy of the input is ever made:

- along the innermost, contiguous dimension a pass of mid length is one matmul with a small banded
  ``(m, n)`` matrix that already holds the stride and the padding;
- along the other dimensions each tap is a strided view of the input added into the output; the
  few (output, tap) pairs whose window reaches into the padding add their source row apart.

Large CPU inputs go through in cache-sized chunks so the first pass's output stays in cache.
The backward (the input's gradient) needs nothing input-sized: the blur is linear with a fixed
filter, so it is the adjoint of each pass (the transposed matrix, or scatter-adds with the same
taps), in reverse order. Filters that do not factor go to the pad + conv kernel (``_conv``).

Worked example: a row of ``n = 5`` values, taps ``(1/4, 1/2, 1/4)``, stride 2, reflect padding of
one before and one after gives ``m = (5 + 1 + 1 - 3) // 2 + 1 = 3`` outputs; output ``i`` reads
padded positions ``2i - 1, 2i, 2i + 1``, i.e. ``(-1, 0, 1)``, ``(1, 2, 3)`` and ``(3, 4, 5)``.
Tap 0 reads inside the row for outputs 1-2 (``ranges[0] = (1, 2)``), tap 1 for all three, tap 2
for outputs 0-1; the two reads of the padding (position -1 reflects to 1, position 5 to 3) are the
``extras`` ``(output, source, weight)``. Tap 1 covers every output, so it initializes the output
(``init``) and the others are added relative to its weight (``ref``):

    >>> p = plan(5, (0.25, 0.5, 0.25), stride=2, before=1, after=1, mode="reflect")
    >>> p.m, p.ranges, p.extras, p.init, p.ref
    (3, ((1, 2), (0, 3), (0, 2)), ((0, 1, 0.25), (2, 3, 0.25)), (1,), 0.5)
    >>> dense_matrix(p, torch.float64, torch.device("cpu"))  # the same pass as one matmul
    tensor([[0.5000, 0.5000, 0.0000, 0.0000, 0.0000],
            [0.0000, 0.2500, 0.5000, 0.2500, 0.0000],
            [0.0000, 0.0000, 0.0000, 0.5000, 0.5000]], dtype=torch.float64)
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from . import _conv
from ._padding import source_index
from ._taps import taps_for

__all__ = ["Pass", "plan", "plans_for", "dense_matrix", "separable_forward", "separable_backward", "forward",
           "backward"]

# Elements per chunk on CPU: a chunk plus the first pass's output stay in a typical L2/L3 cache.
_CHUNK_ELEMENTS = 1 << 20
# Between these lengths the innermost dimension is filtered with one banded matmul (n/f times the
# arithmetic of the direct sum, but vectorized, without strided loads); measured on a 2-core EPYC,
# strided views win on shorter rows (call overhead) and on longer ones (wasted arithmetic).
_MATMUL_MIN_LENGTH = 20
_MATMUL_MAX_LENGTH = 64
_MATMUL_MIN_ELEMENTS = 1 << 16  # small tensors: BLAS threading overhead exceeds the gain


@dataclass(frozen=True, eq=False)
class Pass:
    """A 1-D pass along one dimension of size ``n`` producing ``m`` outputs."""

    n: int
    m: int
    stride: int
    before: int
    taps: tuple[float, ...]
    ranges: tuple[tuple[int, int], ...]  # per tap: (first output, count) reading inside the input
    extras: tuple[tuple[int, int, float], ...]  # (output, source, weight) reading the padding
    # Forward shortcut: up to two taps that cover every output initialize it in one op; weights are
    # taken relative to the first one's (``ref``), whose factor is applied once at the end.
    init: tuple[int, ...]
    ref: float
    rel: tuple[float, ...]  # taps / ref
    matrices: dict = field(default_factory=dict, repr=False)  # (dtype, device, scale) -> (m, n) tensor


@functools.lru_cache(maxsize=1024)
def plan(n: int, taps: tuple[float, ...], stride: int, before: int, after: int, mode: str) -> Pass:
    """The pass for a dimension of size ``n`` (cached: plans are built once per configuration)."""
    m = (n + before + after - len(taps)) // stride + 1
    ranges, extras = [], []
    for k, w in enumerate(taps):
        inside = [i for i in range(m) if 0 <= stride * i + k - before < n]
        ranges.append((inside[0], len(inside)) if inside and w else (0, 0))
        for i in range(m):
            j = stride * i + k - before
            src = source_index(j, n, mode)
            if w and src is not None and not 0 <= j < n:
                extras.append((i, src, w))
    full = sorted((k for k, (_, count) in enumerate(ranges) if count == m), key=lambda k: -abs(taps[k]))[:2]
    ref = taps[full[0]] if full else 1.0
    return Pass(n, m, stride, before, taps, tuple(ranges), tuple(extras), tuple(full), ref,
                tuple(w / ref for w in taps))


@functools.lru_cache(maxsize=1024)
def plans_for(
    spatial: tuple[int, ...], taps: tuple[tuple[float, ...], ...], stride: int, pads: tuple[int, ...], mode: str
) -> tuple[Pass, ...]:
    """One pass per spatial dimension (``pads`` in F.pad's order, last dimension first); cached."""
    last = len(spatial) - 1
    return tuple(
        plan(n, taps[i], stride, pads[2 * (last - i)], pads[2 * (last - i) + 1], mode) for i, n in enumerate(spatial)
    )


def dense_matrix(p: Pass, dtype: torch.dtype, device: torch.device, scale: float = 1.0) -> torch.Tensor:
    """The pass as an ``(m, n)`` matrix times ``scale``; built once per dtype, device and scale."""
    key = (dtype, device, scale)
    matrix = p.matrices.get(key)
    if matrix is None:
        base = p.matrices.get("float64")
        if base is None:
            base = torch.zeros(p.m, p.n, dtype=torch.float64)
            for k, (first, count) in enumerate(p.ranges):
                if count:
                    rows = torch.arange(first, first + count)
                    base[rows, p.stride * rows + k - p.before] += p.taps[k]
            for i, src, w in p.extras:
                base[i, src] += w
            p.matrices["float64"] = base
        matrix = (base * scale if scale != 1.0 else base).to(device=device, dtype=dtype)
        p.matrices[key] = matrix
    return matrix


def _along(dim: int, index: slice) -> tuple:
    return (slice(None),) * dim + (index,)


def _tap_view(t: torch.Tensor, dim: int, p: Pass, k: int) -> torch.Tensor:
    """The input positions tap ``k`` reads for its in-range outputs (a strided view)."""
    first, count = p.ranges[k]
    start = p.stride * first + k - p.before
    return t[_along(dim, slice(start, start + p.stride * (count - 1) + 1, p.stride))]


def _use_matmul(t: torch.Tensor, dim: int, p: Pass) -> bool:
    return (
        _MATMUL_MIN_LENGTH <= p.n <= _MATMUL_MAX_LENGTH
        and dim == t.dim() - 1
        and t.stride(-1) == 1
        and t.numel() >= _MATMUL_MIN_ELEMENTS
    )


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
    t: torch.Tensor, dim: int, p: Pass, out: torch.Tensor | None = None, pending: float = 1.0
) -> tuple[torch.Tensor, float]:
    """One forward pass; returns the output and the factor still to multiply it by."""
    if _use_matmul(t, dim, p):  # the matrix absorbs the factor left by earlier passes
        matrix = dense_matrix(p, t.dtype, t.device, pending).t()
        return (torch.matmul(t, matrix) if out is None else torch.matmul(t, matrix, out=out)), 1.0
    if out is None:
        shape = list(t.shape)
        shape[dim] = p.m
        out = _like(t, shape)
    if len(p.init) == 2:
        a, b = p.init
        torch.add(_tap_view(t, dim, p, a), _tap_view(t, dim, p, b), alpha=p.rel[b], out=out)
    elif p.init:
        torch.mul(_tap_view(t, dim, p, p.init[0]), 1.0, out=out)  # copy_ from strided views is slower
    else:
        out.zero_()
    for k, w in enumerate(p.rel):
        first, count = p.ranges[k]
        if k not in p.init and count:
            out.narrow(dim, first, count).add_(_tap_view(t, dim, p, k), alpha=w)
    for i, src, w in p.extras:
        out.select(dim, i).add_(t.select(dim, src), alpha=w / p.ref)
    if t.dtype == torch.float16:  # keep within half's range: no deferred factors
        return (out.mul_(p.ref * pending) if p.ref * pending != 1.0 else out), 1.0
    return out, pending * p.ref


def _pass_backward(g: torch.Tensor, dim: int, p: Pass) -> torch.Tensor:
    if _use_matmul(g, dim, p):
        return torch.matmul(g, dense_matrix(p, g.dtype, g.device))
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


def _forward_passes(x: torch.Tensor, plans: tuple[Pass, ...], first_dim: int, out: torch.Tensor | None = None) -> torch.Tensor:
    pending = 1.0
    for i, p in enumerate(plans):
        x, pending = _pass_forward(x, first_dim + i, p, out if i == len(plans) - 1 else None, pending)
    return x.mul_(pending) if pending != 1.0 else x


def separable_forward(x: torch.Tensor, plans: tuple[Pass, ...]) -> torch.Tensor:
    """Blur and subsample ``x`` (N, C, *spatial) with one pass per spatial dimension."""
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


def separable_backward(grad: torch.Tensor, plans: tuple[Pass, ...]) -> torch.Tensor:
    """The adjoint of :func:`separable_forward`: each pass's adjoint, in reverse order."""
    for i in reversed(range(len(plans))):
        grad = _pass_backward(grad, 2 + i, plans[i])
    return grad


def forward(x: torch.Tensor, filt: torch.Tensor | None, size: int, stride: int, pads: Sequence[int],
            mode: str) -> torch.Tensor:
    """The operator's CPU forward: the separable passes, or pad + conv for a filter that does not factor."""
    taps = taps_for(filt, size, x.dim() - 2)
    if taps is None:
        return _conv.forward(x, filt, size, stride, pads, mode)
    out = separable_forward(x, plans_for(tuple(x.shape[2:]), taps, stride, tuple(pads), mode))
    return out.contiguous(memory_format=_conv.memory_format(x))


def backward(grad: torch.Tensor, filt: torch.Tensor | None, size: int, stride: int, pads: Sequence[int],
             mode: str, spatial: Sequence[int]) -> torch.Tensor:
    """The adjoint of :func:`forward` (the input's gradient), on the same kernel as the forward."""
    taps = taps_for(filt, size, grad.dim() - 2)
    if taps is None:
        return _conv.backward(grad, filt, size, stride, pads, mode, spatial)
    out = separable_backward(grad, plans_for(tuple(spatial), taps, stride, tuple(pads), mode))
    return out.contiguous(memory_format=_conv.memory_format(grad))
