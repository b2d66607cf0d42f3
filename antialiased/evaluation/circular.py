"""Circular-shift consistency (``-ec``): two circular shifts of the center crop, the same top-1?

The protocol of adaptive polyphase sampling (Chaman & Dokmanic, CVPR 2021): per image and pass,
two shifts are drawn uniformly from {0..max_shift-1}^2 and the 224 center crop is rolled by each
(``torch.roll`` over height and width). A network that is exactly invariant to circular shifts
scores 100%.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from antialiased.errors import ConfigError
from antialiased.evaluation.bootstrap import RESAMPLES
from antialiased.evaluation.loop import LoopOptions
from antialiased.evaluation.pairs import ShiftPairScorer, run_scorer
from antialiased.evaluation.shifts import roll_images

__all__ = ["CircularConsistencyScorer", "circular_consistency"]


class CircularConsistencyScorer(ShiftPairScorer):
    """Top-1 agreement of two circular shifts of the center crop, drawn per image from {0..max_shift-1}^2."""

    name = "circular_consistency"
    label = "Circular"

    def __init__(self, crop_size: int = 224, max_shift: int = 32, epochs: int = 5, *, seed: int | None = None,
                 min_forward: int = 0, save: Callable | None = None) -> None:
        if max_shift < 1:
            raise ConfigError(f"--max-shift must be >= 1, got {max_shift}")
        super().__init__(crop_size, epochs, seed=seed, min_forward=min_forward, save=save)
        self.max_shift = max_shift

    def draw(self, count: int) -> torch.Tensor:
        return torch.randint(self.max_shift, (count, 2, 2), generator=self.generator)

    def shift(self, images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        return roll_images(images, shifts)


def circular_consistency(model: nn.Module, loader: Iterable, device: torch.device | str, *, crop_size: int = 224,
                         max_shift: int = 32, epochs: int = 5, seed: int | None = None, progress: bool = True,
                         amp_dtype: torch.dtype | None = None, channels_last: bool = False,
                         cache_bytes: int = 4 << 30, print_freq: int = 10, min_forward: int = 0,
                         save: Callable | None = None, resamples: int = RESAMPLES) -> dict:
    """Percentage of (image, pass) pairs whose two circularly shifted center crops get the same top-1.

    ``loader`` yields ``(images, targets[, indices])`` of at least ``crop_size`` pixels (the central
    ``crop_size`` crop is used: Resize(256) + CenterCrop(224) images, or 256 ones). Per image and
    pass (``epochs`` passes; later ones from the decoded images kept in ``cache_bytes``), two shifts
    (dh, dw) are drawn uniformly from {0..max_shift-1}^2 with a generator seeded by ``seed``.

    Returns:
        ``{'consistency', 'consistency_ci95', 'shifted_acc1', 'shifted_acc1_ci95', 'pairs', 'agree',
        'units', 'seed', 'count', 'skipped', 'skipped_indices', 'cached'}``: the intervals are 95%
        bootstrap intervals over images (``units``), the bootstrap seeded with ``seed``.

    Example:
        >>> pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))  # invariant
        >>> data = [(torch.rand(3, 3, 16, 16), torch.tensor([0, 1, 2]))]
        >>> out = circular_consistency(pool, data, "cpu", crop_size=16, max_shift=8, epochs=2, seed=0,
        ...                            progress=False)
        >>> out["consistency"], out["pairs"], out["units"]  # the interval: Wilson's over 3 images, all agreeing
        (100.0, 6, 3)
        >>> [round(v, 1) for v in out["consistency_ci95"]]
        [43.9, 100.0]
    """
    scorer = CircularConsistencyScorer(crop_size, max_shift, epochs, seed=seed, min_forward=min_forward, save=save)
    options = LoopOptions(amp_dtype=amp_dtype, channels_last=channels_last, progress=progress,
                          print_freq=print_freq, cache_bytes=cache_bytes, desc="Circular consistency")
    return run_scorer(model, loader, device, scorer, options, resamples=resamples, seed=seed)
