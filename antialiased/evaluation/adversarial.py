"""Adversarial-shift accuracy (``-ea``): is an image classified correctly under every shift of a grid?

The worst case over translations (Michaeli et al., "Alias-Free Convnets", 2023): every shift
(dh, dw) in {0..G-1}^2 is tried and an image counts as correct only if its top-1 is the true class
for all of them. ``crop`` mode takes the 224 crops at those offsets of the 256 image; ``circular``
mode rolls the 224 center crop by them. Also reported: the plain center-crop Acc@1, the mean
Acc@1 over the grid, and the share of images whose top-1 is the same over the whole grid.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from antialiased.data.transforms import center_offset
from antialiased.errors import ConfigError, DataError
from antialiased.evaluation.bootstrap import RESAMPLES, Interval, bootstrap_interval
from antialiased.evaluation.loop import EvalBatch, Forward, LoopOptions, Scorer
from antialiased.evaluation.pairs import UnitIds, run_scorer, saving
from antialiased.evaluation.shifts import crops_at, grid_offsets, rolled_copies, top1_over

__all__ = ["AdversarialScorer", "adversarial_accuracy", "SHIFT_MODES", "check_grid"]

SHIFT_MODES = ("crop", "circular")
_FIGURES = ("correct_all", "same_all", "center_correct", "grid_correct")


def check_grid(grid: int, mode: str, max_shift: int, crop_size: int = 224) -> None:
    """Refuse a grid that cannot be made: unknown mode, G < 1, or crops beyond the image (crop mode).

    Example:
        >>> check_grid(34, "crop", 32)
        Traceback (most recent call last):
        ...
        antialiased.errors.ConfigError: --shift-grid 34 in crop mode needs crops at offsets up to 33, but the 256 image leaves a margin of 32 (--max-shift): use --shift-grid <= 33, a larger --max-shift, or --shift-mode circular
    """
    if mode not in SHIFT_MODES:
        raise ConfigError(f"--shift-mode must be one of {', '.join(SHIFT_MODES)}, got {mode!r}")
    if grid < 1:
        raise ConfigError(f"--shift-grid must be >= 1, got {grid}")
    if mode == "crop" and grid > max_shift + 1:
        raise ConfigError(f"--shift-grid {grid} in crop mode needs crops at offsets up to {grid - 1}, but the "
                          f"{crop_size + max_shift} image leaves a margin of {max_shift} (--max-shift): use "
                          f"--shift-grid <= {max_shift + 1}, a larger --max-shift, or --shift-mode circular")
    if mode == "circular" and grid > crop_size:
        raise ConfigError(f"--shift-grid {grid} exceeds the {crop_size} crop: circular shifts repeat beyond it")


class AdversarialScorer(Scorer):
    """Top-1 of every shift of a ``grid`` x ``grid`` grid per image (see :func:`adversarial_accuracy`).

    Per-unit outcomes (:meth:`units`), one per image: ``correct_all``, ``same_all``,
    ``center_correct``, ``grid_correct`` (the share of shifts classified correctly), ``unit``, ``index``.
    """

    name = "adversarial"

    def __init__(self, crop_size: int = 224, max_shift: int = 32, grid: int = 8, mode: str = "crop", *,
                 forward_batch: int = 0, save: Callable | None = None) -> None:
        check_grid(grid, mode, max_shift, crop_size)
        self.crop_size, self.max_shift, self.grid, self.mode = crop_size, max_shift, grid, mode
        self.input_size = crop_size + max_shift if mode == "crop" else crop_size
        self.forward_batch, self.save = forward_batch, save
        self.offsets = grid_offsets(grid)
        self.ids = UnitIds()
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in (*_FIGURES, "unit", "index")}

    def _grid_predictions(self, batch: EvalBatch, forward: Forward) -> tuple[torch.Tensor, torch.Tensor]:
        """(shifts, n) top-1 over the grid and (n,) top-1 of the center crop, about ``forward_batch`` per pass."""
        c, images = self.crop_size, batch.images
        if self.mode == "crop":  # the plain center crop rides along as one more offset
            center = (center_offset(images.shape[-2], c), center_offset(images.shape[-1], c))  # -e's crop
            make = saving(lambda offsets: crops_at(images, offsets, c), self.save, batch)
            preds = top1_over(forward, make, [center, *self.offsets], batch.n, self.forward_batch)
            return preds[1:], preds[0]
        crop = batch.center(c)
        make = saving(lambda offsets: rolled_copies(crop, offsets), self.save, batch)
        preds = top1_over(forward, make, self.offsets, batch.n, self.forward_batch)
        return preds, preds[0]  # shift (0, 0) is the center crop itself

    def score(self, batch: EvalBatch, forward: Forward) -> None:
        if not batch.n:
            return
        if min(batch.images.shape[-2:]) < self.input_size:
            raise DataError(f"-ea in {self.mode} mode needs images of at least {self.input_size}x{self.input_size}; "
                            f"the loader gave {tuple(batch.images.shape[-2:])}")
        preds, center = self._grid_predictions(batch, forward)
        correct = preds == batch.targets.view(1, -1)
        outcomes = {"correct_all": correct.all(dim=0), "same_all": (preds == preds[:1]).all(dim=0),
                    "center_correct": center == batch.targets, "grid_correct": correct.float().mean(dim=0)}
        for key, value in outcomes.items():
            self.parts[key].append(value.cpu().numpy())
        self.parts["unit"].append(self.ids(batch))
        self.parts["index"].append(batch.indices.numpy() if batch.indices is not None else np.full(batch.n, -1))

    def units(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) if v else np.zeros(0) for k, v in self.parts.items()}

    def sums(self) -> list[float]:
        u = self.units()
        return [float(u[k].sum()) for k in _FIGURES] + [len(u["unit"])]

    def result(self, sums: list[float]) -> dict[str, Any]:
        *figures, images = sums
        pct = [100.0 * v / images if images else float("nan") for v in figures]
        return {"adversarial_acc1": pct[0], "grid_consistency": pct[1], "center_acc1": pct[2], "grid_acc1": pct[3],
                "images": int(images), "grid": self.grid, "mode": self.mode, "shifts": len(self.offsets)}

    def postfix(self) -> dict[str, str]:
        done = self.parts["correct_all"]
        return {"adv_acc1": f"{100 * np.concatenate(done).mean():.2f}"} if done else {}

    @staticmethod
    def intervals(units: dict[str, np.ndarray], *, resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Interval]:
        """95% bootstrap intervals over images of every figure."""
        names = {"correct_all": "adversarial_acc1", "same_all": "grid_consistency", "center_correct": "center_acc1",
                 "grid_correct": "grid_acc1"}
        return {name: bootstrap_interval(units[key], units["unit"], resamples=resamples, seed=seed)
                for key, name in names.items()}


def adversarial_accuracy(model: nn.Module, loader: Iterable, device: torch.device | str, *, crop_size: int = 224,
                         max_shift: int = 32, grid: int = 8, mode: str = "crop", forward_batch: int = 0,
                         seed: int | None = None, progress: bool = True, amp_dtype: torch.dtype | None = None,
                         channels_last: bool = False, print_freq: int = 10, resamples: int = RESAMPLES) -> dict:
    """Share of images classified correctly under every shift (dh, dw) in {0..grid-1}^2.

    ``crop`` mode: the ``crop_size`` crops at those offsets of images of ``crop_size + max_shift``
    pixels (Resize(256) + CenterCrop(256)); needs ``grid <= max_shift + 1``. ``circular`` mode:
    the central ``crop_size`` crop rolled by them. Forward passes hold about ``forward_batch``
    shifted copies (0: one loader batch, one shift at a time). ``seed`` seeds the bootstrap.

    Returns:
        ``{'adversarial_acc1', 'grid_consistency' (same top-1 over the grid), 'center_acc1' (plain
        Acc@1), 'grid_acc1' (mean Acc@1 over the shifts)}`` with ``<figure>_ci95`` (95% bootstrap
        intervals over images), and ``'images', 'units', 'grid', 'mode', 'shifts', 'count',
        'skipped', 'skipped_indices', 'cached'``.

    Example:
        >>> pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))
        >>> data = [(torch.rand(3, 3, 16, 16), torch.tensor([0, 1, 2]))]
        >>> out = adversarial_accuracy(pool, data, "cpu", crop_size=16, grid=4, mode="circular", progress=False)
        >>> out["grid_consistency"], out["adversarial_acc1"] == out["center_acc1"], out["shifts"]
        (100.0, True, 16)
    """
    scorer = AdversarialScorer(crop_size, max_shift, grid, mode, forward_batch=forward_batch)
    options = LoopOptions(amp_dtype=amp_dtype, channels_last=channels_last, progress=progress,
                          print_freq=print_freq, desc=f"Adversarial {grid}x{grid} {mode}")
    return run_scorer(model, loader, device, scorer, options, resamples=resamples, seed=seed)
