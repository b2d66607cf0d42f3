"""Tracing and export: tracers see the layer's one operator (``antialiased::blur_pool``, through its
fake implementation, never a kernel), whose registered decomposition is plain Pad + depthwise Conv:
what exported programs (after ``run_decompositions``), ONNX files and onnxruntime get, with the
same outputs as eager."""
from __future__ import annotations

import contextlib
import itertools

import pytest
import torch
from torch import nn

from antialiased.layers import DECOMPOSITIONS, BlurPool, BlurPool1D, _conv, _ops, _separable, _taps

PAD_TYPES = ("reflect", "replicate", "zero", "circular")


pytestmark = pytest.mark.usefixtures("one_thread")


class _Refuse:
    @staticmethod
    def forward(*args, **kwargs):
        raise AssertionError("an eager kernel ran while tracing")

    backward = forward


@contextlib.contextmanager
def no_eager_kernels():
    """Fail if a traced call reaches the operator's kernels or their caches keyed on data."""
    def refuse(*args, **kwargs):
        raise AssertionError("an eager kernel ran while tracing")

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(_ops.KERNELS, "cpu", _Refuse)
        patch.setattr(_taps, "separable_taps", refuse)
        patch.setattr(_separable, "separable_forward", refuse)
        yield


def _targets(program: torch.export.ExportedProgram) -> set[str]:
    return {str(n.target) for n in program.graph.nodes if n.op == "call_function"}


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
            portable = program.run_decompositions(DECOMPOSITIONS)
            decomposed = [portable.module()(x) for x in inputs]
        assert _targets(program) == {"antialiased.blur_pool.default"}  # the one entry point
        assert "aten.conv2d.default" in _targets(portable) and not any("antialiased" in t for t in _targets(portable))
        exported = [program.module()(x) for x in inputs]  # the operator: the eager kernels again
        for got, plain, want in zip(exported, decomposed, expected):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
            torch.testing.assert_close(plain, want, rtol=1e-6, atol=1e-6)


def test_jit_trace_records_the_operator():
    layer = BlurPool(3, pad_type="reflect", filt_size=5, stride=2)
    x = torch.randn(1, 3, 13, 11)
    traced = torch.jit.trace(layer, (x,))  # its sanity check reruns the layer eagerly: no patching here
    kinds = {node.kind() for node in traced.graph.nodes()}
    assert "prim::PythonOp" not in kinds and "antialiased::blur_pool" in kinds, kinds
    x2 = torch.randn(1, 3, 13, 11)
    torch.testing.assert_close(traced(x2), layer(x2))


def test_fake_and_meta_tensors_run_the_fake_implementation():
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
    _conv._BINOMIAL.clear()
    with no_eager_kernels():
        program = torch.export.export(Functional(), (x,)).run_decompositions(DECOMPOSITIONS)
    assert not _conv._BINOMIAL  # a filter made from fake tensors must not reach later eager calls
    torch.testing.assert_close(program.module()(x), layers.blur_pool2d(x, 5, 2, "reflect"))


def test_exported_program_files_load_without_the_package(tmp_path):
    """antialiased.export writes .pt2 programs with the operators decomposed (Pad + Conv): nothing
    in the file needs this package to be imported."""
    from antialiased.export import VerifySettings, export_model

    model = nn.Sequential(nn.Conv2d(3, 4, 3), BlurPool(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    result = export_model(model.eval(), tmp_path / "m.pt2", format="exported-program", input_size=20,
                          verify=VerifySettings(random_batches=(1, 3)))
    assert result.verification.passed
    targets = _targets(torch.export.load(result.path))
    assert "aten.conv2d.default" in targets and not any("antialiased" in t for t in targets), targets
