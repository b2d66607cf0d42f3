"""The classifier protocols, each registered once: the paper's (``-e``, ``-es``, ``-ed``, ensembles) and the
field's other shift-invariance protocols (``-ec``, ``-ef``, ``-ea``, ``-eq``, consistency by distance).

The flags are defined here, with the protocol that first uses them; the segmentation registrations
(:mod:`antialiased.evaluation.segmentation_protocols`) reuse them.
"""
from __future__ import annotations

from typing import Any, ClassVar

from antialiased.evaluation import invariance as inv
from antialiased.evaluation.accuracy import AccuracyScorer
from antialiased.evaluation.diagonal import DiagonalScorer, plot_diagonal, save_diagonal_arrays
from antialiased.evaluation.ensemble import EnsembleScorer
from antialiased.evaluation.equivariance import EquivarianceScorer
from antialiased.evaluation.loop import Scorer
from antialiased.evaluation.protocol import Figure, Flag, Protocol, ProtocolContext, ProtocolReport, register
from antialiased.evaluation.shift import ShiftConsistencyScorer

__all__ = ["EVALUATE", "EVALUATE_SHIFT", "EVALUATE_DIAGONAL", "EVALUATE_CIRCULAR", "EVALUATE_FRACTIONAL",
           "EVALUATE_ADVERSARIAL", "EVALUATE_EQUIVARIANCE", "Accuracy", "Ensemble", "ShiftConsistency", "Diagonal",
           "CircularConsistency", "FractionalConsistency", "Adversarial", "Equivariance", "ShiftDistance"]

EVALUATE = Flag("-e", "--evaluate", "accuracy on the validation set")
EVALUATE_SHIFT = Flag("-es", "--evaluate-shift", "shift consistency: how often two random 224 crops of the 256 "
                                                 "image agree")
EVALUATE_DIAGONAL = Flag("-ed", "--evaluate-diagonal", "diagonal stability: the 33 crops at offsets (k, k), "
                                                       "k = 0..32")
EVALUATE_CIRCULAR = Flag("-ec", "--evaluate-circular",
                         "circular-shift consistency: two circular shifts of the 224 center crop per image and pass, "
                         "drawn from {0..max-shift-1}^2: how often the top-1 agrees")
EVALUATE_FRACTIONAL = Flag("-ef", "--evaluate-fractional",
                           "sub-pixel consistency: the same with shifts drawn from [0, 1)^2, applied as a band-limited "
                           "circular translation (Fourier phase ramp)")
EVALUATE_ADVERSARIAL = Flag("-ea", "--evaluate-adversarial",
                            "adversarial-shift accuracy: correct only if the top-1 is right for every shift of a "
                            "--shift-grid G x G grid (--shift-mode crop or circular)")
EVALUATE_EQUIVARIANCE = Flag("-eq", "--evaluate-equivariance",
                             "per-layer shift equivariance ||f(Tx) - T'f(x)|| / ||f(x)|| of the end of every "
                             "subsampling stage (and --layers), for shifts of 1, 2, 3 times each map's stride")


def _forward_batch(ctx: ProtocolContext) -> int:
    return inv.forward_batch(ctx)  # --forward-batch, else 256 on a GPU (it idles on -b 8's 16 crops), 0 on the CPU


def _accuracy_report(out: dict[str, Any], ctx: ProtocolContext, name: str, per_batch: bool) -> ProtocolReport:
    """The paper's line, then the 95% bootstrap intervals (over images; over batches for per-batch crops)."""
    units = ctx.units[name]
    found = inv.accuracy_intervals(units, groups=units["batch"] if per_batch else None,
                                   unit="batch" if per_batch else "image",
                                   resamples=ctx.config.invariance.resamples, seed=inv.bootstrap_seed(ctx))
    acc1, acc5 = found["acc1"], found["acc5"]
    line = f"   bootstrap over {acc1.units} {acc1.unit}s: Acc@1 {acc1.text()}, Acc@5 {acc5.text()}"
    metrics = {"acc1": out["acc1"], "acc5": out["acc5"], "acc1_ci95": acc1.as_list(), "acc5_ci95": acc5.as_list()}
    return ProtocolReport([f" * Acc@1 {out['acc1']:.3f} Acc@5 {out['acc5']:.3f}", line], metrics,
                          {"bootstrap": acc1.settings(ctx.config.invariance.resamples, inv.bootstrap_seed(ctx))})


@register
class Accuracy(Protocol):
    """``-e``: top-1/top-5 accuracy of the center crop (the paper's)."""

    name = "accuracy"
    flag = EVALUATE
    figures = (Figure("acc1", "Acc@1, center crop (-e)"), Figure("acc5", "Acc@5, center crop (-e)"))

    def build(self, ctx: ProtocolContext) -> Scorer:
        return AccuracyScorer(ctx.config.data.crop_size, save=ctx.saver("accuracy"))

    def report(self, out: dict[str, Any], ctx: ProtocolContext) -> ProtocolReport:
        return _accuracy_report(out, ctx, "accuracy", per_batch=False)


@register
class Ensemble(Protocol):
    """``-e -ens E``: accuracy of the average over E random crops (the paper's script's ensembles)."""

    name = "ensemble"
    audit = False

    def build(self, ctx: ProtocolContext) -> Scorer:
        cfg, ens = ctx.config, ctx.config.ensemble
        return EnsembleScorer(ens.crops, softmax=ens.softmax, center_first=ens.center_first,
                              crop_size=cfg.data.crop_size, max_shift=cfg.data.max_shift, seed=cfg.run.seed,
                              save=ctx.saver("ensemble"))

    def report(self, out: dict[str, Any], ctx: ProtocolContext) -> ProtocolReport:
        ens = ctx.config.ensemble
        settings = {"crops": ens.crops, "softmax": ens.softmax, "center_first": ens.center_first,
                    "offset_seed": out["seed"]}
        shown = _accuracy_report(out, ctx, "ensemble", per_batch=True)  # crops are drawn per batch
        return ProtocolReport(shown.lines, shown.metrics, {**settings, **shown.settings})


@register
class ShiftConsistency(Protocol):
    """``-es``: top-1 agreement of two random crops (the paper's consistency)."""

    name = "shift_consistency"
    flag = EVALUATE_SHIFT
    aliases = ("shift",)
    figures = (Figure("consistency", "Consistency, two random crops (-es)"),)

    def build(self, ctx: ProtocolContext) -> Scorer:
        cfg = ctx.config
        return ShiftConsistencyScorer(cfg.data.crop_size, cfg.data.max_shift, cfg.shift.epochs, seed=cfg.run.seed,
                                      independent=cfg.shift.independent, min_forward=_forward_batch(ctx),
                                      save=ctx.saver("shift"))

    def report(self, out: dict[str, Any], ctx: ProtocolContext) -> ProtocolReport:
        shift, resamples = ctx.config.shift, ctx.config.invariance.resamples
        ci = inv.shift_intervals(ctx.units[self.name], independent=shift.independent, resamples=resamples,
                                 seed=inv.bootstrap_seed(ctx))
        units = f"{ci.units} {'batches' if ci.unit == 'batch' else 'images'}"
        line = (f"Consistency {out['consistency']:.3f}  ({ci.text()}, bootstrap over {units}, {out['pairs']} pairs, "
                f"offset seed {out['seed']})")
        metrics = {"consistency": out["consistency"], "consistency_ci95": ci.as_list(), "pairs": out["pairs"]}
        settings = {"epochs_shift": shift.epochs, "independent": shift.independent, "offset_seed": out["seed"],
                    "decode_cache": ctx.cached, "forward_batch": _forward_batch(ctx),
                    "bootstrap": ci.settings(resamples, inv.bootstrap_seed(ctx))}
        return ProtocolReport([line], metrics, settings)


@register
class Diagonal(Protocol):
    """``-ed``: predictions along the diagonal crops (k, k); its Acc@1 is over those crops, not the tables'."""

    name = "diagonal"
    flag = EVALUATE_DIAGONAL
    in_tables = False
    figures = (Figure("stable", "Same top-1 at all diagonal shifts (-ed)"),
               Figure("acc1", "Acc@1 over the diagonal shifts (-ed)"))

    def build(self, ctx: ProtocolContext) -> Scorer:
        return DiagonalScorer(ctx.config.data.crop_size, ctx.config.data.max_shift, save=ctx.saver("diagonal"))

    def report(self, out: dict[str, Any], ctx: ProtocolContext) -> ProtocolReport:
        shifts = ctx.config.data.max_shift + 1
        lines = [f"Diagonal: mean true-class probability {out['mean_true_prob']:.3f}, Acc@1 {out['acc1']:.3f}, "
                 f"Acc@5 {out['acc5']:.3f}, same label at all {shifts} shifts {out['stable']:.3f}% "
                 f"({out['count']} images)"]
        arrays = ctx.units.get("diagonal") or out["arrays"]
        files = self._files(arrays, ctx, lines)
        metrics = {k: out[k] for k in ("mean_true_prob", "acc1", "acc5", "stable", "flips_per_image")}
        resamples = ctx.config.invariance.resamples
        found = inv.diagonal_intervals(arrays, resamples=resamples, seed=inv.bootstrap_seed(ctx))
        metrics.update({f"{k}_ci95": v.as_list() for k, v in found.items()})
        stable = found["stable"]
        lines.insert(1, f"   bootstrap over {stable.units} images: same label {stable.text()}, "
                        f"Acc@1 {found['acc1'].text()}")
        settings = {"shifts": shifts, "files": files,
                    "bootstrap": stable.settings(resamples, inv.bootstrap_seed(ctx))}
        return ProtocolReport(lines, metrics, settings)

    @staticmethod
    def _files(arrays: dict[str, Any], ctx: ProtocolContext, lines: list[str]) -> dict[str, Any]:
        if not (ctx.write_files and ctx.out_dir is not None):
            return {}
        prefix = f"diagonal_{ctx.model_name}"
        paths = save_diagonal_arrays(arrays, ctx.out_dir, prefix)
        plot = plot_diagonal(arrays, ctx.out_dir / f"{prefix}.png", title=f"{ctx.model_name}: diagonal stability")
        lines.append(f"Per-image arrays and plot written to {ctx.out_dir} ({plot.name})")
        return {"arrays": [str(p) for p in paths], "plot": str(plot)}


class _Invariance(Protocol):
    """A protocol of :mod:`antialiased.evaluation.invariance` (its ``build_<part>`` and ``report_<part>``)."""

    part: ClassVar[str] = ""

    def build(self, ctx: ProtocolContext) -> Scorer:
        return getattr(inv, f"build_{self.part}")(ctx)

    def report(self, out: dict[str, Any], ctx: ProtocolContext) -> ProtocolReport:
        return ProtocolReport(*getattr(inv, f"report_{self.part}")(out, ctx))


@register
class CircularConsistency(_Invariance):
    """``-ec``: two circular shifts of the center crop (adaptive polyphase sampling's protocol)."""

    name, part = "circular_consistency", "circular"
    flag = EVALUATE_CIRCULAR
    aliases = ("circular",)
    figures = (Figure("circular_consistency", "Circular consistency (-ec)"),
               Figure("shifted_acc1", "Acc@1 of circular shifts (-ec)"))


@register
class FractionalConsistency(_Invariance):
    """``-ef``: two sub-pixel (Fourier) shifts of the center crop."""

    name, part = "fractional_consistency", "fractional"
    flag = EVALUATE_FRACTIONAL
    aliases = ("fractional",)
    figures = (Figure("fractional_consistency", "Fractional consistency (-ef)"),
               Figure("shifted_acc1", "Acc@1 of sub-pixel shifts (-ef)"))


@register
class Adversarial(_Invariance):
    """``-ea``: correct under every shift of a grid."""

    name, part = "adversarial", "adversarial"
    flag = EVALUATE_ADVERSARIAL
    figures = (Figure("adversarial_acc1", "Adversarial accuracy (-ea)"),
               Figure("grid_consistency", "Same top-1 over the grid (-ea)"))


@register
class Equivariance(_Invariance):
    """``-eq``: per-layer equivariance errors (for segmentation models the decoder's maps and the output too)."""

    name, part = "equivariance", "equivariance"
    flag = EVALUATE_EQUIVARIANCE
    flag_help = "segmentation models: the decoder's stages and the output map too"
    tasks = ("classification", "segmentation")
    figures = (Figure("mean_stage_error", "Equivariance error, mean over stages (-eq)", ""),)

    def build(self, ctx: ProtocolContext) -> Scorer:
        size = ctx.config.segmentation.crop_size if ctx.task == "segmentation" else ctx.config.data.crop_size
        return EquivarianceScorer(size, ctx.config.invariance.layers, forward_batch=_forward_batch(ctx),
                                  save=ctx.saver("equivariance"))


@register
class ShiftDistance(_Invariance):
    """Consistency by shift distance (the audit's; no flag of its own)."""

    name, part = "shift_distance", "distance"
    aliases = ("distance",)
    figures = (Figure("distance_consistency_mean", "Consistency by distance, mean over d"),)
