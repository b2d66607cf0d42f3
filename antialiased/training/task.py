"""What a training run asks of its task: the task adapter's interface (classification in
:mod:`antialiased.training.tasks`, segmentation in :mod:`antialiased.training.segmentation`).

A task decides how the data is read and batched, how the model is built and its classes counted,
the loss, how validation scores the model (the figure that picks ``model_best``), and what each
epoch logs and prints. The loop itself (:func:`~antialiased.training.engine.train_one_epoch`),
checkpoints, resume, DDP and fault handling are the same for every task.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn

from antialiased.training.batch_rules import BatchRules
from antialiased.training.config import DataConfig, TrainConfig
from antialiased.training.data import TrainData

__all__ = ["Recipe", "TrainingTask"]


@dataclass(frozen=True)
class Recipe:
    """A task's defaults where the command line leaves a setting out: learning rate, epochs, batch size
    per process, training crop and learning-rate schedule."""

    lr: float
    epochs: int
    batch_size: int
    crop_size: int
    schedule: str


class TrainingTask:
    """A kind of model and how it trains. Subclasses set the attributes and override the methods."""

    name: str = "task"
    recipe: Recipe
    rules: BatchRules  # the training loop's view of a batch: samples read, class scores, hits
    metric: str = "acc1"  # the validation figure that picks model_best (checkpoints record best_<metric>)
    metric_label: str = "acc@1"

    @property
    def best_key(self) -> str:
        """The checkpoint entry of the best validation figure so far (``best_acc1``, ``best_miou``)."""
        return f"best_{self.metric}"

    def load_data(self, cfg: DataConfig, *, distributed: bool, generator: torch.Generator, pin_memory: bool,
                  seed: int | None = None) -> TrainData:
        """The training and validation loaders (files listed, nothing decoded yet)."""
        raise NotImplementedError

    def build_model(self, cfg: TrainConfig, data: TrainData, device: torch.device) -> tuple[nn.Module, int]:
        """The model on ``device`` and its number of classes; ``data`` learns the classes (before any image is read)."""
        raise NotImplementedError

    def criterion(self, model: nn.Module) -> nn.Module | None:
        """The loss of a model's output and a batch's targets; None: the paper's cross-entropy
        (:func:`antialiased.training.setup.build_criterion`)."""
        return None

    def validate(self, model: nn.Module, loader: Iterable, device: torch.device, *, cfg: TrainConfig,
                 amp_dtype: torch.dtype | None, progress: bool) -> dict[str, Any] | None:
        """The validation figures, ``metric`` among them, with ``count``, ``skipped`` and ``skipped_indices``;
        None: the paper's top-1/top-5 protocol (:func:`antialiased.training.engine.evaluate`)."""
        return None

    def epoch_fields(self, train: dict[str, Any], val: dict[str, Any]) -> dict[str, Any]:
        """What ``log.jsonl`` records of an epoch's training and validation figures."""
        raise NotImplementedError

    def epoch_line(self, train: dict[str, Any], val: dict[str, Any]) -> str:
        """The figures of an epoch's printed line."""
        raise NotImplementedError
