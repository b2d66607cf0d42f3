"""The tasks training knows, registered once each, and how a run's task is decided.

A run's task is ``TrainConfig.task`` (``--task``) when given, else its model's: ``model_spec.task``
of the name (segmentation for torchvision's segmentation models and ``smp/`` names). A task given
that differs from the model's (a classifier with ``--task segmentation``) is refused before any
folder is read.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from antialiased.evaluation.tasks import infer_task
from antialiased.models import get_model_spec
from antialiased.training.batch_rules import CLASSIFICATION_BATCHES
from antialiased.training.config import DataConfig, TrainConfig
from antialiased.training.data import TrainData, load_data
from antialiased.training.model_setup import build_model, model_classes
from antialiased.training.segmentation import SegmentationTraining
from antialiased.support.registry import Registry
from antialiased.training.task import Recipe, TrainingTask

__all__ = ["CLASSIFICATION_RECIPE", "ClassificationTraining", "TRAINING_TASKS", "register_training_task",
           "task_of", "training_task"]

CLASSIFICATION_RECIPE = Recipe(lr=0.1, epochs=90, batch_size=256, crop_size=224, schedule="step")  # the paper's


class ClassificationTraining(TrainingTask):
    """The paper's training: class folders, RandomResizedCrop + flip, cross-entropy, top-1/top-5 validation."""

    name = "classification"
    recipe = CLASSIFICATION_RECIPE
    rules = CLASSIFICATION_BATCHES
    metric = "acc1"
    metric_label = "acc@1"

    def load_data(self, cfg: DataConfig, *, distributed: bool, generator: torch.Generator, pin_memory: bool,
                  seed: int | None = None) -> TrainData:
        return load_data(cfg, distributed=distributed, generator=generator, pin_memory=pin_memory, seed=seed)

    def build_model(self, cfg: TrainConfig, data: TrainData, device: torch.device) -> tuple[nn.Module, int]:
        num_classes = model_classes(cfg.model, len(data.classes))
        return build_model(cfg.model, num_classes).to(device), num_classes

    def criterion(self, model: nn.Module) -> None:
        return None  # the paper's cross-entropy (antialiased.training.setup.build_criterion)

    def validate(self, model: nn.Module, loader: Iterable, device: torch.device, *, cfg: TrainConfig,
                 amp_dtype: torch.dtype | None, progress: bool) -> None:
        return None  # the paper's top-1/top-5 protocol (antialiased.training.engine.evaluate, run by the epoch)

    def epoch_fields(self, train: dict[str, Any], val: dict[str, Any]) -> dict[str, Any]:
        return {"train_acc1": train["acc1"], "val_acc1": val["acc1"], "val_acc5": val["acc5"]}

    def epoch_line(self, train: dict[str, Any], val: dict[str, Any]) -> str:
        return (f"train loss {train['loss']:.4f} acc@1 {train['acc1']:.2f}  val acc@1 {val['acc1']:.3f} acc@5 "
                f"{val['acc5']:.3f}")


TRAINING_TASKS: Registry[TrainingTask] = Registry("training task")


def register_training_task(task: TrainingTask) -> TrainingTask:
    """Add a task to :data:`TRAINING_TASKS` (each name once; evaluation must know the task too)."""
    return TRAINING_TASKS.add(task.name, task)


register_training_task(ClassificationTraining())
register_training_task(SegmentationTraining())


def task_of(arch: str, requested: str | None = None, method: str | None = None,
            options: dict | None = None) -> TrainingTask:
    """The training task of model ``arch`` (``requested``: ``--task``, checked against the model's).

    Raises:
        ModelError: an unknown name, or a task other than the model's (a classifier with ``--task
            segmentation``); ConfigError: an unknown task.

    Example:
        >>> task_of("fcn_resnet50_lpf3").name, task_of("resnet18").recipe.lr
        ('segmentation', 0.1)
        >>> task_of("resnet18", "segmentation")
        Traceback (most recent call last):
        ...
        antialiased.errors.ModelError: resnet18 is a classification model but --task segmentation was given: drop --task (the model's task is used), or give a segmentation model
    """
    spec = get_model_spec(arch, method=method, options=options)
    return TRAINING_TASKS[infer_task(requested, spec).name]


def training_task(cfg: TrainConfig) -> TrainingTask:
    """The task of a run (see the module doc)."""
    return task_of(cfg.model.arch, cfg.task, cfg.model.aa_method, getattr(cfg.model, "aa_options", None))
