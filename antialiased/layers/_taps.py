"""The 1-D filters a blur filter factors into, derived from the layer's ``filt`` once per version.

The separable kernel filters one dimension at a time, so it needs ``filt`` (shape ``(C, 1, f, ...)``)
as one 1-D filter per spatial dimension: the same for every channel, and an outer product
(rank 1). :func:`separable_taps` checks both and returns those 1-D filters as Python floats, or
None when ``filt`` does not factor (then the layer falls back to pad + conv). The result is cached
per tensor and per in-place version of it, so a loaded or edited filter is picked up and an
unchanged one costs a dictionary look-up (filters created under ``torch.inference_mode`` have no
version counter: those are compared with a copy instead, one small ``torch.equal``).

Example:
    >>> filt = torch.outer(torch.tensor([1.0, 2.0, 1.0]), torch.tensor([1.0, 1.0])) / 8
    >>> separable_taps(filt.expand(3, 1, 3, 2))
    ((0.25, 0.5, 0.25), (0.5, 0.5))
    >>> separable_taps(torch.eye(3).expand(2, 1, 3, 3)) is None  # rank 3: not separable
    True
"""
from __future__ import annotations

import math
import weakref

import torch

__all__ = ["binomial", "binomial_row", "separable_taps", "taps_for"]

Taps = tuple[tuple[float, ...], ...]

# id(filt) -> (weak reference to filt, key, taps); an entry goes away with its tensor. A plain
# dict keyed on id() costs a fraction of a microsecond per call (a WeakTensorKeyDictionary ~7 us).
_CACHE: dict[int, tuple[weakref.ref, object, Taps | None]] = {}


def separable_taps(filt: torch.Tensor) -> Taps | None:
    """One 1-D filter per spatial dimension whose outer product is every channel's filter, or None."""
    entry = _CACHE.get(id(filt))
    if entry is not None and entry[0]() is not filt:
        entry = None  # a dead tensor's id reused before its entry was dropped
    if filt.is_inference():
        # Made under torch.inference_mode: no version counter, so compare with a copy (one small op).
        if entry is not None and torch.equal(entry[1], filt):
            return entry[2]
        key: object = filt.clone()
    else:
        key = (filt.data_ptr(), filt._version)
        if entry is not None and entry[1] == key:
            return entry[2]
    taps = _factor(filt.detach())
    ident = id(filt)
    ref = weakref.ref(filt, lambda dead: _CACHE.pop(ident) if _CACHE.get(ident, (None,))[0] is dead else None)
    _CACHE[ident] = (ref, key, taps)
    return taps


def binomial_row(size: int) -> tuple[float, ...]:
    """The normalized 1-D binomial filter of ``size`` taps: ``C(size - 1, k) / 2 ** (size - 1)``."""
    return tuple(math.comb(size - 1, k) / 2 ** (size - 1) for k in range(size))


def binomial(size: int, ndim: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The normalized binomial filter of ``size`` taps in ``ndim`` dimensions: outer products of the row."""
    row = torch.tensor(binomial_row(size), dtype=torch.float64)
    filt = row
    for _ in range(ndim - 1):
        filt = filt[..., None] * row
    return filt.to(dtype)


def taps_for(filt: torch.Tensor | None, size: int, ndim: int) -> Taps | None:
    """The 1-D filters of ``filt``, or of the binomial filter of ``size`` taps when ``filt`` is None."""
    return (binomial_row(size),) * ndim if filt is None else separable_taps(filt)


def _factor(filt: torch.Tensor) -> Taps | None:
    first = filt[:1]
    if not torch.equal(filt, first.expand_as(filt)):
        return None  # a filter per channel: the kernel applies one filter to all channels
    kernel = first[0, 0].to(device="cpu", dtype=torch.float64)
    ndim = kernel.dim()
    total = kernel.sum().item()
    if not math.isfinite(total) or total == 0.0:
        return None  # marginals cannot recover a filter that sums to zero: pad + conv applies it
    # For a rank-1 filter a = v1 (x) ... (x) vn, the sum over all dimensions but d is v_d * (total / sum v_d):
    # the marginals, divided by the total in all dimensions but the first, multiply back to a.
    marginals = [kernel.sum(dim=[e for e in range(ndim) if e != d]) if ndim > 1 else kernel for d in range(ndim)]
    factors = [marginals[0]] + [m / total for m in marginals[1:]]
    rebuilt = factors[0]
    for v in factors[1:]:
        rebuilt = rebuilt[..., None] * v
    tol = 4 * torch.finfo(filt.dtype).eps * kernel.abs().max().item()
    if not torch.allclose(rebuilt, kernel, rtol=0.0, atol=tol):
        return None
    return tuple(tuple(v.tolist()) for v in factors)
