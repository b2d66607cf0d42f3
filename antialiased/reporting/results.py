"""Reading and writing result JSON files (schema ``antialiased.result/1``)."""
from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

__all__ = ["RESULT_SCHEMA", "load_results", "make_result", "save_result"]

RESULT_SCHEMA = "antialiased.result/1"

# Fields an entry of a "results" list inherits from its file when it does not set them itself.
_INHERITED = ("schema", "weights", "protocol", "dataset", "seed", "device", "settings", "created",
              "antialiased_version")


def make_result(*, model: str, arch: str, filter_size: int | None, weights: str, protocol: str,
                metrics: dict[str, Any], dataset: str | None = None, seed: int | None = None,
                device: str = "cpu", counts: dict[str, int] | None = None,
                settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """One result record in the shared schema (metrics in percent).

    Example:
        >>> r = make_result(model="resnet50_lpf4", arch="resnet50", filter_size=4, weights="random",
        ...                 protocol="accuracy", metrics={"acc1": 1.0})
        >>> r["schema"], r["metrics"]["acc1"]
        ('antialiased.result/1', 1.0)
    """
    from antialiased import __version__

    return {
        "schema": RESULT_SCHEMA, "model": model, "arch": arch, "filter_size": filter_size,
        "weights": weights, "protocol": protocol, "dataset": dataset, "seed": seed, "device": device,
        "metrics": dict(metrics), "counts": dict(counts or {}), "skipped_files": [],
        "settings": dict(settings or {}),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "antialiased_version": __version__,
    }


def save_result(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``result`` as JSON atomically (temporary file + rename), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _expand(paths: Iterable[str | os.PathLike]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob("*.json"))
            if not found:
                raise FileNotFoundError(f"no *.json result files in the folder {p}")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"result file {p} does not exist (pass JSON files written by "
                                    f"'antialiased eval' or 'antialiased demo', or a folder of them)")
    return files


def _check_entry(entry: Any, source: Path) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ValueError(f"{source}: a result must be a JSON object, got {type(entry).__name__}")
    if entry.get("schema") != RESULT_SCHEMA:
        raise ValueError(f"{source}: not an antialiased result (expected \"schema\": \"{RESULT_SCHEMA}\", "
                         f"got {entry.get('schema')!r})")
    for key in ("model", "arch", "metrics"):
        if key not in entry:
            raise ValueError(f"{source}: result for {entry.get('model', '?')!r} lacks the field {key!r}")
    if not isinstance(entry["metrics"], dict):
        raise ValueError(f"{source}: \"metrics\" of {entry['model']!r} must be an object")
    return entry


def load_results(paths: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """Read result files (or folders of them) into a flat list of result records.

    A file holds one record, or a top-level record with a ``"results"`` list (the demo writes all
    its variants into one file); list entries inherit the file's run-wide fields. Each record gets
    ``"source"``, the file it came from.
    """
    records: list[dict[str, Any]] = []
    for path in _expand(paths):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        if isinstance(data, dict) and isinstance(data.get("results"), list):
            for entry in data["results"]:
                if isinstance(entry, dict):
                    entry = {**{k: data[k] for k in _INHERITED if k in data}, **entry}
                records.append({**_check_entry(entry, path), "source": str(path)})
        else:
            records.append({**_check_entry(data, path), "source": str(path)})
    return records
