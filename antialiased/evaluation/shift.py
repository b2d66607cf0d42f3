"""Shift consistency (the paper's ``-es``): do two shifted crops of an image get the same label?"""
from __future__ import annotations

import logging
from typing import Callable, Iterable

import torch
from torch import nn

from antialiased.evaluation._common import (Batch, all_reduce_sum, check_num_classes, forward, iter_batches,
                                            loader_total, prepare_input, progress_bar, wilson_interval)

__all__ = ["shift_consistency", "crop_pairs", "new_generator"]

log = logging.getLogger(__name__)


def new_generator(seed: int | None) -> tuple[torch.Generator, int]:
    """A CPU generator seeded with ``seed`` (or a fresh random seed, returned so runs can be repeated)."""
    if seed is None:
        seed = int(torch.randint(2**62, (1,), generator=torch.Generator().manual_seed(torch.seed())))
    return torch.Generator().manual_seed(seed), seed


def crop_pairs(images: torch.Tensor, offsets: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Both crops of every image, stacked as one batch ``[crops at offset a; crops at offset b]``.

    Shape:
        - images: (B, C, H, W)
        - offsets: (2, 2) rows (h, w), one pair for the batch; or (B, 2, 2), one pair per image
        - output: (2B, C, crop_size, crop_size)

    Example:
        >>> x = torch.arange(16.).view(1, 1, 4, 4)
        >>> crop_pairs(x, torch.tensor([[0, 0], [1, 2]]), 2)[:, 0]
        tensor([[[ 0.,  1.],
                 [ 4.,  5.]],
        <BLANKLINE>
                [[ 6.,  7.],
                 [10., 11.]]])
    """
    c = crop_size
    if offsets.dim() == 2:
        return torch.cat([images[..., h:h + c, w:w + c] for h, w in offsets.tolist()])
    firsts, seconds = [], []
    for image, pair in zip(images, offsets.tolist()):
        (h0, w0), (h1, w1) = pair
        firsts.append(image[:, h0:h0 + c, w0:w0 + c])
        seconds.append(image[:, h1:h1 + c, w1:w1 + c])
    return torch.stack(firsts + seconds)


def _check_size(images: torch.Tensor, crop_size: int, max_shift: int) -> None:
    need = crop_size + max_shift - 1
    if images.shape[-1] < need or images.shape[-2] < need:
        raise ValueError(f"shift consistency with crop_size={crop_size}, max_shift={max_shift} needs images of at "
                         f"least {need}x{need} (usually {crop_size + max_shift}); the loader gave "
                         f"{tuple(images.shape[-2:])}")


def _fits_normalized(loader: Iterable, batch: Batch, budget: int) -> bool:
    """Whether the whole data set, as normalized float images, fits in ``budget`` bytes."""
    try:
        total = len(loader.dataset)  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        return False
    per_image = batch.images[0].numel() * torch.finfo(torch.float32).bits // 8 if batch.images.numel() else 0
    return total * per_image <= budget


def _cached(batch: Batch, images: torch.Tensor) -> Batch:
    batch.images = images
    return batch


class _PairScorer:
    """Runs crop pairs through the model, several loader batches per forward pass when asked."""

    def __init__(self, model: nn.Module, amp_dtype: torch.dtype | None, channels_last: bool, min_forward: int,
                 keep_labels: bool) -> None:
        self.model, self.amp_dtype, self.channels_last, self.min_forward = model, amp_dtype, channels_last, min_forward
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.pending_crops = 0
        self.agree = self.pairs = 0
        self.labels: list[torch.Tensor] | None = [] if keep_labels else None

    def add(self, crops: torch.Tensor, targets: torch.Tensor) -> None:
        self.pending.append((crops, targets))
        self.pending_crops += crops.shape[0]
        if self.pending_crops >= self.min_forward:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        crops = torch.cat([c for c, _ in self.pending]) if len(self.pending) > 1 else self.pending[0][0]
        if self.channels_last:
            crops = crops.contiguous(memory_format=torch.channels_last)
        logits = forward(self.model, crops, self.amp_dtype)
        labels = logits.argmax(dim=1)
        start = 0
        for chunk, targets in self.pending:
            n = chunk.shape[0] // 2
            check_num_classes(logits, targets)
            a, b = labels[start:start + n], labels[start + n:start + 2 * n]
            self.agree += int((a == b).sum())
            self.pairs += n
            if self.labels is not None:
                self.labels.append(torch.stack([a, b], dim=1).cpu())
            start += 2 * n
        self.pending, self.pending_crops = [], 0


def shift_consistency(model: nn.Module, loader: Iterable, device: torch.device | str, *, crop_size: int = 224,
                      max_shift: int = 32, epochs: int = 5, seed: int | None = None, independent: bool = False,
                      progress: bool = True, amp_dtype: torch.dtype | None = None, channels_last: bool = False,
                      cache_bytes: int = 4 << 30, print_freq: int = 10, save: Callable | None = None,
                      return_labels: bool = False, min_forward: int = 0) -> dict:
    """Percentage of images whose top-1 labels agree on two random crops (the paper's protocol).

    For each batch of ``loader`` (images of ``crop_size + max_shift`` pixels, e.g. Resize(256) +
    CenterCrop(256)), two offsets (h, w) are drawn uniformly from {0..max_shift-1}^2 and a
    ``crop_size`` crop is cut at each (with ``independent=True``: two offsets per image). Both crops
    go through the model in one forward pass (``min_forward``: gather the crops of several batches,
    each with its own offsets, until a pass holds at least that many; fuller GPUs). Repeated for ``epochs`` passes; the decoded batches of
    the first pass are kept in memory for the others when they fit in ``cache_bytes`` (already
    normalized, on ``device``, when the whole set fits that way; else as uint8).

    Returns:
        ``{'consistency', 'ci95', 'pairs', 'agree', 'seed', 'count', 'skipped', 'skipped_indices',
        'cached'}``: ``ci95`` is the 95% Wilson interval, treating pairs as independent. With
        ``return_labels``, also ``'labels'``: the (pairs, 2) top-1 labels of both crops, in order.

    Example:
        >>> pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))
        >>> data = [(torch.rand(2, 3, 12, 12), torch.tensor([0, 1]))]
        >>> shift_consistency(pool, data, "cpu", crop_size=12, max_shift=1, epochs=2, progress=False)["consistency"]
        100.0
    """
    device = torch.device(device)
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if max_shift < 1:
        raise ValueError(f"max_shift must be >= 1, got {max_shift}")
    gen, seed = new_generator(seed)
    model.eval()
    count = skipped = 0
    skipped_indices: list[int] = []
    scorer = _PairScorer(model, amp_dtype, channels_last, min_forward, return_labels)
    cache: list[Batch] | None = [] if epochs > 1 and cache_bytes > 0 else None
    cached_bytes = 0
    cache_normalized: bool | None = None
    bar = progress_bar(loader_total(loader, epochs), "Consistency", progress)
    with torch.inference_mode(), bar:
        for epoch in range(epochs):
            from_cache = epoch > 0 and cache is not None
            batches = cache if from_cache else iter_batches(loader)
            for step, batch in enumerate(batches):
                n = int(batch.targets.numel())
                # Draw even for emptied batches, so offsets do not depend on which files were readable.
                shape = (n, 2, 2) if independent else (2, 2)
                offsets = torch.randint(max_shift, shape, generator=gen)
                if epoch == 0:
                    count += n
                    skipped += batch.n_skipped
                    skipped_indices += batch.skipped
                images = None
                if n:
                    _check_size(batch.images, crop_size, max_shift)
                    images = prepare_input(batch.images, device, False)
                if epoch == 0 and cache is not None:
                    if cache_normalized is None:  # decide once: normalized floats when all of them fit
                        cache_normalized = _fits_normalized(loader, batch, cache_bytes)
                    normalized = cache_normalized and images is not None and images is not batch.images
                    keep = images if normalized else batch.images.clone()
                    cached_bytes += keep.nbytes
                    if cached_bytes <= cache_bytes:
                        # normalized: later passes skip the conversion; raw: own memory, not a worker's segment
                        cache.append(_cached(batch, keep))
                    else:
                        log.info("decoded images exceed the cache budget (%d MiB): decoding every pass",
                                 cache_bytes >> 20)
                        cache = None
                if n:
                    crops = crop_pairs(images, offsets, crop_size)
                    scorer.add(crops, batch.targets)
                    if save is not None and epoch == 0:
                        save(crops[:n], batch.indices, "a")
                        save(crops[n:], batch.indices, "b")
                bar.update(batch.size)
                if print_freq and step % print_freq == 0 and scorer.pairs:
                    bar.set_postfix(epoch=epoch, consistency=f"{100 * scorer.agree / scorer.pairs:.2f}")
        scorer.flush()
    agree, pairs, count, skipped = all_reduce_sum([scorer.agree, scorer.pairs, count, skipped], device)
    if pairs == 0:
        raise ValueError("no image could be evaluated (empty dataset, or every file was unreadable)")
    out = {"consistency": 100.0 * agree / pairs, "ci95": wilson_interval(agree, pairs), "pairs": int(pairs),
           "agree": int(agree), "seed": seed, "count": int(count), "skipped": int(skipped),
           "skipped_indices": skipped_indices, "cached": cache is not None and epochs > 1}
    if scorer.labels is not None:
        out["labels"] = torch.cat(scorer.labels) if scorer.labels else torch.empty(0, 2, dtype=torch.long)
    return out
