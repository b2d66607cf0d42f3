"""The segmentation task: a class per pixel, (N, classes, H, W) scores, the same per-pixel argmax; its metrics.

Metrics follow torchvision's segmentation reference: a confusion matrix summed over the dataset on
the pixels whose label is not 255 (rows: true class, columns: predicted class), pixel accuracy
(its trace over its sum) and per-class IoU (diagonal over row + column - diagonal). The mean IoU
averages the classes whose union is non-zero (classes neither labelled nor predicted anywhere are
left out rather than counted as 0 or NaN).
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from antialiased.data.folder import SKIPPED_TARGET
from antialiased.data.segmentation import IGNORE_INDEX, SegmentationDataset
from antialiased.errors import ConfigError, ModelError
from antialiased.evaluation.bootstrap import RESAMPLES, Interval, IntervalBounds, bootstrap_statistic
from antialiased.evaluation.classification import read_class_list
from antialiased.evaluation.task import Task, TaskData, describe_output


__all__ = ["SegmentationTask", "confusion_matrix", "class_counts", "segmentation_scores", "miou_figures",
           "miou_intervals", "PROBE_SIZE"]

PROBE_SIZE = 64  # the zero image that shows a model's output form and class count

log = logging.getLogger("antialiased.eval")


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(classes, classes) pixel counts, rows the true class, columns the predicted one; label 255 is left out.

    Example:
        >>> confusion_matrix(torch.tensor([[0, 1], [1, 1]]), torch.tensor([[0, 1], [0, 255]]), 2).tolist()
        [[1, 1], [0, 1]]
    """
    target, pred = target.reshape(-1), pred.reshape(-1)
    keep = (target >= 0) & (target < num_classes) & (target != IGNORE_INDEX)
    index = target[keep] * num_classes + pred[keep]
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes, num_classes)


def class_counts(confusion: torch.Tensor) -> torch.Tensor:
    """(3, classes): per class the pixels right (intersection), predicted and labelled (on labelled pixels)."""
    return torch.stack([confusion.diagonal(), confusion.sum(dim=0), confusion.sum(dim=1)])


def miou_figures(sums: np.ndarray) -> np.ndarray:
    """(R, 2 + classes) percent figures of summed class counts (R, 3 * classes): mIoU, pixel accuracy, each IoU.

    Example:
        >>> miou_figures(np.array([[1, 2, 0, 1, 2, 0, 2, 2, 0]]))  # class 2: neither labelled nor predicted
        array([[ 75.,  75.,  50., 100.,  nan]])
    """
    sums = np.asarray(sums, dtype=float)
    inter, pred, label = np.split(sums.reshape(len(sums), 3, -1), 3, axis=1)
    inter, union = inter[:, 0], (pred + label - inter)[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, np.nan)
        defined = np.isfinite(iou)
        miou = np.where(defined.any(axis=1), np.nansum(iou, axis=1) / np.maximum(defined.sum(axis=1), 1), np.nan)
        labelled = label[:, 0].sum(axis=1)
        pixel = np.where(labelled > 0, inter.sum(axis=1) / np.maximum(labelled, 1), np.nan)
    return 100 * np.concatenate([miou[:, None], pixel[:, None], iou], axis=1)


def segmentation_scores(confusion: torch.Tensor | np.ndarray) -> dict[str, Any]:
    """``{'miou', 'pixel_acc', 'iou' (per class, None where undefined), 'class_acc'}`` in percent.

    Example:
        >>> out = segmentation_scores(torch.tensor([[3, 1], [0, 4]]))
        >>> round(out["miou"], 3), out["pixel_acc"], [round(v, 1) for v in out["iou"]]
        (77.5, 87.5, [75.0, 80.0])
    """
    confusion = np.asarray(confusion, dtype=float)
    counts = np.stack([np.diagonal(confusion), confusion.sum(axis=0), confusion.sum(axis=1)]).reshape(1, -1)
    figures = miou_figures(counts)[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        class_acc = np.where(counts[0, 2 * len(confusion):] > 0, 100 * np.diagonal(confusion) / confusion.sum(axis=1),
                             np.nan)
    return {"miou": float(figures[0]), "pixel_acc": float(figures[1]), "iou": _listed(figures[2:]),
            "class_acc": _listed(class_acc)}


def _listed(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in values]


def miou_intervals(counts: np.ndarray, units: np.ndarray | None = None, *, resamples: int = RESAMPLES,
                   seed: int = 0) -> dict[str, Any]:
    """95% bootstrap intervals over images of the mIoU, the pixel accuracy and each class's IoU.

    ``counts`` holds per image the class counts of :func:`class_counts` (images, 3, classes);
    ``units`` the image of each row (None: one row per image).

    Returns:
        ``{'miou': Interval, 'pixel_acc': Interval, 'iou': [IntervalBounds or None per class]}``: a class
        without an IoU (in no image, predicted nowhere) has no interval. Each interval knows its method
        (``bootstrap``; ``none`` for fewer than two images), which result files record next to it.
    """
    counts = np.asarray(counts, dtype=float)
    value, low, high, n = bootstrap_statistic(counts.reshape(len(counts), -1), miou_figures, units,
                                              resamples=resamples, seed=seed)
    method = "bootstrap" if n >= 2 else "none"  # bootstrap_statistic gives NaN bounds for fewer than two units
    iou = [None if not np.isfinite(v) else IntervalBounds((lo, hi), method)
           for v, lo, hi in zip(value[2:], low[2:], high[2:])]
    return {"miou": Interval(float(value[0]), float(low[0]), float(high[0]), n, method=method),
            "pixel_acc": Interval(float(value[1]), float(low[1]), float(high[1]), n, method=method), "iou": iou}


class SegmentationTask(Task):
    """Semantic segmentation: a label map per image (255 = ignore), (N, classes, H, W) scores whose map
    has the input's size, the same per-pixel argmax.

    Data: a Pascal VOC or ``images/`` + ``masks/`` folder
    (:class:`~antialiased.data.segmentation.SegmentationDataset`), the shorter side resized to
    ``--seg-size``, one image per loader batch (images differ in size; each is evaluated whole,
    as torchvision's reference does with batch size 1).

    Example:
        >>> task = SegmentationTask()
        >>> task.probe(nn.Conv2d(3, 21, 1), 16, "cpu")
        21
        >>> task.probe(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 10)), 16, "cpu")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        antialiased.errors.ModelError: a classifier given --task segmentation: the model returns ...
    """

    name = "segmentation"
    prediction = "per-pixel class"
    score_dims = 4
    table_columns = (("miou", "mIoU"), ("consistency", "Consistency (mASSC)"))

    def kept(self, targets: torch.Tensor) -> torch.Tensor:
        return ~(targets.reshape(targets.shape[0], -1) == SKIPPED_TARGET).all(dim=1)

    def max_label(self, targets: torch.Tensor) -> int:
        labels = targets[(targets != IGNORE_INDEX) & (targets >= 0)]
        return int(labels.max()) if labels.numel() else -1

    def check_output(self, output: Any, size: int) -> int:
        scores = self.outputs(output)
        if torch.is_tensor(scores) and scores.dim() == 2:
            raise ModelError(f"a classifier given --task segmentation: the model returns {describe_output(output)} "
                             f"for a (1, 3, {size}, {size}) image, (N, classes) logits rather than a per-pixel map; "
                             f"evaluate it without --task segmentation, or give a segmentation model")
        if not (torch.is_tensor(scores) and scores.dim() == 4 and scores.is_floating_point()):
            raise ModelError(f"a segmentation model must return (N, classes, H, W) scores (or a dict with them "
                             f"under 'out'), but the model returns {describe_output(output)}")
        if tuple(scores.shape[-2:]) != (size, size):
            raise ModelError(f"the model's class map is {scores.shape[-2]}x{scores.shape[-1]} for a {size}x{size} "
                             f"image: segmentation is scored per input pixel, so the model must upsample its "
                             f"output to the input's size (as torchvision's segmentation models do)")
        return int(scores.shape[1])

    def open_data(self, config: Any, scorers: Sequence[Any]) -> TaskData:
        seg = config.segmentation
        seg.validate()
        if config.data.fast_decode:
            raise ConfigError("--fast-decode decodes JPEGs at a reduced scale, but a mask must match its image's "
                              "full size: drop --fast-decode for segmentation models")
        names = read_class_list(config.data.class_list)
        dataset = SegmentationDataset(config.data.root, split=config.data.val_split or "val", size=seg.size,
                                      strict=config.data.strict, class_names=names)
        log.info("segmentation: one image per loader batch and forward pass (images differ in size, as "
                 "torchvision's reference evaluates them); -b does not apply")
        settings = {"batch_size": 1, "seg_size": seg.size, "crop_size": seg.crop_size, "view_multiple": seg.multiple,
                    "interior_border": seg.border, "max_shift": config.data.max_shift, **dataset.describe()}
        return TaskData(dataset, dataset.folder, None, settings, loader_batch=1)

    def fit_model(self, model: nn.Module, data: TaskData, config: Any, device: torch.device) -> None:
        classes = self.probe(model, PROBE_SIZE, device)
        dataset: SegmentationDataset = data.dataset
        if dataset.given_names is not None and len(dataset.given_names) != classes:
            raise ConfigError(f"--class-list {config.data.class_list} names {len(dataset.given_names)} classes but "
                              f"the model has {classes}: list the model's classes, one per line, in index order")
        dataset.num_classes = classes  # labels above the model's classes are refused while decoding
        data.classes = dataset.classes or [str(i) for i in range(classes)]
