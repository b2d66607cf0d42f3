"""Shift consistency (the paper's ``-es``): do two shifted crops of an image get the same label?"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from antialiased.errors import ConfigError, DataError
from antialiased.evaluation._common import new_generator
from antialiased.evaluation.bootstrap import RESAMPLES, record_interval_methods
from antialiased.evaluation.invariance import shift_intervals
from antialiased.evaluation.loop import EvalBatch, Forward, LoopOptions, Scorer, run_protocols

__all__ = ["ShiftConsistencyScorer", "shift_consistency", "crop_pairs", "new_generator"]


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
    c, b = crop_size, images.shape[0]
    # One output in the images' layout (channels_last stays so): no second copy before the model.
    layout = torch.channels_last if images.dim() == 4 and images.is_contiguous(
        memory_format=torch.channels_last) and not images.is_contiguous() else torch.contiguous_format
    out = torch.empty((2 * b, *images.shape[1:-2], c, c), dtype=images.dtype, device=images.device,
                      memory_format=layout)
    if offsets.dim() == 2:
        for i, (h, w) in enumerate(offsets.tolist()):
            out[i * b:(i + 1) * b].copy_(images[..., h:h + c, w:w + c])
        return out
    for i, ((h0, w0), (h1, w1)) in enumerate(offsets.tolist()):
        out[i].copy_(images[i, :, h0:h0 + c, w0:w0 + c])
        out[b + i].copy_(images[i, :, h1:h1 + c, w1:w1 + c])
    return out


class ShiftConsistencyScorer(Scorer):
    """Top-1 agreement of two random crops per image, over ``epochs`` passes (see :func:`shift_consistency`).

    Per-unit outcomes (:meth:`units`): per pair ``agree``, ``index`` (dataset position or -1),
    ``pass`` and ``batch`` (the loader batch: the independent unit when offsets are drawn per batch).
    """

    name = "shift_consistency"

    def __init__(self, crop_size: int = 224, max_shift: int = 32, epochs: int = 5, *, seed: int | None = None,
                 independent: bool = False, min_forward: int = 0, save: Callable | None = None,
                 keep_labels: bool = False) -> None:
        if epochs < 1:
            raise ConfigError(f"epochs (--epochs-shift) must be >= 1, got {epochs}")
        if max_shift < 1 or crop_size < 1:
            raise ConfigError(f"crop_size and max_shift must be >= 1, got {crop_size} and {max_shift}")
        self.crop_size, self.max_shift, self.passes = crop_size, max_shift, epochs
        self.input_size = crop_size + max_shift
        self.generator, self.seed = new_generator(seed)
        self.independent, self.min_forward, self.save, self.keep_labels = independent, min_forward, save, keep_labels
        self.pending: list[tuple[torch.Tensor, EvalBatch]] = []
        self.pending_crops = 0
        self.agree: torch.Tensor | None = None  # running count on the device
        # per chunk: (agree per pair on the device, dataset indices or None, pass, batch); no images kept
        self.outcomes: list[tuple[torch.Tensor, torch.Tensor | None, int, int]] = []
        self.labels: list[torch.Tensor] = []

    def _check_size(self, images: torch.Tensor) -> None:
        need = self.crop_size + self.max_shift - 1
        if images.shape[-1] < need or images.shape[-2] < need:
            raise DataError(f"shift consistency with crop_size={self.crop_size}, max_shift={self.max_shift} needs "
                            f"images of at least {need}x{need} (usually {self.input_size}); the loader gave "
                            f"{tuple(images.shape[-2:])}")

    def score(self, batch: EvalBatch, forward: Forward) -> None:
        # Draw even for emptied batches, so offsets do not depend on which files were readable.
        shape = (batch.n, 2, 2) if self.independent else (2, 2)
        offsets = torch.randint(self.max_shift, shape, generator=self.generator)
        if not batch.n:
            return
        self._check_size(batch.images)
        crops = crop_pairs(batch.images, offsets, self.crop_size)
        if self.save is not None and batch.pass_index == 0:
            self.save(crops[:batch.n], batch.indices, "a")
            self.save(crops[batch.n:], batch.indices, "b")
        self.pending.append((crops, batch))
        self.pending_crops += crops.shape[0]
        if self.pending_crops >= self.min_forward:
            self.finish(forward)

    def finish(self, forward: Forward) -> None:
        """Run the pending crop pairs (several batches' worth when ``min_forward`` asks for it)."""
        if not self.pending:
            return
        crops = torch.cat([c for c, _ in self.pending]) if len(self.pending) > 1 else self.pending[0][0]
        labels = forward(crops).argmax(dim=1)
        start = 0
        for chunk, batch in self.pending:
            n = chunk.shape[0] // 2
            a, b = labels[start:start + n], labels[start + n:start + 2 * n]
            same = a == b
            self.agree = same.sum() if self.agree is None else self.agree + same.sum()
            self.outcomes.append((same, batch.indices, batch.pass_index, batch.step))
            if self.keep_labels:
                self.labels.append(torch.stack([a, b], dim=1))
            start += 2 * n
        self.pending, self.pending_crops = [], 0

    def _pairs(self) -> int:
        return sum(int(same.numel()) for same, *_ in self.outcomes)

    def sums(self) -> list[float]:
        return [int(self.agree) if self.agree is not None else 0, self._pairs()]

    def result(self, sums: list[float]) -> dict[str, Any]:
        agree, pairs = sums
        out: dict[str, Any] = {"consistency": 100.0 * agree / pairs if pairs else float("nan"),
                               "pairs": int(pairs), "agree": int(agree),
                               "seed": self.seed}
        if self.keep_labels:
            out["labels"] = (torch.cat(self.labels).cpu() if self.labels
                             else torch.empty(0, 2, dtype=torch.long))
        return out

    def postfix(self) -> dict[str, str]:
        pairs = self._pairs()
        return {"consistency": f"{100 * int(self.agree) / pairs:.2f}"} if pairs and self.agree is not None else {}

    def units(self) -> dict[str, np.ndarray]:
        if not self.outcomes:
            return {k: np.zeros(0, dtype=np.int64) for k in ("agree", "index", "pass", "batch")}
        agree = torch.cat([same for same, *_ in self.outcomes]).cpu().numpy()
        sizes = [int(same.numel()) for same, *_ in self.outcomes]
        index = np.concatenate([i.numpy() if i is not None else np.full(n, -1)
                                for (_, i, _, _), n in zip(self.outcomes, sizes)])
        passes = np.repeat([p for _, _, p, _ in self.outcomes], sizes)
        steps = np.repeat([s for _, _, _, s in self.outcomes], sizes)
        return {"agree": agree, "index": index, "pass": passes, "batch": steps}


def shift_consistency(model: nn.Module, loader: Iterable, device: torch.device | str, *, crop_size: int = 224,
                      max_shift: int = 32, epochs: int = 5, seed: int | None = None, independent: bool = False,
                      progress: bool = True, amp_dtype: torch.dtype | None = None, channels_last: bool = False,
                      cache_bytes: int = 4 << 30, print_freq: int = 10, save: Callable | None = None,
                      return_labels: bool = False, min_forward: int = 0, resamples: int = RESAMPLES) -> dict:
    """Percentage of images whose top-1 labels agree on two random crops (the paper's protocol).

    For each batch of ``loader`` (images of ``crop_size + max_shift`` pixels, e.g. Resize(256) +
    CenterCrop(256)), two offsets (h, w) are drawn uniformly from {0..max_shift-1}^2 and a
    ``crop_size`` crop is cut at each (with ``independent=True``: two offsets per image). Both crops
    go through the model in one forward pass (``min_forward``: gather the crops of several batches,
    each with its own offsets, until a pass holds at least that many; fuller GPUs). Repeated for
    ``epochs`` passes; the decoded batches of the first pass are kept in memory for the others when
    they fit in ``cache_bytes`` (already normalized, on ``device``, when the whole set fits that
    way; else as uint8).

    Returns:
        ``{'consistency', 'ci95', 'ci95_method', 'ci95_unit', 'pairs', 'agree', 'seed', 'count', 'skipped',
        'skipped_indices', 'cached'}``: ``ci95`` is the 95% interval of a bootstrap (``resamples``,
        seeded with the offsets' seed) over the independent units (``ci95_unit``): loader batches,
        whose pairs share their offsets and, over the passes, their images; images with
        ``independent``. With ``return_labels``, also ``'labels'``: the (pairs, 2) top-1 labels of
        both crops, in order.

    Example:
        >>> pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))
        >>> data = [(torch.rand(2, 3, 12, 12), torch.tensor([0, 1]))]
        >>> shift_consistency(pool, data, "cpu", crop_size=12, max_shift=1, epochs=2, progress=False)["consistency"]
        100.0
    """
    scorer = ShiftConsistencyScorer(crop_size, max_shift, epochs, seed=seed, independent=independent,
                                    min_forward=min_forward, save=save, keep_labels=return_labels)
    options = LoopOptions(amp_dtype=amp_dtype, channels_last=channels_last, progress=progress,
                          print_freq=print_freq, cache_bytes=cache_bytes, desc="Consistency")
    loop = run_protocols(model, loader, device, [scorer], options)
    out = loop.results[scorer.name]
    ci = shift_intervals(loop.units[scorer.name], independent=independent, resamples=resamples, seed=out["seed"])
    return record_interval_methods({**out, "ci95": ci.as_list(), "ci95_unit": ci.unit, "cached": loop.cached})
