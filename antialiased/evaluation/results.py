"""The result JSON (schema ``antialiased.result/1``) shared by evaluation, demo and report."""
from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA", "make_result", "write_result"]

SCHEMA = "antialiased.result/1"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_result(*, model: str, arch: str, filter_size: int | None, weights: str, protocol: str, dataset: str,
                seed: int | None, device: str, metrics: dict[str, Any], counts: dict[str, int],
                skipped_files: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    """A result record; metrics are percentages (0-100)."""
    from antialiased import __version__

    return {"schema": SCHEMA, "model": model, "arch": arch, "filter_size": filter_size, "weights": weights,
            "protocol": protocol, "dataset": dataset, "seed": seed, "device": device, "metrics": metrics,
            "counts": counts, "skipped_files": skipped_files, "settings": settings, "created": _now(),
            "antialiased_version": __version__}


def write_result(result: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write ``results_<model>_<protocol>_<timestamp>.json`` atomically into ``out_dir``; returns its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = result["created"].replace(":", "").replace("-", "")
    safe_model = re.sub(r"[^A-Za-z0-9_.-]", "_", result["model"])
    path = out_dir / f"results_{safe_model}_{result['protocol']}_{stamp}.json"
    n = 1
    while path.exists():  # two protocols or runs within one second
        path = out_dir / f"results_{safe_model}_{result['protocol']}_{stamp}_{n}.json"
        n += 1
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".tmp_result_", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(result, f, indent=2, default=float)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
