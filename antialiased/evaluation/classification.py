"""The classification task: a class per image, (N, classes) logits, the same top-1 class; ImageNet-layout data."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from antialiased.data import ImageFolderDataset, find_val_split, uint8_transform
from antialiased.errors import ConfigError, MissingFileError, ModelError
from antialiased.evaluation.model_setup import check_class_identity, check_model_classes
from antialiased.evaluation.probe import unwrap_model
from antialiased.evaluation.task import Task, TaskData, describe_output


__all__ = ["ClassificationTask", "read_class_list"]


def read_class_list(path: str | os.PathLike | None) -> list[str] | None:
    """Class folder names, one per line, in the model's output order (None: no list given).

    Raises:
        MissingFileError: no such file.
        ConfigError: the list is empty or names a class twice (two outputs cannot share a folder).
    """
    if path is None:
        return None
    file = Path(path)
    if not file.is_file():
        raise MissingFileError(f"--class-list {str(path)!r} not found (a text file, one class folder name per line)")
    names = [line.strip() for line in file.read_text().splitlines() if line.strip()]
    if not names:
        raise ConfigError(f"--class-list {str(path)!r} is empty: list the model's classes, one class folder name "
                          f"per line, in its output order")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"--class-list {str(path)!r} repeats class names: it lists "
                          f"{', '.join(map(repr, repeated[:5]))} twice; each class folder once, in the model's "
                          f"output order")
    return names


def _decode_size(config: Any, scorers: Sequence[Any]) -> int:
    """The side of the one decode all scorers share: the largest view a protocol needs."""
    return max(s.input_size or config.data.crop_size for s in scorers)


class ClassificationTask(Task):
    """Image classification: a class per image, (N, classes) logits, the same top-1 class.

    Data: an ImageNet-layout folder (``val/<class>/<image>``), images resized to ``crop_size +
    max_shift`` and cropped to the largest view a protocol needs, placed so that its center crop is
    torchvision's ``CenterCrop(crop_size)`` (:class:`~antialiased.data.transforms.CenteredView`).

    Example:
        >>> task = ClassificationTask()
        >>> task.probe(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 5)), 16, "cpu")
        5
    """

    name = "classification"
    prediction = "top-1 class"
    score_dims = 2

    def check_output(self, output: Any, size: int) -> int:
        scores = self.outputs(output) if isinstance(output, (tuple, list)) else output
        if not (torch.is_tensor(scores) and scores.dim() == 2 and scores.shape[0] == 1 and scores.is_floating_point()):
            hint = ("; a per-pixel map is a segmentation model's output: evaluate it with --task segmentation"
                    if torch.is_tensor(scores) and scores.dim() == 4 or isinstance(output, dict) else "")
            raise ModelError(f"a classifier must return (N, classes) logits, but the model returns "
                             f"{describe_output(output)} for a (1, 3, {size}, {size}) image{hint}")
        return int(scores.shape[1])

    def open_data(self, config: Any, scorers: Sequence[Any]) -> TaskData:
        data = config.data
        decode = _decode_size(config, scorers)
        val_dir = find_val_split(data.root, data.val_split)
        resize = data.resize
        # the decode is placed so that its center crop is Resize + CenterCrop(crop) exactly, for any margin
        # (CIFAR's 37 - 32 included): -e with -es scores what -e alone and training's validation score
        transform = uint8_transform(resize, decode, center=data.crop_size)
        dataset = ImageFolderDataset(val_dir, transform=transform, strict=data.strict,
                                     classes=read_class_list(data.class_list), return_index=True,
                                     draft=resize if data.fast_decode else None, placeholder_size=(resize, resize))
        settings = {"batch_size": data.batch_size, "crop_size": data.crop_size, "max_shift": data.max_shift,
                    "resize": resize, "decode_size": decode}
        return TaskData(dataset, val_dir, list(dataset.classes), settings)

    def fit_model(self, model: nn.Module, data: TaskData, config: Any, device: torch.device) -> None:
        classes = data.classes or []
        # weights trained on other classes (or ImageNet's in another order) would be scored without complaint
        check_class_identity(getattr(unwrap_model(model), "weights_info", None), classes, where=str(data.where),
                             class_list=config.data.class_list)
        self.probe(model, config.data.crop_size, device)
        check_model_classes(model, len(classes), config.data.crop_size, device, str(data.where),
                            class_list=config.data.class_list)
