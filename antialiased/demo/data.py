"""Demo data as uint8 tensors in memory: the generated shapes, or a subset of any ImageFolder dataset.

Images are kept at ``crop + max_shift`` pixels: training takes random crops, accuracy the centre
crop, and shift consistency two random crops of the full image (the paper's ``-es`` protocol,
scaled from 224-of-256 to the demo's size).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from antialiased.errors import ConfigError, DataError, MissingFileError

__all__ = ["DemoData", "CropDataset", "load_generated", "load_folder"]


@dataclass
class DemoData:
    train_images: torch.Tensor  # uint8 (N, 3, S, S)
    train_labels: torch.Tensor  # int64 (N,)
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    source: str
    skipped: int = 0

    @property
    def image_size(self) -> int:
        return int(self.train_images.shape[-1])

    def channel_stats(self) -> tuple[list[float], list[float]]:
        x = self.train_images.float().div_(255)
        return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).clamp(min=1e-3).tolist()


class CropDataset(Dataset):
    """Normalized crops of in-memory uint8 images.

    Modes: 'random' (random crop + horizontal flip, for training), 'center' (accuracy), 'full'
    (the whole image, for the shift protocols, which crop or roll it themselves). With
    ``return_index`` items are ``(image, label, index)``: the shift protocols' intervals treat each
    image as one unit when they know which image a pair came from.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, crop: int, mode: str,
                 mean: list[float], std: list[float], return_index: bool = False) -> None:
        if mode not in ("random", "center", "full"):
            raise ConfigError(f"mode must be 'random', 'center' or 'full', got {mode!r}")
        self.images, self.labels, self.crop, self.mode = images, labels, crop, mode
        self.return_index = return_index
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = self.images[i]
        size, c = img.shape[-1], self.crop
        if self.mode == "random":
            # the global torch RNG, seeded by the run: deterministic with num_workers=0
            top, left = torch.randint(0, size - c + 1, (2,)).tolist()
            img = img[:, top:top + c, left:left + c]
            if torch.rand(()) < 0.5:
                img = img.flip(-1)
        elif self.mode == "center":
            o = (size - c) // 2
            img = img[:, o:o + c, o:o + c]
        image = (img.float().div(255) - self.mean) / self.std
        return (image, self.labels[i], i) if self.return_index else (image, self.labels[i])


def load_generated(*, train_size: int, test_size: int, image_size: int, crop_size: int, seed: int) -> DemoData:
    """The procedural shapes dataset; the test set uses its own seed stream."""
    from antialiased.demo.shapes import SHAPES, generate_shapes

    xtr, ytr = generate_shapes(train_size, image_size=image_size, crop_size=crop_size, seed=2 * seed)
    xte, yte = generate_shapes(test_size, image_size=image_size, crop_size=crop_size, seed=2 * seed + 1)
    return DemoData(xtr, ytr, xte, yte, list(SHAPES), "generated:shapes")


def _split_dirs(root: Path) -> tuple[Path, Path]:
    if not root.is_dir():
        raise MissingFileError(f"--data {str(root)!r} does not exist; expected an ImageFolder dataset "
                                f"DIR/train/<class>/* and DIR/test/<class>/* (or DIR/val/<class>/*)")
    train = root / "train"
    evals = [root / name for name in ("val", "test") if (root / name).is_dir()]
    if not train.is_dir() or not evals:
        raise DataError(f"--data {str(root)!r} must hold a train/ folder and a val/ or test/ folder, "
                                f"each with one sub-folder per class (found: "
                                f"{sorted(p.name for p in root.iterdir()) if root.is_dir() else []})")
    return train, evals[0]


def _load_split(folder: Path, limit: int, image_size: int, seed: int, classes: list[str] | None):
    import torchvision.transforms.v2 as T

    from antialiased.data import ImageFolderDataset

    transform = T.Compose([T.PILToTensor(), T.Resize(image_size, antialias=True), T.CenterCrop(image_size)])
    ds = ImageFolderDataset(str(folder), transform=transform)
    if classes is not None and ds.classes != classes:
        raise DataError(f"class folders of {folder} {ds.classes} differ from the training classes {classes}")
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))
    if limit:
        order = order[:limit]
    images, labels = [], []
    for i in order.tolist():
        img, target = ds[i]
        if target < 0:  # unreadable file: left out (counted in ds.skipped)
            continue
        images.append(img)
        labels.append(target)
    if not images:
        raise DataError(f"no readable images in {folder}")
    return torch.stack(images), torch.tensor(labels), ds.classes, len(ds.skipped)


def load_folder(root: str | os.PathLike, *, train_size: int, test_size: int, image_size: int, seed: int) -> DemoData:
    """A deterministic random subset (``0``: all) of an ImageFolder dataset, resized to ``image_size``."""
    train_dir, test_dir = _split_dirs(Path(root).expanduser())
    xtr, ytr, classes, skip_tr = _load_split(train_dir, train_size, image_size, 2 * seed, None)
    xte, yte, _, skip_te = _load_split(test_dir, test_size, image_size, 2 * seed + 1, classes)
    return DemoData(xtr, ytr, xte, yte, classes, str(Path(root).resolve()), skip_tr + skip_te)
