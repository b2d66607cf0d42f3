"""The protocols an evaluation run can ask for, as one table: name -> (build a scorer, report its result).

Adding a protocol is a :class:`~antialiased.evaluation.loop.Scorer` and one entry here: ``build``
makes the scorer from the run's settings; ``report`` turns its result into the printed lines, the
metrics and settings of its result file, and any extra files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from antialiased.evaluation import invariance as inv
from antialiased.evaluation.accuracy import AccuracyScorer
from antialiased.evaluation.config import EvalConfig
from antialiased.evaluation.diagonal import DiagonalScorer, plot_diagonal, save_diagonal_arrays
from antialiased.evaluation.ensemble import EnsembleScorer
from antialiased.evaluation.loop import Scorer
from antialiased.evaluation.saving import ImageSaver
from antialiased.evaluation.shift import ShiftConsistencyScorer

__all__ = ["ProtocolContext", "ProtocolReport", "ProtocolEntry", "PROTOCOLS"]


@dataclass
class ProtocolContext:
    """What a table entry may use: the run's settings, its device, where files go, the model's name."""

    config: EvalConfig
    device: torch.device
    out_dir: Path | None
    model_name: str
    write_files: bool = True
    units: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # per protocol, all ranks
    cached: bool = False

    def saver(self, protocol: str) -> Callable | None:
        if not self.config.save_images or self.out_dir is None or not self.write_files:
            return None
        return ImageSaver(self.out_dir / "images" / protocol)


@dataclass
class ProtocolReport:
    """A protocol's result as shown and recorded: printed lines, result-file metrics and settings."""

    lines: list[str]
    metrics: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProtocolEntry:
    build: Callable[[ProtocolContext], Scorer]
    report: Callable[[dict[str, Any], ProtocolContext], ProtocolReport]


def _forward_batch(ctx: ProtocolContext) -> int:
    return inv.forward_batch(ctx)  # --forward-batch, else 256 on a GPU (it idles on -b 8's 16 crops), 0 on the CPU


def _accuracy_line(out: dict[str, Any]) -> str:
    return f" * Acc@1 {out['acc1']:.3f} Acc@5 {out['acc5']:.3f}"


def _accuracy_report(out: dict[str, Any], ctx: ProtocolContext, name: str, per_batch: bool) -> ProtocolReport:
    """The paper's line, then the 95% bootstrap intervals (over images; over batches for per-batch crops)."""
    units = ctx.units[name]
    found = inv.accuracy_intervals(units, groups=units["batch"] if per_batch else None,
                                   unit="batch" if per_batch else "image",
                                   resamples=ctx.config.invariance.resamples, seed=inv.bootstrap_seed(ctx))
    acc1, acc5 = found["acc1"], found["acc5"]
    line = f"   bootstrap over {acc1.units} {acc1.unit}s: Acc@1 {acc1.text()}, Acc@5 {acc5.text()}"
    metrics = {"acc1": out["acc1"], "acc5": out["acc5"], "acc1_ci95": acc1.as_list(), "acc5_ci95": acc5.as_list()}
    return ProtocolReport([_accuracy_line(out), line], metrics,
                          {"bootstrap": acc1.settings(ctx.config.invariance.resamples, inv.bootstrap_seed(ctx))})


def _build_accuracy(ctx: ProtocolContext) -> Scorer:
    return AccuracyScorer(ctx.config.data.crop_size, save=ctx.saver("accuracy"))


def _report_accuracy(out: dict[str, Any], ctx: ProtocolContext) -> ProtocolReport:
    return _accuracy_report(out, ctx, "accuracy", per_batch=False)


def _build_ensemble(ctx: ProtocolContext) -> Scorer:
    cfg, ens = ctx.config, ctx.config.ensemble
    return EnsembleScorer(ens.crops, softmax=ens.softmax, center_first=ens.center_first,
                          crop_size=cfg.data.crop_size, max_shift=cfg.data.max_shift, seed=cfg.run.seed,
                          save=ctx.saver("ensemble"))


def _report_ensemble(out: dict[str, Any], ctx: ProtocolContext) -> ProtocolReport:
    ens = ctx.config.ensemble
    settings = {"crops": ens.crops, "softmax": ens.softmax, "center_first": ens.center_first,
                "offset_seed": out["seed"]}
    shown = _accuracy_report(out, ctx, "ensemble", per_batch=True)  # crops are drawn per batch
    return ProtocolReport(shown.lines, shown.metrics, {**settings, **shown.settings})


def _build_shift(ctx: ProtocolContext) -> Scorer:
    cfg = ctx.config
    return ShiftConsistencyScorer(cfg.data.crop_size, cfg.data.max_shift, cfg.shift.epochs, seed=cfg.run.seed,
                                  independent=cfg.shift.independent, min_forward=_forward_batch(ctx),
                                  save=ctx.saver("shift"))


def _report_shift(out: dict[str, Any], ctx: ProtocolContext) -> ProtocolReport:
    shift, resamples = ctx.config.shift, ctx.config.invariance.resamples
    ci = inv.shift_intervals(ctx.units["shift_consistency"], independent=shift.independent, resamples=resamples,
                             seed=inv.bootstrap_seed(ctx))
    units = f"{ci.units} {'batches' if ci.unit == 'batch' else 'images'}"
    line = (f"Consistency {out['consistency']:.3f}  ({ci.text()}, bootstrap over {units}, {out['pairs']} pairs, "
            f"offset seed {out['seed']})")
    metrics = {"consistency": out["consistency"], "consistency_ci95": ci.as_list(), "pairs": out["pairs"]}
    settings = {"epochs_shift": shift.epochs, "independent": shift.independent, "offset_seed": out["seed"],
                "decode_cache": ctx.cached, "forward_batch": _forward_batch(ctx),
                "bootstrap": ci.settings(resamples, inv.bootstrap_seed(ctx))}
    return ProtocolReport([line], metrics, settings)


def _build_diagonal(ctx: ProtocolContext) -> Scorer:
    return DiagonalScorer(ctx.config.data.crop_size, ctx.config.data.max_shift, save=ctx.saver("diagonal"))


def _report_diagonal(out: dict[str, Any], ctx: ProtocolContext) -> ProtocolReport:
    shifts = ctx.config.data.max_shift + 1
    lines = [f"Diagonal: mean true-class probability {out['mean_true_prob']:.3f}, Acc@1 {out['acc1']:.3f}, "
             f"Acc@5 {out['acc5']:.3f}, same label at all {shifts} shifts {out['stable']:.3f}% "
             f"({out['count']} images)"]
    files: dict[str, Any] = {}
    if ctx.write_files and ctx.out_dir is not None:
        arrays = ctx.units.get("diagonal") or out["arrays"]
        prefix = f"diagonal_{ctx.model_name}"
        paths = save_diagonal_arrays(arrays, ctx.out_dir, prefix)
        plot = plot_diagonal(arrays, ctx.out_dir / f"{prefix}.png", title=f"{ctx.model_name}: diagonal stability")
        files = {"arrays": [str(p) for p in paths], "plot": str(plot)}
        lines.append(f"Per-image arrays and plot written to {ctx.out_dir} ({plot.name})")
    metrics = {k: out[k] for k in ("mean_true_prob", "acc1", "acc5", "stable", "flips_per_image")}
    resamples = ctx.config.invariance.resamples
    found = inv.diagonal_intervals(ctx.units.get("diagonal") or out["arrays"], resamples=resamples,
                                   seed=inv.bootstrap_seed(ctx))
    metrics.update({f"{k}_ci95": v.as_list() for k, v in found.items()})
    stable = found["stable"]
    lines.insert(1, f"   bootstrap over {stable.units} images: same label {stable.text()}, Acc@1 {found['acc1'].text()}")
    settings = {"shifts": shifts, "files": files, "bootstrap": stable.settings(resamples, inv.bootstrap_seed(ctx))}
    return ProtocolReport(lines, metrics, settings)


def _entry(build: Callable[[ProtocolContext], Scorer],
           report: Callable[[dict[str, Any], ProtocolContext], inv.Report]) -> ProtocolEntry:
    """An entry of :mod:`antialiased.evaluation.invariance` (its reports are (lines, metrics, settings))."""
    return ProtocolEntry(build, lambda out, ctx: ProtocolReport(*report(out, ctx)))


# name (the result file's "protocol") -> entry, in the order results are reported
PROTOCOLS: dict[str, ProtocolEntry] = {
    "accuracy": ProtocolEntry(_build_accuracy, _report_accuracy),
    "ensemble": ProtocolEntry(_build_ensemble, _report_ensemble),
    "shift_consistency": ProtocolEntry(_build_shift, _report_shift),
    "diagonal": ProtocolEntry(_build_diagonal, _report_diagonal),
    "circular_consistency": _entry(inv.build_circular, inv.report_circular),
    "fractional_consistency": _entry(inv.build_fractional, inv.report_fractional),
    "adversarial": _entry(inv.build_adversarial, inv.report_adversarial),
    "equivariance": _entry(inv.build_equivariance, inv.report_equivariance),
    "shift_distance": _entry(inv.build_distance, inv.report_distance),
}
