"""The training order, resumable in the middle of an epoch.

:class:`EpochSampler` gives every epoch a fresh permutation drawn from ``(seed, epoch)`` alone,
shares it over the ranks as ``DistributedSampler`` does (padded, every ``world_size``-th item), and
can start part-way (:meth:`EpochSampler.set_start`): the batches a killed run had finished are
skipped without being read. It yields ``(index, sample_seed)`` pairs, and :class:`SeededSamples`
seeds the random-number generators from ``sample_seed`` around each item's transform, so every
image's augmentation depends on the seed, the epoch and its position only: not on which worker
process read it, nor on how many there were, nor on a resume. (The generators of the process that
reads the item are put back afterwards: with ``-j 0`` that is the training process, whose
generators drive e.g. dropout.)
"""
from __future__ import annotations

import contextlib
import math
import random
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from antialiased.support.distributed import get_rank, get_world_size

__all__ = ["EpochSampler", "SeededSamples", "mix_seed", "seeded_generators"]

_MASK = (1 << 64) - 1


def mix_seed(*values: int) -> int:
    """A well-spread 63-bit seed from integers (splitmix64 over each value in turn).

    Example:
        >>> mix_seed(0, 1) != mix_seed(1, 0), 0 <= mix_seed(3, 4, 5) < 2 ** 63
        (True, True)
    """
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (int(value) & _MASK)) * 0xBF58476D1CE4E5B9 & _MASK
        state = (state ^ (state >> 27)) * 0x94D049BB133111EB & _MASK
        state ^= state >> 31
    return state >> 1


@contextlib.contextmanager
def seeded_generators(seed: int) -> Iterator[None]:
    """Run the body with torch's CPU generator, numpy's and Python's seeded from ``seed``; restore them after.

    Example:
        >>> with seeded_generators(7):
        ...     a = torch.rand(2)
        >>> with seeded_generators(7):
        ...     b = torch.rand(2)
        >>> torch.equal(a, b)
        True
    """
    torch_state, numpy_state, python_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    torch.default_generator.manual_seed(seed)  # CPU only: the GPU's generators are the training loop's
    np.random.seed(seed % (1 << 32))
    random.seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(torch_state)
        np.random.set_state(numpy_state)
        random.setstate(python_state)


class EpochSampler(Sampler):
    """This rank's share of each epoch's permutation, from a start position, as ``(index, sample_seed)``.

    Args:
        size: items in the dataset.
        seed: the run's data seed (the same on every rank).
        shuffle: a new permutation each epoch (else the dataset's order).
        rank, world_size: this process and their number (default: the process group's).

    Example:
        >>> sampler = EpochSampler(10, seed=0, rank=1, world_size=3)  # 4 per rank: padded to 12
        >>> sampler.set_epoch(2)
        >>> full = [index for index, _ in sampler]
        >>> sampler.set_start(2)
        >>> [index for index, _ in sampler] == full[2:], len(sampler)
        (True, 2)
    """

    def __init__(self, size: int, *, seed: int = 0, shuffle: bool = True, rank: int | None = None,
                 world_size: int | None = None) -> None:
        self.size = size
        self.seed = seed
        self.shuffle = shuffle
        self.rank = get_rank() if rank is None else rank
        self.world_size = get_world_size() if world_size is None else world_size
        self.num_samples = math.ceil(size / self.world_size)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose permutation to draw (0-based); the start goes back to 0."""
        self.epoch, self.start = epoch, 0

    def set_start(self, position: int) -> None:
        """Skip this rank's first ``position`` items (e.g. the batches done times the batch size)."""
        if not 0 <= position <= self.num_samples:
            raise ValueError(f"start position {position} is outside 0..{self.num_samples}")
        self.start = position

    def _order(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(mix_seed(self.seed, self.epoch))
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        total = self.num_samples * self.world_size
        while len(order) < total:  # as DistributedSampler: repeat from the start so every rank has as many
            order += order[:total - len(order)]
        return order

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self._order()
        for position in range(self.rank + self.start * self.world_size, len(order), self.world_size):
            yield order[position], mix_seed(self.seed, self.epoch, position)

    def __len__(self) -> int:
        return self.num_samples - self.start


class SeededSamples(Dataset):
    """``dataset[index]`` under :func:`seeded_generators` for the ``(index, sample_seed)`` keys of :class:`EpochSampler`.

    Plain integer keys read the item as they are. Other attributes (``samples``, ``classes``,
    ``skip_reasons``, ...) are the wrapped dataset's.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, seed = key
        with seeded_generators(seed):
            return self.dataset[index]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "dataset":  # unpickling (spawned workers) asks before __dict__ is set
            raise AttributeError(name)
        return getattr(self.dataset, name)
