"""The training and validation loaders of a run, and where their unreadable files are reported."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from torch.utils.data import DataLoader

from antialiased.data import (PREPROCESSING_KEY, ImageFolderDataset, Preprocessing, WorkerCheckedLoader,
                              find_split, find_val_split, resize_for_crop, train_transform, validation_sampler)
from antialiased.data.jpeg import JpegFolderDataset
from antialiased.errors import DataError
from antialiased.support.distributed import get_rank, get_world_size, is_main_process
from antialiased.support.files import atomic_write_text
from antialiased.training.config import DataConfig
from antialiased.training.sampling import EpochSampler, SeededSamples

__all__ = ["TrainData", "load_data", "EVAL_CROP_RATIO", "SkippedFiles", "SKIPPED_NAME", "checkpoint_settings"]

EVAL_CROP_RATIO = 224 / 256  # the paper's protocol: resize to 256, center crop 224
SKIPPED_NAME = "skipped_images.json"


@dataclass
class TrainData:
    train_loader: DataLoader
    val_loader: DataLoader
    train_sampler: EpochSampler
    classes: list[str]
    root: str  # the data folder, as an absolute path (recorded in checkpoints)
    val_split: str = "val"  # the validation folder's name (val, test or --val-split's)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)  # validation's: recorded in checkpoints


def checkpoint_settings(data: TrainData) -> dict[str, Any]:
    """What each checkpoint records about the data besides the classes: the validation folder's name and
    the preprocessing validation used (crop, resize, mean, std), which evaluation and export then use."""
    return {PREPROCESSING_KEY: data.preprocessing.to_record(), "val_split": data.val_split}


def _check_same_classes(train_set: ImageFolderDataset, val_set: ImageFolderDataset) -> None:
    if val_set.classes == train_set.classes:
        return
    only_val = sorted(set(val_set.classes) - set(train_set.classes))
    only_train = sorted(set(train_set.classes) - set(val_set.classes))
    raise DataError(f"{train_set.root} and {val_set.root} must hold the same class folders (labels are their "
                    f"sorted order); only in {Path(val_set.root).name}: {only_val[:5]}, only in train: "
                    f"{only_train[:5]}")


def _folders(cfg: DataConfig) -> tuple[Path, Path]:
    train_dir, val_dir = find_split(cfg.root, "train"), find_val_split(cfg.root, cfg.val_split)
    if train_dir.resolve() == val_dir.resolve():
        raise DataError(f"training needs both {cfg.root}/train and a validation folder ({cfg.root}/val or "
                        f"{cfg.root}/test; found one folder of classes only)")
    return train_dir, val_dir


def val_sampler(size: int, cfg: DataConfig, distributed: bool) -> Any:
    """All ``size`` validation images (each on one rank under DDP), or ``--max-val-images`` of them, evenly
    spaced: the selection evaluation's ``--max-val-images`` makes too (:func:`~antialiased.data.validation_sampler`);
    both tasks' training validates on it."""
    shard = {"rank": get_rank(), "world_size": get_world_size()} if distributed else {}
    return validation_sampler(size, cfg.max_val_images, **shard)


def _announce(val_dir: Path, cfg: DataConfig, total: int) -> None:
    how = "" if cfg.val_split or val_dir.name == "val" else " (no val/ folder; --val-split NAME chooses another)"
    if cfg.max_val_images is not None and cfg.max_val_images < total:
        count = (f"{cfg.max_val_images} of the {total} images (--max-val-images; evenly spaced in the folder's "
                 f"order, the same each epoch)")
    else:
        count = f"all {total} images"
    if is_main_process():
        print(f"=> validating on {val_dir}{how}: {count}", flush=True)


def load_data(cfg: DataConfig, *, distributed: bool, generator: torch.Generator, pin_memory: bool,
              seed: int | None = None) -> TrainData:
    """Training (RandomResizedCrop + flip) and validation (resize + center crop) loaders.

    Items carry their dataset index, so unreadable files can be named wherever they were read.
    """
    train_dir, val_dir = _folders(cfg)
    preprocessing = Preprocessing(cfg.crop_size, resize_for_crop(cfg.crop_size), tuple(cfg.mean), tuple(cfg.std))
    # JPEGs decoded by decode_jpeg and the augmentation run on the crop alone: the same tensors as the
    # PIL path (other formats, and a chain other than RandomResizedCrop + flip, take that path).
    train_set = JpegFolderDataset(train_dir, train_transform(crop=cfg.crop_size, augment=cfg.augment,
                                                             resize=preprocessing.resize_size, mean=cfg.mean,
                                                             std=cfg.std), cfg.strict, return_index=True)
    val_set = ImageFolderDataset(val_dir, preprocessing.transform(), cfg.strict, return_index=True)
    _check_same_classes(train_set, val_set)
    _announce(val_dir, cfg, len(val_set))
    # This rank's share of each epoch's order, which can start part-way (a resumed mid-epoch checkpoint);
    # each image's augmentation is seeded by its position (see antialiased.training.sampling).
    train_sampler = EpochSampler(len(train_set), seed=seed or 0)
    per_rank = len(train_sampler)
    # A trailing batch of one image breaks batch norm; drop the remainder when there is a full batch.
    drop_last = per_rank >= cfg.batch_size
    common = dict(batch_size=cfg.batch_size, num_workers=cfg.workers, pin_memory=pin_memory)
    train_loader = WorkerCheckedLoader(SeededSamples(train_set), sampler=train_sampler, generator=generator,
                                       drop_last=drop_last, **common)
    val_loader = WorkerCheckedLoader(val_set, sampler=val_sampler(len(val_set), cfg, distributed), shuffle=False,
                                     **common)
    return TrainData(train_loader, val_loader, train_sampler, list(train_set.classes),
                     str(Path(cfg.root).expanduser().absolute()), val_dir.name, preprocessing)


def _reason(dataset: Any, index: int) -> str:
    reason = getattr(dataset, "skip_reason", None)
    if callable(reason):
        found = reason(index)
        if found:
            return str(found)
    return "could not be decoded as an image"


class SkippedFiles:
    """The unreadable files of a run, with their reasons, kept in ``out_dir/skipped_images.json``."""

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.path = Path(out_dir) / SKIPPED_NAME
        self.files: dict[str, dict[str, str]] = {"train": {}, "val": {}}
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
            for split in self.files:
                self.files[split].update({e["file"]: e["reason"] for e in saved.get(split, [])})
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # none yet, or an unreadable one: it is rewritten whole

    def add_listed(self, split: str, dataset: Any) -> int:
        """Record the files the dataset left out when it was built (e.g. files that are not images)."""
        reasons = getattr(dataset, "skip_reasons", None)
        if not isinstance(reasons, dict):
            reasons = {path: "not an image file" for path in getattr(dataset, "skipped", [])}
        known = self.files[split]
        before = len(known)
        for path, reason in reasons.items():
            known.setdefault(str(path), str(reason))
        return len(known) - before

    def add(self, split: str, dataset: Any, indices: Iterable[int]) -> int:
        """Record the files at ``indices`` of ``dataset``; returns how many were new."""
        known = self.files[split]
        before = len(known)
        for index in sorted(set(indices)):
            path = dataset.samples[index][0]
            known.setdefault(path, _reason(dataset, index))
        return len(known) - before

    def save(self) -> None:
        if any(self.files.values()):
            doc = {split: [{"file": f, "reason": r} for f, r in sorted(entries.items())]
                   for split, entries in self.files.items()}
            atomic_write_text(self.path, json.dumps(doc, indent=1) + "\n")
