"""Consistency against shift distance: top-1 agreement of the crops at (0, 0) and (0, d), and (0, 0) and (d, 0).

For d = 1..max_shift, the 224 crops of the 256 image at offsets (0, d) (a shift to the right) and
(d, 0) (down) are compared with the crop at (0, 0). The curve shows how agreement decays with the
distance and whether it oscillates with the network's stride (the audit's consistency plot).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from antialiased.errors import ConfigError, DataError
from antialiased.evaluation.bootstrap import (RESAMPLES, Interval, bootstrap_columns, bootstrap_interval,
                                              interval_methods)
from antialiased.evaluation.loop import EvalBatch, Forward, LoopOptions, Scorer
from antialiased.evaluation.pairs import UnitIds, run_scorer, saving
from antialiased.evaluation.shifts import crops_at, top1_over

__all__ = ["ShiftDistanceScorer", "consistency_by_distance", "distance_curve"]


class ShiftDistanceScorer(Scorer):
    """Per image, whether the crops at (0, d) and (d, 0) get the top-1 of the crop at (0, 0), d = 1..max_shift.

    Per-unit outcomes (:meth:`units`): ``agree`` of shape (images, 2, max_shift) (axis 1: the
    horizontal shift (0, d), then the vertical (d, 0)), ``unit`` and ``index``.
    """

    name = "shift_distance"

    def __init__(self, crop_size: int = 224, max_shift: int = 32, *, forward_batch: int = 0,
                 save: Callable | None = None) -> None:
        if max_shift < 1 or crop_size < 1:
            raise ConfigError(f"--crop-size and --max-shift must be >= 1, got {crop_size} and {max_shift}")
        self.crop_size, self.max_shift, self.forward_batch, self.save = crop_size, max_shift, forward_batch, save
        self.input_size = crop_size + max_shift
        distances = range(1, max_shift + 1)
        self.offsets = [(0, 0)] + [(0, d) for d in distances] + [(d, 0) for d in distances]
        self.ids = UnitIds()
        self.parts: dict[str, list[np.ndarray]] = {"agree": [], "unit": [], "index": []}

    def score(self, batch: EvalBatch, forward: Forward) -> None:
        if not batch.n:
            return
        images = batch.images
        if min(images.shape[-2:]) < self.input_size:
            raise DataError(f"consistency by distance needs images of at least {self.input_size}x{self.input_size}; "
                            f"the loader gave {tuple(images.shape[-2:])}")
        make = saving(lambda o: crops_at(images, o, self.crop_size), self.save, batch)
        preds = top1_over(forward, make, self.offsets, batch.n, self.forward_batch)
        agree = (preds[1:] == preds[:1]).view(2, self.max_shift, batch.n).permute(2, 0, 1)
        self.parts["agree"].append(agree.cpu().numpy())
        self.parts["unit"].append(self.ids(batch))
        self.parts["index"].append(batch.indices.numpy() if batch.indices is not None else np.full(batch.n, -1))

    def units(self) -> dict[str, np.ndarray]:
        if not self.parts["agree"]:
            return {"agree": np.zeros((0, 2, self.max_shift), dtype=bool), "unit": np.zeros(0, dtype=np.int64),
                    "index": np.zeros(0, dtype=np.int64)}
        return {k: np.concatenate(v) for k, v in self.parts.items()}

    def sums(self) -> list[float]:
        agree = self.units()["agree"]
        return [*agree.sum(axis=0).reshape(-1).tolist(), len(agree)]

    def result(self, sums: list[float]) -> dict[str, Any]:
        *counts, images = sums
        per = np.asarray(counts, dtype=float).reshape(2, self.max_shift) / max(images, 1) * 100
        return {"distances": list(range(1, self.max_shift + 1)), "consistency": per.mean(axis=0).tolist(),
                "horizontal": per[0].tolist(), "vertical": per[1].tolist(),
                "mean_consistency": float(per.mean()) if images else float("nan"), "images": int(images)}

    @staticmethod
    def intervals(units: dict[str, np.ndarray], *, resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Interval]:
        """The 95% bootstrap interval over images of the mean agreement over all distances and both directions."""
        agree = units["agree"].reshape(len(units["agree"]), -1).mean(axis=1)
        return {"mean_consistency": bootstrap_interval(agree, units["unit"], resamples=resamples, seed=seed)}


def distance_curve(units: dict[str, np.ndarray], *, resamples: int = RESAMPLES, seed: int = 0) -> dict[str, list]:
    """Agreement (both directions) per distance with 95% bootstrap intervals over images: ``{'consistency',
    'low', 'high'}``, one entry per distance."""
    agree = units["agree"].mean(axis=1)  # (images, distances)
    value, low, high, _ = bootstrap_columns(agree, units["unit"], resamples=resamples, seed=seed, scale=100,
                                            proportion=True)
    return {"consistency": value.tolist(), "low": low.tolist(), "high": high.tolist(),
            "methods": interval_methods(agree, units["unit"], proportion=True)}


def consistency_by_distance(model: nn.Module, loader: Iterable, device: torch.device | str, *,
                            crop_size: int = 224, max_shift: int = 32, forward_batch: int = 0,
                            seed: int | None = None, progress: bool = True, amp_dtype: torch.dtype | None = None,
                            channels_last: bool = False, print_freq: int = 10, resamples: int = RESAMPLES) -> dict:
    """Top-1 agreement between the crop at (0, 0) and those at (0, d) and (d, 0), for d = 1..max_shift.

    ``loader`` yields images of at least ``crop_size + max_shift`` pixels. ``seed`` seeds the bootstrap.

    Returns:
        ``{'distances', 'consistency' (per distance, both directions), 'horizontal', 'vertical',
        'curve_low', 'curve_high' (95% intervals per distance, made as 'curve_ci95_method' says), 'mean_consistency',
        'mean_consistency_ci95', 'images', 'units', 'count', 'skipped', 'skipped_indices', 'cached'}``.

    Example:
        >>> pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))
        >>> flat = torch.ones(2, 3, 12, 12)  # uniform images: every crop is the same
        >>> out = consistency_by_distance(pool, [(flat, torch.tensor([0, 1]))], "cpu", crop_size=8, max_shift=4,
        ...                               progress=False)
        >>> out["distances"], out["consistency"]
        ([1, 2, 3, 4], [100.0, 100.0, 100.0, 100.0])
    """
    scorer = ShiftDistanceScorer(crop_size, max_shift, forward_batch=forward_batch)
    options = LoopOptions(amp_dtype=amp_dtype, channels_last=channels_last, progress=progress,
                          print_freq=print_freq, desc="Consistency by distance")
    return run_scorer(model, loader, device, scorer, options, resamples=resamples, seed=seed, extra=_curve_fields)


def _curve_fields(out: dict[str, Any], units: dict[str, np.ndarray], *, resamples: int, seed: int) -> dict[str, list]:
    curve = distance_curve(units, resamples=resamples, seed=seed)
    return {"curve_low": curve["low"], "curve_high": curve["high"], "curve_ci95_method": curve["methods"]}
