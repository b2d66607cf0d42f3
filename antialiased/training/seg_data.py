"""The data of a segmentation training run: image/mask pairs, augmented together, and their loaders.

Layouts (the ones evaluation reads, :mod:`antialiased.data.segmentation`), with a training split:

- Pascal VOC: ``DIR/JPEGImages/<id>.jpg``, ``DIR/SegmentationClass/<id>.png``, the training ids in
  ``DIR/ImageSets/Segmentation/train.txt`` and the validation ids in ``val.txt`` (``--val-split NAME``:
  ``NAME.txt``). ``DIR`` may also hold ``VOC2012/`` or ``VOCdevkit/VOC2012/``.
- ``DIR/train/images/<stem>.<ext>`` + ``DIR/train/masks/<stem>.png`` for training and
  ``DIR/val/images`` + ``DIR/val/masks`` for validation (paired by file stem).

Training samples follow torchvision's segmentation reference (``references/segmentation``): the
shorter side resized to a random size in ``[0.5, 2.0] x base`` (the image bilinearly with
antialiasing, the mask by nearest neighbour), a horizontal flip of both with probability 0.5, a
random ``crop x crop`` window (image and mask padded on the right and bottom first where smaller,
the image with 0, the mask with 255: padding is not scored), then ImageNet normalization (or
``--mean/--std``). Without augmentation the shorter side is ``base`` and the crop is centered.
Validation reads whole images with the shorter side resized to ``base`` (``--seg-size``), one per
batch, as the segmentation ``-e`` does. Unreadable or unusable pairs are skipped and reported (with
``--strict``: the first one stops the run).

Checkpoints record the normalization (``--mean/--std``) for evaluation, and a crop/resize pair that
leaves segmentation evaluation at its own protocol: the training crop (``-es``'s crops) and a resize
32 pixels larger (``-ec``'s shifts in [0, 32)); ``--seg-size`` is evaluation's to give.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from antialiased.data import (IMAGENET_MEAN, IMAGENET_STD, Preprocessing, SKIPPED_TARGET, WorkerCheckedLoader,
                              to_float_normalized)
from antialiased.data.folder import DatasetLayoutError
from antialiased.data.segmentation import IGNORE_INDEX, SegmentationDataset
from antialiased.evaluation.config import DEFAULT_MAX_SHIFT
from antialiased.support.distributed import is_main_process
from antialiased.training.config import DataConfig
from antialiased.training.data import TrainData, val_sampler
from antialiased.training.sampling import EpochSampler, SeededSamples

__all__ = ["SCALE_RANGE", "FLIP_PROBABILITY", "JointTransform", "SegmentationPairs", "load_segmentation_data"]

SCALE_RANGE = (0.5, 2.0)  # the reference's random resize: the shorter side in [0.5, 2.0] x base
FLIP_PROBABILITY = 0.5
_TRAIN_LAYOUT = ("for training, VOC's ImageSets/Segmentation/train.txt, or DIR/train/images + DIR/train/masks "
                 "beside DIR/val/images + DIR/val/masks")


@dataclass(frozen=True)
class JointTransform:
    """One training sample from an image and its mask, transformed together (see the module doc).

    Draws from torch's generator (seeded per sample by :class:`~antialiased.training.sampling.SeededSamples`).

    Example:
        >>> t = JointTransform(base_size=40, crop_size=32)
        >>> image, mask = t(Image.new("RGB", (60, 30), (255, 0, 0)), Image.new("L", (60, 30), 3))
        >>> tuple(image.shape), tuple(mask.shape), mask.dtype, set(mask.unique().tolist()) <= {3, 255}
        ((3, 32, 32), (32, 32), torch.int64, True)
    """

    base_size: int
    crop_size: int
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD
    augment: bool = True

    def _draw(self, high: int) -> int:
        """An integer in [0, high] from torch's generator."""
        return int(torch.randint(0, high + 1, ()).item())

    def __call__(self, image: Image.Image, mask: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        low, high = int(SCALE_RANGE[0] * self.base_size), int(SCALE_RANGE[1] * self.base_size)
        size = low + self._draw(high - low) if self.augment else self.base_size
        image = TF.resize(image, size, interpolation=InterpolationMode.BILINEAR, antialias=True)
        mask = TF.resize(mask, size, interpolation=InterpolationMode.NEAREST)
        if self.augment and float(torch.rand(())) < FLIP_PROBABILITY:
            image, mask = TF.hflip(image), TF.hflip(mask)
        pad_w, pad_h = max(self.crop_size - image.width, 0), max(self.crop_size - image.height, 0)
        if pad_w or pad_h:
            image = TF.pad(image, [0, 0, pad_w, pad_h], fill=0)
            mask = TF.pad(mask, [0, 0, pad_w, pad_h], fill=IGNORE_INDEX)
        spare_h, spare_w = image.height - self.crop_size, image.width - self.crop_size
        top, left = (self._draw(spare_h), self._draw(spare_w)) if self.augment else (spare_h // 2, spare_w // 2)
        image = TF.crop(image, top, left, self.crop_size, self.crop_size)
        mask = TF.crop(mask, top, left, self.crop_size, self.crop_size)
        pixels = to_float_normalized(TF.pil_to_tensor(image), self.mean, self.std)
        return pixels, torch.from_numpy(np.array(mask, dtype=np.int64))


class SegmentationPairs(Dataset):
    """The pairs of one split as training reads them: ``(image, mask, index)`` items, and the file names
    and reasons :class:`~antialiased.training.data.SkippedFiles` records.

    Args:
        pairs: the split's :class:`~antialiased.data.segmentation.SegmentationDataset`, read at its own
            size (``size=None`` for training, whose ``transform`` resizes).
        transform: a :class:`JointTransform` (training); None: the dataset's items as they are (validation).
        crop_size: the side of the placeholder of a skipped pair in training.
    """

    def __init__(self, pairs: SegmentationDataset, transform: JointTransform | None = None, crop_size: int = 0):
        self.pairs, self.transform, self.crop_size = pairs, transform, crop_size

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image, mask, index = self.pairs[index]
        if self.transform is None:
            return image, mask, index
        if bool((mask == SKIPPED_TARGET).all()):  # skipped (reason kept by the dataset): a placeholder of the batch's size
            side = self.crop_size
            return torch.zeros(3, side, side), torch.full((side, side), SKIPPED_TARGET, dtype=torch.int64), index
        return (*self.transform(TF.to_pil_image(image), Image.fromarray(mask.numpy().astype(np.uint8), mode="L")),
                index)

    @property
    def samples(self) -> list[tuple[str, str]]:
        """``(image, mask)`` paths, in index order."""
        return [(pair.image, pair.mask) for pair in self.pairs.pairs]

    @property
    def skip_reasons(self) -> dict[str, str]:
        return self.pairs.skip_reasons

    def skip_reason(self, index: int) -> str:
        """Why pair ``index`` was skipped, naming the mask when the mask was at fault."""
        path, reason = self.pairs.skip_reason(index)
        return reason if path == self.pairs.pairs[index].image else f"{path}: {reason}"


def _open(cfg: DataConfig, split: str, size: int | None) -> SegmentationDataset:
    try:
        return SegmentationDataset(cfg.root, split=split, size=size, strict=cfg.strict)
    except DatasetLayoutError as err:
        raise DatasetLayoutError(f"{err} ({_TRAIN_LAYOUT})") from None


def _splits(cfg: DataConfig) -> tuple[SegmentationDataset, SegmentationDataset]:
    """The training and validation pairs (files listed, nothing decoded)."""
    val_split = cfg.val_split or "val"
    train, val = _open(cfg, "train", None), _open(cfg, val_split, cfg.seg_size)
    if train.layout == "pairs" and train.folder.resolve() == val.folder.resolve():
        raise DatasetLayoutError(f"{str(train.folder)!r} holds one images/ + masks/ pairing: training needs its own "
                                 f"pairs ({_TRAIN_LAYOUT})")
    return train, val



def _announce(train: SegmentationDataset, val: SegmentationDataset, cfg: DataConfig) -> None:
    if not is_main_process():
        return
    count = len(val) if cfg.max_val_images is None else min(len(val), cfg.max_val_images)
    print(f"=> segmentation data in {train.folder} ({'Pascal VOC' if train.layout == 'voc' else 'images/ + masks/'}"
          f"): {len(train)} training pairs; validating on {count} of {len(val)} {cfg.val_split or 'val'} pairs, "
          f"whole images with the shorter side resized to {cfg.seg_size} (--seg-size), one per batch", flush=True)


def load_segmentation_data(cfg: DataConfig, *, distributed: bool, generator: torch.Generator, pin_memory: bool,
                           seed: int | None = None) -> TrainData:
    """Training (random scale, flip and crop of image and mask) and validation (whole images) loaders.

    ``classes`` is left empty: a segmentation model's classes come from the model (or its weights),
    never from the masks; the task fills it in once the model is built.
    """
    train, val = _splits(cfg)
    _announce(train, val, cfg)
    transform = JointTransform(cfg.seg_size, cfg.crop_size, tuple(cfg.mean), tuple(cfg.std), cfg.augment)
    train_set = SegmentationPairs(train, transform, cfg.crop_size)
    sampler = EpochSampler(len(train_set), seed=seed or 0)
    drop_last = len(sampler) >= cfg.batch_size  # a trailing batch of one image breaks batch norm
    train_loader = WorkerCheckedLoader(SeededSamples(train_set), sampler=sampler, generator=generator,
                                       drop_last=drop_last, batch_size=cfg.batch_size, num_workers=cfg.workers,
                                       pin_memory=pin_memory)
    val_loader = WorkerCheckedLoader(SegmentationPairs(val), sampler=val_sampler(len(val), cfg, distributed),
                                     shuffle=False, batch_size=1, num_workers=cfg.workers, pin_memory=pin_memory)
    crop = min(cfg.crop_size, cfg.seg_size)  # -es's crop when the checkpoint is evaluated
    preprocessing = Preprocessing(crop, crop + DEFAULT_MAX_SHIFT, tuple(cfg.mean), tuple(cfg.std))
    return TrainData(train_loader, val_loader, sampler, [], str(Path(cfg.root).expanduser().absolute()),
                     cfg.val_split or "val", preprocessing)
