"""What the training loop needs to know about a task's batches: which samples were read, the class scores
of an output, and how many predictions were right.

A class per image (classification) or a label per pixel (segmentation, 255 = not scored). The
training loop (:func:`~antialiased.training.engine.train_one_epoch`) takes one of these; the
training task (:mod:`antialiased.training.tasks`) says which.
"""
from __future__ import annotations

from typing import Any

import torch

from antialiased.data.segmentation import IGNORE_INDEX
from antialiased.evaluation.task import Task
from antialiased.evaluation.tasks import TASKS

__all__ = ["BatchRules", "CLASSIFICATION_BATCHES", "SEGMENTATION_BATCHES"]


class BatchRules:
    """A task's batches in training: targets per image, top-1 hits (classification's defaults).

    Example:
        >>> rules = CLASSIFICATION_BATCHES
        >>> rules.kept(torch.tensor([3, -100, 1])).tolist()
        [True, False, True]
        >>> [int(v) for v in rules.hits(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))]
        [1, 2]
    """

    def __init__(self, task: Task) -> None:
        self.task = task  # the evaluation task: which samples were read, the output's class scores

    def kept(self, targets: torch.Tensor) -> torch.Tensor:
        """(N,) bool: the samples of a batch that were read (unreadable ones carry SKIPPED_TARGET)."""
        return self.task.kept(targets)

    def scores(self, output: Any) -> torch.Tensor:
        """The class scores of a model's output (a dict's ``'out'``, a tuple's first item), detached."""
        return self.task.outputs(output).detach()

    def hits(self, scores: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | int]:
        """``(right, counted)``: predictions that equal their target (on the device: no sync), and predictions counted."""
        return (scores.argmax(dim=1) == targets).sum(), int(targets.shape[0])


class _PixelRules(BatchRules):
    """Segmentation: a (H, W) label map per image; pixels labelled 255 are not counted.

    Example:
        >>> scores = torch.zeros(1, 2, 1, 3); scores[0, 1, 0, 0] = 1  # predicts 1, 0, 0
        >>> [int(v) for v in SEGMENTATION_BATCHES.hits(scores, torch.tensor([[[1, 1, 255]]]))]
        [1, 2]
    """

    def hits(self, scores: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | int]:
        labelled = targets != IGNORE_INDEX
        return ((scores.argmax(dim=1) == targets) & labelled).sum(), labelled.sum()


CLASSIFICATION_BATCHES = BatchRules(TASKS["classification"])
SEGMENTATION_BATCHES = _PixelRules(TASKS["segmentation"])
