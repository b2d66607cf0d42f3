"""The pad + depthwise-convolution kernel: GPUs, ``torch.compile``, export, and any filter.

Forward: pad the input (``_padding.pad``), then one grouped convolution with the layer's filter,
which cuDNN runs fast on GPUs; the padded copy is freed right away. It applies any filter, so it is
also the CPU fallback for filters that do not factor into 1-D ones.

Backward (:class:`PadConvBlur`) saves nothing input-sized, as the separable kernel: the input
gradient of a convolution needs only the filter (``torch.nn.grad.conv2d_input``: the transposed
depthwise convolution, cuDNN work on GPUs), and the padding's adjoint folds the padded border of
that gradient back onto the input (``_padding.unpad``, a few tensor ops per dimension).

Worked example: a row of 5 values, the 3-tap filter ``(1/4, 1/2, 1/4)``, stride 2 and reflect
padding of one on each side: ``[x0..x4]`` is padded to ``[x1, x0, x1, x2, x3, x4, x3]`` and
convolved at positions 0, 2 and 4; backward convolves the output gradient with the flipped filter
(transposed, stride 2) into a padded-size gradient of 7 positions, whose first one is added to
``x1``'s and last one to ``x3``'s:

    >>> x = torch.arange(5.0).reshape(1, 1, 5).requires_grad_(True)
    >>> filt = torch.tensor([[[0.25, 0.5, 0.25]]])
    >>> y = PadConvBlur.apply(x, filt, 2, (1, 1), "reflect")
    >>> y
    tensor([[[0.5000, 2.0000, 3.5000]]], grad_fn=<PadConvBlurBackward>)
    >>> y.sum().backward()
    >>> x.grad
    tensor([[[0.5000, 0.7500, 0.5000, 0.7500, 0.5000]]])
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from ._padding import pad, unpad

__all__ = ["conv_forward", "PadConvBlur", "is_traced", "needs_standard_ops"]

_CONVS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_INPUT_GRADS = {1: torch.nn.grad.conv1d_input, 2: torch.nn.grad.conv2d_input, 3: torch.nn.grad.conv3d_input}


def conv_forward(x: torch.Tensor, filt: torch.Tensor, stride: int, pads: tuple[int, ...], mode: str) -> torch.Tensor:
    """Pad, then a depthwise convolution with ``filt`` (C, 1, *taps): plain differentiable ops."""
    return _CONVS[x.dim() - 2](pad(x, pads, mode), filt.to(dtype=x.dtype), stride=stride, groups=x.shape[1])


def is_traced(x: torch.Tensor) -> bool:
    """True while a tracer sees the call (torch.compile, torch.export, jit.trace, functorch
    transforms) or ``x`` has no data (fake, meta and other tensor subclasses): no caching then."""
    return (
        torch.compiler.is_compiling()  # also true while exporting
        or torch.compiler.is_exporting()
        or torch.jit.is_tracing()
        or x.device.type == "meta"
        or type(x) not in (torch.Tensor, torch.nn.Parameter)
        or torch._C._are_functorch_transforms_active()
    )


def needs_standard_ops(x: torch.Tensor, filt: torch.Tensor) -> bool:
    """True where the layer must run plain torch ops (no custom Function, no caches keyed on data):
    whenever :func:`is_traced` (exporters must see Pad + Conv; ``torch.compile`` is dispatched before
    this), and for a filter that is being learned."""
    return is_traced(x) or filt.requires_grad


class PadConvBlur(torch.autograd.Function):
    """Pad + depthwise convolution that saves no tensors for backward (the filter is fixed).

    ``apply(x, filt, stride, pads, mode)``; ``filt`` is kept as an attribute of the context rather
    than saved, as it is the layer's own small buffer, and gets no gradient.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, filt: torch.Tensor, stride: int, pads: tuple[int, ...], mode: str) -> torch.Tensor:  # type: ignore[override]
        padded = pad(x, pads, mode)
        ctx.filt, ctx.stride, ctx.pads, ctx.mode = filt, stride, pads, mode
        ctx.spatial, ctx.padded_shape = tuple(x.shape[2:]), padded.shape
        return _CONVS[x.dim() - 2](padded, filt.to(dtype=x.dtype), stride=stride, groups=x.shape[1])

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None]:  # type: ignore[override]
        conv_input = _CONV_INPUT_GRADS[grad.dim() - 2]
        grad_padded = conv_input(
            ctx.padded_shape, ctx.filt.to(dtype=grad.dtype), grad, stride=ctx.stride, groups=grad.shape[1]
        )
        return unpad(grad_padded, ctx.pads, ctx.mode, ctx.spatial), None, None, None, None
