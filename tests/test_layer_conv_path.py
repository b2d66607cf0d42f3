"""The pad + depthwise-conv kernel (the GPU path), forced on CPU: exact gradients, equal to the
separable kernel, and nothing saved for backward. CI has no GPU, so this is where its backward
(the transposed conv and the padding's adjoint) is checked."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from antialiased.layers import BlurPool, binomial_filter
from antialiased.layers import _conv, _padding, _separable, _taps
from antialiased.layers._padding import effective_mode, pad_amounts

MODES = ("reflect", "replicate", "constant", "circular")
# Odd sizes, a few small enough that reflect falls back to replicate and circular wraps more than once.
SIZES = {1: (1, 2, 5, 9), 2: ((3, 5), (7, 4), (2, 1)), 3: ((3, 5, 4), (1, 3, 2))}


pytestmark = pytest.mark.usefixtures("one_thread")


def _filter(f: int, ndim: int, channels: int) -> torch.Tensor:
    base = binomial_filter(f, ndim, torch.float64)
    return base.expand(channels, 1, *base.shape).contiguous()


def _configs(ndim: int):
    for (f, stride, mode), size in itertools.product(
        itertools.product(range(1, 8), (1, 2, 3), MODES), SIZES[ndim]
    ):
        size = (size,) if isinstance(size, int) else size
        pad_off = (f + stride) % 2  # both offsets over the sweep
        pads = pad_amounts(f, pad_off, ndim)
        yield f, stride, effective_mode(mode, pads, size), pads, size


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_conv_path_gradcheck(ndim):
    """torch.autograd.gradcheck of the conv kernel's Function: every pad type, filters 1-7, strides 1-3."""
    checked = 0
    for f, stride, mode, pads, size in _configs(ndim):
        x = torch.randn((1, 2) + size, dtype=torch.float64, requires_grad=True)
        filt = _filter(f, ndim, 2)
        # 2-D and 3-D: gradcheck's fast mode (random projections of the Jacobian); the full one takes 45 s.
        assert torch.autograd.gradcheck(
            lambda t: _conv.PadConvBlur.apply(t, filt, stride, pads, mode), (x,), fast_mode=ndim > 1
        ), (f, stride, mode, size)
        checked += 1
    assert checked >= 150


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_conv_path_equals_separable_path(ndim):
    """Forward and backward of the two kernels agree on every configuration."""
    torch.manual_seed(ndim)
    for f, stride, mode, pads, size in _configs(ndim):
        x = torch.randn((2, 3) + size, dtype=torch.float64)
        filt = _filter(f, ndim, 3)
        plans = _separable.plans_for(size, _taps.separable_taps(filt), stride, pads, mode)
        a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        out_conv = _conv.PadConvBlur.apply(a, filt, stride, pads, mode)
        out_sep = _separable.SeparableBlur.apply(b, plans)
        torch.testing.assert_close(out_conv, out_sep, rtol=1e-12, atol=1e-12, msg=str((f, stride, mode, size)))
        grad = torch.randn_like(out_sep)
        out_conv.backward(grad)
        out_sep.backward(grad)
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12, msg=str((f, stride, mode, size)))


@pytest.mark.parametrize("mode", MODES)
def test_padding_adjoint_equals_autograd_of_f_pad(mode):
    """unpad is the exact adjoint of pad: <pad(x), g> == <x, unpad(g)> and equal to autograd's F.pad backward."""
    torch.manual_seed(0)
    for size, pads in (((6, 5), [2, 3, 1, 2]), ((4, 7), [3, 3, 0, 1]), ((2, 3), [2, 2, 2, 2])):
        if mode == "reflect" and max(pads) >= min(size):
            continue  # not a valid reflect padding (the layer falls back to replicate there)
        x = torch.randn((2, 3) + size, dtype=torch.float64, requires_grad=True)
        padded = _padding.pad(x, pads, mode)
        g = torch.randn_like(padded)
        (expected,) = torch.autograd.grad(padded, x, g)
        torch.testing.assert_close(_padding.unpad(g, pads, mode, size), expected, rtol=1e-12, atol=1e-12)
        if max(pads) <= min(size) and mode != "reflect":
            torch.testing.assert_close(padded, F.pad(x, pads, mode=mode))


def test_circular_padding_wraps_more_than_once():
    x = torch.arange(3.0).reshape(1, 1, 3)
    torch.testing.assert_close(_padding.pad(x, [4, 5], "circular")[0, 0],
                               torch.tensor([2.0, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1]))


def test_conv_path_saves_nothing_for_backward():
    x = torch.randn(2, 4, 15, 16, requires_grad=True)
    filt = _filter(4, 2, 4).float()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = _conv.PadConvBlur.apply(x, filt, 2, [1, 2, 1, 2], "reflect")
    assert saved == []
    out.sum().backward()
    assert x.grad.shape == x.shape


def test_non_separable_filter_uses_the_conv_path_with_grad():
    layer = BlurPool(3, filt_size=3)
    with torch.no_grad():
        layer.filt[:, :, 0, 0] = 0.5  # breaks the rank-1 structure
    assert _taps.separable_taps(layer.filt) is None
    x = torch.randn(1, 3, 8, 9, requires_grad=True)
    out = layer(x)
    assert type(out.grad_fn).__name__ == "PadConvBlurBackward"
    expected = F.conv2d(F.pad(x, [1, 1, 1, 1], mode="reflect"), layer.filt, stride=2, groups=3)
    torch.testing.assert_close(out, expected)


def test_learned_filter_gets_gradients_through_plain_ops():
    layer = BlurPool(2, filt_size=3)
    layer.filt = torch.nn.Parameter(layer.filt.clone())
    out = layer(torch.randn(1, 2, 6, 6))
    out.sum().backward()
    assert layer.filt.grad is not None and layer.filt.grad.abs().sum() > 0
