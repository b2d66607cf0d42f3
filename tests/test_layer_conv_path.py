"""The pad + depthwise-conv kernel (the GPU path), made the operator's CPU kernel: exact gradients,
equal to the separable kernel, and nothing input-sized saved for backward. CI has no GPU, so this
is where its backward (the transposed conv and the padding's adjoint) is checked."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from antialiased.layers import BlurPool, binomial_filter
from antialiased.layers import _conv, _ops, _padding, _separable, _taps
from antialiased.layers._padding import effective_mode, pad_amounts

blur_op = torch.ops.antialiased.blur_pool

MODES = ("reflect", "replicate", "constant", "circular")
# Odd sizes, a few small enough that reflect falls back to replicate and circular wraps more than once.
SIZES = {1: (1, 2, 5, 9), 2: ((3, 5), (7, 4), (2, 1)), 3: ((3, 5, 4), (1, 3, 2))}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def conv_kernel_on_cpu(monkeypatch):
    """The operator's CPU implementation replaced by the conv kernel (what CUDA runs)."""
    monkeypatch.setitem(_ops.KERNELS, "cpu", _conv)


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
def test_conv_path_gradcheck(ndim, conv_kernel_on_cpu):
    """torch.autograd.gradcheck of the operator on the conv kernel: every pad type, filters 1-7, strides 1-3."""
    checked = 0
    for f, stride, mode, pads, size in _configs(ndim):
        x = torch.randn((1, 2) + size, dtype=torch.float64, requires_grad=True)
        filt = _filter(f, ndim, 2)
        # 2-D and 3-D: gradcheck's fast mode (random projections of the Jacobian); the full one takes 45 s.
        assert torch.autograd.gradcheck(
            lambda t: blur_op(t, filt, f, stride, pads, mode), (x,), fast_mode=ndim > 1
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
        assert _taps.separable_taps(filt) is not None
        out_conv = _conv.forward(x, filt, f, stride, pads, mode)
        out_sep = _separable.forward(x, filt, f, stride, pads, mode)
        torch.testing.assert_close(out_conv, out_sep, rtol=1e-12, atol=1e-12, msg=str((f, stride, mode, size)))
        grad = torch.randn_like(out_sep)
        grad_conv = _conv.backward(grad, filt, f, stride, pads, mode, size)
        grad_sep = _separable.backward(grad, None, f, stride, pads, mode, size)  # its implicit binomial filter
        torch.testing.assert_close(grad_conv, grad_sep, rtol=1e-12, atol=1e-12, msg=str((f, stride, mode, size)))


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


def test_conv_path_saves_nothing_input_sized(conv_kernel_on_cpu):
    x = torch.randn(2, 4, 15, 16, requires_grad=True)
    filt = _filter(4, 2, 4).float()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = blur_op(x, filt, 4, 2, [1, 2, 1, 2], "reflect")
    assert len(saved) == 1 and saved[0] is filt
    out.sum().backward()
    expected = torch.autograd.grad(F.conv2d(F.pad(x, [1, 2, 1, 2], mode="reflect"), filt, stride=2, groups=4).sum(), x)
    torch.testing.assert_close(x.grad, expected[0])


def test_non_separable_filter_uses_the_conv_path_with_grad(monkeypatch):
    layer = BlurPool(3, filt_size=3)
    with torch.no_grad():
        layer.filt[:, :, 0, 0] = 0.5  # breaks the rank-1 structure
    assert _taps.separable_taps(layer.filt) is None
    calls = []
    for name in ("forward", "backward"):
        original = getattr(_conv, name)
        monkeypatch.setattr(_conv, name, lambda *a, _o=original, _n=name: calls.append(_n) or _o(*a))
    x = torch.randn(1, 3, 8, 9, requires_grad=True)
    out = layer(x)
    x_ref = x.detach().clone().requires_grad_(True)
    expected = F.conv2d(F.pad(x_ref, [1, 1, 1, 1], mode="reflect"), layer.filt, stride=2, groups=3)
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad)
    assert calls == ["forward", "backward"]


@pytest.mark.parametrize("kernel", ["separable", "conv"])
def test_learned_filter_gets_the_gradient_of_pad_then_conv(kernel, monkeypatch):
    """A filter made a Parameter is learned: its gradient (and the input's) equal autograd's of
    F.pad + F.conv2d, and gradcheck holds for both, in float64."""
    monkeypatch.setitem(_ops.KERNELS, "cpu", {"separable": _separable, "conv": _conv}[kernel])
    layer = BlurPool(2, filt_size=3, pad_type="replicate").double()
    layer.filt = torch.nn.Parameter(layer.filt + 0.01 * torch.randn_like(layer.filt))  # not separable either
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    layer(x).square().sum().backward()
    filt_ref = layer.filt.detach().clone().requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    F.conv2d(F.pad(x_ref, [1, 1, 1, 1], mode="replicate"), filt_ref, stride=2, groups=2).square().sum().backward()
    torch.testing.assert_close(layer.filt.grad, filt_ref.grad)
    torch.testing.assert_close(x.grad, x_ref.grad)
    filt = layer.filt.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t, w: blur_op(t, w, 3, 2, [1, 1, 1, 1], "replicate"),
                                    (x.detach().requires_grad_(), filt))
    assert torch.autograd.gradgradcheck(lambda t, w: blur_op(t, w, 3, 2, [1, 1, 1, 1], "replicate"),
                                        (x.detach().requires_grad_(), filt))
