"""The audit's report: ``report.md``, ``report.json`` and PNG plots, models side by side.

``report.json`` (schema ``antialiased.audit/1``) holds each model's figures with their 95%
intervals, its curves (consistency by shift distance, diagonal, per-layer equivariance) and, under
``"results"``, the ordinary result records of every protocol, so ``antialiased report`` merges an
audit like any other result file.

Every model column names the weights it was measured with (random weights read "random
(untrained)", with a note under the table), and every interval is labelled by the method its
result record says made it (:mod:`antialiased.reporting.intervals`).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from antialiased.evaluation.audit import AuditResult, ModelAudit, diagonal_curve
from antialiased.evaluation.protocols import audit_figures, is_table_figure
from antialiased.reporting.audit_plots import write_audit_plots
from antialiased.reporting.grouping import (RANDOM_NOTE, RowKey, dataset_labels, is_random_weights, row_details,
                                             row_key, unique_runs, weights_text)
from antialiased.reporting.intervals import interval_legend, interval_mark, methods_of
from antialiased.support.files import atomic_write_text

__all__ = ["AUDIT_SCHEMA", "Figure", "FIGURES", "summarize_audit", "audit_markdown", "write_audit_report",
           "invariance_markdown"]

AUDIT_SCHEMA = "antialiased.audit/1"


@dataclass(frozen=True)
class Figure:
    """A row of the metrics table: a protocol's metric, its label and unit ('%' or '' for a ratio)."""

    protocol: str
    key: str
    label: str
    unit: str = "%"

    @property
    def id(self) -> str:
        return f"{self.protocol}.{self.key}"


# every protocol's figures, as the protocol registry lists them (antialiased.evaluation.protocols)
FIGURES: tuple[Figure, ...] = tuple(Figure(protocol, f.key, f.label, f.unit) for protocol, f in audit_figures())


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _figures(records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {}
    for fig in FIGURES:
        metrics = records.get(fig.protocol, {}).get("metrics", {})
        if _finite(metrics.get(fig.key)) is not None:
            found[fig.id] = {"value": float(metrics[fig.key]), "ci95": metrics.get(f"{fig.key}_ci95"),
                             "method": metrics.get(f"{fig.key}_ci95_method")}
    return found


def _curves(audit: ModelAudit, records: dict[str, dict[str, Any]], seed: int, resamples: int) -> dict[str, Any]:
    curves: dict[str, Any] = {}
    distance = records.get("shift_distance", {}).get("metrics")
    if distance:
        curves["distance"] = {"distances": distance["distances"], "consistency": distance["distance_consistency"],
                              "ci95": distance["distance_consistency_ci95"],
                              "methods": distance.get("distance_consistency_ci95_method")}
    arrays = audit.units.get("diagonal")
    if arrays is not None and len(arrays.get("true_prob", ())):
        curves["diagonal"] = diagonal_curve(arrays, resamples=resamples, seed=seed)
    return curves


def _model_summary(audit: ModelAudit, seed: int, resamples: int) -> dict[str, Any]:
    records = {r["protocol"]: r for r in audit.records}
    first = audit.records[0] if audit.records else {}
    layers = records.get("equivariance", {}).get("metrics", {}).get("layers", [])
    labels = [r.get("weights") for r in audit.records] or [None]
    return {"label": audit.label, "model": audit.source.name, "arch": first.get("arch"),
            "filter_size": first.get("filter_size"), "method": (first.get("model_spec") or {}).get("method"),
            "weights": first.get("weights"),
            "weights_text": weights_text(labels, audit.source.name),
            "random_weights": any(is_random_weights(w) for w in labels),
            "classes": first.get("classes"), "images": first.get("counts", {}).get("images"), "skipped": first.get("counts", {}).get("skipped"),
            "figures": _figures(records), "curves": _curves(audit, records, seed, resamples), "layers": layers,
            "lines": [line for run in audit.report.runs for line in run.lines]}


def summarize_audit(result: AuditResult) -> dict[str, Any]:
    """The audit as one JSON-ready record (schema ``antialiased.audit/1``)."""
    cfg = result.config
    seed, resamples = cfg.run.seed or 0, cfg.invariance.resamples
    first = next((r for m in result.models for r in m.records), {})
    models = [_model_summary(m, seed, resamples) for m in result.models]
    used = first.get("settings") or {}  # crop and shift as the (first) model's evaluation decided them
    settings = {"crop_size": used.get("crop_size", cfg.data.crop_size),
                "max_shift": used.get("max_shift", cfg.data.max_shift), "epochs_shift": cfg.shift.epochs,
                "shift_grid": cfg.invariance.grid, "shift_mode": cfg.invariance.mode,
                "layers": list(cfg.invariance.layers), "seed": cfg.run.seed, "bootstrap_resamples": resamples,
                "batch_size": cfg.data.batch_size, "amp": cfg.run.amp,
                # a subset's figures are never read as the whole folder's (as evaluation's result files)
                **{key: used.get(key) for key in ("max_val_images", "selected_images", "folder_images")}}
    return {"schema": AUDIT_SCHEMA, "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "dataset": first.get("dataset", str(cfg.data.root)), "classes": first.get("classes"),
            "device": first.get("device"),
            "protocols": list(cfg.protocols), "settings": settings, "figures": _present(models), "models": models,
            "results": [r for m in result.models for r in m.records]}


def _cell(entry: dict[str, Any] | None, unit: str, digits: int) -> str:
    if entry is None:
        return "–"
    d = digits if unit == "%" else digits + 2
    text = f"{entry['value']:.{d}f}"
    ci = entry.get("ci95")
    if ci and all(_finite(v) is not None for v in ci):
        text += f" [{ci[0]:.{d}f}, {ci[1]:.{d}f}]{interval_mark(entry.get('method'))}"
    return text


def _column(model: dict[str, Any]) -> str:
    """A model's name in the report with the weights it was measured with."""
    return f"{model['label']} ({model.get('weights_text') or weights_text([model.get('weights')], model.get('model'))})"


def _random(model: dict[str, Any]) -> bool:
    return bool(model.get("random_weights", is_random_weights(model.get("weights"))))


def _notes(entries: Sequence[dict[str, Any] | None], models: Sequence[dict[str, Any]]) -> list[str]:
    """The lines under a table: which methods made its intervals, and what random weights mean."""
    methods = [m for e in entries if e and e.get("ci95") and all(_finite(v) is not None for v in e["ci95"])
               for m in methods_of(e.get("method"))]
    lines = [interval_legend(methods)] if methods else []
    lines += [RANDOM_NOTE] if any(_random(m) for m in models) else []
    return ["", *lines] if lines else []


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join([":---"] + ["---:"] * (len(header) - 1)) + " |"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _present(models: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """The table's rows that some model has: id, label and unit of each."""
    return [{"id": f.id, "label": f.label, "unit": f.unit} for f in FIGURES
            if any(f.id in m["figures"] for m in models)]


def _metrics_table(summary: dict[str, Any], digits: int) -> list[str]:
    models = summary["models"]
    rows, entries = [], []
    for fig in summary["figures"]:
        cells = [m["figures"].get(fig["id"]) for m in models]
        entries += cells
        rows.append([fig["label"] + (" (%)" if fig["unit"] == "%" else " (ratio)")]
                    + [_cell(c, fig["unit"], digits) for c in cells])
    return _table(["Metric (95% interval)"] + [_column(m) for m in models], rows) + _notes(entries, models)


def _distance_table(summary: dict[str, Any], digits: int) -> list[str]:
    models = [m for m in summary["models"] if "distance" in m["curves"]]
    if not models:
        return []
    distances = models[0]["curves"]["distance"]["distances"]
    shown = [d for d in distances if d in {1, 2, 3, 4, 8, 16, 24, 32} or d == distances[-1]]
    entries = [[_distance_entry(m["curves"]["distance"], d - 1) for m in models] for d in shown]
    rows = [[f"d = {d}"] + [_cell(e, "%", digits) for e in row] for d, row in zip(shown, entries)]
    return ["", "## Consistency by shift distance", "",
            "Top-1 agreement (%) of the crops at (0, 0) and (0, d), and (0, 0) and (d, 0).", "",
            *_table(["distance"] + [_column(m) for m in models], rows),
            *_notes([e for row in entries for e in row], models)]


def _distance_entry(curve: dict[str, Any], i: int) -> dict[str, Any]:
    methods = curve.get("methods")
    return {"value": curve["consistency"][i], "ci95": curve["ci95"][i],
            "method": methods[i] if isinstance(methods, list) and i < len(methods) else None}


def _layers_table(summary: dict[str, Any], digits: int) -> list[str]:
    parts = []
    for m in summary["models"]:
        if not m["layers"]:
            continue
        entries = [{"value": layer["error"], "ci95": layer.get("error_ci95"), "method": layer.get("error_ci95_method")}
                   for layer in m["layers"]]
        rows = [[f"{layer['name']}", str(layer["stride"][0]), "stage" if layer["stage"] else "--layers",
                 _cell(entry, "", digits)] for layer, entry in zip(m["layers"], entries)]
        parts += ["", f"**{_column(m)}**", "", *_table(["feature map", "stride", "kind", "error [95% interval]"], rows),
                  *_notes(entries, [m])]
    if not parts:
        return []
    return ["", "## Per-layer equivariance", "",
            "||f(Tx) - T'f(x)|| / ||f(x)|| for circular input shifts (s,s), (2s,2s), (3s,3s) of each map's stride s "
            "(0: exactly equivariant).", *parts]


def _subset(settings: dict[str, Any]) -> str:
    """"; N of the folder's M images, ..." when --max-val-images chose fewer than the folder holds, else ''."""
    chosen, total = settings.get("selected_images"), settings.get("folder_images")
    if chosen is None or total is None or chosen >= total:
        return ""
    return f"; {chosen} of the folder's {total} images, --max-val-images {settings['max_val_images']}, evenly spaced"


def audit_markdown(summary: dict[str, Any], plots: Sequence[Path] = (), digits: int = 2) -> str:
    """``report.md``: settings, the metrics table (models side by side), distance and layer tables, plots."""
    s = summary["settings"]
    models = summary["models"]
    images = ", ".join(f"{m['label']}: {m['images']} images ({m['skipped']} skipped)" for m in models)
    lines = ["# Shift-invariance audit", "",
             f"Data: `{summary['dataset']}` ({images}{_subset(s)}); device {summary['device']}.",
             f"Protocols: {', '.join(summary['protocols'])}. Crop {s['crop_size']}, max shift {s['max_shift']}, "
             f"{s['epochs_shift']} passes for -es/-ec/-ef, grid {s['shift_grid']}x{s['shift_grid']} "
             f"({s['shift_mode']}) for -ea, seed {s['seed']}.",
             f"Weights: {'; '.join(_column(m) for m in models)}.",
             f"Intervals: 95%, each labelled by the method its result records (legend under each table); the "
             f"bootstrap's from {s['bootstrap_resamples']} resamples over images (over batches for -es, whose "
             f"offsets are drawn per batch).", "", "## Metrics", "", *_metrics_table(summary, digits),
             *_distance_table(summary, digits), *_layers_table(summary, digits)]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    lines += ["", "## Printed results", ""]
    for m in models:
        lines += [f"**{_column(m)}**", "", "```", *m["lines"], "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_audit_report(result: AuditResult, out_dir: str | os.PathLike, *, plots: bool = True,
                       digits: int = 2) -> list[Path]:
    """Write ``report.md``, ``report.json`` and (with ``plots``; needs matplotlib) the PNG plots; returns the paths."""
    out = Path(out_dir)
    summary = summarize_audit(result)
    pictures = write_audit_plots(summary, out) if plots else []
    text = json.dumps(summary, indent=2, default=_json_default) + "\n"
    written = [atomic_write_text(out / "report.json", text),
               atomic_write_text(out / "report.md", audit_markdown(summary, pictures, digits))]
    return written + list(pictures)


def _row_names(keys: Sequence[RowKey]) -> dict[RowKey, str]:
    """Model names, with the dataset's short name when the records span several, and what tells
    apart rows of one model on one dataset (method, source, weights kind)."""
    several = len({k.dataset for k in keys}) > 1
    labels = dataset_labels(k.dataset for k in keys)
    names = {}
    for key in keys:
        same = [k for k in keys if (k.model, k.dataset) == (key.model, key.dataset)]
        parts = [labels[key.dataset]] if several else []
        if len(same) > 1:
            parts.append(row_details(same)[key])
        names[key] = key.model + (f" ({', '.join(parts)})" if parts else "")
    return names


def invariance_markdown(records: Sequence[dict[str, Any]], digits: int = 2) -> str:
    """A table of the invariance figures beyond the paper's two (one row per model and dataset, one column
    per figure).

    For ``antialiased report``: rows are grouped as the paper's tables are
    (:mod:`antialiased.reporting.grouping`: identical re-runs count once); several records of a row
    and figure (seeds) give their mean and standard deviation, a single one its 95% interval. Empty
    when no record has such a figure.
    """
    columns = [f for f in FIGURES if not is_table_figure(f.protocol, f.key)]  # the paper tables' columns are there
    values: dict[RowKey, dict[str, list[dict[str, Any]]]] = {}
    weights: dict[RowKey, list[Any]] = {}
    for r in unique_runs(records)[0]:
        metrics = r.get("metrics", {})
        for fig in columns:
            if r.get("protocol") == fig.protocol and _finite(metrics.get(fig.key)) is not None:
                values.setdefault(row_key(r), {}).setdefault(fig.id, []).append(
                    {"value": float(metrics[fig.key]), "ci95": metrics.get(f"{fig.key}_ci95"),
                     "method": metrics.get(f"{fig.key}_ci95_method")})
                weights.setdefault(row_key(r), []).append(r.get("weights"))
    used = [f for f in columns if any(f.id in v for v in values.values())]
    if not used:
        return ""
    names = _row_names(list(values))
    rows = [[names[key], weights_text(weights[key], key.model)]
            + [_merged(found.get(f.id), f.unit, digits) for f in used] for key, found in values.items()]
    header = ["Model", "Weights"] + [f.label + (" (%)" if f.unit == "%" else "") for f in used]
    single = [e for found in values.values() for entries in found.values() if len(entries) == 1 for e in entries]
    untrained = [{"random_weights": any(is_random_weights(w) for w in labels)} for labels in weights.values()]
    return "\n".join(["**Shift invariance (95% intervals; mean ± sd over runs)**", "", *_table(header, rows),
                      *_notes(single, untrained)]) + "\n"


def _merged(entries: list[dict[str, Any]] | None, unit: str, digits: int) -> str:
    if not entries:
        return "–"
    if len(entries) == 1:
        return _cell(entries[0], unit, digits)
    values = [e["value"] for e in entries]
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    d = digits if unit == "%" else digits + 2
    return f"{mean:.{d}f} ± {sd:.{d}f} ({len(values)} runs)"


def _json_default(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
