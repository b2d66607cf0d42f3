"""The layers' registered operators (``antialiased::blur_pool``, ``antialiased::polyphase_select`` and
their backwards): torch.library's own checks (schema, fake implementation, autograd registration,
AOT dispatch) on every CPU implementation, exact gradients and second derivatives in float64,
torch.func.vmap, torch.compile seeing the operator, and the export decompositions. The CUDA
implementation is checked in test_layer_cuda.py where a GPU exists."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from antialiased.layers import DECOMPOSITIONS, BlurPool, _conv, _native, _ops, _separable, binomial_filter, blur_pool2d

pytestmark = pytest.mark.usefixtures("one_thread")

blur_op = torch.ops.antialiased.blur_pool
select_op = torch.ops.antialiased.polyphase_select
scatter_op = torch.ops.antialiased.polyphase_scatter
CPU_KERNELS = {"native": _native, "separable": _separable, "conv": _conv}
CONVS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@pytest.fixture(params=sorted(CPU_KERNELS))
def cpu_kernel(request, monkeypatch):
    """Each implementation in turn as the operator's CPU kernel."""
    monkeypatch.setitem(_ops.KERNELS, "cpu", CPU_KERNELS[request.param])
    return request.param


def _binomial(size: int, ndim: int, channels: int, dtype=torch.float64) -> torch.Tensor:
    base = binomial_filter(size, ndim, dtype)
    return base.expand(channels, 1, *base.shape).contiguous()


def _reference(x: torch.Tensor, filt: torch.Tensor, stride: int, pads: list[int], mode: str) -> torch.Tensor:
    """The textbook formulation: F.pad, then a grouped convolution."""
    return CONVS[x.dim() - 2](F.pad(x, pads, mode=mode), filt.to(x.dtype), stride=stride, groups=x.shape[1])


def _opcheck_cases():
    x2 = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    return [
        (torch.randn(2, 3, 11, dtype=torch.float64), _binomial(4, 1, 3), 4, 2, [1, 2], "reflect"),
        (x2, None, 5, 3, [2, 2, 2, 2], "circular"),
        (x2.contiguous(memory_format=torch.channels_last), _binomial(4, 2, 3), 4, 2, [1, 2, 1, 2], "constant"),
        (torch.randn(1, 2, 5, 6, 4, dtype=torch.float64), None, 2, 2, [0, 1, 0, 1, 0, 1], "replicate"),
    ]


def test_opcheck_blur_pool_on_every_cpu_kernel(cpu_kernel):
    """torch.library.opcheck: schema, fake tensors (shapes and strides equal to the kernel's),
    autograd registration and AOT dispatch (with dynamic shapes) agree, forward and backward."""
    for x, filt, size, stride, pads, mode in _opcheck_cases():
        args = (x.requires_grad_(True), filt, size, stride, pads, mode)
        torch.library.opcheck(blur_op, args)
        out = blur_op(*args).detach()
        spatial = list(x.shape[2:])
        torch.library.opcheck(torch.ops.antialiased.blur_pool_backward,
                              (torch.randn_like(out).requires_grad_(True), filt, size, stride, pads, mode, spatial))


def test_gradcheck_and_gradgradcheck_on_every_cpu_kernel(cpu_kernel):
    """float64 gradcheck and gradgradcheck of the operator: every padding mode, 1-D to 3-D, strides 1-3
    (test_layer_conv_path.py sweeps every filter size for the first derivative)."""
    shapes = {1: (7,), 2: (6, 5), 3: (3, 4, 3)}
    configs = [(1, 4, 2), (1, 3, 3), (2, 4, 2), (2, 5, 1), (3, 3, 2)]  # (ndim, size, stride)
    for (ndim, size, stride), mode in itertools.product(configs, ("reflect", "replicate", "constant", "circular")):
        pads = [(size - 1) // 2, size // 2] * ndim
        x = torch.randn((1, 2) + shapes[ndim], dtype=torch.float64, requires_grad=True)
        filt = _binomial(size, ndim, 2)
        fn = lambda t: blur_op(t, filt, size, stride, pads, mode)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x,)), (ndim, mode, size, stride)
        assert torch.autograd.gradgradcheck(fn, (x,)), (ndim, mode, size, stride)


def test_forward_and_backward_equal_the_textbook_formulation(cpu_kernel):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 13, 10, dtype=torch.float64, requires_grad=True)
    filt = torch.rand(4, 1, 3, 4, dtype=torch.float64)  # not separable, not binomial: any filter
    out = blur_op(x, filt, 3, 2, [1, 2, 1, 1], "reflect")
    x_ref = x.detach().clone().requires_grad_(True)
    expected = _reference(x_ref, filt, 2, [1, 2, 1, 1], "reflect")
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad)


def test_implicit_binomial_filter_equals_an_explicit_one(cpu_kernel):
    x = torch.randn(2, 3, 12, 9)
    for size in range(1, 8):
        pads = [(size - 1) // 2, size // 2] * 2
        torch.testing.assert_close(blur_op(x, None, size, 2, pads, "replicate"),
                                   _reference(x, _binomial(size, 2, 3, torch.float32), 2, pads, "replicate"))


def test_a_new_backend_is_a_new_entry_of_the_kernel_table(monkeypatch):
    """The dispatcher picks KERNELS[device type] per call: no branch to add for a new kernel."""
    calls = []

    class Counting:
        @staticmethod
        def forward(*args):
            calls.append("forward")
            return _conv.forward(*args)

        @staticmethod
        def backward(*args):
            calls.append("backward")
            return _conv.backward(*args)

    monkeypatch.setitem(_ops.KERNELS, "cpu", Counting)
    x = torch.randn(1, 2, 8, 8, requires_grad=True)
    BlurPool(2)(x).sum().backward()
    assert calls == ["forward", "backward"]


def test_vmap():
    x = torch.randn(3, 2, 4, 9, 8, dtype=torch.float64)  # vmapped over the first dimension
    out = torch.func.vmap(lambda t: blur_pool2d(t, 4, 2, "reflect"))(x)
    torch.testing.assert_close(out, torch.stack([blur_pool2d(t, 4, 2, "reflect") for t in x]))
    out = torch.func.vmap(lambda t: blur_pool2d(t, 3, 2, "zero"), in_dims=2, out_dims=1)(x)  # another dimension
    torch.testing.assert_close(out, torch.stack([blur_pool2d(x[:, :, i], 3, 2, "zero") for i in range(4)], 1))
    filters = torch.rand(3, 4, 1, 2, 2, dtype=torch.float64)  # vmapped filters: one call per filter
    out = torch.func.vmap(lambda f: blur_op(x[0], f, 2, 2, [0, 1, 0, 1], "constant"))(filters)
    torch.testing.assert_close(out[1], _reference(x[0], filters[1], 2, [0, 1, 0, 1], "constant"))


@pytest.mark.xfail(raises=RuntimeError, strict=False,
                   reason="torch.library's register_autograd does not support torch.func.grad in torch 2.14 "
                          "(pytorch/pytorch#170834, fixed upstream by pytorch/pytorch#184974)")
def test_per_sample_gradients_with_torch_func():
    x = torch.randn(2, 4, 9, 8, dtype=torch.float64)
    layer = BlurPool(4, filt_size=3).double()
    per_sample = torch.func.vmap(torch.func.grad(lambda t: layer(t[None]).pow(2).sum()))(x)
    for i, sample in enumerate(x):
        sample = sample.clone().requires_grad_(True)
        (expected,) = torch.autograd.grad(layer(sample[None]).pow(2).sum(), sample)
        torch.testing.assert_close(per_sample[i], expected)


def test_torch_compile_sees_the_operator():
    """Dynamo records the operator as one node (no graph break, no kernel traced into), and the
    compiled module's outputs and gradients equal eager's."""
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    layer = BlurPool(3, filt_size=5)
    compiled = torch.compile(layer, backend=backend, fullgraph=True)
    x = torch.randn(2, 3, 11, 10, requires_grad=True)
    out = compiled(x)
    targets = [n.target for n in graphs[0].graph.nodes if n.op == "call_function"]
    assert targets == [torch.ops.antialiased.blur_pool.default], targets
    x_ref = x.detach().clone().requires_grad_(True)
    expected = layer(x_ref)
    torch.testing.assert_close(out, expected)
    out.square().sum().backward()
    expected.square().sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)


def test_decompositions_equal_the_kernels():
    """What exported programs hold (the decompositions) computes what the kernels compute."""
    x = torch.randn(2, 3, 10, 9, dtype=torch.float64)
    for filt in (None, _binomial(4, 2, 3)):
        args = (filt, 4, 2, [1, 2, 1, 2], "reflect")
        out = blur_op(x, *args)
        decomposed = DECOMPOSITIONS[torch.ops.antialiased.blur_pool.default](x, *args)
        torch.testing.assert_close(decomposed, out)
        grad = torch.randn_like(out)
        torch.testing.assert_close(
            DECOMPOSITIONS[torch.ops.antialiased.blur_pool_backward.default](grad, *args, [10, 9]),
            torch.ops.antialiased.blur_pool_backward(grad, *args, [10, 9]))


# ---------------------------------------------------------------- polyphase selection

def _select_loop(x: torch.Tensor, phase: torch.Tensor, sh: int, sw: int) -> torch.Tensor:
    """One sample at a time, with plain strided slicing."""
    return torch.stack([x[n, :, int(p) // sw::sh, int(p) % sw::sw] for n, p in enumerate(phase)])


@pytest.mark.parametrize("channels_last", [False, True])
def test_polyphase_select_equals_a_loop_and_keeps_the_layout(channels_last):
    torch.manual_seed(0)
    x = torch.randn(4, 3, 6, 9)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    phase = torch.tensor([0, 5, 3, 4])
    out = select_op(x, phase, 2, 3)
    torch.testing.assert_close(out, _select_loop(x, phase, 2, 3), rtol=0, atol=0)
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    grad = torch.randn_like(out)
    expected = torch.zeros_like(x)
    for n, p in enumerate(phase.tolist()):
        expected[n, :, p // 3::2, p % 3::3] = grad[n]
    torch.testing.assert_close(scatter_op(grad, phase, 2, 3, 6, 9), expected, rtol=0, atol=0)


def test_polyphase_ops_opcheck_gradcheck_and_gradgradcheck():
    x = torch.randn(3, 2, 4, 6, dtype=torch.float64, requires_grad=True)
    phase = torch.tensor([1, 0, 3])
    torch.library.opcheck(select_op, (x, phase, 2, 2))
    torch.library.opcheck(select_op, (x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(),
                                      phase, 2, 2))
    torch.library.opcheck(scatter_op, (torch.randn(3, 2, 2, 3, dtype=torch.float64, requires_grad=True),
                                       phase, 2, 2, 4, 6))
    assert torch.autograd.gradcheck(lambda t: select_op(t, phase, 2, 2), (x,))
    assert torch.autograd.gradgradcheck(lambda t: select_op(t, phase, 2, 2).pow(2), (x,))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        select_op(x, phase, 2, 2)
    assert len(saved) == 1 and saved[0] is phase  # the N phases, nothing input-sized


def test_polyphase_select_exports_as_indexing(tmp_path):
    class Select(torch.nn.Module):
        def forward(self, x: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
            return select_op(x, phase, 2, 2)

    x, phase = torch.randn(2, 3, 8, 6), torch.tensor([2, 1])
    program = torch.export.export(Select(), (x, phase))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert targets == {"antialiased.polyphase_select.default"}
    portable = program.run_decompositions(DECOMPOSITIONS)
    assert not any("antialiased" in str(n.target) for n in portable.graph.nodes)
    other = torch.tensor([3, 0])
    torch.testing.assert_close(portable.module()(x, other), _select_loop(x, other, 2, 2), rtol=0, atol=0)
