"""Ensembles over random crops (the seed's ``-ens E``, ``-ens_sm``, ``-ens_cf``)."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import nn

from antialiased.errors import ConfigError
from antialiased.evaluation._common import new_generator
from antialiased.evaluation.accuracy import AccuracyScorer
from antialiased.evaluation.loop import EvalBatch, Forward, LoopOptions, run_protocols

__all__ = ["EnsembleScorer", "ensemble_accuracy"]


class EnsembleScorer(AccuracyScorer):
    """Top-1/top-5 hits of the average over ``crops`` random crops per batch (see :func:`ensemble_accuracy`)."""

    name = "ensemble"

    def __init__(self, crops: int, *, softmax: bool = False, center_first: bool = False, crop_size: int = 224,
                 max_shift: int = 32, seed: int | None = None, save: Callable | None = None) -> None:
        if crops < 1:
            raise ConfigError(f"an ensemble needs at least one crop (-ens E with E >= 1), got {crops}")
        super().__init__(crop_size, save=save)
        self.crops, self.softmax, self.center_first = crops, softmax, center_first
        self.crop_size, self.max_shift, self.input_size = crop_size, max_shift, crop_size + max_shift
        self.generator, self.seed = new_generator(seed)

    def score(self, batch: EvalBatch, forward: Forward) -> None:
        offsets = torch.randint(self.max_shift, (self.crops, 2), generator=self.generator)
        if self.center_first:
            offsets[0] = self.max_shift // 2
        if not batch.n:
            return
        c, images = self.crop_size, batch.images
        logits = forward(torch.cat([images[..., h:h + c, w:w + c] for h, w in offsets.tolist()]))
        scores = logits.softmax(dim=1) if self.softmax else logits
        self._add(scores.view(self.crops, batch.n, -1).mean(dim=0), batch)
        if self.save is not None:
            self.save(images, batch.indices)

    def result(self, sums: list[float]) -> dict[str, Any]:
        return {**super().result(sums), "seed": self.seed}


def ensemble_accuracy(model: nn.Module, loader: Iterable, device: torch.device | str, *, crops: int,
                      softmax: bool = False, center_first: bool = False, crop_size: int = 224,
                      max_shift: int = 32, seed: int | None = None, progress: bool = True,
                      amp_dtype: torch.dtype | None = None, channels_last: bool = False, print_freq: int = 10,
                      save: Callable | None = None) -> dict:
    """Top-1/top-5 accuracy of the average over ``crops`` random ``crop_size`` crops of each image.

    For each batch, ``crops`` offsets are drawn uniformly from {0..max_shift-1}^2 (with
    ``center_first`` the first one is the center, (max_shift/2, max_shift/2), which is the ``-e`` crop
    of a Resize(256) + CenterCrop(256) image). Logits are averaged, or softmax outputs with ``softmax``.

    Returns:
        ``{'acc1', 'acc5', 'count', 'skipped', 'skipped_indices', 'seed'}``

    Example:
        >>> model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))
        >>> data = [(torch.rand(2, 3, 10, 10), torch.tensor([0, 3]))]
        >>> ensemble_accuracy(model, data, "cpu", crops=3, crop_size=8, max_shift=2, seed=0, progress=False)["count"]
        2
    """
    scorer = EnsembleScorer(crops, softmax=softmax, center_first=center_first, crop_size=crop_size,
                            max_shift=max_shift, seed=seed, save=save)
    options = LoopOptions(amp_dtype=amp_dtype, channels_last=channels_last, progress=progress,
                          print_freq=print_freq, desc=f"Ensemble x{crops}")
    return run_protocols(model, loader, device, [scorer], options).results[scorer.name]
