"""The result JSON (schema ``antialiased.result/1``) shared by evaluation, demo and report."""
from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from antialiased import __version__
from antialiased.evaluation.bootstrap import record_interval_methods
from antialiased.support.files import write_new_file

__all__ = ["SCHEMA", "make_result", "write_result"]

SCHEMA = "antialiased.result/1"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_result(*, model: str, arch: str, filter_size: int | None, weights: str, protocol: str, dataset: str,
                seed: int | None, device: str, metrics: dict[str, Any], counts: dict[str, int],
                skipped_files: list[str], settings: dict[str, Any], classes: list[str] | None = None,
                skip_reasons: dict[str, str] | None = None, model_spec: dict[str, Any] | None = None,
                weights_info: dict[str, Any] | None = None, task: str | None = None) -> dict[str, Any]:
    """A result record; metrics are percentages (0-100).

    ``classes`` (the dataset's class list, in the model's output order), ``skip_reasons`` (why each
    skipped file was left out), ``model_spec`` and ``weights_info`` (the model's own records, see
    :func:`antialiased.models.create_model`) and ``task`` (classification, segmentation) are recorded
    when given.

    Example:
        >>> r = make_result(model="resnet18_lpf4", arch="resnet18", filter_size=4, weights="random",
        ...                 protocol="accuracy", dataset="/data/val", seed=0, device="cpu",
        ...                 metrics={"acc1": 50.0}, counts={"images": 2, "skipped": 0}, skipped_files=[],
        ...                 settings={}, classes=["cat", "dog"])
        >>> r["schema"], r["classes"]
        ('antialiased.result/1', ['cat', 'dog'])
    """
    metrics = record_interval_methods(metrics)  # each interval's method next to it: reports label from there
    record = {"schema": SCHEMA, "model": model, "arch": arch, "filter_size": filter_size, "weights": weights,
              "protocol": protocol, "dataset": dataset, "seed": seed, "device": device, "metrics": metrics,
              "counts": counts, "skipped_files": skipped_files, "settings": settings, "created": _now(),
              "antialiased_version": __version__}
    optional = {"classes": classes, "skip_reasons": skip_reasons, "model_spec": model_spec,
                "weights_info": weights_info, "task": task}
    record.update({k: v for k, v in optional.items() if v is not None})
    return record


def write_result(result: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write ``results_<model>_<protocol>_<timestamp>.json`` into ``out_dir``; returns its path.

    Atomic, and never over an existing file: a second result of the same second (or a concurrent
    writer) gets ``_1``, ``_2``, ... (see :func:`antialiased.support.files.write_new_file`).

    Raises:
        OutputError: the folder cannot be written (the message names it and the fix).
    """
    stamp = result["created"].replace(":", "").replace("-", "")
    safe_model = re.sub(r"[^A-Za-z0-9_.-]", "_", result["model"])
    data = (json.dumps(result, indent=2, default=float) + "\n").encode("utf-8")
    return write_new_file(out_dir, f"results_{safe_model}_{result['protocol']}_{stamp}", ".json", data)
