"""Consistency-vs-accuracy plots (matplotlib, written as PNG files).

Every point names its weights (a network's plot: under each point's label; the overview: in the
network's legend entry, or at each point where a network's rows differ); points of untrained
models are crossed out in red and the legend says "random (untrained)".
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from antialiased._plotting import pyplot, save_figure
from antialiased.evaluation.protocols import table_labels
from antialiased.reporting.grouping import RANDOM_WEIGHTS
from antialiased.reporting.tables import Variant, table_title

__all__ = ["plot_network", "plot_overview"]


def _ranked(variants: Sequence[Variant]) -> list[Variant]:
    return [v for v in variants if v.acc is not None and v.cons is not None]


def _cross_random(ax, rows: Sequence[Variant]) -> None:
    """A red cross over every point measured with random weights, with its legend entry."""
    random = [v for v in rows if v.random_weights]
    if random:
        ax.plot([v.acc.mean for v in random], [v.cons.mean for v in random], "x", color="C3", ms=11, mew=2,
                label=f"{RANDOM_WEIGHTS} weights", zorder=5)


def plot_network(variants: Sequence[Variant], path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Consistency (y) against accuracy (x) for one network's variants; the Pareto front dashed."""
    plt = pyplot()
    rows = _ranked(variants)
    fig, ax = plt.subplots(figsize=(5.2, 4.2), dpi=120)
    for v in rows:
        color = "0.45" if v.filter_size is None else "C0"
        ax.errorbar(v.acc.mean, v.cons.mean, xerr=v.acc.std or None, yerr=v.cons.std or None,
                    fmt="s" if v.filter_size is None else "o", color=color, ms=7, capsize=3,
                    mfc=color if v.pareto else "white")
        ax.annotate(v.label, (v.acc.mean, v.cons.mean), textcoords="offset points", xytext=(6, 5),
                    fontsize=9, fontweight="bold" if v.pareto else "normal",
                    fontstyle="italic" if v.pareto is False else "normal")
        ax.annotate(v.weights_text, (v.acc.mean, v.cons.mean), textcoords="offset points", xytext=(6, -8),
                    fontsize=7, color="C3" if v.random_weights else "0.35")
    front = sorted((v for v in rows if v.pareto), key=lambda v: v.acc.mean)
    if len(front) > 1:
        ax.plot([v.acc.mean for v in front], [v.cons.mean for v in front], "--", color="C3", lw=1,
                label="Pareto front")
    _cross_random(ax, rows)
    if len(front) > 1 or any(v.random_weights for v in rows):
        ax.legend(loc="lower right", fontsize=8)
    accuracy, consistency = table_labels(rows[0].task if rows else "classification")  # the task's columns
    ax.set_xlabel(f"{accuracy} (%)")
    ax.set_ylabel(f"{consistency} (%)")
    ax.set_title(title or table_title(rows))
    ax.grid(alpha=0.3)
    ax.margins(0.15)
    return save_figure(fig, path)


def plot_overview(tables: dict[str, Sequence[Variant]], path: str | os.PathLike) -> Path:
    """All networks on one consistency-vs-accuracy plot: a line per network through its variants,
    the baseline as a square, anti-aliased variants as circles (up and to the right is better).
    Each network's legend entry names its weights (each point does, where they differ)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5.2), dpi=120)
    for i, (arch, variants) in enumerate(tables.items()):
        rows = _ranked(variants)
        if not rows:
            continue
        color = f"C{i % 10}"
        texts = list(dict.fromkeys(v.weights_text for v in rows))
        ax.plot([v.acc.mean for v in rows], [v.cons.mean for v in rows], "-", color=color, lw=1,
                alpha=0.7, label=table_title(rows, arch) + (f" ({texts[0]})" if len(texts) == 1 else ""))
        for v in rows:
            ax.plot(v.acc.mean, v.cons.mean, "s" if v.filter_size is None else "o", color=color,
                    mfc="white" if v.filter_size is None else color, ms=6)
            if len(texts) > 1:  # the legend cannot name one: each point does
                ax.annotate(v.weights_text, (v.acc.mean, v.cons.mean), textcoords="offset points", xytext=(5, -8),
                            fontsize=6, color="C3" if v.random_weights else "0.35")
    _cross_random(ax, [v for variants in tables.values() for v in _ranked(variants)])
    tasks = {v.task for variants in tables.values() for v in variants}
    accuracy, consistency = table_labels(tasks.pop()) if len(tasks) == 1 else ("Accuracy / mIoU", "Consistency")
    ax.set_xlabel(f"{accuracy} (%)")
    ax.set_ylabel(f"{consistency} (%)")
    ax.set_title("Consistency vs accuracy (square: baseline)")
    ax.grid(alpha=0.3)
    if tables:
        ax.legend(fontsize=8, loc="best")
    return save_figure(fig, path)
