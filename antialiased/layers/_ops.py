"""The blur-subsample as one registered operator: ``torch.ops.antialiased.blur_pool``.

Every call of the layers and functionals goes through this operator, in eager mode, under
``torch.compile``, ``torch.export``, ``torch.func`` and ONNX export alike; what differs is only which
implementation the dispatcher picks for the input's device:

========================  =============================================================
``KERNELS["cpu"]``        ``_native``: a compiled one-pass kernel for 2-D float maps, else
                          ``_separable``: pad-free 1-D passes of ATen ops (pad + conv for
                          filters that do not factor)
``KERNELS["cuda"]``       ``_conv``: pad + depthwise convolution (cuDNN)
any other device          ``_conv`` (the operator's default implementation)
fake / meta tensors       the output's shape and layout only (tracing, shape probes)
export (decomposition)    plain pad + conv ops: what exported programs and ONNX files hold
========================  =============================================================

A new backend (a Triton or fused kernel) is a module with ``forward`` and ``backward`` added to
:data:`KERNELS`, not a branch.

Autograd: the input's gradient is a second operator, ``antialiased::blur_pool_backward``, the
adjoint of the first with the same per-device kernels. Both are linear in their tensor input and
each one's derivative is the other, so double backward costs nothing more. Only the filter is
kept for backward (nothing input-sized), unless the filter itself is being learned: then the
input is kept too, for the filter's gradient (the depthwise convolution's weight gradient).

``filt`` is the ``(C, 1, *taps)`` filter, or None for the normalized binomial filter of ``size``
taps (what the functionals use: the kernels then cache it per device, and tracers never see a
cached tensor). ``pads`` are ``F.pad``'s amounts, ``mode`` one of ``F.pad``'s modes (already
resolved: reflect padding wider than the map was turned into replicate by the caller).

Example:
    >>> x = torch.arange(8.0).reshape(1, 1, 8)
    >>> torch.ops.antialiased.blur_pool(x, None, 3, 2, [1, 1], "reflect")
    tensor([[[0.5000, 2.0000, 4.0000, 6.0000]]])
    >>> class Blur(torch.nn.Module):
    ...     def forward(self, x):
    ...         return blur_pool(x, None, 4, 2, [1, 2, 1, 2], "reflect")
    >>> program = torch.export.export(Blur(), (torch.randn(1, 2, 9, 9),))
    >>> [str(n.target) for n in program.graph.nodes if n.op == "call_function"]
    ['antialiased.blur_pool.default']
    >>> targets = {str(n.target) for n in program.run_decompositions(DECOMPOSITIONS).graph.nodes}
    >>> "aten.conv2d.default" in targets and "aten.pad.default" in targets and not any("antialiased" in t for t in targets)
    True
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _conv, _native

# The operators' namespace is the package's name: "antialiased" (a copy of the package imported
# under another name, as the benchmarks load a previous revision, registers its own operators).
NAMESPACE = __name__.split(".")[0]

__all__ = ["KERNELS", "DECOMPOSITIONS", "blur_pool", "blur_pool_backward", "output_size"]

# The implementation per device type: modules with forward(x, filt, size, stride, pads, mode) and
# backward(grad, filt, size, stride, pads, mode, spatial). Devices not listed use _conv.
KERNELS: dict[str, ModuleType] = {"cpu": _native, "cuda": _conv}


def _kernel(device: torch.device) -> ModuleType:
    return KERNELS.get(device.type, _conv)


def output_size(spatial: Sequence[int], taps: Sequence[int], stride: int, pads: Sequence[int]) -> list[int]:
    """The spatial output size: ``(n + pads - taps) // stride + 1`` per dimension."""
    return [(p - k) // stride + 1 for p, k in zip(_conv.padded_size(spatial, pads), taps)]


def _taps_shape(filt: Tensor | None, size: int, ndim: int) -> Sequence[int]:
    return filt.shape[2:] if filt is not None else (size,) * ndim


# ------------------------------------------------------------------ forward: the blur-subsample

@torch.library.custom_op(f"{NAMESPACE}::blur_pool", mutates_args=())
def blur_pool(x: Tensor, filt: Optional[Tensor], size: int, stride: int, pads: Sequence[int],  # noqa: UP045
              mode: str) -> Tensor:
    """Pad, blur with ``filt`` (or the binomial filter of ``size`` taps) and subsample by ``stride``."""
    return _kernel(x.device).forward(x, filt, size, stride, pads, mode)


@blur_pool.register_fake
def _blur_pool_fake(x: Tensor, filt: Tensor | None, size: int, stride: int, pads: Sequence[int],
                    mode: str) -> Tensor:
    spatial = output_size(x.shape[2:], _taps_shape(filt, size, x.dim() - 2), stride, pads)
    return torch.empty([*x.shape[:2], *spatial], dtype=x.dtype, device=x.device,
                       memory_format=_conv.memory_format(x))


# ------------------------------------------------------------------ backward: its adjoint

@torch.library.custom_op(f"{NAMESPACE}::blur_pool_backward", mutates_args=())
def blur_pool_backward(grad: Tensor, filt: Optional[Tensor], size: int, stride: int,  # noqa: UP045
                       pads: Sequence[int], mode: str, spatial: Sequence[int]) -> Tensor:
    """The input's gradient of :func:`blur_pool` (its adjoint) for an output gradient ``grad``."""
    return _kernel(grad.device).backward(grad, filt, size, stride, pads, mode, spatial)


@blur_pool_backward.register_fake
def _blur_pool_backward_fake(grad: Tensor, filt: Tensor | None, size: int, stride: int, pads: Sequence[int],
                             mode: str, spatial: Sequence[int]) -> Tensor:
    return torch.empty([*grad.shape[:2], *spatial], dtype=grad.dtype, device=grad.device,
                       memory_format=_conv.memory_format(grad))


for _device in KERNELS:  # each looks its kernel up per call, so KERNELS can be changed (tests do)
    blur_pool.register_kernel(_device)(
        lambda x, filt, size, stride, pads, mode, _d=_device: KERNELS.get(_d, _conv).forward(
            x, filt, size, stride, pads, mode))
    blur_pool_backward.register_kernel(_device)(
        lambda g, filt, size, stride, pads, mode, spatial, _d=_device: KERNELS.get(_d, _conv).backward(
            g, filt, size, stride, pads, mode, spatial))


# ------------------------------------------------------------------ autograd of both

def _setup(ctx: Any, inputs: tuple, output: Tensor) -> None:
    """Keep the filter, and the tensor input only when the filter is learned (for its gradient)."""
    data, filt, size, stride, pads, mode = inputs[:6]
    ctx.config = (size, stride, tuple(pads), mode)
    ctx.spatial = tuple(data.shape[2:])
    learned = filt is not None and filt.requires_grad
    ctx.save_for_backward(filt, data if learned else None)


def _blur_pool_grad(ctx: Any, grad: Tensor) -> tuple:
    filt, x = ctx.saved_tensors
    size, stride, pads, mode = ctx.config
    grad_x = blur_pool_backward(grad, filt, size, stride, pads, mode, ctx.spatial) if ctx.needs_input_grad[0] else None
    grad_filt = _conv.filter_gradient(x, grad, filt, stride, pads, mode) if ctx.needs_input_grad[1] else None
    return grad_x, grad_filt, None, None, None, None


def _blur_pool_backward_grad(ctx: Any, upstream: Tensor) -> tuple:
    # backward(g) = A^T g is linear in g, so its derivative is A itself; for a learned filter,
    # d<u, A^T g>/d filt = d<A u, g>/d filt: the forward's filter gradient with input u, output g.
    filt, grad = ctx.saved_tensors
    size, stride, pads, mode = ctx.config
    grad_grad = blur_pool(upstream, filt, size, stride, pads, mode) if ctx.needs_input_grad[0] else None
    grad_filt = _conv.filter_gradient(upstream, grad, filt, stride, pads, mode) if ctx.needs_input_grad[1] else None
    return grad_grad, grad_filt, None, None, None, None, None


blur_pool.register_autograd(_blur_pool_grad, setup_context=_setup)
blur_pool_backward.register_autograd(_blur_pool_backward_grad, setup_context=_setup)


# ------------------------------------------------------------------ torch.func.vmap

def _vmap_rule(op: Callable) -> Callable:
    """Batch over the tensor input by folding the vmapped dimension into N; batched filters loop."""
    def rule(info: Any, in_dims: tuple, data: Tensor, filt: Tensor | None, *rest: Any) -> tuple[Tensor, int]:
        data_dim, filt_dim = in_dims[0], in_dims[1]
        if filt_dim is not None:
            data = data.movedim(data_dim, 0) if data_dim is not None else data.expand(info.batch_size, *data.shape)
            return torch.stack([op(d, f, *rest) for d, f in zip(data, filt.movedim(filt_dim, 0))]), 0
        data = data.movedim(data_dim, 0)
        out = op(data.flatten(0, 1), filt, *rest)
        return out.unflatten(0, (data.shape[0], data.shape[1])), 0
    return rule


blur_pool.register_vmap(_vmap_rule(blur_pool))
blur_pool_backward.register_vmap(_vmap_rule(blur_pool_backward))


# ------------------------------------------------------------------ export: plain pad + conv

def _export_filter(filt: Tensor | None, size: int, like: Tensor) -> Tensor:
    """``filt``, or the binomial filter built from factory ops: under every tracer (fake tensors
    with symbolic shapes, AOT, export) it is part of the graph, which exporters fold to a constant."""
    if filt is not None:
        return filt
    row = like.new_ones(1)
    for _ in range(size - 1):  # the coefficients of (1 + z) ** (size - 1): exact integers
        row = F.pad(row, (1, 0)) + F.pad(row, (0, 1))
    row = row / 2 ** (size - 1)
    kernel = row
    for _ in range(like.dim() - 3):
        kernel = kernel[..., None] * row
    return kernel.expand(like.shape[1], 1, *kernel.shape)


def _decompose_blur_pool(x: Tensor, filt: Tensor | None, size: int, stride: int, pads: Sequence[int],
                         mode: str) -> Tensor:
    return _conv.forward(x, _export_filter(filt, size, x), size, stride, pads, mode)


def _decompose_blur_pool_backward(grad: Tensor, filt: Tensor | None, size: int, stride: int,
                                  pads: Sequence[int], mode: str, spatial: Sequence[int]) -> Tensor:
    return _conv.backward(grad, _export_filter(filt, size, grad), size, stride, pads, mode, spatial)


#: The operators' decompositions into standard ATen ops (pad + convolution), for
#: ``ExportedProgram.run_decompositions``: an exported program keeps the operator (it runs the
#: same kernels as eager when loaded with ``antialiased`` imported); decomposing makes it portable.
DECOMPOSITIONS: dict[torch._ops.OpOverload, Callable] = {
    getattr(torch.ops, NAMESPACE).blur_pool.default: _decompose_blur_pool,
    getattr(torch.ops, NAMESPACE).blur_pool_backward.default: _decompose_blur_pool_backward,
}

# torch.onnx.export (the torch.export-based exporter of torch >= 2.5) applies torch._decomp's table
# to every operator it has no ONNX translation for: registered there, the ONNX file holds Pad + Conv.
for _op, _decomposition in DECOMPOSITIONS.items():
    if _op not in torch._decomp.decomposition_table:
        torch._decomp.register_decomposition(_op)(_decomposition)

