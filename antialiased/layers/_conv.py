"""The pad + depthwise-convolution kernel: CUDA, every device without its own kernel, and any filter.

Forward: pad the input (``_padding.pad``), then one grouped convolution with the filter, which
cuDNN runs fast on GPUs; the padded copy is freed right away. It applies any filter, so it is also
the CPU kernel's fallback for filters that do not factor into 1-D ones.

Backward (the input's gradient): the transposed depthwise convolution of the output gradient
(``torch.nn.grad.conv2d_input``: cuDNN work on GPUs) into a padded-size gradient, whose border the
padding's adjoint folds back onto the input (``_padding.unpad``, a few tensor ops per dimension).
It needs only the filter: nothing input-sized is kept between the two.

Worked example: a row of 5 values, the 3-tap filter ``(1/4, 1/2, 1/4)``, stride 2 and reflect
padding of one on each side: ``[x0..x4]`` is padded to ``[x1, x0, x1, x2, x3, x4, x3]`` and
convolved at positions 0, 2 and 4; backward convolves the output gradient with the flipped filter
(transposed, stride 2) into a padded-size gradient of 7 positions, whose first one is added to
``x1``'s and last one to ``x3``'s:

    >>> x = torch.arange(5.0).reshape(1, 1, 5)
    >>> filt = torch.tensor([[[0.25, 0.5, 0.25]]])
    >>> forward(x, filt, 3, 2, (1, 1), "reflect")
    tensor([[[0.5000, 2.0000, 3.5000]]])
    >>> backward(torch.ones(1, 1, 3), filt, 3, 2, (1, 1), "reflect", (5,))
    tensor([[[0.5000, 0.7500, 0.5000, 0.7500, 0.5000]]])
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ._padding import pad, unpad
from ._taps import binomial

__all__ = ["forward", "backward", "filter_gradient", "weight", "memory_format", "padded_size"]

_CONVS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_INPUT_GRADS = {1: torch.nn.grad.conv1d_input, 2: torch.nn.grad.conv2d_input, 3: torch.nn.grad.conv3d_input}
_CONV_WEIGHT_GRADS = {1: torch.nn.grad.conv1d_weight, 2: torch.nn.grad.conv2d_weight, 3: torch.nn.grad.conv3d_weight}

# (size, ndim, channels, dtype, device) -> the binomial filter, for calls that pass none (the
# functionals): one tensor per configuration, so no host-to-device copy per call. Kernels run on
# real tensors only (tracers see the operator), so nothing fake is ever cached. Bounded: few entries.
_BINOMIAL: dict[tuple, torch.Tensor] = {}


def weight(filt: torch.Tensor | None, size: int, x: torch.Tensor) -> torch.Tensor:
    """The depthwise weight ``(C, 1, *taps)`` in ``x``'s dtype: ``filt``, or the cached binomial one."""
    if filt is not None:
        return filt.to(dtype=x.dtype)
    key = (size, x.dim() - 2, x.shape[1], x.dtype, x.device)
    cached = _BINOMIAL.get(key)
    if cached is None:
        base = binomial(size, x.dim() - 2)
        with torch.inference_mode(False):  # a normal tensor even if first made under inference mode
            cached = base.expand(x.shape[1], 1, *base.shape).to(device=x.device, dtype=x.dtype).contiguous()
        if len(_BINOMIAL) >= 64:
            _BINOMIAL.clear()
        _BINOMIAL[key] = cached
    return cached


def memory_format(t: torch.Tensor) -> torch.memory_format:
    """The layout a kernel's output keeps: channels_last(_3d) for such inputs, else contiguous."""
    if not t.is_contiguous():
        if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
            return torch.channels_last
        if t.dim() == 5 and t.is_contiguous(memory_format=torch.channels_last_3d):
            return torch.channels_last_3d
    return torch.contiguous_format


def padded_size(spatial: Sequence[int], pads: Sequence[int]) -> list[int]:
    """Spatial sizes after padding (``pads`` in F.pad's order, last dimension first)."""
    last = len(spatial) - 1
    return [n + pads[2 * (last - i)] + pads[2 * (last - i) + 1] for i, n in enumerate(spatial)]


def forward(x: torch.Tensor, filt: torch.Tensor | None, size: int, stride: int, pads: Sequence[int],
            mode: str) -> torch.Tensor:
    """Pad, then a depthwise convolution (plain differentiable ops: also the export decomposition)."""
    out = _CONVS[x.dim() - 2](pad(x, pads, mode), weight(filt, size, x), stride=stride, groups=x.shape[1])
    return out.contiguous(memory_format=memory_format(x))


def backward(grad: torch.Tensor, filt: torch.Tensor | None, size: int, stride: int, pads: Sequence[int],
             mode: str, spatial: Sequence[int]) -> torch.Tensor:
    """The adjoint of :func:`forward` (the input's gradient): a transposed convolution, then ``unpad``."""
    shape = list(grad.shape[:2]) + padded_size(spatial, pads)
    grad_padded = _CONV_INPUT_GRADS[grad.dim() - 2](shape, weight(filt, size, grad), grad, stride=stride,
                                                    groups=grad.shape[1])
    return unpad(grad_padded, pads, mode, tuple(spatial)).contiguous(memory_format=memory_format(grad))


def filter_gradient(x: torch.Tensor, grad: torch.Tensor, filt: torch.Tensor, stride: int, pads: Sequence[int],
                    mode: str) -> torch.Tensor:
    """The gradient of a learned filter: the depthwise convolution's weight gradient (needs the input)."""
    padded = pad(x, pads, mode)
    out = _CONV_WEIGHT_GRADS[x.dim() - 2](padded, filt.shape, grad, stride=stride, groups=x.shape[1])
    return out.to(dtype=filt.dtype)
