"""The demo's table and plot: accuracy, crop-shift and circular-shift consistency per variant, over seeds.

Rows keep the order the variants were trained in; each cell is the mean ± sample standard
deviation over the records (seeds) of that variant; the best mean of each column is bold.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from antialiased.reporting import Metric

__all__ = ["COLUMNS", "VariantRow", "summarize_variants", "methods_table", "plot_methods", "describe_builds"]

# metric key of the result records -> column title (the first: the x axis of the plot; segmentation's in seg_run)
COLUMNS = {"acc1": "Accuracy", "consistency": "Crop-shift consistency", "circular_consistency": "Circular consistency"}


@dataclass
class VariantRow:
    """One variant over its runs: name, label, method (None: baseline), how it was built, a :class:`Metric` per column."""

    model: str
    label: str
    method: str | None
    call: str
    metrics: dict[str, Metric | None]
    runs: int


def summarize_variants(records: Iterable[dict[str, Any]], columns: Mapping[str, str] = COLUMNS) -> list[VariantRow]:
    """Group demo result records by model (first-seen order) and reduce each metric of ``columns`` over them.

    Example:
        >>> rows = summarize_variants([
        ...     {"model": "n", "label": "Baseline", "built": {"call": "n()"}, "metrics": {"acc1": 50.0}},
        ...     {"model": "n", "label": "Baseline", "built": {"call": "n()"}, "metrics": {"acc1": 52.0}}])
        >>> rows[0].metrics["acc1"].format(), rows[0].metrics["consistency"], rows[0].runs
        ('51.00 ± 1.41', None, 2)
    """
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(str(record["model"]), []).append(record)
    rows = []
    for model, runs in grouped.items():
        metrics = {key: Metric.of([r["metrics"].get(key) for r in runs]) for key in columns}
        first = runs[0]
        rows.append(VariantRow(model, str(first.get("label", model)), first.get("method"),
                               str(first.get("built", {}).get("call", "")), metrics, len(runs)))
    return rows


def methods_table(rows: Sequence[VariantRow], *, digits: int = 2, columns: Mapping[str, str] = COLUMNS) -> str:
    """A markdown table, one row per variant (the best mean of each column bold).

    Example:
        >>> rows = summarize_variants([{"model": "n", "label": "Baseline", "metrics": {"acc1": 50.0}},
        ...                            {"model": "n_aps", "label": "APS", "metrics": {"acc1": 49.0}}])
        >>> print(methods_table(rows))
        | | Accuracy | Crop-shift consistency | Circular consistency |
        | :-- | :--: | :--: | :--: |
        | Baseline | **50.00** | – | – |
        | APS | 49.00 | – | – |
    """
    best = {key: max((r.metrics[key].mean for r in rows if r.metrics[key] is not None), default=None)
            for key in columns}
    lines = ["| | " + " | ".join(columns.values()) + " |", "| :-- |" + " :--: |" * len(columns)]
    for row in rows:
        cells = []
        for key in columns:
            metric = row.metrics[key]
            text = "–" if metric is None else metric.format(digits)
            cells.append(f"**{text}**" if metric is not None and metric.mean == best[key] else text)
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_methods(rows: Sequence[VariantRow], path: str | os.PathLike, *, title: str,
                 columns: Mapping[str, str] = COLUMNS) -> Path:
    """Crop-shift and circular consistency (y) against accuracy (x), one panel each, error bars = std
    (``columns``: the first is the x axis, the others one panel each)."""
    from antialiased._plotting import pyplot, save_figure

    plt = pyplot()
    x_key, *panels = columns
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), dpi=120, squeeze=False)
    for ax, key in zip(axes[0], panels):
        for i, row in enumerate(rows):  # the baseline a square, as in the paper's plots
            acc, cons = row.metrics[x_key], row.metrics[key]
            if acc is None or cons is None:
                continue
            ax.errorbar(acc.mean, cons.mean, xerr=acc.std or None, yerr=cons.std or None, capsize=3, ms=7,
                        fmt="s" if row.method is None else "o", color=f"C{i % 10}")
            ax.annotate(row.label, (acc.mean, cons.mean), textcoords="offset points", xytext=(6, 4), fontsize=8)
        ax.set_xlabel(f"{columns[x_key]} (%)")
        ax.set_ylabel(f"{columns[key]} (%)")
        ax.grid(alpha=0.3)
        ax.margins(0.15)
    fig.suptitle(title)
    return save_figure(fig, path)


def describe_builds(records: Iterable[dict[str, Any]]) -> list[str]:
    """One line per variant (first-seen order): its label, the call that built it, what the conversion changed.

    Example:
        >>> describe_builds([{"model": "n", "label": "Baseline", "built": {"call": "n()"}}])
        ['Baseline: n()']
    """
    lines, seen = [], set()
    for record in records:
        if record["model"] in seen:
            continue
        seen.add(record["model"])
        built = record.get("built", {})
        line = f"{record.get('label', record['model'])}: {built.get('call', record['model'])}"
        summary = built.get("antialias_summary")
        if summary is not None:
            kinds: dict[str, int] = {}
            for change in summary["changed"]:
                kinds[change["kind"]] = kinds.get(change["kind"], 0) + 1
            line += " -> " + ", ".join(f"{n} {kind}" for kind, n in kinds.items()) + " sites changed"
            line += f", {len(summary['left_alone'])} left alone"
        lines.append(line)
    return lines
