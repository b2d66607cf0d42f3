"""The method layers (issue 19) export to ONNX and run in onnxruntime with the eager outputs.

ASAP is the interesting case: FFTs do not export to ONNX (opset <= 20), so the layer's exportable
path is its exact matrix form; LPS-LPF exports its scorer, argmax and selection.
"""
from __future__ import annotations

import io
import warnings

import pytest
import torch

from antialiased.layers import AdaptiveBlurPool, ASAPPool, LearnablePolyphaseSampling

pytest.importorskip("onnxscript")
ort = pytest.importorskip("onnxruntime")

LAYERS = {
    "asap": lambda: ASAPPool(2),
    "lps-lpf": lambda: LearnablePolyphaseSampling(8, filt_size=3, circular=True).eval(),
    "adaptive": lambda: AdaptiveBlurPool(8, groups=2).eval(),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_exports_to_onnx_with_the_same_outputs(name, one_thread):
    torch.manual_seed(0)
    layer = LAYERS[name]()
    x = torch.randn(2, 8, 12, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(layer, (x,), dynamo=True, opset_version=18, verbose=False)
    buffer = io.BytesIO(program.model_proto.SerializeToString())
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    torch.testing.assert_close(torch.from_numpy(out), layer(x).detach(), rtol=1e-5, atol=1e-5)
