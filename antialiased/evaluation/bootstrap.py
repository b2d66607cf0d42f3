"""95% intervals by a seeded bootstrap over the units that are independent.

Outcomes of one image (several shifted pairs, several passes) or of one batch (``-es`` draws its
offsets per batch) are not independent, so resampling single pairs gives intervals that are too
narrow. Here whole units are resampled with replacement, and the statistic is the pooled mean of
the outcomes of the resampled units (a cluster bootstrap, percentile interval).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Interval", "bootstrap_interval", "bootstrap_columns", "RESAMPLES"]

RESAMPLES = 2000
_CHUNK_ELEMENTS = 1 << 22  # resampled indices held at once (x8 bytes)


@dataclass(frozen=True)
class Interval:
    """A figure with its 95% interval: ``value`` and ``low``-``high`` (same scale), over ``units`` units."""

    value: float
    low: float
    high: float
    units: int
    unit: str = "image"

    def as_list(self) -> list[float]:
        return [self.low, self.high]

    def settings(self, resamples: int, seed: int) -> dict[str, Any]:
        return {"unit": self.unit, "units": self.units, "resamples": resamples, "seed": seed}


def _unit_sums(values: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per unit: the sum of its outcomes (U, K) and its number of outcomes (U,)."""
    if groups is None:
        return values, np.ones(len(values))
    groups = np.asarray(groups)
    if len(groups) != len(values):
        raise ValueError(f"one group per outcome: {len(groups)} groups for {len(values)} outcomes")
    _, inverse = np.unique(groups, return_inverse=True, axis=0 if groups.ndim > 1 else None)
    inverse = inverse.reshape(-1)
    sums = np.zeros((inverse.max() + 1 if len(inverse) else 0, values.shape[1]))
    np.add.at(sums, inverse, values)
    return sums, np.bincount(inverse, minlength=len(sums)).astype(float)


def bootstrap_columns(values: Any, groups: Any = None, *, resamples: int = RESAMPLES, seed: int = 0,
                      level: float = 0.95, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Pooled means of each column and their bootstrap intervals, resampling whole units.

    ``values`` holds one row of outcomes per observation (booleans or numbers), ``groups`` the unit
    of each row (an image id, a batch number; rows with equal ids are resampled together; None:
    every row is its own unit). Every resample draws as many units as there are, with replacement,
    with a ``numpy`` generator seeded by ``seed``: the same inputs give the same interval.

    Returns:
        ``(value, low, high, units)``: arrays of one entry per column (times ``scale``) and the
        number of units. With no observations the figures are NaN.

    Example:
        >>> v = np.array([[1, 0], [1, 1], [0, 1], [1, 1]])
        >>> value, low, high, units = bootstrap_columns(v, groups=[0, 0, 1, 1], scale=100)
        >>> value.tolist(), units, bool((low <= value).all() and (value <= high).all())
        ([75.0, 75.0], 2, True)
    """
    values = np.asarray(values, dtype=float)
    values = values.reshape(values.shape[0], int(np.prod(values.shape[1:])))  # (observations, columns)
    sums, counts = _unit_sums(values, groups)
    units = len(counts)
    if units == 0:
        nan = np.full(values.shape[1], np.nan)
        return nan, nan, nan, 0
    value = sums.sum(axis=0) / counts.sum() * scale
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // units)
    stats = []
    for start in range(0, resamples, chunk):
        picks = rng.integers(0, units, size=(min(chunk, resamples - start), units))
        stats.append(sums[picks].sum(axis=1) / counts[picks].sum(axis=1, keepdims=True))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(np.concatenate(stats) * scale, [tail, 100 - tail], axis=0)
    return value, np.minimum(low, value), np.maximum(high, value), units


def bootstrap_interval(values: Any, groups: Any = None, *, resamples: int = RESAMPLES, seed: int = 0,
                       level: float = 0.95, scale: float = 100.0, unit: str = "image") -> Interval:
    """The pooled mean of ``values`` (percent by default) with its bootstrap interval over units.

    See :func:`bootstrap_columns`; ``unit`` names what a unit is, for the record.

    Example:
        >>> agree = np.array([1, 1, 0, 1, 1, 1, 0, 0])
        >>> by_pair = bootstrap_interval(agree, seed=0)
        >>> by_image = bootstrap_interval(agree, groups=[0, 0, 1, 1, 2, 2, 3, 3], seed=0)
        >>> by_pair.value, by_image.value, by_image.units
        (62.5, 62.5, 4)
    """
    v, lo, hi, units = bootstrap_columns(values, groups, resamples=resamples, seed=seed, level=level, scale=scale)
    return Interval(float(v[0]), float(lo[0]), float(hi[0]), units, unit)
