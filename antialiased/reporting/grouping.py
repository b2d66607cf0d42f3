"""Which result records describe the same model on the same data, and which are the same run twice.

A table row is one model on one dataset: its name, where the architecture and the anti-aliasing
come from (``model_spec``'s source and method) and the kind of weights (the paper's files,
torchvision's, a local file or checkpoint, ...). Runs of one row with different seeds are averaged;
an identical re-run (same model, weights, data, classes, protocol, settings and seed) counts once.
Records written before these fields existed lack them: a missing field is unknown, and unknowns
group together, as before.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Iterable, Sequence

__all__ = ["RowKey", "row_key", "weights_kind", "unique_runs", "dataset_labels", "row_details",
           "RANDOM_WEIGHTS", "RANDOM_NOTE", "is_random_weights", "weights_text"]

# A local file and a training checkpoint are the same kind of weights: a model trained here. Two
# training seeds give two checkpoints whose results are averaged, as seeds are.
_LOCAL = {"file", "checkpoint"}

# Fields that make two records the same run; "created", "source" (the file read), "device" and the
# metrics themselves do not (a re-run may differ by floating-point noise).
_RUN_FIELDS = ("model", "arch", "filter_size", "method", "label", "model_spec", "weights", "dataset", "classes",
               "protocol", "settings", "seed", "counts")


@dataclass(frozen=True)
class RowKey:
    """One table row: a model on a dataset (None: a record that does not say)."""

    arch: str
    dataset: str | None
    model: str
    source: str | None
    method: str | None
    weights: str | None


def weights_kind(label: Any) -> str | None:
    """The kind of a result's ``weights`` label, the part before ``:``; local files and checkpoints are ``local``,
    untrained models (``random``, ``baseline:random``) ``random``.

    Example:
        >>> [weights_kind(w) for w in ("published:resnet18_lpf4", "checkpoint:/r/best.pth", "file:/w.pth", "random",
        ...                            "baseline:random")]
        ['published', 'local', 'local', 'random', 'random']
    """
    if label is None:
        return None
    if is_random_weights(label):  # an anti-aliased model started from a random baseline is untrained too
        return "random"
    kind = str(label).split(":", 1)[0]
    return "local" if kind in _LOCAL else kind


def row_key(record: dict[str, Any]) -> RowKey:
    """The row of a record: its model on its data, with the model's source, method and weights kind."""
    spec = record.get("model_spec") if isinstance(record.get("model_spec"), dict) else {}
    method = spec.get("method", record.get("method"))
    dataset = record.get("dataset")
    return RowKey(str(record["arch"]), None if dataset is None else str(dataset), str(record["model"]),
                  spec.get("family", spec.get("source")), None if method is None else str(method),
                  weights_kind(record.get("weights")))


def _run_id(record: dict[str, Any]) -> str | None:
    if record.get("seed") is None:
        return None  # no seed: each run is an independent random draw, never a duplicate
    return json.dumps({k: record.get(k) for k in _RUN_FIELDS}, sort_keys=True, default=str)


def unique_runs(records: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(kept, duplicates)``: identical re-runs reduced to their newest record (by ``created``).

    Example:
        >>> run = {"model": "m", "arch": "a", "protocol": "accuracy", "seed": 0, "metrics": {"acc1": 1.0}}
        >>> kept, dropped = unique_runs([run, {**run, "created": "2030"}, {**run, "seed": 1}, {**run, "seed": None}])
        >>> [(r["seed"], r.get("created")) for r in kept], len(dropped)
        ([(0, '2030'), (1, None), (None, None)], 1)
    """
    kept: list[dict[str, Any]] = []
    where: dict[str, int] = {}
    dropped: list[dict[str, Any]] = []
    for record in records:
        run = _run_id(record)
        if run is None or run not in where:
            if run is not None:
                where[run] = len(kept)
            kept.append(record)
            continue
        i = where[run]
        newer = str(record.get("created") or "") > str(kept[i].get("created") or "")
        dropped.append(kept[i] if newer else record)
        if newer:
            kept[i] = record
    return kept, dropped


def dataset_labels(datasets: Iterable[str | None]) -> dict[str | None, str]:
    """A short name per dataset: its last path parts, as many as tell the datasets apart (at least two).

    Example:
        >>> list(dataset_labels(["/data/cifar10/val", "/data/imagenet/val", None, "generated:shapes"]).values())
        ['cifar10/val', 'imagenet/val', 'unknown data', 'generated:shapes']
        >>> list(dataset_labels(["/a/x/val", "/b/x/val"]).values())
        ['a/x/val', 'b/x/val']
    """
    names = list(dict.fromkeys(datasets))
    parts = {d: PurePath(d).parts if d else () for d in names}
    depth = 2
    while True:
        labels = {d: "/".join(p[-depth:]) if d else "unknown data" for d, p in parts.items()}
        if len(set(labels.values())) == len(labels) or depth >= max((len(p) for p in parts.values()), default=0):
            return labels
        depth += 1


def row_details(keys: Sequence[RowKey]) -> dict[RowKey, str]:
    """What tells apart rows that share a label (in a table, one filter size): the fields in which they differ.

    E.g. the paper's resnet18_lpf4 and the same name converted with APS and trained here.

    Example:
        >>> a = RowKey("resnet18", None, "resnet18_lpf4", "paper", "blurpool", "published")
        >>> b = RowKey("resnet18", None, "resnet18_lpf4", "torchvision", "aps", "local")
        >>> row_details([a, b])[b]
        'aps, torchvision, local weights'
    """
    details = {}
    for key in keys:
        same = [k for k in keys if k != key]
        fields = []
        for name, value in (("model", key.model), ("method", key.method), ("source", key.source),
                            ("weights", key.weights)):
            if any(getattr(k, name) != value for k in same):
                text = "unknown" if value is None else str(value)
                fields.append(f"{text} weights" if name == "weights" else text)
        details[key] = ", ".join(fields)
    return details


#: How a report marks results of untrained models, and the note it prints under such a table.
RANDOM_WEIGHTS = "random (untrained)"
RANDOM_NOTE = (f"{RANDOM_WEIGHTS}: measured with randomly initialized weights, never trained; such figures "
               f"describe an untrained network (chance-level accuracy), not a method")

# How each kind of weights label reads in a report: the kind's words, then what follows its ':'.
_KIND_WORDS = {"published": "published", "torchvision": "torchvision", "timm": "timm", "checkpoint": "checkpoint",
               "file": "file", "memory": "in-memory"}
_LABEL_WORDS = {"demo": "trained by the demo"}


def is_random_weights(label: Any) -> bool:
    """Whether a result's ``weights`` label means an untrained model (``random``, or a model
    initialized from a randomly initialized baseline, ``baseline:random``).

    Example:
        >>> [is_random_weights(w) for w in ("random", "baseline:random", "baseline:torchvision:IMAGENET1K_V1", None)]
        [True, True, False, False]
    """
    if label is None:
        return False
    kind, _, rest = str(label).partition(":")
    return kind == "random" or (kind == "baseline" and is_random_weights(rest))


def _short_path(path: str) -> str:
    parts = PurePath(path).parts
    return "/".join(parts[-2:]) if len(parts) > 2 else path


def _one_label(label: Any, model: str | None) -> str:
    if label is None:
        return "weights not recorded"
    text = str(label)
    if is_random_weights(text):
        return RANDOM_WEIGHTS
    kind, _, rest = text.partition(":")
    if kind == "baseline":
        return f"baseline-initialized from {_one_label(rest, None)}"
    if kind in ("checkpoint", "file"):
        return f"{kind} {_short_path(rest)}"
    if kind == "published" and rest == model:
        return "published"
    if kind in _KIND_WORDS and rest:
        return f"{_KIND_WORDS[kind]} {rest}"
    return _LABEL_WORDS.get(text, text)


def weights_text(labels: Iterable[Any], model: str | None = None) -> str:
    """The weights of a table row, as the report names them (each label once, in order).

    ``labels`` are result records' ``weights`` labels (``published:resnet18_lpf4``,
    ``torchvision:IMAGENET1K_V1``, ``timm:resnet18.a1_in1k``, ``checkpoint:/runs/a/best.pth``,
    ``baseline:...``, ``random``); ``model`` is the row's model, whose own published weights read
    just "published". Random weights read :data:`RANDOM_WEIGHTS`.

    Example:
        >>> weights_text(["published:resnet18_lpf4"], "resnet18_lpf4"), weights_text(["random"])
        ('published', 'random (untrained)')
        >>> weights_text(["checkpoint:/runs/s0/best.pth", "checkpoint:/runs/s1/best.pth"])
        'checkpoint s0/best.pth, checkpoint s1/best.pth'
        >>> weights_text(["baseline:torchvision:IMAGENET1K_V1", None])
        'baseline-initialized from torchvision IMAGENET1K_V1, weights not recorded'
    """
    texts = [_one_label(label, model) for label in labels]
    return ", ".join(dict.fromkeys(texts)) or "weights not recorded"
