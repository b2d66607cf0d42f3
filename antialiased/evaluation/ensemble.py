"""Ensembles over random crops (the seed's ``-ens E``, ``-ens_sm``, ``-ens_cf``)."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from antialiased.evaluation._common import (all_reduce_sum, check_num_classes, forward, iter_batches,
                                            loader_total, prepare_input, progress_bar, topk_correct)
from antialiased.evaluation.shift import new_generator

__all__ = ["ensemble_accuracy"]


def ensemble_accuracy(model: nn.Module, loader: Iterable, device: torch.device | str, *, crops: int,
                      softmax: bool = False, center_first: bool = False, crop_size: int = 224,
                      max_shift: int = 32, seed: int | None = None, progress: bool = True,
                      amp_dtype: torch.dtype | None = None, channels_last: bool = False, print_freq: int = 10,
                      save: Callable | None = None) -> dict:
    """Top-1/top-5 accuracy of the average over ``crops`` random ``crop_size`` crops of each image.

    For each batch, ``crops`` offsets are drawn uniformly from {0..max_shift-1}^2 (with
    ``center_first`` the first one is the center, (max_shift/2, max_shift/2), which is the ``-e`` crop
    of a Resize(256) + CenterCrop(256) image). Logits are averaged, or softmax outputs with ``softmax``.

    Returns:
        ``{'acc1', 'acc5', 'count', 'skipped', 'skipped_indices', 'seed'}``

    Example:
        >>> model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))
        >>> data = [(torch.rand(2, 3, 10, 10), torch.tensor([0, 3]))]
        >>> ensemble_accuracy(model, data, "cpu", crops=3, crop_size=8, max_shift=2, seed=0, progress=False)["count"]
        2
    """
    if crops < 1:
        raise ValueError(f"an ensemble needs at least one crop, got {crops}")
    device = torch.device(device)
    gen, seed = new_generator(seed)
    model.eval()
    c = crop_size
    correct1 = correct5 = count = skipped = 0
    skipped_indices: list[int] = []
    bar = progress_bar(loader_total(loader), f"Ensemble x{crops}", progress)
    with torch.inference_mode(), bar:
        for step, batch in enumerate(iter_batches(loader)):
            offsets = torch.randint(max_shift, (crops, 2), generator=gen)
            if center_first:
                offsets[0] = max_shift // 2
            skipped += batch.n_skipped
            skipped_indices += batch.skipped
            n = int(batch.targets.numel())
            if n:
                images = prepare_input(batch.images, device, False)
                targets = batch.targets.to(device)
                views = torch.cat([images[..., h:h + c, w:w + c] for h, w in offsets.tolist()])
                if channels_last:
                    views = views.contiguous(memory_format=torch.channels_last)
                logits = forward(model, views, amp_dtype)
                check_num_classes(logits, targets)
                scores = logits.softmax(dim=1) if softmax else logits
                scores = scores.view(crops, n, -1).mean(dim=0)
                c1, c5 = topk_correct(scores, targets)
                correct1, correct5, count = correct1 + c1, correct5 + c5, count + n
                if save is not None:
                    save(images, batch.indices)
            bar.update(batch.size)
            if print_freq and step % print_freq == 0 and count:
                bar.set_postfix(acc1=f"{100 * correct1 / count:.2f}")
    correct1, correct5, count, skipped = all_reduce_sum([correct1, correct5, count, skipped], device)
    if count == 0:
        raise ValueError("no image could be evaluated (empty dataset, or every file was unreadable)")
    return {"acc1": 100.0 * correct1 / count, "acc5": 100.0 * correct5 / count, "count": int(count),
            "skipped": int(skipped), "skipped_indices": skipped_indices, "seed": seed}
