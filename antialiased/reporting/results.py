"""Reading result JSON files (schema ``antialiased.result/1``, written by
:func:`antialiased.evaluation.results.write_result`)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from antialiased.evaluation.results import SCHEMA as RESULT_SCHEMA

__all__ = ["RESULT_SCHEMA", "load_results"]

# Fields an entry of a "results" list inherits from its file when it does not set them itself.
_INHERITED = ("schema", "weights", "protocol", "dataset", "seed", "device", "settings", "created",
              "antialiased_version")


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
