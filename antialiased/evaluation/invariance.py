"""The shift-invariance protocols as entries of the evaluation's protocol table, and honest intervals for all.

Each protocol has a ``build_*`` (scorer from the run's settings) and a ``report_*`` (printed lines,
result-file metrics and settings) function; :mod:`antialiased.evaluation.protocols` lists them in
its table. ``*_intervals`` give the paper's protocols (``-e``, ``-es``, ``-ed``, ensembles) their 95%
bootstrap intervals over the independent units: images, or batches where offsets are drawn per batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from antialiased.errors import ConfigError
from antialiased.evaluation.adversarial import SHIFT_MODES, AdversarialScorer, check_grid
from antialiased.evaluation.bootstrap import RESAMPLES, Interval, IntervalBounds, bootstrap_interval
from antialiased.evaluation.circular import CircularConsistencyScorer
from antialiased.evaluation.distance import ShiftDistanceScorer, distance_curve
from antialiased.evaluation.equivariance import EquivarianceScorer, layer_profile, plot_equivariance
from antialiased.evaluation.fractional import FractionalConsistencyScorer
from antialiased.evaluation.pairs import ShiftPairScorer

__all__ = ["InvarianceOptions", "Report", "bootstrap_seed", "forward_batch",
           "build_circular", "build_fractional", "build_adversarial", "build_equivariance", "build_distance",
           "report_circular", "report_fractional", "report_adversarial", "report_equivariance", "report_distance",
           "accuracy_intervals", "shift_intervals", "diagonal_intervals"]

Report = tuple[list[str], dict[str, Any], dict[str, Any]]  # printed lines, metrics, settings


@dataclass(frozen=True)
class InvarianceOptions:
    """Settings of the shift-invariance protocols: ``-ea``'s grid and mode, ``-eq``'s extra layers, the bootstrap."""

    grid: int = 8
    mode: str = "crop"
    layers: tuple[str, ...] = ()
    resamples: int = RESAMPLES

    def validate(self, max_shift: int, crop_size: int, protocols: tuple[str, ...] = ("adversarial",)) -> None:
        if "adversarial" in protocols:
            check_grid(self.grid, self.mode, max_shift, crop_size)
        elif self.mode not in SHIFT_MODES:
            raise ConfigError(f"--shift-mode must be one of {', '.join(SHIFT_MODES)}, got {self.mode!r}")
        if self.resamples < 100:
            raise ConfigError(f"--bootstrap must be >= 100 resamples for a 95% interval, got {self.resamples}")
        if self.layers and "equivariance" not in protocols:
            raise ConfigError("--layers names feature maps for -eq (per-layer equivariance); add -eq")


def bootstrap_seed(ctx: Any) -> int:
    """The run's ``--seed`` (0 without one): the same data and seed give the same intervals."""
    return ctx.config.run.seed or 0


def forward_batch(ctx: Any) -> int:
    """Shifted copies per forward pass: ``--forward-batch``, else 256 on a GPU and one loader batch on the CPU."""
    if ctx.config.shift.forward_batch is not None:
        return ctx.config.shift.forward_batch
    return 256 if ctx.device.type == "cuda" else 0


def _options(ctx: Any) -> InvarianceOptions:
    return getattr(ctx.config, "invariance", None) or InvarianceOptions()


def _intervals(ctx: Any, name: str, scorer_type: Any) -> dict[str, Interval]:
    return scorer_type.intervals(ctx.units[name], resamples=_options(ctx).resamples, seed=bootstrap_seed(ctx))


def _bootstrap_settings(ctx: Any, interval: Interval) -> dict[str, Any]:
    return {"bootstrap": interval.settings(_options(ctx).resamples, bootstrap_seed(ctx))}


def build_circular(ctx: Any) -> CircularConsistencyScorer:
    cfg = ctx.config
    return CircularConsistencyScorer(cfg.data.crop_size, cfg.data.max_shift, cfg.shift.epochs, seed=cfg.run.seed,
                                     min_forward=forward_batch(ctx), save=ctx.saver("circular"))


def build_fractional(ctx: Any) -> FractionalConsistencyScorer:
    cfg = ctx.config
    return FractionalConsistencyScorer(cfg.data.crop_size, cfg.shift.epochs, seed=cfg.run.seed,
                                       min_forward=forward_batch(ctx), save=ctx.saver("fractional"))


def _report_pairs(out: dict[str, Any], ctx: Any, name: str, label: str, metric: str) -> Report:
    found = _intervals(ctx, name, ShiftPairScorer)
    cons, acc = found["consistency"], found["shifted_acc1"]
    lines = [f"{label} consistency {out['consistency']:.3f}  ({cons.text()} over {cons.units} images, "
             f"{out['pairs']} pairs, offset seed {out['seed']}); Acc@1 of the shifted copies "
             f"{out['shifted_acc1']:.3f} ({acc.text()})"]
    metrics = {metric: out["consistency"], f"{metric}_ci95": cons.as_list(), "shifted_acc1": out["shifted_acc1"],
               "shifted_acc1_ci95": acc.as_list(), "pairs": out["pairs"]}
    settings = {"epochs_shift": ctx.config.shift.epochs, "offset_seed": out["seed"], "decode_cache": ctx.cached,
                "forward_batch": forward_batch(ctx), **_bootstrap_settings(ctx, cons)}
    return lines, metrics, settings


def report_circular(out: dict[str, Any], ctx: Any) -> Report:
    lines, metrics, settings = _report_pairs(out, ctx, "circular_consistency", "Circular", "circular_consistency")
    return lines, metrics, {**settings, "shifts": f"integers in [0, {ctx.config.data.max_shift})^2, per image"}


def report_fractional(out: dict[str, Any], ctx: Any) -> Report:
    lines, metrics, settings = _report_pairs(out, ctx, "fractional_consistency", "Fractional",
                                             "fractional_consistency")
    return lines, metrics, {**settings, "shifts": "uniform in [0, 1)^2, per image (Fourier phase ramp, real part)"}


def build_adversarial(ctx: Any) -> AdversarialScorer:
    cfg, opts = ctx.config, _options(ctx)
    return AdversarialScorer(cfg.data.crop_size, cfg.data.max_shift, opts.grid, opts.mode,
                             forward_batch=forward_batch(ctx), save=ctx.saver("adversarial"))


def report_adversarial(out: dict[str, Any], ctx: Any) -> Report:
    found = _intervals(ctx, "adversarial", AdversarialScorer)
    adv, center, same = found["adversarial_acc1"], found["center_acc1"], found["grid_consistency"]
    grid = f"grid {out['grid']}x{out['grid']}, {out['mode']}"
    lines = [f"Adversarial accuracy {out['adversarial_acc1']:.3f} ({grid})  ({adv.text()}); center-crop Acc@1 "
             f"{out['center_acc1']:.3f} ({center.text()}); same top-1 over the grid {out['grid_consistency']:.3f}% "
             f"({same.text()}); {adv.units} images"]
    metrics = {"images": out["images"]}
    for figure, interval in found.items():
        metrics.update({figure: out[figure], f"{figure}_ci95": interval.as_list()})
    settings = {"grid": out["grid"], "shift_mode": out["mode"], "shifts": out["shifts"],
                "forward_batch": forward_batch(ctx), **_bootstrap_settings(ctx, adv)}
    return lines, metrics, settings


def build_equivariance(ctx: Any) -> EquivarianceScorer:
    return EquivarianceScorer(ctx.config.data.crop_size, _options(ctx).layers, forward_batch=forward_batch(ctx),
                              save=ctx.saver("equivariance"))


def report_equivariance(out: dict[str, Any], ctx: Any) -> Report:
    layers = layer_profile(out, ctx.units["equivariance"], resamples=_options(ctx).resamples,
                           seed=bootstrap_seed(ctx))
    stages = sum(layer["stage"] for layer in layers)
    lines = [f"Equivariance error ||f(Tx) - T'f(x)|| / ||f(x)|| (shifts (s,s), (2s,2s), (3s,3s) of each map's "
             f"stride s; {out['images']} images): mean over {stages} stages {out['mean_stage_error']:.4f}"]
    lines += [f"  {layer['name']} (stride {layer['stride'][0]}{'' if layer['stage'] else ', --layers'}): "
              f"{layer['error']:.4f} ({Interval(layer['error'], *layer['error_ci95'], out['images']).text(4)})"
              for layer in layers]
    files: dict[str, Any] = {}
    if ctx.write_files and ctx.out_dir is not None:
        plot = plot_equivariance({ctx.model_name: layers}, ctx.out_dir / f"equivariance_{ctx.model_name}.png",
                                 title=f"{ctx.model_name}: per-layer shift equivariance")
        files["plot"] = str(plot)
        lines.append(f"Per-layer plot written to {plot}")
    metrics = {"mean_stage_error": out["mean_stage_error"], "mean_stage_error_ci95": _stage_interval(ctx, out),
               "layers": layers}
    settings = {"layers_requested": list(_options(ctx).layers), "forward_batch": forward_batch(ctx),
                "bootstrap": {"unit": "image", "units": out["images"], "resamples": _options(ctx).resamples,
                              "seed": bootstrap_seed(ctx)}, "files": files}
    return lines, metrics, settings


def _stage_interval(ctx: Any, out: dict[str, Any]) -> list[float]:
    """95% bootstrap interval over images of the mean error over the stage maps."""
    errors = ctx.units["equivariance"]["errors"]
    stages = np.array([layer["stage"] for layer in out["layers"]], dtype=bool)
    per_image = errors[:, stages].mean(axis=(1, 2)) if len(errors) and stages.any() else np.zeros(0)
    interval = bootstrap_interval(per_image, resamples=_options(ctx).resamples, seed=bootstrap_seed(ctx), scale=1.0,
                                  proportion=False)
    return interval.as_list()


def build_distance(ctx: Any) -> ShiftDistanceScorer:
    return ShiftDistanceScorer(ctx.config.data.crop_size, ctx.config.data.max_shift, forward_batch=forward_batch(ctx),
                               save=ctx.saver("shift_distance"))


def report_distance(out: dict[str, Any], ctx: Any) -> Report:
    units = ctx.units["shift_distance"]
    mean = _intervals(ctx, "shift_distance", ShiftDistanceScorer)["mean_consistency"]
    curve = distance_curve(units, resamples=_options(ctx).resamples, seed=bootstrap_seed(ctx))
    shown = sorted({1, 2, 4, 8, 16, len(out["distances"])} & set(out["distances"]))
    lines = [f"Consistency by distance (crops (0,0) vs (0,d) and (d,0)): mean over d = 1..{len(out['distances'])} "
             f"{out['mean_consistency']:.3f} ({mean.text()}); "
             + ", ".join(f"d={d} {out['consistency'][d - 1]:.1f}" for d in shown)]
    metrics = {"distance_consistency_mean": out["mean_consistency"], "distance_consistency_mean_ci95": mean.as_list(),
               "distances": out["distances"], "distance_consistency": out["consistency"],
               "distance_consistency_ci95": [IntervalBounds(pair, m) for *pair, m in
                                             zip(curve["low"], curve["high"], curve["methods"])],
               "distance_horizontal": out["horizontal"], "distance_vertical": out["vertical"]}
    return lines, metrics, {"forward_batch": forward_batch(ctx), **_bootstrap_settings(ctx, mean)}


def accuracy_intervals(units: dict[str, np.ndarray], *, groups: np.ndarray | None = None, unit: str = "image",
                       resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Interval]:
    """Acc@1 and Acc@5 intervals of ``-e`` (over images) or of an ensemble (``groups``: its batches)."""
    return {k: bootstrap_interval(units[f"correct{k[-1]}"], groups, resamples=resamples, seed=seed, unit=unit)
            for k in ("acc1", "acc5")}


def shift_intervals(units: dict[str, np.ndarray], *, independent: bool, resamples: int = RESAMPLES,
                    seed: int = 0) -> Interval:
    """``-es``'s consistency interval: over loader batches (offsets drawn per batch; every pass of a batch
    together, as they hold the same images) or, with per-image offsets, over images."""
    if independent:
        groups = np.where(units["index"] >= 0, units["index"], -1 - units["batch"])
        return bootstrap_interval(units["agree"], groups, resamples=resamples, seed=seed, unit="image")
    return bootstrap_interval(units["agree"], units["batch"], resamples=resamples, seed=seed, unit="batch")


def diagonal_intervals(arrays: dict[str, np.ndarray], *, resamples: int = RESAMPLES,
                       seed: int = 0) -> dict[str, Interval]:
    """``-ed``'s figures with intervals over images: mean true-class probability, Acc@1, Acc@5, stability."""
    per_image = {"mean_true_prob": arrays["true_prob"].mean(axis=1), "acc1": arrays["correct"].mean(axis=1),
                 "acc5": arrays["correct5"].mean(axis=1),
                 "stable": (arrays["pred"] == arrays["pred"][:, :1]).all(axis=1)}
    return {k: bootstrap_interval(v, resamples=resamples, seed=seed, proportion=k != "mean_true_prob")
            for k, v in per_image.items()}
