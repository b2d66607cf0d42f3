"""One training epoch and one validation pass: the inner loops, free of any command-line concerns."""
from __future__ import annotations

import contextlib
import time
from typing import Any, Iterable

import torch
from torch import nn
from tqdm import tqdm

from antialiased.errors import TrainingError

__all__ = ["NonFiniteLossError", "train_one_epoch", "evaluate"]


class NonFiniteLossError(TrainingError):
    """The training loss became NaN or infinite; the run must stop before saving a broken model."""


def _autocast(device: torch.device, amp_dtype: torch.dtype | None):
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def _no_sync(model: nn.Module, skip: bool):
    # DDP all-reduces gradients in every backward; between accumulation steps that is wasted traffic.
    if skip and hasattr(model, "no_sync"):
        return model.no_sync()
    return contextlib.nullcontext()


def _group_size(index: int, total: int, batch_accum: int) -> int:
    """Batches in the accumulation group of batch ``index`` (the last group may be shorter)."""
    start = (index // batch_accum) * batch_accum
    return min(batch_accum, total - start)


def train_one_epoch(model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    loader: Iterable, device: torch.device, epoch: int, *,
                    scaler: torch.amp.GradScaler | None = None, amp_dtype: torch.dtype | None = None,
                    batch_accum: int = 1, max_iters: int | None = None, print_freq: int = 10,
                    channels_last: bool = False, progress: bool = True) -> dict[str, float]:
    """Train ``model`` for one pass over ``loader`` (or ``max_iters`` batches).

    With ``batch_accum = k`` the optimizer steps once every k batches and each batch's loss is
    divided by k, so the summed gradient equals that of one batch k times larger (exactly, for
    models without batch norm and full batches). A trailing group of fewer than k batches is
    divided by its own size.

    Returns the mean ``loss`` and top-1 ``acc1`` (percent) over the images seen, the throughput
    ``images_per_s`` and ``data_time`` (mean seconds per batch spent waiting for data).
    Raises :class:`NonFiniteLossError` as soon as a non-finite loss is seen (checked every
    ``print_freq`` batches and at the end, to keep the GPU pipeline free of syncs).
    """
    if batch_accum < 1:
        raise ValueError(f"batch_accum must be >= 1, got {batch_accum}")
    model.train()
    total = len(loader) if max_iters is None else min(len(loader), max_iters)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen, data_time = 0, 0.0
    bar = tqdm(total=total, desc=f"Epoch {epoch}", disable=not progress, dynamic_ncols=True, leave=False)
    optimizer.zero_grad(set_to_none=True)
    start = end = time.perf_counter()
    for i, (images, targets) in enumerate(loader):
        if i >= total:
            break
        data_time += time.perf_counter() - end
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        steps_now = (i + 1) % batch_accum == 0 or i + 1 == total
        with _no_sync(model, not steps_now):
            with _autocast(device, amp_dtype):
                output = model(images)
                loss = criterion(output, targets)
            scaled = loss / _group_size(i, total, batch_accum)
            if scaler is not None:
                scaler.scale(scaled).backward()
            else:
                scaled.backward()
        if steps_now:
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        n = images.shape[0]
        seen += n
        loss_sum += loss.detach().double() * n
        correct += (output.detach().argmax(dim=1) == targets).sum()
        if (i + 1) % print_freq == 0 or i + 1 == total:
            mean_loss = loss_sum.item() / seen
            if not torch.isfinite(torch.tensor(mean_loss)):
                bar.close()
                raise NonFiniteLossError(f"the training loss is {mean_loss} in epoch {epoch}, batch {i + 1}")
            elapsed = time.perf_counter() - start
            bar.set_postfix(loss=f"{mean_loss:.4f}", acc1=f"{100.0 * correct.item() / seen:.2f}",
                            img_s=f"{seen / elapsed:.1f}", data=f"{data_time / (i + 1):.3f}s")
        bar.update(1)
        end = time.perf_counter()
    bar.close()
    if seen == 0:
        raise ValueError("the training loader yielded no batches (is the training set empty, or -mti 0?)")
    elapsed = time.perf_counter() - start
    return {"loss": loss_sum.item() / seen, "acc1": 100.0 * correct.item() / seen,
            "images_per_s": seen / elapsed, "data_time": data_time / max(total, 1),
            "images": float(seen), "time": elapsed}


def evaluate(model: nn.Module, loader: Iterable, device: torch.device, *,
             amp_dtype: torch.dtype | None = None, channels_last: bool = False,
             progress: bool = True) -> dict[str, Any]:
    """The paper's accuracy protocol on a validation loader (top-1/top-5, reduced over ranks)."""
    from antialiased.evaluation import evaluate_accuracy  # lazy: training imports stay light

    return evaluate_accuracy(model, loader, device, amp_dtype=amp_dtype, channels_last=channels_last,
                             progress=progress)
