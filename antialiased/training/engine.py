"""One training epoch and one validation pass: the inner loops, free of any command-line concerns.

Unreadable images arrive with target :data:`~antialiased.data.SKIPPED_TARGET`. They are taken out of
their batch before the forward pass; a batch left with no image (or a single one, when batch norm
is training and needs two) is skipped whole and counted. Under DDP every rank skips such a batch
together (a vote over a CPU group), because each backward pass is a collective.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from antialiased.errors import ConfigError, TrainingError
from antialiased.evaluation import evaluate_accuracy
from antialiased.support.devices import autocast
from antialiased.training.batch_rules import CLASSIFICATION_BATCHES, BatchRules

__all__ = ["NonFiniteLossError", "SkipVote", "EpochStart", "train_one_epoch", "evaluate", "min_train_batch"]


class NonFiniteLossError(TrainingError):
    """The training loss became NaN or infinite; the run must stop before saving a broken model."""


def min_train_batch(model: nn.Module) -> int:
    """Images a training batch needs: 2 when batch norm computes batch statistics (one value per
    channel has no variance), else 1.

    Example:
        >>> min_train_batch(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train())
        2
        >>> min_train_batch(nn.Linear(3, 4))
        1
    """
    batch_norm = nn.modules.batchnorm._BatchNorm  # every BatchNorm*d, SyncBatchNorm and the lazy ones
    return 2 if any(isinstance(m, batch_norm) and m.training for m in model.modules()) else 1


class SkipVote:
    """Whether any rank must skip the current batch; every rank then skips it.

    Uses a gloo group (created once, collectively, by every rank) so the vote never waits for the
    GPU. Outside distributed runs it returns the local answer.
    """

    def __init__(self) -> None:
        self.group = None
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            self.group = dist.group.WORLD if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")

    def __call__(self, skip_here: bool) -> bool:
        if self.group is None:
            return skip_here
        flag = torch.tensor([int(skip_here)], dtype=torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group)
        return bool(flag.item())


def _no_sync(model: nn.Module, skip: bool):
    # DDP all-reduces gradients in every backward; between accumulation steps that is wasted traffic.
    if skip and hasattr(model, "no_sync"):
        return model.no_sync()
    return contextlib.nullcontext()


def _average_gradients(model: nn.Module) -> None:
    """What DDP's last backward would have done, for a group whose last batch was skipped."""
    world = dist.get_world_size()
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world


def _group_size(index: int, total: int, batch_accum: int) -> int:
    """Batches in the accumulation group of batch ``index`` (the last group may be shorter)."""
    start = (index // batch_accum) * batch_accum
    return min(batch_accum, total - start)


@dataclass
class EpochStart:
    """Where an epoch starts: after ``batches_done`` batches (a resumed mid-epoch checkpoint), with the
    running sums those batches left (``sums``, as ``train_one_epoch``'s ``on_step`` hands them out)."""
    batches_done: int = 0
    sums: dict[str, Any] | None = None


@dataclass
class _Tally:
    """Running sums of one epoch (loss and correct counts stay on the device: no per-batch sync).

    ``correct`` of ``counted`` predictions: images for classification, labelled pixels for segmentation."""
    device: torch.device
    rules: BatchRules = CLASSIFICATION_BATCHES
    seen: int = 0
    data_time: float = 0.0
    skipped_batches: int = 0
    unreadable: list[int] = field(default_factory=list)  # dataset indices, when the loader yields them
    unreadable_count: int = 0
    elapsed_before: float = 0.0  # seconds of this epoch trained before a resume

    def __post_init__(self) -> None:
        self.loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        self.correct = torch.zeros((), device=self.device, dtype=torch.int64)
        self.counted = torch.zeros((), device=self.device, dtype=torch.int64)

    def state(self, elapsed: float) -> dict[str, Any]:
        """The sums as plain numbers (exact: the loss sum is a float64), for a mid-epoch checkpoint."""
        return {"seen": self.seen, "loss_sum": float(self.loss_sum.item()), "correct": int(self.correct.item()),
                "counted": int(self.counted.item()),
                "data_time": self.data_time, "skipped_batches": self.skipped_batches,
                "unreadable": list(self.unreadable), "unreadable_count": self.unreadable_count,
                "elapsed": self.elapsed_before + elapsed}

    def load(self, state: dict[str, Any]) -> None:
        self.seen, self.data_time = int(state["seen"]), float(state["data_time"])
        self.skipped_batches, self.unreadable_count = int(state["skipped_batches"]), int(state["unreadable_count"])
        self.unreadable, self.elapsed_before = list(state["unreadable"]), float(state["elapsed"])
        self.loss_sum.fill_(float(state["loss_sum"]))
        self.correct.fill_(int(state["correct"]))
        self.counted.fill_(int(state.get("counted", state["seen"])))  # written before pixels were counted: images

    def add(self, loss: torch.Tensor, output: torch.Tensor, targets: torch.Tensor) -> None:
        n = targets.shape[0]
        self.seen += n
        self.loss_sum += loss.detach().double() * n
        correct, counted = self.rules.hits(self.rules.scores(output), targets)
        self.correct += correct
        self.counted += counted

    def accuracy(self) -> float:
        """Percent of the counted predictions that were right (0 before any)."""
        return 100.0 * self.correct.item() / max(self.counted.item(), 1)


def _split_batch(batch: Any, tally: _Tally) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and targets of a loader batch, unreadable samples removed (and recorded)."""
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise ConfigError("the training loader must yield (images, targets) or (images, targets, indices)")
    images, targets = batch[0], torch.as_tensor(batch[1])
    keep = tally.rules.kept(targets)
    if bool(keep.all()):
        return images, targets
    tally.unreadable_count += int((~keep).sum())
    if len(batch) == 3:
        tally.unreadable += torch.as_tensor(batch[2])[~keep].tolist()
    return images[keep], targets[keep]


@dataclass
class _Step:
    """How each batch is trained: the fixed arguments of :func:`train_one_epoch`."""
    model: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    scaler: torch.amp.GradScaler | None
    amp_dtype: torch.dtype | None
    channels_last: bool

    def backward(self, images: torch.Tensor, targets: torch.Tensor, divisor: int, sync: bool,
                 tally: _Tally) -> None:
        images = images.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with _no_sync(self.model, not sync):
            with autocast(self.device, self.amp_dtype):
                output = self.model(images)
                loss = self.criterion(output, targets)
            scaled = loss / divisor
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        tally.add(loss, output, targets)

    def step(self) -> None:
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()


def train_one_epoch(model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    loader: Iterable, device: torch.device, epoch: int, *,
                    scaler: torch.amp.GradScaler | None = None, amp_dtype: torch.dtype | None = None,
                    batch_accum: int = 1, max_iters: int | None = None, print_freq: int = 10,
                    channels_last: bool = False, progress: bool = True,
                    skip_vote: Callable[[bool], bool] | None = None, start: EpochStart | None = None,
                    on_step: Callable[[int, int, Callable[[], dict[str, Any]]], None] | None = None,
                    rules: BatchRules | None = None) -> dict[str, Any]:
    """Train ``model`` for one pass over ``loader`` (or ``max_iters`` batches).

    With ``batch_accum = k`` the optimizer steps once every k batches and each batch's loss is
    divided by k, so the summed gradient equals that of one batch k times larger (exactly, for
    models without batch norm and full batches). A trailing group of fewer than k batches is
    divided by its own size. ``loader`` yields ``(images, targets[, indices])``; see the module
    docstring for unreadable images. ``skip_vote`` (a :class:`SkipVote` under DDP) makes every
    rank skip a batch that one of them cannot train on.

    ``start`` resumes an epoch part-way: ``loader`` then yields the batches after the first
    ``start.batches_done`` (e.g. from a sampler that starts there), and the statistics cover the
    whole epoch. ``on_step(batches_done, total, sums)`` is called after every optimizer step but the
    epoch's last (gradients are zero there: a checkpoint needs no accumulation state); ``sums()``
    gives the running sums for :class:`EpochStart`. ``rules`` says what a batch holds (default: a class per
    image; :data:`~antialiased.training.batch_rules.SEGMENTATION_BATCHES`: a label map per image).

    Returns the mean ``loss`` and top-1 ``acc1`` (percent) over the images trained on, ``images``,
    the throughput ``images_per_s``, ``data_time`` (mean seconds per batch spent waiting for data),
    ``skipped_batches``, ``unreadable`` (count) and ``unreadable_indices`` (dataset indices, when
    the loader yields them). Raises :class:`NonFiniteLossError` as soon as a non-finite loss is
    seen (checked every ``print_freq`` batches and at the end, to keep the GPU free of syncs).
    """
    if batch_accum < 1:
        raise ConfigError(f"batch_accum must be >= 1, got {batch_accum}")
    model.train()
    min_batch, vote = min_train_batch(model), skip_vote or (lambda skip: skip)
    step = _Step(model, criterion, optimizer, device, scaler, amp_dtype, channels_last)
    first = start.batches_done if start is not None else 0
    total = first + len(loader) if max_iters is None else min(first + len(loader), max_iters)
    tally = _Tally(device, rules or CLASSIFICATION_BATCHES)
    if start is not None and start.sums:
        tally.load(start.sums)
    bar = tqdm(total=total, initial=first, desc=f"Epoch {epoch}", disable=not progress, dynamic_ncols=True,
               leave=False)
    optimizer.zero_grad(set_to_none=True)
    trained_in_group = False
    began = end = time.perf_counter()
    for i, batch in enumerate(loader, start=first):
        if i >= total:
            break
        tally.data_time += time.perf_counter() - end
        images, targets = _split_batch(batch, tally)
        steps_now = (i + 1) % batch_accum == 0 or i + 1 == total
        if vote(targets.shape[0] < min_batch):
            tally.skipped_batches += 1
            if steps_now and trained_in_group and hasattr(model, "no_sync"):
                _average_gradients(model)  # the group's earlier backward passes ran without DDP's sync
        else:
            step.backward(images, targets, _group_size(i, total, batch_accum), steps_now, tally)
            trained_in_group = True
        if steps_now:
            if trained_in_group:
                step.step()
            optimizer.zero_grad(set_to_none=True)
            trained_in_group = False
            if on_step is not None and i + 1 < total:
                on_step(i + 1, total, lambda: tally.state(time.perf_counter() - began))
        if (i + 1) % print_freq == 0 or i + 1 == total:
            _check_and_show(tally, bar, epoch, i, began)
        bar.update(1)
        end = time.perf_counter()
    bar.close()
    return _epoch_stats(tally, epoch, total, time.perf_counter() - began)


def _check_and_show(tally: _Tally, bar: tqdm, epoch: int, i: int, start: float) -> None:
    if tally.seen == 0:
        return
    mean_loss = tally.loss_sum.item() / tally.seen
    if not torch.isfinite(torch.tensor(mean_loss)):
        bar.close()
        raise NonFiniteLossError(f"the training loss is {mean_loss} in epoch {epoch}, batch {i + 1}")
    bar.set_postfix(loss=f"{mean_loss:.4f}", acc1=f"{tally.accuracy():.2f}",
                    img_s=f"{tally.seen / (time.perf_counter() - start):.1f}",
                    data=f"{tally.data_time / (i + 1):.3f}s")


def _epoch_stats(tally: _Tally, epoch: int, total: int, elapsed: float) -> dict[str, Any]:
    if total == 0:
        raise TrainingError("the training loader yielded no batches (is the training set empty, or -mti 0?)")
    seen = max(tally.seen, 1)  # every batch skipped: zeros, and the caller decides what that means
    elapsed += tally.elapsed_before
    return {"loss": tally.loss_sum.item() / seen, "acc1": tally.accuracy(), "counted": int(tally.counted.item()),
            "images_per_s": tally.seen / elapsed, "data_time": tally.data_time / total,
            "images": float(tally.seen), "time": elapsed, "skipped_batches": tally.skipped_batches,
            "unreadable": tally.unreadable_count, "unreadable_indices": tally.unreadable}


def evaluate(model: nn.Module, loader: Iterable, device: torch.device, *,
             amp_dtype: torch.dtype | None = None, channels_last: bool = False,
             progress: bool = True) -> dict[str, Any]:
    """The paper's accuracy protocol on a validation loader (top-1/top-5, reduced over ranks)."""
    return evaluate_accuracy(model, loader, device, amp_dtype=amp_dtype, channels_last=channels_last,
                             progress=progress)
