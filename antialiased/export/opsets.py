"""Which ONNX opsets the installed exporter writes and the installed onnxruntime runs.

The default opset of an export is the newest in both ranges, found at run time (never a number
written into this package), so that upgrading torch, onnxscript or onnxruntime moves it:

- **Exporter**: ``torch.onnx.export(..., dynamo=True)`` translates each aten op with onnxscript's
  torchlib, written against one opset (``TORCHLIB_OPSET``, 18 in torch 2.5-2.14), then converts the
  graph with onnxscript's version converter, whose supported range is
  ``SUPPORTED_MIN_ONNX_OPSET..SUPPORTED_MAX_ONNX_OPSET`` (18..25 in onnxscript 0.7). Outside that
  range torch hands the graph to onnx's C converter and, where that fails, silently keeps opset 18;
  those opsets are not offered. The top is also capped by ``onnx.defs.onnx_opset_version()``.
- **onnxruntime**: there is no API that names its newest opset, so :func:`onnxruntime_max_opset`
  asks it: a one-node ``Identity`` model is opened for each opset, from the newest that ``onnx``
  knows downwards, until onnxruntime accepts one (it refuses unknown opsets when a session is
  created). Each probe takes about a millisecond; the answer is cached.

Every export also checks the opset written in the file against the one asked for.
"""
from __future__ import annotations

import functools

import torch

from antialiased.errors import ConfigError, MissingDependencyError
from antialiased.export._optional import INSTALL_HINT, require

__all__ = ["exporter_opsets", "onnxruntime_max_opset", "default_opset", "resolve_opset"]


@functools.lru_cache(maxsize=1)
def exporter_opsets() -> range:
    """The opsets torch's ONNX exporter writes with its own translation and converter (see module doc).

    Example:
        >>> r = exporter_opsets()
        >>> r.start >= 18 and r.stop - 1 >= r.start
        True
    """
    onnx = require("onnx")
    require("onnxscript")
    from torch.onnx._internal.exporter import _constants  # private: read with fallbacks below

    low = getattr(_constants, "TORCHLIB_OPSET", 18)
    try:
        from onnxscript.version_converter import _version_converter as converter

        low = max(low, converter.SUPPORTED_MIN_ONNX_OPSET)
        high = converter.SUPPORTED_MAX_ONNX_OPSET
    except (ImportError, AttributeError):  # an onnxscript without these names: torchlib's own opset only
        high = low
    return range(low, min(high, onnx.defs.onnx_opset_version()) + 1)


def _runtime_accepts(ort, onnx, opset: int) -> bool:
    helper = onnx.helper
    value = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [value],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    opset_id = helper.make_opsetid("", opset)
    model = helper.make_model(graph, opset_imports=[opset_id],
                              ir_version=helper.find_min_ir_version_for([opset_id]))
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime raises its own Fail/InvalidGraph types for unknown opsets
        return False
    return True


@functools.lru_cache(maxsize=1)
def onnxruntime_max_opset() -> int:
    """The newest default-domain opset that the installed onnxruntime opens (probed; see module doc).

    Example:
        >>> onnxruntime_max_opset() >= 18
        True
    """
    ort, onnx = require("onnxruntime"), require("onnx")
    for opset in range(onnx.defs.onnx_opset_version(), 0, -1):
        if _runtime_accepts(ort, onnx, opset):
            return opset
    raise MissingDependencyError(f"onnxruntime {ort.__version__} opens no ONNX model at all; reinstall it: "
                                 f"{INSTALL_HINT}")


def default_opset() -> int:
    """The newest opset that both the exporter writes and onnxruntime runs.

    Example:
        >>> default_opset() in exporter_opsets() and default_opset() <= onnxruntime_max_opset()
        True
    """
    exporter, runtime = exporter_opsets(), onnxruntime_max_opset()
    if runtime < exporter.start:
        ort = require("onnxruntime")
        raise MissingDependencyError(
            f"onnxruntime {ort.__version__} runs opsets up to {runtime}, older than any the exporter writes "
            f"({_span(exporter)}); upgrade it: pip install -U onnxruntime")
    return min(exporter.stop - 1, runtime)


def _span(r: range) -> str:
    return f"{r.start}-{r.stop - 1}" if len(r) > 1 else str(r.start)


def resolve_opset(opset: int | None, *, runtime: bool = True) -> int:
    """Check a requested opset (or pick the default) for an export.

    Args:
        opset: the opset asked for, or None for :func:`default_opset`.
        runtime: the file will be run in onnxruntime (verification), so the opset must be one it
            runs. Without it and with onnxruntime missing, the default is the exporter's newest.

    Raises:
        ConfigError: an opset the exporter cannot write, or (``runtime``) onnxruntime cannot run.

    Example:
        >>> resolve_opset(exporter_opsets().start)
        18
        >>> resolve_opset(99)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        antialiased.errors.ConfigError: --opset 99: the installed exporter ... writes opsets 18-...
    """
    if opset is None:
        if runtime:
            return default_opset()
        try:
            return default_opset()
        except MissingDependencyError:
            return exporter_opsets().stop - 1
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise ConfigError(f"--opset must be an integer, got {opset!r}")
    exporter = exporter_opsets()
    if opset not in exporter:
        onnxscript = require("onnxscript")
        raise ConfigError(
            f"--opset {opset}: the installed exporter (torch {torch.__version__}, onnxscript "
            f"{onnxscript.__version__}) writes opsets {_span(exporter)}; choose one of those, or leave "
            f"--opset out for the newest that onnxruntime also runs")
    if runtime and opset > onnxruntime_max_opset():
        ort = require("onnxruntime")
        raise ConfigError(
            f"--opset {opset}: onnxruntime {ort.__version__} runs opsets up to {onnxruntime_max_opset()}, so "
            f"the file could not be verified; choose --opset {onnxruntime_max_opset()} or lower, upgrade "
            f"onnxruntime, or pass --no-verify")
    return opset
