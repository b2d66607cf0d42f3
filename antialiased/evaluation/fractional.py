"""Fractional-shift consistency (``-ef``): two sub-pixel translations of the center crop, the same top-1?

Per image and pass, two shifts are drawn uniformly from [0, 1)^2 pixels and applied to the 224
center crop as a band-limited circular translation (a phase ramp on its Fourier transform, real
part kept; :func:`~antialiased.evaluation.shifts.fourier_shift`), the sub-pixel shifts of the
alias-free-network studies (Michaeli et al., 2023).
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from antialiased.evaluation.bootstrap import RESAMPLES
from antialiased.evaluation.loop import LoopOptions
from antialiased.evaluation.pairs import ShiftPairScorer, run_scorer
from antialiased.evaluation.shifts import fourier_shift

__all__ = ["FractionalConsistencyScorer", "fractional_consistency"]


class FractionalConsistencyScorer(ShiftPairScorer):
    """Top-1 agreement of two band-limited sub-pixel shifts of the center crop, drawn per image from [0, 1)^2."""

    name = "fractional_consistency"
    label = "Fractional"

    def draw(self, count: int) -> torch.Tensor:
        return torch.rand((count, 2, 2), generator=self.generator)

    def shift(self, images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        return fourier_shift(images, shifts)


def fractional_consistency(model: nn.Module, loader: Iterable, device: torch.device | str, *, crop_size: int = 224,
                           epochs: int = 5, seed: int | None = None, progress: bool = True,
                           amp_dtype: torch.dtype | None = None, channels_last: bool = False,
                           cache_bytes: int = 4 << 30, print_freq: int = 10, min_forward: int = 0,
                           save: Callable | None = None, resamples: int = RESAMPLES) -> dict:
    """Percentage of (image, pass) pairs whose two sub-pixel-shifted center crops get the same top-1.

    As :func:`~antialiased.evaluation.circular.circular_consistency`, with the two shifts of each
    image drawn uniformly from [0, 1)^2 and applied by :func:`~antialiased.evaluation.shifts.fourier_shift`.

    Returns:
        ``{'consistency', 'consistency_ci95', 'shifted_acc1', 'shifted_acc1_ci95', 'pairs', 'agree',
        'units', 'seed', 'count', 'skipped', 'skipped_indices', 'cached'}`` (95% bootstrap intervals
        over images).

    Example:
        >>> pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))  # keeps the mean
        >>> data = [(torch.rand(2, 3, 16, 16), torch.tensor([0, 1]))]
        >>> fractional_consistency(pool, data, "cpu", crop_size=16, epochs=1, seed=0, progress=False)["pairs"]
        2
    """
    scorer = FractionalConsistencyScorer(crop_size, epochs, seed=seed, min_forward=min_forward, save=save)
    options = LoopOptions(amp_dtype=amp_dtype, channels_last=channels_last, progress=progress,
                          print_freq=print_freq, cache_bytes=cache_bytes, desc="Fractional consistency")
    return run_scorer(model, loader, device, scorer, options, resamples=resamples, seed=seed)
