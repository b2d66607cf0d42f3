"""Top-1/top-5 accuracy (the paper's ``-e``)."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from antialiased.evaluation._common import (all_reduce_sum, check_num_classes, forward, iter_batches,
                                            loader_total, prepare_input, progress_bar, topk_correct)

__all__ = ["evaluate_accuracy"]


def evaluate_accuracy(model: nn.Module, loader: Iterable, device: torch.device | str, *,
                      amp_dtype: torch.dtype | None = None, channels_last: bool = False, progress: bool = True,
                      print_freq: int = 10, save: Callable | None = None, return_predictions: bool = False) -> dict:
    """Top-1 and top-5 accuracy (percent) of ``model`` over ``loader``.

    ``loader`` yields ``(images, targets[, indices])``; images are normalized floats (as from
    :func:`antialiased.data.eval_transform`) or uint8 (normalized here, identically). Samples with
    target :data:`antialiased.data.SKIPPED_TARGET` (unreadable files) are counted, not scored.
    Counts are summed over ranks when torch.distributed is initialized.

    Returns:
        ``{'acc1', 'acc5', 'count', 'skipped', 'skipped_indices'}``; with ``return_predictions`` also
        ``'predictions'``, the top-1 labels in loader order.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
        >>> data = [(torch.randn(4, 3, 8, 8), torch.randint(10, (4,)))]
        >>> sorted(evaluate_accuracy(model, data, "cpu", progress=False))
        ['acc1', 'acc5', 'count', 'skipped', 'skipped_indices']
    """
    device = torch.device(device)
    model.eval()
    correct1 = correct5 = count = skipped = 0
    skipped_indices: list[int] = []
    predictions: list[torch.Tensor] = []
    bar = progress_bar(loader_total(loader), "Acc", progress)
    with torch.inference_mode(), bar:
        for step, batch in enumerate(iter_batches(loader)):
            skipped += batch.n_skipped
            skipped_indices += batch.skipped
            if batch.targets.numel():
                images = prepare_input(batch.images, device, channels_last)
                targets = batch.targets.to(device, non_blocking=True)
                logits = forward(model, images, amp_dtype)
                check_num_classes(logits, targets)
                c1, c5 = topk_correct(logits, targets)
                if return_predictions:
                    predictions.append(logits.argmax(dim=1).cpu())
                correct1, correct5, count = correct1 + c1, correct5 + c5, count + int(targets.numel())
                if save is not None:
                    save(images, batch.indices)
            bar.update(batch.size)
            if print_freq and step % print_freq == 0 and count:
                bar.set_postfix(acc1=f"{100 * correct1 / count:.2f}", acc5=f"{100 * correct5 / count:.2f}")
    correct1, correct5, count, skipped = all_reduce_sum([correct1, correct5, count, skipped], device)
    if count == 0:
        raise ValueError("no image could be evaluated (empty dataset, or every file was unreadable)")
    out = {"acc1": 100.0 * correct1 / count, "acc5": 100.0 * correct5 / count, "count": int(count),
           "skipped": int(skipped), "skipped_indices": skipped_indices}
    if return_predictions:
        out["predictions"] = torch.cat(predictions) if predictions else torch.empty(0, dtype=torch.long)
    return out
