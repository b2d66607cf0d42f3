"""Small pieces the protocols share: top-k hits, the offsets' generator, a proportion's interval."""
from __future__ import annotations

import math

import torch

__all__ = ["topk_hits", "topk_correct", "new_generator", "wilson_interval"]


def topk_hits(logits: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> torch.Tensor:
    """Whether each target is among the top-k logits, for each k (capped at the number of classes).

    Stays on the logits' device (no synchronization), one row per k.

    Shape:
        - logits: (N, classes)
        - targets: (N,)
        - output: (len(ks), N), bool

    Example:
        >>> topk_hits(torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]]), torch.tensor([1, 2]), ks=(1, 2))
        tensor([[ True, False],
                [ True, False]])
    """
    maxk = min(max(ks), logits.shape[1])
    hit = logits.topk(maxk, dim=1).indices.eq(targets.view(-1, 1))
    return torch.stack([hit[:, :min(k, maxk)].any(dim=1) for k in ks])


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[int]:
    """How many targets are among the top-k logits, for each k (k capped at the number of classes).

    Example:
        >>> topk_correct(torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]]), torch.tensor([1, 2]), ks=(1, 2))
        [1, 1]
    """
    return [int(v) for v in topk_hits(logits, targets, ks).sum(dim=1).tolist()]


def new_generator(seed: int | None) -> tuple[torch.Generator, int]:
    """A CPU generator seeded with ``seed`` (or a fresh random seed, returned so runs can be repeated)."""
    if seed is None:
        seed = int(torch.randint(2**62, (1,), generator=torch.Generator().manual_seed(torch.seed())))
    return torch.Generator().manual_seed(seed), seed


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
