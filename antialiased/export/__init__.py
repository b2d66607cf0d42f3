"""Deploy anti-aliased models: ONNX (torch's torch.export-based exporter) and torch.export programs.

:func:`export_model` writes a file with one input (a normalized float32 NCHW batch, dynamic batch
dimension by default) and one output (raw logits), with the model name, filter size, weights,
input size and normalization in its metadata; with ``verify=VerifySettings(...)`` it first runs the
file (onnxruntime on the CPU, or ``torch.export.load``) on photos and random inputs and compares it
with PyTorch. :func:`verify_onnx` and :func:`verify_exported_program` check a file later.

``onnx``, ``onnxscript`` and ``onnxruntime`` are optional (``pip install 'antialiased[export]'``);
they are imported only when used, and a missing one raises :class:`MissingDependencyError` with
the pip command.

Example::

    from antialiased.export import VerifySettings, export_model, load_model
    loaded = load_model("resnet50_lpf4", pretrained=True)
    result = export_model(loaded.model, "resnet50_lpf4.onnx", name=loaded.name,
                          weights_source=loaded.weights_source, verify=VerifySettings(data="imagenet/val"))
    print(result.summary())
    print(result.verification.summary())
"""
from antialiased.export.exporter import (
    BATCH_DIM,
    FORMATS,
    INPUT_NAME,
    OUTPUT_NAME,
    ExportResult,
    check_export,
    export_model,
    exported_program_bytes,
    onnx_bytes,
    trace_model,
)
from antialiased.export.loading import LoadedModel, load_model
from antialiased.export.metadata import EXTRA_FILE, ExportMetadata
from antialiased.export.opsets import default_opset, exporter_opsets, onnxruntime_max_opset, resolve_opset
from antialiased.export.verify import (
    Comparison,
    VerificationError,
    VerificationReport,
    VerifySettings,
    onnx_session,
    verify_exported_program,
    verify_onnx,
)

__all__ = [
    "BATCH_DIM",
    "EXTRA_FILE",
    "FORMATS",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "Comparison",
    "ExportMetadata",
    "ExportResult",
    "LoadedModel",
    "VerificationError",
    "VerificationReport",
    "VerifySettings",
    "check_export",
    "default_opset",
    "export_model",
    "exported_program_bytes",
    "exporter_opsets",
    "load_model",
    "onnx_bytes",
    "onnx_session",
    "onnxruntime_max_opset",
    "resolve_opset",
    "trace_model",
    "verify_exported_program",
    "verify_onnx",
]
