"""Training a segmentation model, as torchvision's segmentation reference trains one (``references/segmentation``).

- Data (:mod:`antialiased.training.seg_data`): random scale 0.5-2.0 of ``--seg-size`` (base 520),
  flip and ``--crop-size`` crop (480) of image and mask together (the mask by nearest neighbour,
  padded with 255); validation on whole images resized to ``--seg-size``, one per batch.
- Loss: per-pixel cross-entropy, pixels labelled 255 left out; a model with an auxiliary head
  (torchvision's ``aux`` output) adds 0.5 times its loss.
- Defaults (:data:`SEGMENTATION_RECIPE`): SGD lr 0.02, momentum 0.9, weight decay 1e-4, 30 epochs,
  4 images per process (the reference's recipes: 8 GPUs x 4 images at lr 0.02; its MobileNetV3
  models used ``--wd 1e-6``), the poly schedule ``(1 - step / steps) ** 0.9`` per optimizer step.
  Differences from the reference: every parameter trains at one learning rate (the reference gives
  the auxiliary head 10x), and a batch whose pixels are all 255 adds a zero loss instead of NaN.
- Validation: the segmentation ``-e`` (mIoU over the summed confusion matrix, pixel accuracy),
  logged as ``val_miou`` / ``val_pixel_acc``; ``model_best`` is the epoch of the best mIoU
  (``best_miou`` in checkpoints and the log).

The classes come from the model or its weights (21 for torchvision's heads, smp's ``classes``,
``--num-classes``, a weights file's count), never from the masks: a mask label at or above the
count (other than 255) skips its pair, with the reason.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from antialiased.data.segmentation import IGNORE_INDEX
from antialiased.errors import AntialiasedError, ConfigError, ModelError
from antialiased.evaluation.loop import LoopOptions, run_protocols
from antialiased.evaluation.segmentation import PROBE_SIZE
from antialiased.evaluation.segmentation_scorers import SegmentationAccuracyScorer
from antialiased.evaluation.tasks import TASKS
from antialiased.models import load_model
from antialiased.training.batch_rules import SEGMENTATION_BATCHES
from antialiased.training.config import DataConfig, TrainConfig
from antialiased.training.data import TrainData
from antialiased.training.model_setup import model_spec, weights_spec
from antialiased.training.seg_data import load_segmentation_data
from antialiased.training.task import Recipe, TrainingTask

__all__ = ["AUX_WEIGHT", "SEGMENTATION_RECIPE", "SegmentationLoss", "SegmentationTraining"]

AUX_WEIGHT = 0.5  # the reference's weight of the auxiliary head's loss
SEGMENTATION_RECIPE = Recipe(lr=0.02, epochs=30, batch_size=4, crop_size=480, schedule="poly")


class SegmentationLoss(nn.Module):
    """Cross-entropy per pixel over the labelled pixels (255 left out), plus ``aux_weight`` times the
    auxiliary head's when the output has one (a dict with ``'out'`` and ``'aux'``, as torchvision's).

    The mean over the labelled pixels, as ``F.cross_entropy(..., ignore_index=255)``; a batch without
    labelled pixels gives 0 (not NaN).

    Example:
        >>> loss = SegmentationLoss()
        >>> scores, target = torch.zeros(1, 3, 2, 2), torch.tensor([[[0, 1], [2, 255]]])
        >>> round(float(loss(scores, target)), 4), round(float(torch.log(torch.tensor(3.0))), 4)
        (1.0986, 1.0986)
        >>> float(loss({"out": scores, "aux": scores}, target)) == 1.5 * float(loss(scores, target))
        True
    """

    def __init__(self, aux_weight: float = AUX_WEIGHT, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.aux_weight, self.ignore_index = aux_weight, ignore_index

    def _mean(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = F.cross_entropy(scores, target, ignore_index=self.ignore_index, reduction="sum")
        return total / (target != self.ignore_index).sum().clamp(min=1)

    def forward(self, output: Any, target: torch.Tensor) -> torch.Tensor:
        loss = self._mean(SEGMENTATION_BATCHES.task.outputs(output), target)
        if isinstance(output, dict) and output.get("aux") is not None:
            loss = loss + self.aux_weight * self._mean(output["aux"], target)
        return loss


def _pairs(loader: Any) -> Any:
    """The :class:`~antialiased.data.segmentation.SegmentationDataset` behind a training or validation loader."""
    dataset = loader.dataset
    return getattr(dataset, "dataset", dataset).pairs  # SeededSamples -> SegmentationPairs -> the pairs


def _load(cfg: TrainConfig) -> nn.Module:
    """The model from the one loader; the class count is ``--num-classes`` where given, else the model's own."""
    kwargs = {} if cfg.model.num_classes is None else {"num_classes": cfg.model.num_classes}
    try:
        return load_model(model_spec(cfg.model), weights_spec(cfg.model), **kwargs)
    except AntialiasedError:
        raise
    except (ValueError, FileNotFoundError) as exc:
        raise ModelError(f"cannot build {cfg.model.arch!r}: {exc}") from exc


class SegmentationTraining(TrainingTask):
    """The segmentation task's training (see the module doc)."""

    name = "segmentation"
    recipe = SEGMENTATION_RECIPE
    rules = SEGMENTATION_BATCHES
    metric = "miou"
    metric_label = "mIoU"

    def load_data(self, cfg: DataConfig, *, distributed: bool, generator: torch.Generator, pin_memory: bool,
                  seed: int | None = None) -> TrainData:
        return load_segmentation_data(cfg, distributed=distributed, generator=generator, pin_memory=pin_memory,
                                      seed=seed)

    def build_model(self, cfg: TrainConfig, data: TrainData, device: torch.device) -> tuple[nn.Module, int]:
        model = _load(cfg).to(device)
        classes = TASKS["segmentation"].probe(model, PROBE_SIZE, device)  # (N, classes, H, W) at the input's size
        if classes < 2:
            raise ConfigError(f"{cfg.model.arch} predicts {classes} class per pixel (smp's default for smp/ names): "
                              f"cross-entropy needs two or more; pass --num-classes N (the masks' classes, "
                              f"background included)")
        train, val = _pairs(data.train_loader), _pairs(data.val_loader)
        train.num_classes = val.num_classes = classes  # a label at or above them skips its pair, with the reason
        data.classes = val.classes or [str(index) for index in range(classes)]
        return model, classes

    def criterion(self, model: nn.Module) -> nn.Module:
        return SegmentationLoss()

    def validate(self, model: nn.Module, loader: Iterable, device: torch.device, *, cfg: TrainConfig,
                 amp_dtype: torch.dtype | None, progress: bool) -> dict[str, Any]:
        scorer = SegmentationAccuracyScorer()
        options = LoopOptions(amp_dtype=amp_dtype, channels_last=cfg.channels_last, progress=progress,
                              print_freq=cfg.print_freq, desc="Val", mean=cfg.data.mean, std=cfg.data.std)
        result = run_protocols(model, loader, device, [scorer], options, task=TASKS["segmentation"])
        return result.results[scorer.name]

    def epoch_fields(self, train: dict[str, Any], val: dict[str, Any]) -> dict[str, Any]:
        return {"train_pixel_acc": train["acc1"], "val_miou": val["miou"], "val_pixel_acc": val["pixel_acc"]}

    def epoch_line(self, train: dict[str, Any], val: dict[str, Any]) -> str:
        return (f"train loss {train['loss']:.4f} pixel acc {train['acc1']:.2f}  val mIoU {val['miou']:.3f} pixel "
                f"acc {val['pixel_acc']:.3f}")
