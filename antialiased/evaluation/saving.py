"""``--evaluate-save``: the images a protocol feeds the model, denormalized, as PNG files."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision.utils import save_image

from antialiased.data.transforms import denormalize, to_float_normalized

__all__ = ["ImageSaver"]


class ImageSaver:
    """Writes ``<dir>/<index>_<tag>.png`` for each image of a batch (indices: dataset positions)."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def __call__(self, images: torch.Tensor, indices: torch.Tensor | None, tag: str = "") -> None:
        if images.dtype == torch.uint8:
            images = to_float_normalized(images)
        images = denormalize(images.detach().float().cpu())
        for i, image in enumerate(images):
            index = int(indices[i]) if indices is not None else self.count
            name = f"{index:06d}{'_' + tag if tag else ''}.png"
            save_image(image, self.directory / name)
            self.count += 1
