"""Model names are resolved first thing in every command, before any data folder is scanned, any weight
downloaded or any output folder created: an unknown or mistyped name (with the closest names), a
filter size outside the method's range or a missing optional extra (timm) ends the command at once
(one line, exit status 2, through :mod:`antialiased.cli._errors`)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from antialiased.models import ModelSpec, get_model_spec

__all__ = ["resolve_names"]


def resolve_names(names: Iterable[str], method: str | None = None,
                  options: Mapping[str, Any] | None = None) -> list[ModelSpec]:
    """The specs of ``names`` (``-a``), with ``--aa-method`` and ``--aa-option``; raises the package's errors.

    Example:
        >>> [spec.name for spec in resolve_names(["resnet18_lpf4", "resnet18"])]
        ['resnet18_lpf4', 'resnet18']
    """
    return [get_model_spec(name, method=method, options=options) for name in names]
