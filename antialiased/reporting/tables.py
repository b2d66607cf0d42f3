"""The paper's per-network tables: one row per variant, Pareto front in bold, dominated in italics.

The marking rule of the paper's README: a variant is *italicized* (name and values) when another
variant is at least as good in both accuracy and consistency and better in one; the others form
the Pareto front and get a **bold** name; the highest value of each column is **bold**. Every row
names the weights it was measured with (a "Weights" column); rows of untrained models read
"random (untrained)", with a note under the table.
"""
from __future__ import annotations

import csv
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from antialiased.evaluation.protocols import record_task, table_labels, table_values
from antialiased.reporting.grouping import (RANDOM_NOTE, RowKey, dataset_labels, is_random_weights, row_details,
                                             row_key, unique_runs, weights_text)

__all__ = [
    "Metric",
    "Variant",
    "arch_title",
    "markdown_report",
    "markdown_table",
    "pareto_front",
    "summarize",
    "table_title",
    "variant_label",
    "write_csv",
]

# The paper's names for the binomial filters of each size; other sizes read "LPF-N".
_FILTER_LABELS = {2: "Rect-2", 3: "Tri-3", 4: "Tri-4", 5: "Bin-5"}

# Display names of architecture families (longest prefix first), as the paper's table titles.
_ARCH_FAMILIES = (
    ("wide_resnet", "Wide-ResNet"),
    ("resnext", "ResNeXt"),
    ("resnet", "ResNet"),
    ("densenet", "DenseNet"),
    ("mobilenet_v2", "MobileNet-v2"),
    ("alexnet", "AlexNet"),
    ("vgg", "VGG"),
)


def variant_label(filter_size: int | None) -> str:
    """The paper's row label of a filter size (``None``: the baseline).

    Example:
        >>> [variant_label(n) for n in (None, 2, 3, 4, 5, 7)]
        ['Baseline', 'Rect-2', 'Tri-3', 'Tri-4', 'Bin-5', 'LPF-7']
    """
    if filter_size is None:
        return "Baseline"
    return _FILTER_LABELS.get(filter_size, f"LPF-{filter_size}")


def arch_title(arch: str) -> str:
    """A display name for an architecture key, as the paper's table titles.

    Example:
        >>> arch_title("resnet50"), arch_title("vgg16_bn"), arch_title("mobilenet_v2"), arch_title("mynet")
        ('ResNet50', 'VGG16bn', 'MobileNet-v2', 'mynet')
    """
    for prefix, name in _ARCH_FAMILIES:
        if arch.startswith(prefix):
            rest = arch[len(prefix):]
            return name + (rest[:-3] + "bn" if rest.endswith("_bn") else rest)
    return arch


@dataclass(frozen=True)
class Metric:
    """A metric over one or more runs: mean, sample standard deviation (0 for one run), count."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Metric | None":
        values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
        if not values:
            return None
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(statistics.fmean(values), std, len(values))

    def format(self, digits: int = 2) -> str:
        text = f"{self.mean:.{digits}f}"
        return text + (f" ± {self.std:.{digits}f}" if self.n > 1 else "")


@dataclass
class Variant:
    """One table row: a model of a network on one dataset, its metrics and its marks.

    ``dataset`` is the evaluated folder (None: not recorded); ``dataset_label`` its short name,
    set when the network's results span several datasets (one table each). ``source``, ``method``
    and ``weights`` (the weights' kind) tell models of one name apart; ``detail`` is what the row
    label adds when another row of the table has the same filter size. ``duplicates``: identical
    re-runs left out (each run counts once).
    """

    arch: str
    model: str
    filter_size: int | None
    acc: Metric | None
    cons: Metric | None
    sources: list[str] = field(default_factory=list)
    pareto: bool | None = None  # None: not ranked (a metric is missing)
    best_acc: bool = False
    best_cons: bool = False
    dataset: str | None = None
    dataset_label: str | None = None
    source: str | None = None
    method: str | None = None
    weights: str | None = None
    detail: str = ""
    duplicates: int = 0
    weights_labels: list[str | None] = field(default_factory=list)
    task: str = "classification"

    @property
    def label(self) -> str:
        base = variant_label(self.filter_size)
        return f"{base} ({self.detail})" if self.detail else base

    @property
    def weights_text(self) -> str:
        """The weights this row was measured with, as the report names them (see ``grouping.weights_text``)."""
        return weights_text(self.weights_labels, self.model)

    @property
    def random_weights(self) -> bool:
        """Measured with untrained (randomly initialized) weights."""
        return any(is_random_weights(label) for label in self.weights_labels)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For each (x, y) point, whether no other point is >= in both and > in one (higher is better).

    Example:
        >>> pareto_front([(56.55, 78.18), (57.24, 81.33), (56.72, 82.54), (56.58, 82.51)])
        [False, True, True, False]
    """
    def dominated(p: tuple[float, float]) -> bool:
        return any(q[0] >= p[0] and q[1] >= p[1] and (q[0] > p[0] or q[1] > p[1]) for q in points)

    return [not dominated(p) for p in points]


def _mark(variants: list[Variant]) -> None:
    ranked = [v for v in variants if v.acc is not None and v.cons is not None]
    for v, on_front in zip(ranked, pareto_front([(v.acc.mean, v.cons.mean) for v in ranked])):
        v.pareto = on_front
    accs = [v.acc.mean for v in variants if v.acc is not None]
    conss = [v.cons.mean for v in variants if v.cons is not None]
    for v in variants:
        v.best_acc = v.acc is not None and v.acc.mean == max(accs)
        v.best_cons = v.cons is not None and v.cons.mean == max(conss)


@dataclass
class _Slot:
    filter_size: int | None = None
    acc: list[float] = field(default_factory=list)
    cons: list[float] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    duplicates: int = 0
    weights: list[str | None] = field(default_factory=list)
    task: str = "classification"


def _collect(records: Iterable[dict[str, Any]]) -> dict[RowKey, _Slot]:
    kept, dropped = unique_runs(records)
    slots: dict[RowKey, _Slot] = {}
    for r in kept:
        slot = slots.setdefault(row_key(r), _Slot())
        if r.get("filter_size") is not None:
            slot.filter_size = int(r["filter_size"])
        acc, cons = table_values(r)  # the two columns of the record's task, as the protocol registry says
        if acc is not None:
            slot.acc.append(acc)
        if cons is not None:
            slot.cons.append(cons)
        if acc is not None or cons is not None:
            slot.task = record_task(r)
        if r.get("source"):
            slot.sources.append(r["source"])
        if r.get("weights") not in slot.weights:
            slot.weights.append(r.get("weights"))
    for r in dropped:  # an identical re-run of a kept record: the same row
        slots[row_key(r)].duplicates += 1
    return slots


def _rows(keys: list[RowKey], slots: dict[RowKey, _Slot], dataset_label: str | None) -> list[Variant]:
    details: dict[RowKey, str] = {}
    for size in {slots[k].filter_size for k in keys}:
        same = [k for k in keys if slots[k].filter_size == size]
        if len(same) > 1:
            details.update(row_details(same))
    rows = []
    for k in keys:
        s = slots[k]
        rows.append(Variant(k.arch, k.model, s.filter_size, Metric.of(s.acc), Metric.of(s.cons),
                            sorted(set(s.sources)), dataset=k.dataset, dataset_label=dataset_label, source=k.source,
                            method=k.method, weights=k.weights, detail=details.get(k, ""), duplicates=s.duplicates,
                            weights_labels=list(s.weights), task=s.task))
    rows.sort(key=lambda v: (v.filter_size is not None, v.filter_size or 0, v.model, v.detail))
    _mark(rows)
    return rows


def summarize(records: Iterable[dict[str, Any]]) -> dict[str, list[Variant]]:
    """Merge result records per network (``arch``), dataset and model; rank them and mark the Pareto front.

    Accuracy (``metrics.acc1``) and consistency (``metrics.consistency``) of a model may come from
    different records (not from ``-ed`` records, whose Acc@1 is over the diagonal crops). A row is
    one model on one dataset (see :mod:`antialiased.reporting.grouping`: also its source, method
    and weights kind); its runs with different seeds are averaged, keeping their spread, and an
    identical re-run counts once (``Variant.duplicates``). A network evaluated on one dataset is
    the table ``arch``; on several, one table per dataset, ``"<arch> @ <dataset's short name>"``.
    Rows are ordered baseline first, then by filter size.
    """
    slots = _collect(records)
    labels = dataset_labels(k.dataset for k in slots)
    by_arch: dict[str, list[RowKey]] = {}
    for key in slots:
        by_arch.setdefault(key.arch, []).append(key)
    tables: dict[str, list[Variant]] = {}
    for arch, keys in by_arch.items():
        datasets = list(dict.fromkeys(k.dataset for k in keys))
        for dataset in datasets:
            split = len(datasets) > 1
            name = f"{arch} @ {labels[dataset]}" if split else arch
            tables[name] = _rows([k for k in keys if k.dataset == dataset], slots, labels[dataset] if split else None)
    return tables


def _cell(metric: Metric | None, dominated: bool, best: bool, digits: int) -> str:
    if metric is None:
        return "–"
    text = metric.format(digits)
    if dominated:
        return f"*{text}*"
    return f"**{text}**" if best else text


def markdown_table(variants: Sequence[Variant], *, title: str | None = None, digits: int = 2,
                   weights: bool = True) -> str:
    """A table in the paper's format (Pareto-front names bold, dominated rows italic, best bold), with the
    weights of each row (``weights=False``: the paper's three columns only).

    Example:
        >>> rows = summarize([
        ...     {"arch": "net", "model": "net", "weights": "random", "metrics": {"acc1": 70.0, "consistency": 80.0}},
        ...     {"arch": "net", "model": "net_lpf3", "filter_size": 3, "weights": "published:net_lpf3",
        ...      "metrics": {"acc1": 71.0, "consistency": 85.0}},
        ... ])["net"]
        >>> print(markdown_table(rows))  # doctest: +ELLIPSIS
        |          | Accuracy | Consistency | Weights |
        | :------: | :------: | :---------: | :------ |
        | *Baseline* | *70.00* | *80.00* | random (untrained) |
        | **Tri-3** | **71.00** | **85.00** | published |
        <BLANKLINE>
        random (untrained): measured with randomly initialized weights, never trained; ...
    """
    lines = [f"**{title}**", ""] if title else []
    accuracy, consistency = table_labels(variants[0].task if variants else "classification")
    lines += [f"|          | {accuracy} | {consistency} |" + (" Weights |" if weights else ""),
              "| :------: | :------: | :---------: |" + (" :------ |" if weights else "")]
    for v in variants:
        dominated = v.pareto is False
        name = f"*{v.label}*" if dominated else f"**{v.label}**" if v.pareto else v.label
        lines.append(f"| {name} | {_cell(v.acc, dominated, v.best_acc, digits)} | "
                     f"{_cell(v.cons, dominated, v.best_cons, digits)} |" + (f" {v.weights_text} |" if weights else ""))
    if weights and any(v.random_weights for v in variants):
        lines += ["", RANDOM_NOTE]
    return "\n".join(lines)


def table_title(rows: Sequence[Variant], default: str = "") -> str:
    """A network's display name, with the short name of its dataset when its results span several."""
    if not rows:
        return arch_title(default)
    first = rows[0]
    return arch_title(first.arch) + (f" on {first.dataset_label}" if first.dataset_label else "")


def markdown_report(tables: dict[str, list[Variant]], *, digits: int = 2) -> str:
    """All networks' tables, each titled with the network's display name and the dataset it was evaluated on.

    Ends with the number of identical re-runs left out, if any.
    """
    parts = []
    for name, rows in tables.items():
        dataset = rows[0].dataset if rows else None
        title = f"**{arch_title(rows[0].arch if rows else name)}**" + (f" (data: {dataset})" if dataset else "")
        parts.append(f"{title}\n\n{markdown_table(rows, digits=digits)}")
    text = "\n\n".join(parts) + "\n"
    duplicates = sum(v.duplicates for rows in tables.values() for v in rows)
    if duplicates:
        text += (f"\n{duplicates} duplicate run{'s' if duplicates != 1 else ''} ignored (identical re-runs: same "
                 f"model, weights, data, classes, protocol, settings and seed; each run counts once).\n")
    return text


def write_csv(tables: dict[str, list[Variant]], path: str | os.PathLike) -> Path:
    """One CSV row per network, dataset and variant with means, spreads, run counts, marks and identity
    (``weights``: the kind; ``weights_used``: every weights label of the row's runs; ``random_weights``: 1 for
    untrained models)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ["arch", "model", "variant", "filter_size", "acc1", "acc1_std", "acc1_runs", "consistency",
               "consistency_std", "consistency_runs", "pareto", "best_acc1", "best_consistency", "dataset", "source",
               "method", "weights", "duplicates_ignored", "weights_used", "random_weights"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for rows in tables.values():
            for v in rows:
                acc, cons = v.acc, v.cons
                writer.writerow([
                    v.arch, v.model, v.label, "" if v.filter_size is None else v.filter_size,
                    "" if acc is None else f"{acc.mean:.4f}", "" if acc is None else f"{acc.std:.4f}",
                    0 if acc is None else acc.n,
                    "" if cons is None else f"{cons.mean:.4f}", "" if cons is None else f"{cons.std:.4f}",
                    0 if cons is None else cons.n,
                    "" if v.pareto is None else int(v.pareto), int(v.best_acc), int(v.best_cons),
                    v.dataset or "", v.source or "", v.method or "", v.weights or "", v.duplicates,
                    ";".join("" if w is None else str(w) for w in v.weights_labels), int(v.random_weights),
                ])
    return path
