"""The optional packages of export (``pip install 'antialiased[export]'``), imported only when used."""
from __future__ import annotations

from types import ModuleType

from antialiased.errors import MissingDependencyError

__all__ = ["INSTALL_HINT", "require"]

INSTALL_HINT = "pip install 'antialiased[export]'"

# package -> what needs it, for the error message
_PURPOSE = {
    "onnx": "writing ONNX files",
    "onnxscript": "torch's ONNX exporter (torch.onnx.export(..., dynamo=True))",
    "onnxruntime": "running and verifying ONNX files",
}


def require(name: str) -> ModuleType:
    """Import the optional top-level package ``name``, or raise :class:`MissingDependencyError` with the pip command.

    Example:
        >>> require("json").__name__
        'json'
    """
    try:
        # __import__, not importlib: a test may patch builtins.__import__ to simulate a missing package
        return __import__(name)
    except ImportError as exc:
        purpose = _PURPOSE.get(name, "export")
        raise MissingDependencyError(
            f"{name} is not installed; it is needed for {purpose}. Install the export extra: {INSTALL_HINT}"
        ) from exc
