"""Run an exported file and the PyTorch model on the same inputs and compare the logits.

ONNX files run in onnxruntime on the CPU; ``.pt2`` files are loaded with ``torch.export.load``.
The inputs are photos (or generated images when no folder is given) and random tensors, at
several batch sizes when the batch dimension is dynamic. A file passes when every logit is
within ``atol + rtol * (the sample's largest |reference logit|)`` of PyTorch's eval-mode output.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import torch
from torch import nn

from antialiased.errors import AntialiasedError, ConfigError, MissingFileError, ModelError
from antialiased.export._optional import require
from antialiased.export.metadata import EXTRA_FILE, ExportMetadata, eval_resize, preprocessing_of
from antialiased.export.samples import SampleSet, find_images, generated_samples, photo_samples, random_samples

__all__ = ["VerifySettings", "Comparison", "VerificationReport", "VerificationError", "verify_onnx",
           "verify_exported_program"]

Runner = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class VerifySettings:
    """What verification runs: ``num_images`` photos from ``data`` (generated images when None),
    random inputs at ``random_batches``, compared with tolerance ``atol + rtol * max |reference logit|`` per sample."""

    data: str | os.PathLike | None = None
    num_images: int = 8
    random_batches: tuple[int, ...] = (1, 3)
    atol: float = 1e-4
    rtol: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_images < 1 or not self.random_batches or min(self.random_batches) < 1:
            raise ConfigError("verification needs at least one image and positive random batch sizes")
        if not (self.atol >= 0 and self.rtol >= 0):
            raise ConfigError(f"tolerances must be >= 0, got atol={self.atol}, rtol={self.rtol}")
        if self.data is not None:
            find_images(self.data)  # a missing or empty folder fails now, not after a long export


@dataclass(frozen=True)
class Comparison:
    """One batch of inputs: largest absolute logit difference and top-1 agreement."""

    description: str
    count: int
    max_abs_diff: float
    max_abs_logit: float
    top1_agree: int
    within_tolerance: bool

    def line(self) -> str:
        flag = "" if self.within_tolerance else "  <-- beyond tolerance"
        return (f"{self.description}: max |diff| {self.max_abs_diff:.1e} (largest |logit| {self.max_abs_logit:.1e}), "
                f"top-1 agreement {self.top1_agree}/{self.count}{flag}")


@dataclass(frozen=True)
class VerificationReport:
    """The comparisons of one verification run; ``passed`` when all are within tolerance."""

    runtime: str
    comparisons: tuple[Comparison, ...]
    atol: float
    rtol: float

    @property
    def passed(self) -> bool:
        return all(c.within_tolerance for c in self.comparisons)

    @property
    def max_abs_diff(self) -> float:
        return max(c.max_abs_diff for c in self.comparisons)

    @property
    def top1(self) -> tuple[int, int]:
        """(agreeing, total) top-1 predictions over all inputs."""
        return sum(c.top1_agree for c in self.comparisons), sum(c.count for c in self.comparisons)

    def summary(self) -> str:
        agree, total = self.top1
        verdict = "passed" if self.passed else "FAILED"
        lines = [f"verification: {self.runtime} vs PyTorch eval, tolerance |diff| <= {self.atol:g} + "
                 f"{self.rtol:g} * the sample's largest |logit|"]
        lines += [f"  {c.line()}" for c in self.comparisons]
        lines.append(f"{verdict}: max |diff| {self.max_abs_diff:.1e}, top-1 agreement {agree}/{total}")
        scale = max(c.max_abs_logit for c in self.comparisons)
        if scale < 100 * self.atol:
            lines.append(f"note: the logits are tiny (at most {scale:.1e}; randomly initialized weights?), so the "
                         f"absolute tolerance says little here; verify with trained weights")
        return "\n".join(lines)


class VerificationError(AntialiasedError, RuntimeError):
    """The exported file's outputs differ from PyTorch's beyond tolerance; ``report`` has the numbers."""

    def __init__(self, message: str, report: VerificationReport) -> None:
        super().__init__(message)
        self.report = report

    def __reduce__(self):
        return (type(self), (str(self), self.report))


def _compare(description: str, got: torch.Tensor, ref: torch.Tensor, atol: float, rtol: float) -> Comparison:
    got, ref = got.double(), ref.double()
    if got.shape != ref.shape:
        raise VerificationError(f"the exported file returned shape {tuple(got.shape)} for {description}, PyTorch "
                                f"{tuple(ref.shape)}", VerificationReport("", (), atol, rtol))
    diff = (got - ref).abs()
    # Rounding error in a logit scales with its sample's activations, not with the logit itself: a
    # logit near 0 beside logits of 1e3 carries the same absolute error as they do.
    scale = ref.abs().flatten(1).amax(1).view(-1, *[1] * (ref.dim() - 1)) if ref.dim() > 1 else ref.abs()
    return Comparison(description, ref.shape[0], float(diff.max()), float(ref.abs().max()),
                      int((got.argmax(1) == ref.argmax(1)).sum()), bool((diff <= atol + rtol * scale).all()))


def _fixed_batch(run: Runner, batch: int) -> Runner:
    """Run any number of inputs through a file with a static batch: chunks, the last one padded."""

    def run_chunks(x: torch.Tensor) -> torch.Tensor:
        outs = []
        for start in range(0, x.shape[0], batch):
            chunk = x[start:start + batch]
            pad = batch - chunk.shape[0]
            padded = torch.cat([chunk, chunk[:1].expand(pad, *chunk.shape[1:])]) if pad else chunk
            outs.append(run(padded)[:chunk.shape[0]])
        return torch.cat(outs)

    return run_chunks


def _sample_sets(meta: ExportMetadata, settings: VerifySettings) -> list[SampleSet]:
    if settings.data is not None:
        images = photo_samples(settings.data, settings.num_images, meta)
    else:
        images = generated_samples(settings.num_images, meta, settings.seed)
    return [images, *random_samples(settings.random_batches, meta.input_size, settings.seed)]


def file_preprocessing(props: Mapping[str, str] | None, hw: tuple[int, int], model: nn.Module) -> ExportMetadata:
    """The preprocessing a file records in its metadata; where it records none (a file exported by
    other means), the one the model's weights expect, at the file's input size."""
    try:
        meta = ExportMetadata.from_props(props or {})
        if meta.input_size == hw:
            return meta
    except (KeyError, ValueError):
        pass
    mean, std, ratio = preprocessing_of(model)
    return ExportMetadata("", "", "", hw, 0, mean, std, eval_resize(hw, ratio))


def compare_with_model(run: Runner, model: nn.Module, meta: ExportMetadata, static_batch: int | None,
                       runtime: str, settings: VerifySettings) -> VerificationReport:
    """Compare ``run`` (the exported file) with ``model`` in eval mode on the verification inputs,
    photos preprocessed as ``meta`` says."""
    if static_batch is not None:
        run = _fixed_batch(run, static_batch)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    comparisons = []
    try:
        for samples in _sample_sets(meta, settings):
            with torch.no_grad():
                ref = model(samples.inputs.to(device)).float().cpu()
            comparisons.append(_compare(samples.description, run(samples.inputs), ref, settings.atol, settings.rtol))
    finally:
        model.train(was_training)
    return VerificationReport(runtime, tuple(comparisons), settings.atol, settings.rtol)


def _contract_error(what: str) -> ConfigError:
    return ConfigError(f"the file does not follow the export contract (one float32 input [batch, 3, H, W], "
                       f"one output of logits): {what}")


def onnx_session(source: str | os.PathLike | bytes):
    """An onnxruntime CPU session for an ONNX file (path or bytes), using torch's thread count."""
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise MissingFileError(f"ONNX file not found: {os.fspath(source)}")
    try:
        return ort.InferenceSession(source if isinstance(source, bytes) else os.fspath(source), options,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own Fail / InvalidGraph / NotImplemented types
        what = "the exported model" if isinstance(source, bytes) else os.fspath(source)
        raise ModelError(f"onnxruntime {ort.__version__} cannot load {what}: {str(exc).strip()[:500]}") from exc


def _onnx_runner(session) -> tuple[Runner, int | None, tuple[int, int]]:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise _contract_error(f"{len(inputs)} inputs and {len(outputs)} outputs")
    shape = inputs[0].shape
    if inputs[0].type != "tensor(float)" or len(shape) != 4 or shape[1] != 3 or \
            not all(isinstance(d, int) for d in shape[2:]):
        raise _contract_error(f"input {inputs[0].name!r} is {inputs[0].type} {shape}")
    name = inputs[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.contiguous().numpy()})[0])

    return run, shape[0] if isinstance(shape[0], int) else None, (shape[2], shape[3])


def verify_onnx(source: str | os.PathLike | bytes, model: nn.Module,
                settings: VerifySettings | None = None) -> VerificationReport:
    """Run an ONNX file (path or bytes) in onnxruntime (CPU) and compare it with ``model``.

    The input size, whether the batch is static, and the photos' preprocessing (the metadata
    :func:`export_model` records) come from the file itself.

    Raises:
        MissingDependencyError: onnxruntime is not installed.
        ConfigError: the file does not take one float NCHW input and return one output.
    """
    ort = require("onnxruntime")
    session = onnx_session(source)
    run, static_batch, hw = _onnx_runner(session)
    meta = file_preprocessing(session.get_modelmeta().custom_metadata_map, hw, model)
    return compare_with_model(run, model, meta, static_batch, f"onnxruntime {ort.__version__} (CPU)",
                              settings or VerifySettings())


def _program_runner(program: torch.export.ExportedProgram) -> tuple[Runner, int | None, tuple[int, int]]:
    names = set(program.graph_signature.user_inputs)
    vals = [n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder" and n.name in names]
    if len(vals) != 1 or vals[0] is None or vals[0].dim() != 4:
        raise _contract_error(f"{len(vals)} user inputs")
    shape = list(vals[0].shape)
    if shape[1] != 3 or not all(isinstance(d, int) for d in shape[2:]):
        raise _contract_error(f"input shape {shape}")
    module = program.module()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = module(x)
        if not isinstance(out, torch.Tensor):
            raise _contract_error(f"it returned a {type(out).__name__}")
        return out

    return run, shape[0] if isinstance(shape[0], int) else None, (shape[2], shape[3])


def verify_exported_program(source: str | os.PathLike | bytes | torch.export.ExportedProgram, model: nn.Module,
                            settings: VerifySettings | None = None) -> VerificationReport:
    """Load a ``.pt2`` file (path or bytes) with ``torch.export.load``, run it, and compare it with ``model``."""
    extra = {EXTRA_FILE: ""}
    if isinstance(source, torch.export.ExportedProgram):
        program = source
    elif isinstance(source, bytes):
        program = torch.export.load(io.BytesIO(source), extra_files=extra)
    elif not Path(source).is_file():
        raise MissingFileError(f"exported program not found: {os.fspath(source)}")
    else:
        program = torch.export.load(Path(source), extra_files=extra)
    run, static_batch, hw = _program_runner(program)
    meta = file_preprocessing(json.loads(extra[EXTRA_FILE]) if extra[EXTRA_FILE] else None, hw, model)
    return compare_with_model(run, model, meta, static_batch, f"torch.export.load (torch {torch.__version__})",
                              settings or VerifySettings())
