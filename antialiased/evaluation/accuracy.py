"""Top-1/top-5 accuracy (the paper's ``-e``)."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from antialiased.evaluation._common import topk_hits
from antialiased.evaluation.loop import EvalBatch, Forward, LoopOptions, Scorer, run_protocols

__all__ = ["AccuracyScorer", "evaluate_accuracy"]


def _indices(batch: EvalBatch) -> torch.Tensor:
    return batch.indices if batch.indices is not None else torch.full((batch.n,), -1, dtype=torch.long)


class AccuracyScorer(Scorer):
    """Top-1/top-5 hits of the central ``crop_size`` crop (the whole image for None).

    Per-unit outcomes (:meth:`units`): ``correct1``, ``correct5``, ``index`` and ``batch`` (the loader
    batch: the unit of an ensemble's per-batch crops) per image.
    """

    name = "accuracy"

    def __init__(self, crop_size: int | None = None, *, save: Callable | None = None,
                 keep_predictions: bool = False) -> None:
        self.input_size = crop_size
        self.save, self.keep_predictions = save, keep_predictions
        self.correct: torch.Tensor | None = None  # running (top-1, top-5) on the device: no sync per batch
        self.hits: list[torch.Tensor] = []
        self.indices: list[torch.Tensor] = []
        self.steps: list[torch.Tensor] = []
        self.predictions: list[torch.Tensor] = []

    def score(self, batch: EvalBatch, forward: Forward) -> None:
        if not batch.n:
            return
        images = batch.center(self.input_size)
        self._add(forward(images), batch)
        if self.save is not None:
            self.save(images, batch.indices)

    def _add(self, scores: torch.Tensor, batch: EvalBatch) -> None:
        """Count the hits of one batch's class scores (kept on the device: no sync per batch)."""
        hits = topk_hits(scores, batch.targets)
        self.correct = hits.sum(dim=1) if self.correct is None else self.correct + hits.sum(dim=1)
        self.hits.append(hits)
        self.indices.append(_indices(batch))
        self.steps.append(torch.full((batch.n,), batch.step, dtype=torch.long))
        if self.keep_predictions:
            self.predictions.append(scores.argmax(dim=1))

    def _images(self) -> int:
        return sum(int(i.numel()) for i in self.indices)

    def sums(self) -> list[float]:
        c1, c5 = self.correct.tolist() if self.correct is not None else (0, 0)
        return [c1, c5, self._images()]

    def result(self, sums: list[float]) -> dict[str, Any]:
        c1, c5, n = sums
        out: dict[str, Any] = {"acc1": 100.0 * c1 / n if n else float("nan"),
                               "acc5": 100.0 * c5 / n if n else float("nan")}
        if self.keep_predictions:
            out["predictions"] = (torch.cat(self.predictions).cpu() if self.predictions
                                  else torch.empty(0, dtype=torch.long))
        return out

    def postfix(self) -> dict[str, str]:
        n = self._images()
        if self.correct is None or not n:
            return {}
        c1, c5 = self.correct.tolist()
        return {"acc1": f"{100 * c1 / n:.2f}", "acc5": f"{100 * c5 / n:.2f}"}

    def units(self) -> dict[str, np.ndarray]:
        hits = torch.cat(self.hits, dim=1).cpu().numpy() if self.hits else np.zeros((2, 0), dtype=bool)
        index = torch.cat(self.indices).numpy() if self.indices else np.zeros(0, dtype=np.int64)
        batch = torch.cat(self.steps).numpy() if self.steps else np.zeros(0, dtype=np.int64)
        return {"correct1": hits[0], "correct5": hits[1], "index": index, "batch": batch}


def evaluate_accuracy(model: nn.Module, loader: Iterable, device: torch.device | str, *,
                      amp_dtype: torch.dtype | None = None, channels_last: bool = False, progress: bool = True,
                      print_freq: int = 10, save: Callable | None = None, return_predictions: bool = False,
                      crop_size: int | None = None) -> dict:
    """Top-1 and top-5 accuracy (percent) of ``model`` over ``loader``.

    ``loader`` yields ``(images, targets[, indices])``; images are normalized floats (as from
    :func:`antialiased.data.eval_transform`) or uint8 (normalized here, identically). With
    ``crop_size`` the central crop of that size is scored (e.g. 224 of a 256 image), else the whole
    image. Samples with target :data:`antialiased.data.SKIPPED_TARGET` (unreadable files) are
    counted, not scored. Counts are summed over ranks when torch.distributed is initialized.

    Returns:
        ``{'acc1', 'acc5', 'count', 'skipped', 'skipped_indices'}``; with ``return_predictions`` also
        ``'predictions'``, the top-1 labels in loader order.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
        >>> data = [(torch.randn(4, 3, 8, 8), torch.randint(10, (4,)))]
        >>> sorted(evaluate_accuracy(model, data, "cpu", progress=False))
        ['acc1', 'acc5', 'count', 'skipped', 'skipped_indices']
    """
    scorer = AccuracyScorer(crop_size, save=save, keep_predictions=return_predictions)
    options = LoopOptions(amp_dtype=amp_dtype, channels_last=channels_last, progress=progress,
                          print_freq=print_freq, desc="Acc")
    return run_protocols(model, loader, device, [scorer], options).results[scorer.name]
