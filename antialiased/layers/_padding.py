"""Padding of the blur layers: the modes, the amounts, and the padding's adjoint (its backward).

Every mode pads each spatial dimension independently, so padding an N-D tensor is one 1-D padding
per dimension, and its adjoint is one 1-D "fold the border back" per dimension. Padded position
``j`` of a dimension of size ``n`` (``j < 0`` before it, ``j >= n`` after it) reads
:func:`source_index` ``(j, n, mode)``.

Example:
    >>> [source_index(j, 4, "reflect") for j in range(-2, 6)]
    [2, 1, 0, 1, 2, 3, 2, 1]
    >>> [source_index(j, 4, "circular") for j in range(-2, 6)]
    [2, 3, 0, 1, 2, 3, 0, 1]
    >>> g = torch.ones(1, 1, 7)  # the gradient of F.pad(x, [1, 2], "reflect") with x of length 4
    >>> unpad(g, [1, 2], "reflect", (4,))
    tensor([[[1., 3., 2., 1.]]])
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError

__all__ = ["PAD_TYPES", "pad_mode", "pad_amounts", "effective_mode", "source_index", "pad", "unpad"]

# Aliases kept for compatibility with the published code ('refl', 'repl'); values are F.pad's modes.
PAD_TYPES = {
    "reflect": "reflect",
    "refl": "reflect",
    "replicate": "replicate",
    "repl": "replicate",
    "zero": "constant",
    "circular": "circular",
}


def pad_mode(pad_type: str) -> str:
    """F.pad's mode for a layer's ``pad_type``."""
    try:
        return PAD_TYPES[pad_type]
    except (KeyError, TypeError):
        raise ConfigError(
            f"pad_type must be one of {sorted(PAD_TYPES)}, got {pad_type!r}; pick one of these"
        ) from None


def pad_amounts(filt_size: int, pad_off: int, ndim: int) -> tuple[int, ...]:
    """F.pad's amounts (last dimension first) for a filter of ``filt_size`` taps.

    Asymmetric for even filters, as the published layer: ``(f-1)//2`` before, ``f//2`` after.
    """
    return ((filt_size - 1) // 2 + pad_off, filt_size // 2 + pad_off) * ndim


def effective_mode(mode: str, pads: tuple[int, ...], spatial: tuple[int, ...]) -> str:
    """Reflect padding needs a pad smaller than the size: smaller maps (CIFAR-sized inputs with large
    filters) fall back to replicate padding instead of failing deep inside torch."""
    if mode == "reflect" and any(
        max(pads[2 * i], pads[2 * i + 1]) >= spatial[-1 - i] for i in range(len(spatial))
    ):
        return "replicate"
    return mode


def source_index(j: int, n: int, mode: str) -> int | None:
    """The input position that padded position ``j`` reads (None: a zero of constant padding)."""
    if 0 <= j < n:
        return j
    if mode == "constant":
        return None
    if mode == "replicate":
        return min(max(j, 0), n - 1)
    if mode == "circular":
        return j % n
    return -j if j < 0 else 2 * (n - 1) - j  # reflect (pad < n is guaranteed by effective_mode)


def pad(x: torch.Tensor, pads: tuple[int, ...], mode: str) -> torch.Tensor:
    """``F.pad``, plus circular padding that wraps around a dimension more than once (tiny maps)."""
    if not any(pads):
        return x
    if mode == "constant":
        return F.pad(x, pads, mode="constant", value=0.0)
    spatial = x.shape[2:]
    if mode != "circular" or all(max(pads[2 * i], pads[2 * i + 1]) <= spatial[-1 - i] for i in range(len(spatial))):
        return F.pad(x, pads, mode=mode)
    for i, n in enumerate(spatial):
        before, after = pads[2 * (len(spatial) - 1 - i)], pads[2 * (len(spatial) - 1 - i) + 1]
        index = torch.arange(-before, n + after, device=x.device).remainder(n)
        x = x.index_select(2 + i, index)
    return x


def unpad(grad: torch.Tensor, pads: tuple[int, ...], mode: str, spatial: tuple[int, ...]) -> torch.Tensor:
    """The adjoint of :func:`pad`: the gradient of the padded tensor folded back onto the input.

    A handful of tensor ops per dimension (the border is added where it was read from), no loop
    over rows; ``spatial`` is the unpadded input's spatial shape.
    """
    for i, n in enumerate(spatial):
        before, after = pads[2 * (len(spatial) - 1 - i)], pads[2 * (len(spatial) - 1 - i) + 1]
        grad = _unpad_dim(grad, 2 + i, n, before, after, mode)
    return grad


def _unpad_dim(grad: torch.Tensor, dim: int, n: int, before: int, after: int, mode: str) -> torch.Tensor:
    inner = grad.narrow(dim, before, n)
    if mode == "constant" or not (before or after):
        return inner
    out = inner.clone()
    if before:
        _fold_before(out, grad.narrow(dim, 0, before), dim, n, mode)
    if after:
        _fold_after(out, grad.narrow(dim, before + n, after), dim, n, mode)
    return out


def _fold_before(out: torch.Tensor, border: torch.Tensor, dim: int, n: int, mode: str) -> None:
    """Add the border read before position 0 (positions ``-b .. -1``) to where it was read from."""
    b = border.shape[dim]
    if mode == "reflect":  # -b..-1 read b..1
        out.narrow(dim, 1, b).add_(border.flip(dim))
    elif mode == "replicate":  # all read 0
        out.narrow(dim, 0, 1).add_(border.sum(dim, keepdim=True))
    else:  # circular: -k..-1 read n-k..n-1, wrapping again every n positions
        while b:
            k = min(b, n)
            out.narrow(dim, n - k, k).add_(border.narrow(dim, b - k, k))
            b -= k


def _fold_after(out: torch.Tensor, border: torch.Tensor, dim: int, n: int, mode: str) -> None:
    """Add the border read after position n-1 (positions ``n .. n+a-1``) to where it was read from."""
    a = border.shape[dim]
    if mode == "reflect":  # n..n+a-1 read n-2..n-1-a
        out.narrow(dim, n - 1 - a, a).add_(border.flip(dim))
    elif mode == "replicate":  # all read n-1
        out.narrow(dim, n - 1, 1).add_(border.sum(dim, keepdim=True))
    else:  # circular: n..n+k-1 read 0..k-1, wrapping again every n positions
        start = 0
        while start < a:
            k = min(a - start, n)
            out.narrow(dim, 0, k).add_(border.narrow(dim, start, k))
            start += k
