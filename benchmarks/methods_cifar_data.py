"""CIFAR-10 for the methods benchmarks: decoded once into a uint8 tensor cache, then served from the device.

The shared copy (``../shared/data/cifar10``) holds 32x32 JPEG files in ``train/<class>/`` (50,000)
and ``test/<class>/`` (10,000). They are decoded once (the package's ``ImageFolderDataset``, in
worker processes) into one file of uint8 tensors under the cache folder, written atomically; later
runs load that file (``torch.load(weights_only=True)``) in well under a second. The cache file's
name holds a key of the data folder's path and its class folders' modification times, so a changed
folder is decoded again.

Training batches are made on the device, as the fastest public CIFAR-10 recipes make them: the
whole set normalized in memory, a random order per epoch, a random horizontal flip that alternates
every epoch (airbench's "alternating flip": an image flipped in one epoch is not in the next),
and a random translation by up to ``translate`` pixels (crops of the image reflect-padded by that).
"""
from __future__ import annotations

import functools
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from antialiased.data import ImageFolderDataset
from antialiased.errors import DataError
from antialiased.support.files import atomic_write_bytes

__all__ = ["CifarTensors", "load_cifar", "cache_file", "TrainBatches", "test_batches", "normalize", "DEFAULT_CACHE"]

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "antialiased"
_FORMAT = 1  # bump when the cache file's content changes


@dataclass
class CifarTensors:
    """A classification set in memory: uint8 images ``(N, 3, 32, 32)`` and int64 labels per split."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    source: str

    def subset(self, max_train: int, max_test: int) -> "CifarTensors":
        """The first ``max_train`` / ``max_test`` images of a fixed random order (0: all of them)."""
        def pick(images: torch.Tensor, labels: torch.Tensor, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
            if not limit or limit >= len(labels):
                return images, labels
            order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:limit]
            return images[order], labels[order]

        train = pick(self.train_images, self.train_labels, max_train)
        test = pick(self.test_images, self.test_labels, max_test)
        return CifarTensors(*train, *test, self.classes, self.source)

    @functools.cached_property
    def channel_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std of the training images, on the 0..1 scale (float64 sums, in chunks)."""
        total, squares = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
        for chunk in self.train_images.split(4096):
            x = chunk.to(torch.float64).div_(255)
            total += x.sum(dim=(0, 2, 3))
            squares += x.square().sum(dim=(0, 2, 3))
        count = self.train_images.numel() // 3
        mean = total / count
        std = (squares / count - mean.square()).clamp_min(1e-12).sqrt()
        return mean.float(), std.float()


def cache_file(data: Path, cache_dir: Path) -> Path:
    """The cache file of the data folder ``data`` (its path and its class folders' times in the name)."""
    data = data.expanduser().resolve()
    stamps = [str(data)]
    for split in ("train", "test"):
        folder = data / split
        if not folder.is_dir():
            raise DataError(f"--data {str(data)!r} has no {split}/ folder; expected CIFAR-10 as class folders "
                            f"DIR/train/<class>/*.jpg and DIR/test/<class>/*.jpg (e.g. ../shared/data/cifar10)")
        stamps += [f"{p.name}:{p.stat().st_mtime_ns}" for p in sorted(folder.iterdir()) if p.is_dir()]
    key = hashlib.sha1("|".join(stamps).encode()).hexdigest()[:12]
    return Path(cache_dir).expanduser() / f"{data.name}_{key}_uint8_v{_FORMAT}.pt"


def _stack_same_size(batch: list) -> tuple[torch.Tensor, torch.Tensor]:
    images, targets = zip(*batch)
    sizes = {tuple(i.shape) for i in images}
    if len(sizes) > 1:
        raise DataError(f"images of different sizes {sorted(sizes)}: this benchmark needs CIFAR-10's 32x32 images")
    return torch.stack(images), torch.tensor(targets)


def _decode_split(folder: Path, workers: int, classes: list[str] | None) -> tuple[torch.Tensor, torch.Tensor, list]:
    import torchvision.transforms.v2 as T

    dataset = ImageFolderDataset(folder, transform=T.PILToTensor(), classes=classes)
    loader = torch.utils.data.DataLoader(dataset, batch_size=500, num_workers=workers,
                                         collate_fn=_stack_same_size)
    parts = list(loader)
    images, labels = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    bad = (labels < 0).nonzero().flatten().tolist()
    if bad or dataset.skipped:
        report = dataset.skip_report(bad)
        path, reason = next(iter(report.items()))
        raise DataError(f"{len(report)} file(s) of {folder} cannot be used, e.g. {path}: {reason}; "
                        f"repair or remove them (the benchmark compares methods on the complete set)")
    if images.shape[-2:] != (32, 32):
        raise DataError(f"{folder} holds {tuple(images.shape[-2:])} images; this benchmark needs CIFAR-10's 32x32")
    return images, labels, dataset.classes


def _decode(data: Path, workers: int) -> CifarTensors:
    train, train_labels, classes = _decode_split(data / "train", workers, None)
    test, test_labels, _ = _decode_split(data / "test", workers, classes)
    return CifarTensors(train, train_labels, test, test_labels, classes, str(data.resolve()))


def load_cifar(data: str | os.PathLike, cache_dir: str | os.PathLike = DEFAULT_CACHE, *, workers: int = 4,
               log=print) -> CifarTensors:
    """The data folder's images as uint8 tensors: from the cache file, else decoded (then cached)."""
    data = Path(data).expanduser()
    path = cache_file(data, Path(cache_dir))
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        return CifarTensors(saved["train_images"], saved["train_labels"], saved["test_images"],
                            saved["test_labels"], list(saved["classes"]), saved["source"])
    log(f"decoding {data} once into {path} ...")
    found = _decode(data, workers)
    buffer = io.BytesIO()
    torch.save({"train_images": found.train_images, "train_labels": found.train_labels,
                "test_images": found.test_images, "test_labels": found.test_labels,
                "classes": found.classes, "source": found.source}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return found


def normalize(images: torch.Tensor, data: CifarTensors) -> torch.Tensor:
    """uint8 images as floats normalized with ``data``'s training statistics (on the images' device)."""
    mean, std = data.channel_stats
    x = images.float().div_(255)
    return x.sub_(mean.view(1, 3, 1, 1).to(x.device)).div_(std.view(1, 3, 1, 1).to(x.device))


def _translate(padded: torch.Tensor, shifts: torch.Tensor, size: int) -> torch.Tensor:
    """The ``size`` crop of each padded image at its own offset ``shifts[n]`` (in 0..2 pad)."""
    n = padded.shape[0]
    ar = torch.arange(size, device=padded.device)
    rows = (shifts[:, :1] + ar).view(n, size, 1)
    cols = (shifts[:, 1:] + ar).view(n, 1, size)
    return padded.permute(0, 2, 3, 1)[torch.arange(n, device=padded.device).view(n, 1, 1), rows, cols].permute(
        0, 3, 1, 2)


class TrainBatches:
    """Augmented training batches on ``device``; one generator (``seed``) fixes the order, flips and crops,
    so every method of a seed sees the same batches."""

    def __init__(self, data: CifarTensors, device: torch.device, batch_size: int, translate: int, seed: int,
                 memory_format: torch.memory_format = torch.contiguous_format) -> None:
        self.images = normalize(data.train_images.to(device), data)
        self.labels = data.train_labels.to(device)
        self.batch_size, self.translate, self.memory_format = batch_size, translate, memory_format
        self.generator = torch.Generator().manual_seed(seed)
        self.flipped = torch.rand(len(self.labels), generator=self.generator) < 0.5  # flipped in even epochs
        self.epoch = 0

    def steps_per_epoch(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def epoch_batches(self):
        """The next epoch's ``(images, labels)`` batches (the last one may be smaller)."""
        device, pad = self.images.device, self.translate
        order = torch.randperm(len(self.labels), generator=self.generator)
        flip = ~self.flipped if self.epoch % 2 else self.flipped
        shifts = torch.randint(0, 2 * pad + 1, (len(self.labels), 2), generator=self.generator)
        self.epoch += 1
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            images = self.images[index.to(device)]
            images = torch.where(flip[index].to(device).view(-1, 1, 1, 1), images.flip(-1), images)
            if pad:
                padded = F.pad(images, (pad,) * 4, mode="reflect")
                images = _translate(padded, shifts[index].to(device), images.shape[-1])
            yield images.contiguous(memory_format=self.memory_format), self.labels[index.to(device)]


def test_batches(data: CifarTensors, device: torch.device, pad: int, batch_size: int) -> list[tuple]:
    """The test images normalized (training statistics) and reflect-padded by ``pad`` on every side,
    as ``(images, labels, indices)`` batches on ``device``: the shift protocols' input (their center
    crop is the original image)."""
    images = F.pad(normalize(data.test_images.to(device), data), (pad,) * 4, mode="reflect")
    labels = data.test_labels  # targets and indices stay on the CPU, as a DataLoader gives them
    index = torch.arange(len(labels))
    return [(images[s:s + batch_size], labels[s:s + batch_size], index[s:s + batch_size])
            for s in range(0, len(labels), batch_size)]
