"""The 1-D filters a blur filter factors into, derived from the layer's ``filt`` once per version.

The separable kernel filters one dimension at a time, so it needs ``filt`` (shape ``(C, 1, f, ...)``)
as one 1-D filter per spatial dimension: the same for every channel, and an outer product
(rank 1). :func:`separable_taps` checks both and returns those 1-D filters as Python floats, or
None when ``filt`` does not factor (then the layer falls back to pad + conv). The result is cached
per tensor and per in-place version of it, so a loaded or edited filter is picked up and an
unchanged one costs a dictionary look-up.

Example:
    >>> filt = torch.outer(torch.tensor([1.0, 2.0, 1.0]), torch.tensor([1.0, 1.0])) / 8
    >>> separable_taps(filt.expand(3, 1, 3, 2))
    ((0.25, 0.5, 0.25), (0.5, 0.5))
    >>> separable_taps(torch.eye(3).expand(2, 1, 3, 3)) is None  # rank 3: not separable
    True
"""
from __future__ import annotations

import math

import torch
from torch.utils.weak import WeakTensorKeyDictionary

__all__ = ["separable_taps", "is_identity"]

Taps = tuple[tuple[float, ...], ...]

# filt -> ((data_ptr, version), taps); entries go away with their tensor.
_CACHE = WeakTensorKeyDictionary()


def separable_taps(filt: torch.Tensor) -> Taps | None:
    """One 1-D filter per spatial dimension whose outer product is every channel's filter, or None."""
    key = (filt.data_ptr(), filt._version)
    entry = _CACHE.get(filt)
    if entry is not None and entry[0] == key:
        return entry[1]
    taps = _factor(filt.detach())
    _CACHE[filt] = (key, taps)
    return taps


def is_identity(filt: torch.Tensor) -> bool:
    """True for a filter of one tap equal to 1 in every dimension (plain subsampling)."""
    return all(s == 1 for s in filt.shape[2:]) and separable_taps(filt) == ((1.0,),) * (filt.dim() - 2)


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
