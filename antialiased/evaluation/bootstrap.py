"""95% intervals by a seeded bootstrap over the units that are independent.

Outcomes of one image (several shifted pairs, several passes) or of one batch (``-es`` draws its
offsets per batch) are not independent, so resampling single pairs gives intervals that are too
narrow. Here whole units are resampled with replacement, and the statistic is the pooled mean of
the outcomes of the resampled units (a cluster bootstrap, percentile interval).

Two cases the bootstrap cannot see get other answers: one unit has no interval (NaN); a proportion
that is 0% or 100% in every unit (a model consistent on every image) would get the zero-width
interval of a single point, so it gets the Wilson score interval over units instead (a finite
sample never proves 100%).

Every interval records the method that made it (:data:`INTERVAL_METHODS`): ``Interval.method``,
and ``Interval.as_list()`` is an :class:`IntervalBounds` that carries it; the result record stores
it next to the interval (``acc1_ci95_method``, see :func:`record_interval_methods`), and reports
label intervals from there.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Callable

import numpy as np

from antialiased.evaluation._common import wilson_interval

__all__ = ["Interval", "IntervalBounds", "INTERVAL_METHODS", "interval_methods", "record_interval_methods",
           "bootstrap_interval", "bootstrap_columns", "bootstrap_statistic", "RESAMPLES"]

RESAMPLES = 2000
_CHUNK_ELEMENTS = 1 << 22  # resampled indices held at once (x8 bytes)

#: How an interval was made, as result files record it (``<figure>_ci95_method``).
INTERVAL_METHODS = {
    "bootstrap": "percentile bootstrap over units (images, or batches where offsets are drawn per batch)",
    "wilson": "Wilson score interval over units (a proportion that is 0% or 100% in every unit)",
    "none": "no interval (fewer than two units)",
}


class IntervalBounds(list):
    """``[low, high]`` that remembers the method that made it (a list: JSON writes it as one).

    Example:
        >>> bounds = IntervalBounds([90.0, 100.0], "wilson")
        >>> bounds, bounds.method
        ([90.0, 100.0], 'wilson')
    """

    def __init__(self, bounds: Any, method: str) -> None:
        super().__init__(float(b) for b in bounds)
        self.method = method


@dataclass(frozen=True)
class Interval:
    """A figure with its 95% interval: ``value`` and ``low``-``high`` (same scale), over ``units`` units."""

    value: float
    low: float
    high: float
    units: int
    unit: str = "image"
    method: str = "bootstrap"  # a key of INTERVAL_METHODS

    def as_list(self) -> IntervalBounds:
        return IntervalBounds([self.low, self.high], self.method)

    def text(self, digits: int = 3) -> str:
        """``95% CI low-high``, or why there is none."""
        if np.isnan(self.low):
            return f"95% CI n/a ({self.units} {self.unit})"
        return f"95% CI {self.low:.{digits}f}-{self.high:.{digits}f}"

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


def _boundary_columns(sums: np.ndarray, counts: np.ndarray) -> list[int]:
    """Columns whose outcomes are 0% or 100% in every unit."""
    means = sums / counts[:, None]
    return [c for c in range(means.shape[1]) if means[0, c] in (0.0, 1.0) and np.all(means[:, c] == means[0, c])]


def _at_boundary(sums: np.ndarray, counts: np.ndarray, low: np.ndarray, high: np.ndarray, scale: float,
                 level: float) -> None:
    """Columns of 0/1 outcomes that are 0% or 100% in every unit get the Wilson interval over units (in place)."""
    z = NormalDist().inv_cdf(0.5 + level / 2)
    for column in _boundary_columns(sums, counts):
        lo, hi = wilson_interval(sums[0, column] / counts[0] * len(counts), len(counts), z)
        low[column], high[column] = lo * scale / 100, hi * scale / 100


def interval_methods(values: Any, groups: Any = None, *, proportion: bool = False) -> list[str]:
    """The method :func:`bootstrap_columns` uses for each column's interval (a key of :data:`INTERVAL_METHODS`).

    Example:
        >>> interval_methods([[1, 0.5], [1, 0.25]], proportion=True), interval_methods([[1.0]])
        (['wilson', 'bootstrap'], ['none'])
    """
    values = np.asarray(values, dtype=float)
    values = values.reshape(values.shape[0], int(np.prod(values.shape[1:])))
    sums, counts = _unit_sums(values, groups)
    if len(counts) < 2:
        return ["none"] * values.shape[1]
    wilson = set(_boundary_columns(sums, counts)) if proportion else set()
    return ["wilson" if c in wilson else "bootstrap" for c in range(values.shape[1])]


def record_interval_methods(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` with ``<key>_method`` next to every :class:`IntervalBounds` (or list of them, or dict of them
    by name: per-class intervals) it holds, in nested records too (per-layer entries); for result files.

    Example:
        >>> record_interval_methods({"acc1": 100.0, "acc1_ci95": IntervalBounds([97.0, 100.0], "wilson")})
        {'acc1': 100.0, 'acc1_ci95': [97.0, 100.0], 'acc1_ci95_method': 'wilson'}
        >>> record_interval_methods({"iou_ci95": {"cat": IntervalBounds([40.0, 60.0], "bootstrap"), "dog": None}})
        {'iou_ci95': {'cat': [40.0, 60.0], 'dog': None}, 'iou_ci95_method': {'cat': 'bootstrap', 'dog': None}}
    """
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            value = [record_interval_methods(v) for v in value]
        out[key] = value
        if isinstance(value, IntervalBounds):
            out[f"{key}_method"] = value.method
        elif isinstance(value, list) and value and all(isinstance(v, IntervalBounds) for v in value):
            out[f"{key}_method"] = [v.method for v in value]
        elif isinstance(value, dict) and any(isinstance(v, IntervalBounds) for v in value.values()):
            # per name (a class's IoU); a name without an interval (None) has no method either
            out[f"{key}_method"] = {k: getattr(v, "method", None) for k, v in value.items()}
    return out


def bootstrap_columns(values: Any, groups: Any = None, *, resamples: int = RESAMPLES, seed: int = 0,
                      level: float = 0.95, scale: float = 1.0, proportion: bool = False
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Pooled means of each column and their bootstrap intervals, resampling whole units.

    ``values`` holds one row of outcomes per observation (booleans or numbers), ``groups`` the unit
    of each row (an image id, a batch number; rows with equal ids are resampled together; None:
    every row is its own unit). Every resample draws as many units as there are, with replacement,
    with a ``numpy`` generator seeded by ``seed``: the same inputs give the same interval.
    ``proportion``: the outcomes are 0/1 (agreement, correctness), so a column that is 0 or 1 in
    every unit gets the Wilson interval over units rather than a zero-width one.

    Returns:
        ``(value, low, high, units)``: arrays of one entry per column (times ``scale``) and the
        number of units. With no observations the figures are NaN; with one unit the interval.

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
    nan = np.full(values.shape[1], np.nan)
    if units == 0:
        return nan, nan, nan, 0
    value = sums.sum(axis=0) / counts.sum() * scale
    if units == 1:
        return value, nan, nan.copy(), 1
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // units)
    stats = []
    for start in range(0, resamples, chunk):
        picks = rng.integers(0, units, size=(min(chunk, resamples - start), units))
        stats.append(sums[picks].sum(axis=1) / counts[picks].sum(axis=1, keepdims=True))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(np.concatenate(stats) * scale, [tail, 100 - tail], axis=0)
    low, high = np.minimum(low, value), np.maximum(high, value)
    if proportion:
        _at_boundary(sums, counts, low, high, scale, level)
    return value, low, high, units


def bootstrap_interval(values: Any, groups: Any = None, *, resamples: int = RESAMPLES, seed: int = 0,
                       level: float = 0.95, scale: float = 100.0, unit: str = "image",
                       proportion: bool = True) -> Interval:
    """The pooled mean of ``values`` (percent of 0/1 outcomes by default) with its bootstrap interval over units.

    See :func:`bootstrap_columns`; ``unit`` names what a unit is, for the record; ``proportion=False``
    for other figures (errors, probabilities).

    Example:
        >>> agree = np.array([1, 1, 0, 1, 1, 1, 0, 0])
        >>> by_pair = bootstrap_interval(agree, seed=0)
        >>> by_image = bootstrap_interval(agree, groups=[0, 0, 1, 1, 2, 2, 3, 3], seed=0)
        >>> by_pair.value, by_image.value, by_image.units
        (62.5, 62.5, 4)
    """
    v, lo, hi, units = bootstrap_columns(values, groups, resamples=resamples, seed=seed, level=level, scale=scale,
                                         proportion=proportion)
    method = interval_methods(values, groups, proportion=proportion)[0]
    return Interval(float(v[0]), float(lo[0]), float(hi[0]), units, unit, method)


def bootstrap_statistic(values: Any, statistic: Callable[[np.ndarray], np.ndarray], groups: Any = None, *,
                        resamples: int = RESAMPLES, seed: int = 0, level: float = 0.95
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """A statistic of the summed outcomes and its bootstrap interval, resampling whole units.

    For figures that are not means of the outcomes but functions of their sums, such as the mean
    IoU of a dataset (a ratio of per-class sums): ``values`` holds one row of numbers per
    observation, ``statistic`` maps summed rows ``(R, K)`` to figures ``(R, F)``. Each resample
    draws as many units as there are, with replacement (as multinomial counts of the units, so no
    resampled copy of the rows is made), with a ``numpy`` generator seeded by ``seed``. Figures a
    resample leaves undefined (NaN, e.g. the IoU of a class absent from it) are left out of that
    figure's percentiles.

    Returns:
        ``(value, low, high, units)``: the statistic of all outcomes and its interval, one entry per
        figure, and the number of units (intervals are NaN for fewer than two units).

    Example:
        >>> v = np.array([[1, 2], [1, 1], [3, 4], [0, 1]])  # per image: (hits, pixels)
        >>> ratio = lambda sums: sums[:, :1] / sums[:, 1:]
        >>> value, low, high, units = bootstrap_statistic(v, ratio, seed=0)
        >>> value.tolist(), units, bool(low[0] <= value[0] <= high[0])
        ([0.625], 4, True)
    """
    values = np.asarray(values, dtype=float)
    values = values.reshape(values.shape[0], int(np.prod(values.shape[1:])))
    sums, _ = _unit_sums(values, groups)
    units = len(sums)
    value = np.asarray(statistic(sums.sum(axis=0, keepdims=True)), dtype=float)[0]
    nan = np.full(value.shape, np.nan)
    if units < 2:
        return value, nan, nan.copy(), units
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // units)
    stats = []
    for start in range(0, resamples, chunk):
        counts = rng.multinomial(units, np.full(units, 1.0 / units), size=min(chunk, resamples - start))
        stats.append(np.asarray(statistic(counts @ sums), dtype=float))
    tail = 100 * (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a figure undefined in every resample stays NaN
        low, high = np.nanpercentile(np.concatenate(stats), [tail, 100 - tail], axis=0)
    return value, np.fmin(low, value), np.fmax(high, value), units
