"""The segmentation protocols, each registered once, on the classification flags (``-e -es -ec -ef -ea``; ``-eq``
is one registration for both tasks): mIoU as torchvision's reference evaluates it, and shift consistency
per pixel (see :mod:`antialiased.evaluation.segmentation_scorers`). Every figure comes with a 95% interval
from a bootstrap over images.
"""
from __future__ import annotations

from typing import Any

from antialiased.evaluation import invariance as inv
from antialiased.evaluation.bootstrap import bootstrap_interval
from antialiased.evaluation.classification_protocols import (EVALUATE, EVALUATE_ADVERSARIAL, EVALUATE_CIRCULAR,
                                                             EVALUATE_FRACTIONAL, EVALUATE_SHIFT)
from antialiased.evaluation.loop import Scorer
from antialiased.evaluation.protocol import Figure, Protocol, ProtocolContext, ProtocolReport, register
from antialiased.evaluation.segmentation import miou_intervals
from antialiased.evaluation.segmentation_scorers import (AdversarialSegmentationScorer, CircularSegmentationScorer,
                                                         FractionalSegmentationScorer, SegmentationAccuracyScorer,
                                                         SegmentationConsistencyScorer)

__all__ = ["SegmentationAccuracy", "SegmentationConsistency", "CircularSegmentationConsistency",
           "FractionalSegmentationConsistency", "AdversarialSegmentation"]


def _bootstrap(ctx: ProtocolContext) -> dict[str, Any]:
    return {"resamples": ctx.config.invariance.resamples, "seed": inv.bootstrap_seed(ctx)}


def _names(ctx: ProtocolContext, count: int) -> list[str]:
    names = list(ctx.classes or [])
    return names if len(names) == count else [str(i) for i in range(count)]


@register
class SegmentationAccuracy(Protocol):
    """``-e`` for segmentation: mIoU and pixel accuracy over the whole images, per-class IoU in the result file."""

    name = "segmentation_accuracy"
    flag = EVALUATE
    flag_help = ("segmentation: mIoU and pixel accuracy of the whole image, its shorter side resized to --seg-size "
                 "(torchvision's reference evaluation)")
    tasks = ("segmentation",)
    figures = (Figure("miou", "mIoU, whole image (-e)"), Figure("pixel_acc", "Pixel accuracy, whole image (-e)"))

    def build(self, ctx: ProtocolContext) -> Scorer:
        return SegmentationAccuracyScorer(save=ctx.saver("segmentation_accuracy"))

    def report(self, out: dict[str, Any], ctx: ProtocolContext) -> ProtocolReport:
        units = ctx.units[self.name]
        found = miou_intervals(units["counts"], units["unit"], **_bootstrap(ctx))
        miou, pixel = found["miou"], found["pixel_acc"]
        lines = [f" * mIoU {out['miou']:.3f} pixel accuracy {out['pixel_acc']:.3f}",
                 f"   bootstrap over {miou.units} images: mIoU {miou.text()}, pixel accuracy {pixel.text()}"]
        names = _names(ctx, len(out["iou"]))
        metrics = {"miou": out["miou"], "pixel_acc": out["pixel_acc"], "miou_ci95": miou.as_list(),
                   "pixel_acc_ci95": pixel.as_list(), "per_class_iou": dict(zip(names, out["iou"])),
                   "per_class_iou_ci95": dict(zip(names, found["iou"])),  # + _method, as every interval
                   "per_class_acc": dict(zip(names, out["class_acc"])), "confusion_matrix": out["confusion_matrix"],
                   "images": out["images"]}
        return ProtocolReport(lines, metrics, {"bootstrap": miou.settings(**_bootstrap(ctx))})


def _consistency_report(out: dict[str, Any], ctx: ProtocolContext, name: str, label: str, metric: str
                        ) -> ProtocolReport:
    units = ctx.units[name]
    ci = bootstrap_interval(units["agree"], units["unit"], **_bootstrap(ctx))
    lines = [f"{label} {out['consistency']:.3f}  ({ci.text()} over {ci.units} images, {out['pairs']} pairs, "
             f"offset seed {out['seed']})"]
    metrics = {metric: out["consistency"], f"{metric}_ci95": ci.as_list(), "pairs": out["pairs"]}
    settings = {"epochs_shift": ctx.config.shift.epochs, "offset_seed": out["seed"], "decode_cache": ctx.cached,
                "forward_batch": inv.forward_batch(ctx), "bootstrap": ci.settings(**_bootstrap(ctx))}
    return ProtocolReport(lines, metrics, settings)


@register
class SegmentationConsistency(Protocol):
    """``-es`` for segmentation: agreement of the labels of two random crops over their overlap (mASSC)."""

    name = "segmentation_consistency"
    flag = EVALUATE_SHIFT
    flag_help = ("segmentation: the share of pixels of the overlap of two random --crop-size crops (default 480) of "
                 "the resized image whose labels agree (mASSC), offsets per image")
    tasks = ("segmentation",)
    figures = (Figure("consistency", "Segmentation consistency, two random crops (-es)"),)

    def build(self, ctx: ProtocolContext) -> Scorer:
        cfg = ctx.config
        return SegmentationConsistencyScorer(cfg.segmentation.crop_size, cfg.shift.epochs, seed=cfg.run.seed,
                                             min_forward=inv.forward_batch(ctx), save=ctx.saver("shift"))

    def report(self, out: dict[str, Any], ctx: ProtocolContext) -> ProtocolReport:
        shown = _consistency_report(out, ctx, self.name, "Segmentation consistency", "consistency")
        shown.settings.update(crop_size=ctx.config.segmentation.crop_size, offsets="uniform where the crop fits, "
                                                                                  "per image and pass")
        return shown


@register
class CircularSegmentationConsistency(Protocol):
    """``-ec`` for segmentation: two circular shifts of the view, predictions rolled back, all pixels compared."""

    name = "segmentation_circular_consistency"
    flag = EVALUATE_CIRCULAR
    flag_help = ("segmentation: the view (the resized image's center crop of the largest multiple of 32 in each "
                 "dimension) rolled twice, predictions rolled back: the share of pixels that agree")
    tasks = ("segmentation",)
    figures = (Figure("circular_consistency", "Circular segmentation consistency (-ec)"),)

    def build(self, ctx: ProtocolContext) -> Scorer:
        cfg = ctx.config
        cfg.segmentation.check_view()
        return CircularSegmentationScorer(cfg.data.max_shift, cfg.segmentation.multiple, cfg.shift.epochs,
                                          seed=cfg.run.seed, min_forward=inv.forward_batch(ctx),
                                          save=ctx.saver("circular"))

    def report(self, out: dict[str, Any], ctx: ProtocolContext) -> ProtocolReport:
        shown = _consistency_report(out, ctx, self.name, "Circular segmentation consistency", "circular_consistency")
        shown.settings.update(shifts=f"integers in [0, {ctx.config.data.max_shift})^2, per image and pass",
                              view_multiple=ctx.config.segmentation.multiple)
        return shown


@register
class FractionalSegmentationConsistency(Protocol):
    """``-ef`` for segmentation: two sub-pixel shifts of the view, predictions compared over the interior."""

    name = "segmentation_fractional_consistency"
    flag = EVALUATE_FRACTIONAL
    flag_help = "segmentation: the same view, sub-pixel shifts, pixels compared over the interior (16-pixel border off)"
    tasks = ("segmentation",)
    figures = (Figure("fractional_consistency", "Fractional segmentation consistency (-ef)"),)

    def build(self, ctx: ProtocolContext) -> Scorer:
        cfg = ctx.config
        cfg.segmentation.check_interior()
        return FractionalSegmentationScorer(cfg.segmentation.multiple, cfg.shift.epochs, seed=cfg.run.seed,
                                            border=cfg.segmentation.border, min_forward=inv.forward_batch(ctx),
                                            save=ctx.saver("fractional"))

    def report(self, out: dict[str, Any], ctx: ProtocolContext) -> ProtocolReport:
        shown = _consistency_report(out, ctx, self.name, "Fractional segmentation consistency",
                                    "fractional_consistency")
        shown.settings.update(shifts="uniform in [0, 1)^2, per image and pass (Fourier phase ramp, real part)",
                              view_multiple=ctx.config.segmentation.multiple,
                              interior_border=ctx.config.segmentation.border)
        return shown


@register
class AdversarialSegmentation(Protocol):
    """``-ea`` for segmentation: per image the grid shift with the fewest correct pixels; their mIoU."""

    name = "segmentation_adversarial"
    flag = EVALUATE_ADVERSARIAL
    flag_help = ("segmentation: per image the grid shift with the fewest correct pixels, one confusion matrix over "
                 "those predictions (adversarial mIoU)")
    tasks = ("segmentation",)
    figures = (Figure("adversarial_miou", "Adversarial mIoU (-ea)"),
               Figure("unshifted_miou", "mIoU of the unshifted view (-ea)"))

    def build(self, ctx: ProtocolContext) -> Scorer:
        cfg = ctx.config
        if cfg.invariance.mode == "circular":
            cfg.segmentation.check_view()
        return AdversarialSegmentationScorer(cfg.invariance.grid, cfg.invariance.mode, cfg.segmentation.multiple,
                                             forward_batch=inv.forward_batch(ctx), save=ctx.saver("adversarial"))

    def report(self, out: dict[str, Any], ctx: ProtocolContext) -> ProtocolReport:
        units = ctx.units[self.name]
        worst = miou_intervals(units["worst"], units["unit"], **_bootstrap(ctx))
        zero = miou_intervals(units["zero"], units["unit"], **_bootstrap(ctx))
        grid = f"grid {out['grid']}x{out['grid']}, {out['mode']}"
        lines = [f"Adversarial mIoU {out['adversarial_miou']:.3f} ({grid})  ({worst['miou'].text()}); mIoU of the "
                 f"unshifted view {out['unshifted_miou']:.3f} ({zero['miou'].text()}); {worst['miou'].units} images"]
        metrics = {"images": out["images"]}
        for key, interval in (("adversarial_miou", worst["miou"]), ("adversarial_pixel_acc", worst["pixel_acc"]),
                              ("unshifted_miou", zero["miou"]), ("unshifted_pixel_acc", zero["pixel_acc"])):
            metrics.update({key: out[key], f"{key}_ci95": interval.as_list()})
        settings = {"grid": out["grid"], "shift_mode": out["mode"], "shifts": out["shifts"],
                    "forward_batch": inv.forward_batch(ctx), "bootstrap": worst["miou"].settings(**_bootstrap(ctx))}
        return ProtocolReport(lines, metrics, settings)
