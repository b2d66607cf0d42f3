"""Pieces shared by the evaluation protocols: batches, forward passes, progress, distributed sums."""
from __future__ import annotations

import contextlib
import math
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from antialiased.data.folder import SKIPPED_TARGET
from antialiased.data.transforms import to_float_normalized

__all__ = ["Batch", "iter_batches", "forward", "prepare_input", "progress_bar", "loader_total", "all_reduce_sum",
           "is_main_process", "check_num_classes", "wilson_interval", "topk_correct"]


class Batch:
    """One loader batch with unreadable samples removed.

    Loaders may yield ``(images, targets)`` or ``(images, targets, indices)``; images may be uint8
    (normalized here, exactly as ToTensor + Normalize) or already-normalized floats.
    """

    __slots__ = ("images", "targets", "indices", "skipped", "size")

    def __init__(self, raw: Any) -> None:
        if not isinstance(raw, (tuple, list)) or len(raw) not in (2, 3):
            raise ValueError("the loader must yield (images, targets) or (images, targets, indices) batches")
        images, targets = raw[0], torch.as_tensor(raw[1])
        indices = torch.as_tensor(raw[2]) if len(raw) == 3 else None
        self.size = int(targets.numel())
        keep = targets != SKIPPED_TARGET
        self.skipped = [] if indices is None else indices[~keep].tolist()
        if not bool(keep.all()):
            images, targets = images[keep], targets[keep]
            indices = indices[keep] if indices is not None else None
        self.images, self.targets, self.indices = images, targets, indices

    @property
    def n_skipped(self) -> int:
        return self.size - int(self.targets.numel())


def iter_batches(loader: Iterable) -> Iterator[Batch]:
    for raw in loader:
        yield Batch(raw)


def prepare_input(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """Move to ``device`` and normalize uint8 images (after the move: 4x less to copy)."""
    images = images.to(device, non_blocking=True)
    if images.dtype == torch.uint8:
        images = to_float_normalized(images)
    if channels_last and images.dim() == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    return images


def forward(model: nn.Module, images: torch.Tensor, amp_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Logits as float32, under autocast when ``amp_dtype`` is given."""
    ctx = (torch.autocast(images.device.type, dtype=amp_dtype) if amp_dtype is not None
           else contextlib.nullcontext())
    with ctx:
        out = model(images)
    if isinstance(out, (tuple, list)):  # e.g. GoogLeNet/Inception auxiliary outputs
        out = out[0]
    return out.float()


def check_num_classes(logits: torch.Tensor, targets: torch.Tensor) -> None:
    if targets.numel() and int(targets.max()) >= logits.shape[1]:
        raise ValueError(f"target class {int(targets.max())} but the model has only {logits.shape[1]} outputs: "
                         f"the dataset's classes do not match the model's")


def is_main_process() -> bool:
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum counts over ranks when torch.distributed is initialized (identity otherwise)."""
    values = [float(v) for v in values]
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def progress_bar(total: int | None, desc: str, enabled: bool):
    """A tqdm bar counting images (so it shows images/s); silent off the main process."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not (enabled and is_main_process()),
                dynamic_ncols=True, smoothing=0.1)


def loader_total(loader: Any, epochs: int = 1) -> int | None:
    try:
        return len(loader.dataset) * epochs
    except (AttributeError, TypeError):
        return None


def wilson_interval(successes: float, n: float, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval of a proportion, in percent.

    Example:
        >>> [round(v, 2) for v in wilson_interval(90, 100)]
        [82.56, 94.48]
    """
    if n <= 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes <= 0 else 100 * max(0.0, center - half)
    high = 100.0 if successes >= n else 100 * min(1.0, center + half)
    return (low, high)


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[int]:
    """How many targets are among the top-k logits, for each k (k capped at the number of classes).

    Example:
        >>> topk_correct(torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]]), torch.tensor([1, 2]), ks=(1, 2))
        [1, 1]
    """
    maxk = min(max(ks), logits.shape[1])
    pred = logits.topk(maxk, dim=1).indices
    hit = pred.eq(targets.view(-1, 1))
    return [int(hit[:, :min(k, maxk)].any(dim=1).sum()) for k in ks]
