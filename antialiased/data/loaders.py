"""Data-loading workers that fit the machine: a default no larger than the CPUs this process may use,
and one line of ours (not PyTorch's warning, twice) when more are asked for.

Example:
    >>> default_workers() <= min(4, available_cpus())
    True
"""
from __future__ import annotations

import warnings
from typing import Sequence

from torch.utils.data import DataLoader, Sampler

from antialiased.support.devices import available_cpus  # one count of the CPUs, shared with the thread choice
from antialiased.support.distributed import ShardSampler

__all__ = ["PAPER_WORKERS", "available_cpus", "default_workers", "check_workers", "WorkerCheckedLoader",
           "evenly_spaced", "validation_sampler"]

PAPER_WORKERS = 4  # the paper's -j default

_announced: set[tuple[int, int]] = set()  # (workers, cpus) already warned about in this process


def default_workers(cap: int = PAPER_WORKERS) -> int:
    """``-j`` when not given: the paper's 4, but no more than the CPUs available (2 on a 2-core machine)."""
    return min(cap, available_cpus())


def check_workers(workers: int) -> None:
    """Say once per process, in one line, that ``workers`` exceeds the CPUs (the value is still used)."""
    cpus = available_cpus()
    if workers <= cpus or (workers, cpus) in _announced:
        return
    _announced.add((workers, cpus))
    warnings.warn(f"-j/--workers {workers}: more data-loading processes than the {cpus} CPU{'s' * (cpus != 1)} "
                  f"available, so they compete for them (used as asked; leave -j out for {default_workers()})",
                  RuntimeWarning, stacklevel=3)


class WorkerCheckedLoader(DataLoader):
    """torch's DataLoader whose worker-count check is :func:`check_workers`: our one line, once.

    PyTorch's own check warns when the loader is built and again each time an iterator starts
    (two lines per loader, from two places).
    """

    def check_worker_number_rationality(self) -> None:
        if self.num_workers:
            check_workers(self.num_workers)


def evenly_spaced(total: int, count: int | None) -> list[int] | None:
    """``count`` indices spread evenly over ``range(total)`` (``i * total // count``), None for all of them.

    Deterministic and proportional: in an ImageFolder (sorted by class) every class keeps its share.

    Example:
        >>> evenly_spaced(12, 5), evenly_spaced(12, 20), evenly_spaced(12, None)
        ([0, 2, 4, 7, 9], None, None)
    """
    if count is None or count >= total:
        return None
    return [i * total // count for i in range(count)]


def validation_sampler(size: int, max_images: int | None, *, rank: int = 0,
                       world_size: int = 1) -> Sampler[int] | Sequence[int] | None:
    """The validation images a loader reads, as its ``sampler``: training's per-epoch validation and evaluation.

    All ``size`` images (None: the loader's own order; under a distributed launch every ``world_size``-th
    from ``rank``), or ``max_images`` of them evenly spaced (:func:`evenly_spaced`), this rank's share:
    every image on exactly one rank, none twice.

    Example:
        >>> validation_sampler(12, 5), validation_sampler(12, 5, rank=1, world_size=2), validation_sampler(12, None)
        ([0, 2, 4, 7, 9], [2, 7], None)
        >>> list(validation_sampler(5, None, rank=1, world_size=2))
        [1, 3]
    """
    picked = evenly_spaced(size, max_images)
    if picked is not None:
        return picked[rank::world_size]
    return ShardSampler(range(size), rank=rank, world_size=world_size) if world_size > 1 else None
