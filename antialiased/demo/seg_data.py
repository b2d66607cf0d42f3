"""The segmentation demo's data: the generated shapes written as a Pascal VOC folder, the training split in memory.

The folder (:func:`~antialiased.demo.seg_shapes.write_seg_shapes`, plus ``classes.txt``) is what
evaluation reads, as ``antialiased eval --task segmentation --data DIR`` would; training reads its
``train`` split once through the same reader
(:class:`~antialiased.data.segmentation.SegmentationDataset`) and takes random crops and flips of
image and mask together in memory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from antialiased.data.segmentation import SegmentationDataset
from antialiased.demo.seg_shapes import SEG_CLASSES, write_seg_shapes
from antialiased.support.files import atomic_write_text

__all__ = ["SegDemoData", "SegCropDataset", "prepare_seg_data", "read_seg_data", "CLASS_LIST"]

CLASS_LIST = "classes.txt"  # the class names, one per line in index order (``--class-list`` of antialiased eval)


@dataclass
class SegDemoData:
    """The written folder, the training pairs in memory and the class names."""

    folder: Path
    train_images: torch.Tensor  # uint8 (N, 3, S, S)
    train_masks: torch.Tensor  # int64 (N, S, S): class indices, 255 along outlines (not scored)
    test_count: int
    classes: list[str]
    seed: int

    @property
    def image_size(self) -> int:
        return int(self.train_images.shape[-1])

    @property
    def class_list(self) -> Path:
        return self.folder / CLASS_LIST

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training images (0-1 scale): the normalization of training and evaluation."""
        x = self.train_images.float().div_(255)
        return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).clamp(min=1e-3).tolist()


class SegCropDataset(Dataset):
    """Random ``crop`` x ``crop`` windows of in-memory images and masks, flipped horizontally half the time,
    normalized: ``(image, mask)`` items for training.

    Draws from the global torch RNG (seeded by the run; deterministic with ``num_workers=0``).

    Example:
        >>> images, masks = torch.zeros(2, 3, 16, 16, dtype=torch.uint8), torch.arange(256).view(16, 16).repeat(2, 1, 1)
        >>> data = SegCropDataset(images, masks, crop=8, mean=[0.0] * 3, std=[1.0] * 3)
        >>> image, mask = data[0]
        >>> tuple(image.shape), tuple(mask.shape), bool((mask.diff(dim=0).abs() == 16).all())
        ((3, 8, 8), (8, 8), True)
    """

    def __init__(self, images: torch.Tensor, masks: torch.Tensor, *, crop: int, mean: list[float],
                 std: list[float]) -> None:
        self.images, self.masks, self.crop = images, masks, crop
        self.mean, self.std = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        size, c = self.images.shape[-1], self.crop
        top, left = torch.randint(0, size - c + 1, (2,)).tolist()
        image, mask = self.images[i, :, top:top + c, left:left + c], self.masks[i, top:top + c, left:left + c]
        if torch.rand(()) < 0.5:
            image, mask = image.flip(-1), mask.flip(-1)
        return (image.float().div(255) - self.mean) / self.std, mask


def _read_split(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = SegmentationDataset(folder, split="train", size=None, strict=True, num_classes=len(SEG_CLASSES))
    items = [pairs[i] for i in range(len(pairs))]
    return torch.stack([image for image, _, _ in items]), torch.stack([mask for _, mask, _ in items])


def prepare_seg_data(folder: str | os.PathLike, *, train_size: int, test_size: int, image_size: int,
                     seed: int = 0, shapes: tuple[int, int] = (2, 4)) -> SegDemoData:
    """Write the generated dataset (``train_size`` + ``test_size`` images of ``image_size`` pixels with
    ``shapes`` (min, max) shapes each, from ``seed``) into ``folder`` as a VOC folder with ``classes.txt``,
    and read its training split back.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     data = prepare_seg_data(d, train_size=3, test_size=2, image_size=24)
        ...     tuple(data.train_images.shape), data.test_count, data.class_list.read_text().split()[:2]
        ((3, 3, 24, 24), 2, ['background', 'disk'])
    """
    root = write_seg_shapes(folder, train=train_size, val=test_size, size=image_size, seed=seed, shapes=shapes)
    atomic_write_text(root / CLASS_LIST, "".join(f"{name}\n" for name in SEG_CLASSES))
    return read_seg_data(root, seed=seed)


def read_seg_data(folder: str | os.PathLike, *, seed: int = 0) -> SegDemoData:
    """A folder :func:`prepare_seg_data` wrote, read back (in another process, say); ``seed``: the one it was
    written with, for the records."""
    root = Path(folder)
    images, masks = _read_split(root)
    tests = len((root / "ImageSets" / "Segmentation" / "val.txt").read_text().split())
    return SegDemoData(root, images, masks, tests, list(SEG_CLASSES), seed)
