"""The polyphase selection of APS as one registered operator: ``torch.ops.antialiased.polyphase_select``.

``polyphase_select(x, phase, sh, sw)`` keeps, per sample ``n``, the component
``x[n, :, i::sh, j::sw]`` with ``phase[n] = i * sw + j``; ``x``'s height and width must be multiples
of ``sh`` and ``sw`` (``layers.polyphase`` wraps other sizes around first). Its backward is a
second operator, ``polyphase_scatter``, which puts the output gradient back at the selected
positions (zeros elsewhere); the two are each other's adjoints, so double backward comes free.
Only ``phase`` (N integers) is kept for backward. Under ``torch.func.vmap`` both fold the vmapped
dimension into N (data, phase or both batched).

One implementation serves every device (indexing of a strided view, which keeps channels_last
inputs channels_last); it is also the decomposition that exported programs and ONNX files hold.
A faster kernel for a device is a new entry in :data:`KERNELS`.

Example:
    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> torch.ops.antialiased.polyphase_select(x, torch.tensor([3]), 2, 2)  # offset (1, 1)
    tensor([[[[ 5.,  7.],
              [13., 15.]]]])
    >>> torch.ops.antialiased.polyphase_scatter(torch.ones(1, 1, 2, 2), torch.tensor([1]), 2, 2, 4, 4)[0, 0]
    tensor([[0., 1., 0., 1.],
            [0., 0., 0., 0.],
            [0., 1., 0., 1.],
            [0., 0., 0., 0.]])
"""
from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

from ._conv import memory_format
from ._ops import NAMESPACE

__all__ = ["KERNELS", "DECOMPOSITIONS", "polyphase_select", "polyphase_scatter"]


def _components(x: Tensor, sh: int, sw: int) -> tuple[Tensor, bool]:
    """``x`` as (N, C, H/sh, sh, W/sw, sw), or (N, H/sh, sh, W/sw, sw, C) for channels_last: views."""
    n, c, h, w = x.shape
    if memory_format(x) == torch.channels_last:
        return x.permute(0, 2, 3, 1).unflatten(1, (h // sh, sh)).unflatten(3, (w // sw, sw)), True
    return x.unflatten(2, (h // sh, sh)).unflatten(4, (w // sw, sw)), False


def _index(phase: Tensor, sw: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    phase = phase.to(device=device, dtype=torch.long)
    return torch.arange(phase.shape[0], device=device), torch.div(phase, sw, rounding_mode="floor"), phase % sw


def select_forward(x: Tensor, phase: Tensor, sh: int, sw: int) -> Tensor:
    """Advanced indexing of the component view (separated indices: the batch index leads)."""
    parts, last = _components(x, sh, sw)
    batch, rows, cols = _index(phase, sw, x.device)
    if last:
        return parts[batch, :, rows, :, cols].permute(0, 3, 1, 2)
    return parts[batch, :, :, rows, :, cols]


def scatter_forward(grad: Tensor, phase: Tensor, sh: int, sw: int, height: int, width: int) -> Tensor:
    """Zeros of the input's shape with ``grad`` written at the selected positions (the adjoint)."""
    out = grad.new_zeros((grad.shape[0], grad.shape[1], height, width)).contiguous(memory_format=memory_format(grad))
    parts, last = _components(out, sh, sw)
    batch, rows, cols = _index(phase, sw, grad.device)
    if last:
        parts[batch, :, rows, :, cols] = grad.permute(0, 2, 3, 1)
    else:
        parts[batch, :, :, rows, :, cols] = grad
    return out


_INDEXING = SimpleNamespace(select=select_forward, scatter=scatter_forward)
# The implementation per device type; devices not listed use the indexing one.
KERNELS: dict[str, Any] = {"cpu": _INDEXING, "cuda": _INDEXING}


def _kernel(device: torch.device) -> Any:
    return KERNELS.get(device.type, _INDEXING)


@torch.library.custom_op(f"{NAMESPACE}::polyphase_select", mutates_args=())
def polyphase_select(x: Tensor, phase: Tensor, sh: int, sw: int) -> Tensor:
    """Per sample, the polyphase component of ``x`` at offset ``divmod(phase[n], sw)``."""
    return _kernel(x.device).select(x, phase, sh, sw).contiguous(memory_format=memory_format(x))


@torch.library.custom_op(f"{NAMESPACE}::polyphase_scatter", mutates_args=())
def polyphase_scatter(grad: Tensor, phase: Tensor, sh: int, sw: int, height: int, width: int) -> Tensor:
    """The adjoint of :func:`polyphase_select`: ``grad`` placed at the selected positions, zeros elsewhere."""
    return _kernel(grad.device).scatter(grad, phase, sh, sw, height, width)


@polyphase_select.register_fake
def _select_fake(x: Tensor, phase: Tensor, sh: int, sw: int) -> Tensor:
    n, c, h, w = x.shape
    return torch.empty((n, c, h // sh, w // sw), dtype=x.dtype, device=x.device, memory_format=memory_format(x))


@polyphase_scatter.register_fake
def _scatter_fake(grad: Tensor, phase: Tensor, sh: int, sw: int, height: int, width: int) -> Tensor:
    return torch.empty((grad.shape[0], grad.shape[1], height, width), dtype=grad.dtype, device=grad.device,
                       memory_format=memory_format(grad))


def _setup(ctx: Any, inputs: tuple, output: Tensor) -> None:
    data, phase, sh, sw = inputs[:4]
    ctx.config = (sh, sw, data.shape[2], data.shape[3])
    ctx.save_for_backward(phase)


def _select_grad(ctx: Any, grad: Tensor) -> tuple:
    (phase,) = ctx.saved_tensors
    sh, sw, height, width = ctx.config
    return polyphase_scatter(grad, phase, sh, sw, height, width), None, None, None


def _scatter_grad(ctx: Any, upstream: Tensor) -> tuple:
    (phase,) = ctx.saved_tensors
    sh, sw = ctx.config[:2]
    return polyphase_select(upstream, phase, sh, sw), None, None, None, None, None


polyphase_select.register_autograd(_select_grad, setup_context=_setup)
polyphase_scatter.register_autograd(_scatter_grad, setup_context=_setup)


def _vmap_rule(op: Callable) -> Callable:
    """Batch over the data and the phase by folding the vmapped dimension into N (a sample's
    component depends only on its own phase); an unbatched one is repeated for every batch entry."""
    def rule(info: Any, in_dims: tuple, data: Tensor, phase: Tensor, *rest: Any) -> tuple[Tensor, int]:
        batched = []
        for tensor, dim in zip((data, phase), in_dims[:2]):
            moved = tensor.movedim(dim, 0) if dim is not None else tensor.expand(info.batch_size, *tensor.shape)
            batched.append(moved.flatten(0, 1))
        return op(*batched, *rest).unflatten(0, (info.batch_size, -1)), 0
    return rule


polyphase_select.register_vmap(_vmap_rule(polyphase_select))
polyphase_scatter.register_vmap(_vmap_rule(polyphase_scatter))


def _decompose_select(x: Tensor, phase: Tensor, sh: int, sw: int) -> Tensor:
    return select_forward(x, phase, sh, sw)


def _decompose_scatter(grad: Tensor, phase: Tensor, sh: int, sw: int, height: int, width: int) -> Tensor:
    return scatter_forward(grad, phase, sh, sw, height, width)


#: Decompositions into indexing ops, for ``ExportedProgram.run_decompositions`` (see ``_ops``).
DECOMPOSITIONS: dict[torch._ops.OpOverload, Callable] = {
    getattr(torch.ops, NAMESPACE).polyphase_select.default: _decompose_select,
    getattr(torch.ops, NAMESPACE).polyphase_scatter.default: _decompose_scatter,
}

for _op, _decomposition in DECOMPOSITIONS.items():  # what torch.onnx.export applies (see _ops)
    if _op not in torch._decomp.decomposition_table:
        torch._decomp.register_decomposition(_op)(_decomposition)
