"""``--evaluate-save``: the images a protocol feeds the model, denormalized, as PNG files."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torchvision.utils import save_image

from antialiased.data.transforms import IMAGENET_MEAN, IMAGENET_STD, denormalize

__all__ = ["ImageSaver"]


class ImageSaver:
    """Writes ``<dir>/<index>_<tag>.png`` for each image of a batch (indices: dataset positions).

    ``mean``/``std``: the normalization the evaluation fed the model (``--mean/--std``, else a
    checkpoint's record, else ImageNet's), undone before saving; uint8 images are saved as they are.
    """

    def __init__(self, directory: str | os.PathLike, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.mean, self.std = tuple(mean), tuple(std)
        self.count = 0

    def __call__(self, images: torch.Tensor, indices: torch.Tensor | None, tag: str = "") -> None:
        images = images.detach().cpu()
        images = images.float() / 255 if images.dtype == torch.uint8 else denormalize(images.float(), self.mean,
                                                                                     self.std)
        for i, image in enumerate(images):
            index = int(indices[i]) if indices is not None else self.count
            name = f"{index:06d}{'_' + tag if tag else ''}.png"
            save_image(image, self.directory / name)
            self.count += 1
