"""Export a model to ONNX (torch's torch.export-based exporter) or to a torch.export program (.pt2).

The contract of every exported file: one input, a normalized float32 NCHW batch (``input``,
``[batch, 3, H, W]``; the batch dimension is dynamic unless fixed with ``static_batch``); one
output, the raw logits (``logits``, ``[batch, classes]``). No preprocessing and no softmax inside:
resize, crop and normalize as :class:`ExportMetadata` records in the file.
"""
from __future__ import annotations

import io
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from antialiased.errors import ConfigError, ModelError, OutputError
from antialiased.export._optional import require
from antialiased.export.metadata import (EXTRA_FILE, ExportMetadata, antialiasing_of, blur_filter_sizes, eval_resize,
                                         identity_of, input_hw, preprocessing_of)
from antialiased.export.opsets import resolve_opset
from antialiased.export.verify import (VerificationError, VerificationReport, VerifySettings, verify_exported_program,
                                       verify_onnx)
from antialiased.layers import DECOMPOSITIONS
from antialiased.support.files import atomic_write_bytes

__all__ = ["FORMATS", "INPUT_NAME", "OUTPUT_NAME", "BATCH_DIM", "ExportResult", "check_export", "export_model", "trace_model",
           "onnx_bytes", "exported_program_bytes"]

FORMATS: dict[str, str] = {"onnx": ".onnx", "exported-program": ".pt2"}  # format -> usual file suffix
INPUT_NAME, OUTPUT_NAME, BATCH_DIM = "input", "logits", "batch"
_STANDARD_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote.

    Attributes:
        path: the file.
        format: ``"onnx"`` or ``"exported-program"``.
        opset: the ONNX opset of the file (None for exported programs).
        input_shape: ``(batch, 3, H, W)``; ``batch`` is the string ``"batch"`` when dynamic.
        size_bytes: size of the file.
        metadata: what the file records about itself.
        op_counts: ONNX operator types and how often each occurs (empty for exported programs).
        nonstandard_ops: operators outside the standard ONNX domain (none for the paper's models).
        verification: the comparison with PyTorch, when it ran.
    """

    path: Path
    format: str
    opset: int | None
    input_shape: tuple[int | str, ...]
    size_bytes: int
    metadata: ExportMetadata
    op_counts: Mapping[str, int] = field(default_factory=dict)
    nonstandard_ops: tuple[str, ...] = ()
    verification: VerificationReport | None = None

    def summary(self) -> str:
        meta = self.metadata
        kind = f"ONNX opset {self.opset}" if self.format == "onnx" else "torch.export program"
        batch = self.input_shape[0]
        shape = ", ".join(str(d) for d in self.input_shape)
        names = (f" {INPUT_NAME!r}", f" {OUTPUT_NAME!r}") if self.format == "onnx" else ("", "")
        lines = [f"wrote {self.path} ({self.size_bytes / 2**20:.1f} MiB): {meta.model_name} as {kind}",
                 f"  input{names[0]} float32 [{shape}] ({'dynamic' if batch == BATCH_DIM else 'static'} batch), "
                 f"output{names[1]} [{batch}, {meta.num_classes}] raw logits",
                 f"  weights: {meta.weights}; blur filter size: {meta.filter_size}; anti-aliasing method: "
                 f"{meta.method} (source: {meta.source})"]
        if self.op_counts:
            ops = ", ".join(f"{op} {n}" for op, n in sorted(self.op_counts.items(), key=lambda kv: (-kv[1], kv[0])))
            lines.append(f"  ops: {ops}")
        if self.nonstandard_ops:
            lines.append(f"  operators outside the standard ONNX domain: {', '.join(self.nonstandard_ops)}")
        return "\n".join(lines)


def _check_output(path: str | os.PathLike, force: bool) -> Path:
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"--out {path} is a folder; give the path of the file to write, e.g. {path / 'model.onnx'}")
    if path.exists() and not force:
        raise OutputError(f"--out {path} exists; pass --force (force=True) to replace it, or choose another path")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: the folder {parent} is not writable; choose another --out")
    return path


def check_export(path: str | os.PathLike, *, format: str = "onnx", opset: int | None = None,
                 input_size: int | tuple[int, int] = 224, static_batch: int | None = None, force: bool = False,
                 verify: bool = True) -> int | None:
    """The quick checks of an export request, before any model is built; returns the opset to write.

    Raises :class:`ConfigError` (bad format, opset, size or batch), :class:`OutputError` (the path
    exists without ``force``, is a folder or is not writable) or :class:`MissingDependencyError`.

    Example:
        >>> import tempfile
        >>> check_export(f"{tempfile.mkdtemp()}/m.pt2", format="exported-program") is None
        True
    """
    _check_request(format, opset, static_batch, verify)
    input_hw(input_size)
    _check_output(path, force)
    return resolve_opset(opset, runtime=verify) if format == "onnx" else None


def _check_request(format: str, opset: int | None, static_batch: int | None, verify: bool) -> None:
    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if format != "onnx" and opset is not None:
        raise ConfigError(f"--opset applies to --format onnx only, not {format}; leave it out")
    if static_batch is not None and (isinstance(static_batch, bool) or not isinstance(static_batch, int)
                                     or static_batch < 1):
        raise ConfigError(f"--static-batch must be a positive integer, got {static_batch!r}")
    if format == "onnx":
        require("onnx"), require("onnxscript")
        if verify:
            require("onnxruntime")


def _output_classes(model: nn.Module, example: torch.Tensor, name: str) -> int:
    try:
        with torch.no_grad():
            out = model(example)
    except RuntimeError as exc:  # typically: the input is too small for the architecture
        raise ConfigError(f"{name} fails on an input of shape {list(example.shape)} ({str(exc).splitlines()[0]}); "
                          f"if the input is too small for this architecture, use a larger --input-size") from exc
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        got = f"shape {list(out.shape)}" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
        raise ModelError(f"{name} returns {got}; export needs a model whose output is one tensor of logits "
                         f"[batch, classes] (call .eval() first for models with auxiliary outputs)")
    return out.shape[1]


def trace_model(model: nn.Module, example: torch.Tensor, *, dynamic_batch: bool = True,
                name: str = "the model") -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``model`` on ``example`` (dimension 0 dynamic if ``dynamic_batch``).

    Raises:
        ModelError: torch.export cannot capture the model, e.g. code that fixes the batch size.
    """
    dynamic_shapes = ({0: torch.export.Dim(BATCH_DIM, min=1)},) if dynamic_batch else None
    try:
        return torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes)
    except (torch._dynamo.exc.UserError, torch._dynamo.exc.Unsupported) as exc:
        first = str(exc).strip().splitlines()[0]
        hint = (" The model fixes its batch size: export with --static-batch N (static_batch=N)."
                if dynamic_batch and BATCH_DIM in str(exc) else "")
        raise ModelError(f"torch.export cannot capture {name}: {first}.{hint}") from exc


def onnx_bytes(program: torch.export.ExportedProgram, opset: int, metadata: ExportMetadata, *,
               dynamic_batch: bool = True):
    """The ONNX file of ``program`` (torch's torch.export-based exporter), with ``metadata`` recorded.

    Returns ``(bytes, onnx.ModelProto)``.
    """
    try:
        onnx_program = torch.onnx.export(
            program, dynamo=True, opset_version=opset, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: BATCH_DIM},) if dynamic_batch else None, verbose=False)
    except torch.onnx.OnnxExporterError as exc:
        raise ModelError(f"torch.onnx cannot convert {metadata.model_name} to ONNX opset {opset}: "
                         f"{str(exc).strip().splitlines()[0]}; --format exported-program writes the "
                         f"torch.export program instead") from exc
    written = onnx_program.model.opset_imports.get("")
    if written != opset:
        raise ModelError(f"the exporter wrote opset {written} instead of the requested {opset}; choose another --opset")
    onnx_program.model.metadata_props.update(metadata.to_props())
    onnx_program.model.doc_string = (f"{metadata.model_name}: {metadata.to_props()['input']} -> "
                                     f"{metadata.to_props()['output']}")
    proto = onnx_program.model_proto
    try:
        return proto.SerializeToString(), proto
    except ValueError as exc:  # protobuf's 2 GiB limit
        raise ModelError(f"{metadata.model_name} is larger than 2 GiB, the limit of a single-file ONNX model "
                         f"({exc}); --format exported-program has no such limit") from exc


def exported_program_bytes(program: torch.export.ExportedProgram, metadata: ExportMetadata) -> bytes:
    """``torch.export.save`` of ``program`` with ``metadata`` as the extra file ``antialiased.json``.

    The layers' operators are decomposed first (Pad + Conv, indexing), so the file loads without
    this package."""
    buffer = io.BytesIO()
    torch.export.save(program.run_decompositions(DECOMPOSITIONS), buffer, extra_files={EXTRA_FILE: metadata.to_json()})
    return buffer.getvalue()


def _op_summary(proto) -> tuple[dict[str, int], tuple[str, ...]]:
    nodes = list(proto.graph.node) + [n for f in proto.functions for n in f.node]
    counts = Counter(n.op_type for n in proto.graph.node)
    odd = sorted({f"{n.domain}::{n.op_type}" for n in nodes if n.domain not in _STANDARD_DOMAINS}
                 | {f"function {f.domain}::{f.name}" for f in proto.functions})
    return dict(counts), tuple(odd)


def _metadata(model: nn.Module, name: str, weights_source: str | None, hw: tuple[int, int],
              num_classes: int) -> ExportMetadata:
    mean, std, ratio = preprocessing_of(model)
    if weights_source is None:  # the record the registry attaches to the models it builds, if any
        weights_source = getattr(getattr(model, "weights_info", None), "label", None) or "not recorded"
    sizes = ",".join(map(str, blur_filter_sizes(model))) or "none"
    source, method = antialiasing_of(model)
    classes, data = identity_of(model, num_classes)
    return ExportMetadata(name, sizes, weights_source, hw, num_classes, mean, std, eval_resize(hw, ratio),
                          source=source, method=method, classes=classes, data=data)


def _readable_by_others(path: Path) -> None:
    # atomic_write_bytes's temporary file is created 0600; a deployed model should get the usual
    # permissions (0666 minus the umask), as a plain open() would have given it.
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(path, 0o666 & ~umask)
    except OSError:
        pass  # a file system without permissions


def _verify(data: bytes, format: str, model: nn.Module, settings: VerifySettings) -> VerificationReport:
    check = verify_onnx if format == "onnx" else verify_exported_program
    report = check(data, model, settings)
    if not report.passed:
        raise VerificationError(f"the exported file's outputs differ from PyTorch's beyond the tolerance (max "
                                f"|diff| {report.max_abs_diff:.1e}); the file was not written. Run with "
                                f"--no-verify to write it anyway.\n{report.summary()}", report)
    return report


def export_model(model: nn.Module, path: str | os.PathLike, *, format: str = "onnx", opset: int | None = None,
                 input_size: int | tuple[int, int] = 224, static_batch: int | None = None, force: bool = False,
                 name: str | None = None, weights_source: str | None = None,
                 verify: VerifySettings | None = None) -> ExportResult:
    """Export ``model`` (in eval mode) to ``path``, optionally verify it, and write it atomically.

    Args:
        model: any module mapping a float NCHW batch to logits, e.g. ``create_model(name)``; it
            is exported from the CPU (moved there and back) in eval mode (restored afterwards).
        path: the file to write; an existing file is refused unless ``force``.
        format: ``"onnx"`` or ``"exported-program"`` (``torch.export.save``, ``.pt2``).
        opset: ONNX opset; default the newest that the exporter writes and onnxruntime runs
            (:func:`antialiased.export.opsets.default_opset`).
        input_size: height and width of the input, an int or ``(H, W)``.
        static_batch: fix the batch dimension to this size (default: dynamic).
        force: replace an existing file.
        name, weights_source: recorded in the file's metadata (default: the class name, and the
            label of ``model.weights_info`` where the registry attached one).
        verify: compare the file with the model before writing it (see :class:`VerifySettings`);
            a file that disagrees is not written (:class:`VerificationError`).

    Example (ONNX, verified on generated images and random inputs)::

        >>> from antialiased.models import create_model
        >>> result = export_model(create_model("resnet18_lpf4"), "r18.onnx", name="resnet18_lpf4",
        ...                       verify=VerifySettings())  # doctest: +SKIP
        >>> print(result.verification.summary())  # doctest: +SKIP
    """
    opset = check_export(path, format=format, opset=opset, input_size=input_size, static_batch=static_batch,
                         force=force, verify=verify is not None)
    hw, path = input_hw(input_size), Path(path).expanduser()
    name = name or type(model).__name__
    example = torch.randn(static_batch or 2, 3, *hw, generator=torch.Generator().manual_seed(0))
    # Exported and verified on the CPU in float32, where onnxruntime runs it: a GPU reference would
    # differ by TF32 rounding. The model goes back to its device and mode afterwards.
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval().cpu()
    try:
        meta = _metadata(model, name, weights_source, hw, _output_classes(model, example, name))
        program = trace_model(model, example, dynamic_batch=static_batch is None, name=name)
        ops, odd = {}, ()
        if format == "onnx":
            data, proto = onnx_bytes(program, opset, meta, dynamic_batch=static_batch is None)
            ops, odd = _op_summary(proto)
        else:
            data = exported_program_bytes(program, meta)
        report = _verify(data, format, model, verify) if verify is not None else None
    finally:
        model.train(was_training).to(device)
    _check_output(path, force)  # again: the export took a while
    atomic_write_bytes(path, data)
    _readable_by_others(path)
    return ExportResult(path, format, opset, (static_batch or BATCH_DIM, 3, *hw), len(data), meta, ops, odd, report)
