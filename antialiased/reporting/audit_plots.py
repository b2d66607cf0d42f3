"""The audit's PNG plots (matplotlib): metrics with intervals, consistency by distance, diagonal, layers.

Each model's legend entry names its weights (models with random weights are hatched and read
"random (untrained)"); interval labels name the methods the result records give (a Wilson
interval's bar is marked "W").
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from antialiased._plotting import pyplot, save_figure
from antialiased.evaluation.equivariance import plot_equivariance
from antialiased.reporting.grouping import is_random_weights, weights_text
from antialiased.reporting.intervals import axis_label, methods_of

__all__ = ["plot_metrics", "plot_distance", "plot_diagonal_curves", "write_audit_plots"]


def _errors(values: np.ndarray, cis: list) -> np.ndarray:
    """Error-bar lengths (2, n) from intervals, 0 where an interval is missing."""
    bars = np.zeros((2, len(values)))
    for i, (value, ci) in enumerate(zip(values, cis)):
        if ci and all(v is not None and np.isfinite(v) for v in ci):
            bars[:, i] = [max(0.0, value - ci[0]), max(0.0, ci[1] - value)]
    return bars


def _legend(model: dict[str, Any]) -> str:
    return f"{model['label']} ({model.get('weights_text') or weights_text([model.get('weights')], model.get('model'))})"


def _untrained(model: dict[str, Any]) -> bool:
    return bool(model.get("random_weights", is_random_weights(model.get("weights"))))


def plot_metrics(summary: dict[str, Any], path: Path) -> Path:
    """Every percentage figure as grouped horizontal bars, one colour per model, 95% intervals as whiskers."""
    plt = pyplot()
    figures = [f for f in summary["figures"] if f["unit"] == "%"]
    models = summary["models"]
    fig, ax = plt.subplots(figsize=(7.5, 0.5 + 0.45 * len(figures) * max(1, len(models)) ** 0.5), dpi=120)
    height = 0.8 / max(1, len(models))
    methods = []
    for i, m in enumerate(models):
        entries = [m["figures"].get(f["id"]) for f in figures]
        values = np.array([e["value"] if e else np.nan for e in entries])
        y = np.arange(len(figures)) + (i - (len(models) - 1) / 2) * height
        bars = _errors(values, [e and e.get("ci95") for e in entries])
        ax.barh(y, values, height=height * 0.9, xerr=bars, color=f"C{i % 10}", capsize=2, label=_legend(m),
                hatch="//" if _untrained(m) else None, edgecolor="white" if _untrained(m) else None)
        for row, (entry, value) in enumerate(zip(entries, values)):
            if entry and bars[:, row].any():
                methods += methods_of(entry.get("method"))
                if entry.get("method") == "wilson":
                    ax.annotate("W", (value + bars[1, row], y[row]), textcoords="offset points", xytext=(3, -3),
                                fontsize=6)
    ax.set_yticks(range(len(figures)), [f["label"] for f in figures], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"% ({axis_label(methods or ['none'])})")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Shift-invariance audit")
    return save_figure(fig, path)


def _curve_plot(summary: dict[str, Any], path: Path, key: str, x: str, y: str, labels: tuple[str, str, str]) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4), dpi=120)
    methods = []
    for i, m in enumerate(summary["models"]):
        curve = m["curves"].get(key)
        if not curve:
            continue
        xs, ys = np.asarray(curve[x]), np.asarray(curve[y])
        low = np.asarray(curve["low"]) if "low" in curve else np.asarray([c[0] for c in curve["ci95"]])
        high = np.asarray(curve["high"]) if "high" in curve else np.asarray([c[1] for c in curve["ci95"]])
        ax.plot(xs, ys, "--x" if _untrained(m) else "-o", ms=3, color=f"C{i % 10}", label=_legend(m))
        ax.fill_between(xs, low, high, color=f"C{i % 10}", alpha=0.2)
        methods += methods_of(curve.get("methods"))
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(f"{labels[2]} (bands: {axis_label(methods or [None])})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_distance(summary: dict[str, Any], path: Path) -> Path:
    """Top-1 agreement against the shift distance d, per model, 95% bands."""
    return _curve_plot(summary, path, "distance", "distances", "consistency",
                       ("shift distance d (crops (0,0) vs (0,d) and (d,0))", "top-1 agreement (%)",
                        "Consistency by shift distance"))


def plot_diagonal_curves(summary: dict[str, Any], path: Path) -> Path:
    """Mean true-class probability along the diagonal shifts, per model, 95% bands."""
    return _curve_plot(summary, path, "diagonal", "shifts", "mean_true_prob",
                       ("diagonal shift k (crop at offset (k, k))", "mean probability of the true class (%)",
                        "Diagonal stability"))


def write_audit_plots(summary: dict[str, Any], out_dir: Path) -> list[Path]:
    """The plots the audit's data allow: metrics.png, distance.png, diagonal.png, equivariance.png."""
    models = summary["models"]
    paths = []
    if any(m["figures"] for m in models):
        paths.append(plot_metrics(summary, out_dir / "metrics.png"))
    if any("distance" in m["curves"] for m in models):
        paths.append(plot_distance(summary, out_dir / "distance.png"))
    if any("diagonal" in m["curves"] for m in models):
        paths.append(plot_diagonal_curves(summary, out_dir / "diagonal.png"))
    profiles = {_legend(m): m["layers"] for m in models if m["layers"]}
    if profiles:
        paths.append(plot_equivariance(profiles, out_dir / "equivariance.png"))
    return paths
