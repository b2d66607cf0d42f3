"""Argument and input checks shared by the method layers (adaptive, LPS, TIPS, Fourier, Haar).

Each check raises :class:`~antialiased.errors.ConfigError` with one line that names the argument
and the fix. Also the polyphase helpers the learned samplers share (stride pairs, circular
extension of odd sides, the soft mix of polyphase components).

Example:
    >>> pair(2), pair((2, 1))
    ((2, 2), (2, 1))
    >>> wrap_to_multiple(torch.arange(3.0).reshape(1, 1, 1, 3), 1, 2)
    tensor([[[[0., 1., 2., 0.]]]])
    >>> polyphase_mix(torch.arange(16.0).reshape(1, 1, 4, 4), torch.tensor([[0.5, 0.5, 0.0, 0.0]]), (2, 2))
    tensor([[[[ 0.5000,  2.5000],
              [ 8.5000, 10.5000]]]])
"""
from __future__ import annotations

from typing import Union

import torch

from antialiased.errors import ConfigError

__all__ = ["Stride", "is_traced", "check_int", "pair", "check_input", "wrap_to_multiple", "polyphase_mix"]

Stride = Union[int, tuple[int, int]]


def is_traced(x: torch.Tensor) -> bool:
    """True while a tracer sees the call (torch.compile, torch.export, jit.trace, functorch transforms)
    or ``x`` carries no data (fake, meta, subclasses): then plain ops only, no custom autograd
    Functions and no caches keyed on data."""
    return (
        torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
        or torch.jit.is_tracing()
        or x.device.type == "meta"
        or type(x) not in (torch.Tensor, torch.nn.Parameter)
        or torch._C._are_functorch_transforms_active()
    )


def check_int(name: str, value: object, low: int, hint: str) -> int:
    """``value`` if it is an int >= ``low``, else a ConfigError ending in ``hint``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}; {hint}")
    return value


def pair(stride: Stride) -> tuple[int, int]:
    """``(s_h, s_w)`` from an int or a pair of positive ints."""
    value = (stride, stride) if isinstance(stride, int) and not isinstance(stride, bool) else stride
    if (
        not isinstance(value, (tuple, list)) or len(value) != 2
        or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in value)
    ):
        raise ConfigError(f"stride must be a positive integer or a pair of them, got {stride!r}; 2 halves each side")
    return int(value[0]), int(value[1])


def check_input(x: object, what: str, channels: int | None = None) -> torch.Tensor:
    """``x`` if it is a non-empty floating-point (N, C, H, W) tensor with ``channels`` channels."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point() or 0 in x.shape:
        got = f"a {x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ConfigError(f"{what} expects a non-empty floating-point (N, C, H, W) tensor, got {got}")
    if channels is not None and x.shape[1] != channels:
        raise ConfigError(f"the {what} layer was built for {channels} channels, got an input with {x.shape[1]}; "
                          f"build it with channels={x.shape[1]}")
    return x


def wrap_to_multiple(x: torch.Tensor, sh: int, sw: int) -> torch.Tensor:
    """Extend H and W circularly to multiples of the stride (APS's rule; a no-op when they already are)."""
    h, w = x.shape[-2:]
    if h % sh:
        x = x.index_select(2, torch.arange(h + (-h) % sh, device=x.device) % h)
    if w % sw:
        x = x.index_select(3, torch.arange(w + (-w) % sw, device=x.device) % w)
    return x


def polyphase_mix(x: torch.Tensor, weights: torch.Tensor, stride: tuple[int, int]) -> torch.Tensor:
    """``sum_p weights[n, p] * x[n, :, i::s_h, j::s_w]`` with ``p = i * s_w + j`` (sides already multiples).

    A loop over the ``s_h * s_w`` components: each product keeps a strided view of ``x`` and one
    column of ``weights`` for backward, never a stacked copy of the components.
    """
    sh, sw = stride
    n = x.shape[0]
    if weights.shape != (n, sh * sw):
        raise ConfigError(f"polyphase weights must have shape ({n}, {sh * sw}) (one row per sample), "
                          f"got {tuple(weights.shape)}")
    weights = weights.to(x.dtype)
    out = None
    for p in range(sh * sw):
        i, j = divmod(p, sw)
        term = weights[:, p, None, None, None] * x[:, :, i::sh, j::sw]
        out = term if out is None else out + term
    return out
