"""The layer on a CUDA device (skipped without one): the operator's CUDA kernel (pad + conv) against
the CPU layer, its backward as convolution work (no per-row loop), nothing input-sized saved,
torch.library.opcheck, gradcheck / gradgradcheck, and torch.compile."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from antialiased.layers import BlurPool, BlurPool1D, BlurPool3D

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CLASSES = {1: BlurPool1D, 2: BlurPool, 3: BlurPool3D}
PAD_TYPES = ("reflect", "replicate", "zero", "circular")


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_cuda_equals_cpu_forward_and_backward(ndim):
    torch.manual_seed(ndim)
    sizes = {1: (1, 5, 16), 2: ((3, 7), (9, 16)), 3: ((3, 5, 4),)}[ndim]
    for (f, stride, pad, off), size in itertools.product(
        itertools.product(range(1, 8), (1, 2, 3), PAD_TYPES, (0, 1)), sizes
    ):
        size = (size,) if isinstance(size, int) else size
        layer = CLASSES[ndim](3, pad_type=pad, filt_size=f, stride=stride, pad_off=off).double()
        x = torch.randn((2, 3) + size, dtype=torch.float64)
        a, b = x.clone().requires_grad_(True), x.cuda().requires_grad_(True)
        out_cpu, out_gpu = layer(a), layer.cuda()(b)
        layer.cpu()
        torch.testing.assert_close(out_gpu.cpu(), out_cpu, rtol=1e-10, atol=1e-10, msg=str((f, stride, pad, off, size)))
        grad = torch.randn_like(out_cpu)
        out_cpu.backward(grad)
        out_gpu.backward(grad.cuda())
        torch.testing.assert_close(b.grad.cpu(), a.grad, rtol=1e-10, atol=1e-10, msg=str((f, stride, pad, off, size)))


@pytest.mark.parametrize("pad_type", PAD_TYPES)
def test_cuda_gradcheck_and_gradgradcheck(pad_type):
    layer = BlurPool(2, pad_type=pad_type, filt_size=5, stride=2, pad_off=1).double().cuda()
    x = torch.randn(1, 2, 7, 6, dtype=torch.float64, device="cuda", requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))
    assert torch.autograd.gradgradcheck(layer, (x,))


def test_cuda_opcheck():
    """torch.library.opcheck of both operators on the CUDA kernel (fake shapes and strides, autograd, AOT)."""
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64, device="cuda")
    filt = BlurPool(3, filt_size=3).double().cuda().filt
    for data, f, size in ((x, filt, 3), (x.contiguous(memory_format=torch.channels_last), None, 4)):
        pads = [(size - 1) // 2, size // 2] * 2
        torch.library.opcheck(torch.ops.antialiased.blur_pool, (data.detach().requires_grad_(True), f, size, 2, pads, "reflect"))
        grad = torch.randn(2, 3, 5, 4, dtype=torch.float64, device="cuda", requires_grad=True)
        torch.library.opcheck(torch.ops.antialiased.blur_pool_backward, (grad, f, size, 2, pads, "reflect", [9, 8]))
    phase = torch.tensor([1, 2], device="cuda")
    torch.library.opcheck(torch.ops.antialiased.polyphase_select, (x.detach().requires_grad_(True), phase, 3, 2))


def test_cuda_backward_is_convolution_work_and_saves_nothing():
    layer = BlurPool(64).cuda()
    x = torch.randn(4, 64, 57, 57, device="cuda", requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = layer(x)
    assert len(saved) == 1 and saved[0] is layer.filt  # the filter, nothing input-sized
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        out.sum().backward()
    names = [e.name for e in prof.events()]
    assert any("convolution_backward" in n for n in names), sorted(set(names))
    # The padding's adjoint is a few ops per dimension: no per-row loop (57 rows would be >100 ops).
    assert sum(n in ("aten::add_", "aten::select") for n in names) < 12, sorted(set(names))
    expected = torch.autograd.grad(
        F.conv2d(F.pad(x, [1, 2, 1, 2], mode="reflect"), layer.filt, stride=2, groups=64).sum(), x
    )[0]
    torch.testing.assert_close(x.grad, expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_low_precision_and_channels_last(dtype):
    layer = BlurPool(8).cuda()
    x = torch.randn(2, 8, 15, 12, device="cuda").contiguous(memory_format=torch.channels_last)
    expected = layer(x)
    with torch.autocast("cuda", dtype=dtype):
        out = layer(x.to(dtype).requires_grad_(True))
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), expected, rtol=2e-2, atol=2e-2)
    out.float().sum().backward()


def test_cuda_filter_size_one_and_non_separable_filter():
    x = torch.randn(2, 3, 9, 9, device="cuda")
    torch.testing.assert_close(BlurPool(3, filt_size=1).cuda()(x), x[:, :, ::2, ::2])
    layer = BlurPool(3, filt_size=3, pad_type="zero").cuda()
    with torch.no_grad():
        layer.filt.copy_(torch.rand_like(layer.filt))
    torch.testing.assert_close(layer(x), F.conv2d(F.pad(x, [1, 1, 1, 1]), layer.filt, stride=2, groups=3))


def test_cuda_torch_compile_inductor():
    layer = BlurPool(16, filt_size=4).cuda()
    compiled = torch.compile(layer, fullgraph=True)
    x = torch.randn(2, 16, 33, 30, device="cuda", requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out = compiled(x)
    expected = layer(x_ref)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    out.square().sum().backward()
    expected.square().sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
