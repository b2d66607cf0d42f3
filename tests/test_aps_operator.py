"""APS and LPS select their polyphase component through the one registered operator
(``torch.ops.antialiased.polyphase_select``) in eager mode, under ``torch.compile``, ``torch.export``
and ONNX export alike, and ``torch.func.vmap`` batches it (data, phase or both). Expected values come
from plain strided slicing, one sample at a time."""
from __future__ import annotations

import io
import itertools
import warnings

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from antialiased.layers import (DECOMPOSITIONS, AdaptivePolyphaseSampling, LearnablePolyphaseSampling,
                                adaptive_polyphase_sampling, blur_pool2d, polyphase_resample, polyphase_select)

pytestmark = pytest.mark.usefixtures("one_thread")

SELECT = torch.ops.antialiased.polyphase_select.default
SCATTER = torch.ops.antialiased.polyphase_scatter


def _select_loop(x: torch.Tensor, phase: torch.Tensor, sh: int, sw: int) -> torch.Tensor:
    return torch.stack([x[n, :, int(p) // sw::sh, int(p) % sw::sw] for n, p in enumerate(phase)])


class _Ops(TorchDispatchMode):
    """Records every operator that reaches the dispatcher."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[object] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen.append(func)
        return func(*args, **(kwargs or {}))


class _ApsNet(nn.Module):
    """Two APS subsamplings (the second takes the first's phase twice: a branch that must match)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")
        self.down = AdaptivePolyphaseSampling(2, circular=True)
        self.down_lpf = AdaptivePolyphaseSampling(2, filt_size=3, circular=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, phase = self.down(torch.relu(self.conv(x)), return_phase=True)
        return self.down_lpf(y) + polyphase_select(x, phase, 2).mean(1, keepdim=True)[:, :, ::2, ::2]


@pytest.mark.parametrize("call", ["aps", "aps-lpf", "lps-hard", "select"])
def test_eager_selection_is_the_registered_operator(call):
    torch.manual_seed(0)
    x, phase = torch.randn(3, 4, 8, 6), torch.tensor([3, 0, 2])
    calls = {
        "aps": lambda: adaptive_polyphase_sampling(x, 2, phase=phase),
        "aps-lpf": lambda: AdaptivePolyphaseSampling(2, filt_size=3)(x, phase=phase),
        "lps-hard": lambda: polyphase_resample(x, phase, 2),
        "select": lambda: polyphase_select(x, phase, 2),
    }
    with _Ops() as mode:
        out = calls[call]()
    assert mode.seen.count(SELECT) == 1
    assert "aten.index.Tensor" not in {str(op) for op in mode.seen}  # no second indexing path beside it
    source = blur_pool2d(x, filt_size=3, stride=1, pad_type="reflect") if call == "aps-lpf" else x
    torch.testing.assert_close(out, _select_loop(source, phase, 2, 2), rtol=0, atol=0)


def test_lps_eval_selection_goes_through_the_operator():
    torch.manual_seed(0)
    layer = LearnablePolyphaseSampling(4, circular=True).eval()
    x = torch.randn(2, 4, 8, 8)
    with _Ops() as mode:
        out, phase = layer(x, return_phase=True)
    assert mode.seen.count(SELECT) == 1
    torch.testing.assert_close(out, _select_loop(x, phase, 2, 2), rtol=0, atol=0)


def test_compile_records_the_operator_and_matches_eager():
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch.manual_seed(0)
    net = _ApsNet()
    x = torch.randn(2, 3, 8, 8)
    out = torch.compile(net, backend=backend, fullgraph=True)(x)
    targets = [n.target for g in graphs for n in g.graph.nodes if n.op == "call_function"]
    assert targets.count(SELECT) == 3, targets
    torch.testing.assert_close(out, net(x), rtol=0, atol=0)


def test_export_holds_the_operator_and_decomposes_to_indexing():
    torch.manual_seed(0)
    net = _ApsNet().eval()
    program = torch.export.export(net, (torch.randn(2, 3, 8, 8),))
    targets = [n.target for n in program.graph.nodes if n.op == "call_function"]
    assert targets.count(SELECT) == 3
    portable = program.run_decompositions(DECOMPOSITIONS)
    assert not any("antialiased" in str(n.target) for n in portable.graph.nodes)
    other = torch.randn(2, 3, 8, 8) * 3  # other data: other phases, chosen at run time
    torch.testing.assert_close(portable.module()(other), net(other), rtol=1e-6, atol=1e-6)


def test_onnx_runs_the_selection_in_onnxruntime():
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = _ApsNet().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(net, (torch.randn(2, 3, 8, 8),), dynamo=True, opset_version=18, verbose=False)
    assert not any("antialiased" in node.domain for node in program.model_proto.graph.node)
    session = ort.InferenceSession(io.BytesIO(program.model_proto.SerializeToString()).getvalue(),
                                   providers=["CPUExecutionProvider"])
    for seed in range(3):  # several inputs: different phases per sample
        x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
        (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        torch.testing.assert_close(torch.from_numpy(out), net(x).detach(), rtol=1e-5, atol=1e-5)


def test_vmap_batches_data_phase_or_both():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 2, 6, 9)  # vmapped over the first dimension: 3 x (4, 2, 6, 9)
    phases = torch.randint(0, 6, (3, 4))
    loop = torch.stack([_select_loop(a, p, 2, 3) for a, p in zip(x, phases)])
    both = torch.func.vmap(lambda t, p: polyphase_select(t, p, (2, 3)))(x, phases)
    torch.testing.assert_close(both, loop, rtol=0, atol=0)
    moved = x.movedim(0, 3)  # vmapped over another dimension, into another one
    data_only = torch.func.vmap(lambda t: polyphase_select(t, phases[0], (2, 3)), in_dims=3, out_dims=1)(moved)
    expected = torch.stack([_select_loop(a, phases[0], 2, 3) for a in x], 1)
    torch.testing.assert_close(data_only, expected, rtol=0, atol=0)
    phase_only = torch.func.vmap(lambda p: polyphase_select(x[0], p, (2, 3)))(phases)
    torch.testing.assert_close(phase_only, torch.stack([_select_loop(x[0], p, 2, 3) for p in phases]), rtol=0, atol=0)
    # the adjoint: each selection put back where it was taken, zeros elsewhere
    scattered = torch.func.vmap(lambda g, p: SCATTER(g, p, 2, 3, 6, 9))(loop, phases)
    expected = torch.zeros_like(x)
    for b, n in itertools.product(range(3), range(4)):
        p = int(phases[b, n])
        expected[b, n, :, p // 3::2, p % 3::3] = x[b, n, :, p // 3::2, p % 3::3]
    torch.testing.assert_close(scattered, expected, rtol=0, atol=0)
