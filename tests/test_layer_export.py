"""Tracing and export: the layer runs plain Pad + depthwise Conv ops, which torch.export, ONNX
(the torch.export-based exporter) and onnxruntime accept, with the same outputs as eager."""
from __future__ import annotations

import contextlib
import itertools

import pytest
import torch
from torch import nn

from antialiased.layers import BlurPool, BlurPool1D, _conv, _separable, _taps

PAD_TYPES = ("reflect", "replicate", "zero", "circular")


pytestmark = pytest.mark.usefixtures("one_thread")


@contextlib.contextmanager
def no_eager_kernels():
    """Fail if a traced call reaches the eager kernels or their caches keyed on data."""
    def refuse(*args, **kwargs):
        raise AssertionError("the eager kernel ran while tracing")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_taps, "separable_taps", refuse)
        patch.setattr(_separable, "separable_forward", refuse)
        patch.setattr(_separable.SeparableBlur, "apply", refuse)
        patch.setattr(_conv.PadConvBlur, "apply", refuse)
        yield


# The export's cost is mostly fixed (about 5-10 s, whatever the number of layers): one model holds them all.
ALL_CONFIGS = list(itertools.product(PAD_TYPES, range(1, 8)))


class Branches(nn.Module):
    """One BlurPool per (pad type, filter size), strides 1-3 and offsets 0-1 mixed."""

    def __init__(self, configs: list[tuple[str, int]], channels: int = 2) -> None:
        super().__init__()
        self.pools = nn.ModuleList(
            # No two branches compute the same function (the exporter would merge them into Identity nodes).
            BlurPool(channels, pad_type=p, filt_size=f, stride=1 + f % 3,
                     pad_off=(f + i) % 2 if f > 1 else int(p != "reflect"))
            for i, (p, f) in enumerate(configs)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(pool(x) for pool in self.pools)


@pytest.mark.parametrize("pad_type", PAD_TYPES)
def test_torch_export_matches_eager(pad_type):
    batch = torch.export.Dim("batch")
    for f in (1, 4, 7):
        model = nn.Sequential(BlurPool(3, pad_type=pad_type, filt_size=f)).eval()
        inputs = [torch.randn(n, 3, 11, 9) for n in (1, 3)]
        expected = [model(x) for x in inputs]
        with no_eager_kernels():
            program = torch.export.export(model, (inputs[1],), dynamic_shapes=({0: batch},))
            exported = [program.module()(x) for x in inputs]
        targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
        assert any("conv" in t for t in targets), targets
        for got, want in zip(exported, expected):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_jit_trace_records_standard_ops():
    layer = BlurPool(3, pad_type="reflect", filt_size=5, stride=2)
    x = torch.randn(1, 3, 13, 11)
    traced = torch.jit.trace(layer, (x,))  # its sanity check reruns the layer eagerly: no patching here
    kinds = {node.kind() for node in traced.graph.nodes()}
    assert "prim::PythonOp" not in kinds and any("conv" in k for k in kinds), kinds
    x2 = torch.randn(1, 3, 13, 11)
    torch.testing.assert_close(traced(x2), layer(x2))


def test_fake_and_meta_tensors_run_plain_ops():
    from torch._subclasses.fake_tensor import FakeTensorMode

    layer = BlurPool(3, filt_size=4)
    with no_eager_kernels():
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            out = layer(mode.from_tensor(torch.randn(2, 3, 9, 10)))
        assert out.shape == (2, 3, 5, 5)
        meta = BlurPool1D(2, filt_size=3).to("meta")
        assert meta(torch.empty(1, 2, 17, device="meta")).shape == (1, 2, 9)


def test_onnx_export_is_pad_and_conv_and_matches_onnxruntime(tmp_path):
    """Every pad type x filter sizes 1-7, strides 1-3, an odd input size, dynamic batch (run at 1 and 3)."""
    configs = ALL_CONFIGS
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = Branches(configs).eval()
    x = torch.randn(3, 2, 13, 11)
    path = tmp_path / "blur.onnx"
    expected = {n: model(x[:n]) for n in (1, 3)}
    with no_eager_kernels():
        torch.onnx.export(model, (x,), str(path), dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch")},),
                          input_names=["x"])
    graph = onnx.load(str(path)).graph
    op_types = {node.op_type for node in graph.node}
    assert op_types <= {"Pad", "Conv"} and "Conv" in op_types, op_types
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 3):
        got = session.run(None, {"x": x[:n].numpy()})
        assert len(got) == len(expected[n]) == len(configs)
        for a, b in zip(got, expected[n]):
            torch.testing.assert_close(torch.from_numpy(a), b, rtol=1e-5, atol=1e-5)


def test_functional_exports_and_caches_nothing_made_while_tracing():
    from antialiased import layers

    class Functional(nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return layers.blur_pool2d(t, 5, 2, "reflect")

    x = torch.randn(2, 3, 10, 9)
    layers._FILTERS.clear()
    program = torch.export.export(Functional(), (x,))
    assert not layers._FILTERS  # a filter made from fake tensors must not reach later eager calls
    torch.testing.assert_close(program.module()(x), layers.blur_pool2d(x, 5, 2, "reflect"))
