"""How reports label a 95% interval: by the method its result record says made it, never by a guess.

Result files record each interval's method next to it (``acc1_ci95_method``: ``bootstrap``,
``wilson`` or ``none``; see :mod:`antialiased.evaluation.bootstrap`). A table marks an interval
that is not a bootstrap's with a letter, and the legend under it explains the letters present;
records written before methods were recorded read "method not recorded".

Example:
    >>> [interval_mark(m) for m in ("bootstrap", "wilson", None)]
    ['', ' (W)', ' (?)']
    >>> print(interval_legend(["bootstrap", "wilson"]))
    95% intervals: bootstrap = percentile bootstrap over units (images, or batches where offsets are drawn per batch); (W) = Wilson score interval over units (a proportion that is 0% or 100% in every unit).
    >>> axis_label(["bootstrap"]), axis_label(["bootstrap", "wilson"]), axis_label([None])
    ('95% interval: bootstrap', '95% intervals: bootstrap; W: Wilson', '95% interval: method not recorded')
"""
from __future__ import annotations

from typing import Any, Iterable

from antialiased.evaluation.bootstrap import INTERVAL_METHODS

__all__ = ["NOT_RECORDED", "interval_mark", "interval_legend", "axis_label", "methods_of"]

NOT_RECORDED = "method not recorded"
# The letter a table puts after an interval of each method; the bootstrap, the usual one, has none.
_MARKS = {"bootstrap": "", "wilson": " (W)", "none": "", None: " (?)"}
_SHORT = {"bootstrap": "bootstrap", "wilson": "W: Wilson", "none": "n/a: fewer than two units", None: NOT_RECORDED}


def interval_mark(method: str | None) -> str:
    """The mark after an interval made by ``method`` (None: the record does not say)."""
    return _MARKS.get(method, f" ({method})")


def methods_of(value: Any) -> list[str | None]:
    """The methods in a record's ``*_ci95_method`` entry (one, or a list for a curve), or ``[None]``."""
    if isinstance(value, list):
        return list(value) or [None]
    return [value]


def _present(methods: Iterable[str | None]) -> list[str | None]:
    order = [*INTERVAL_METHODS, None]
    found = set(methods)
    return [m for m in order if m in found] + sorted(m for m in found if m not in order)


def interval_legend(methods: Iterable[str | None]) -> str:
    """One line naming the methods of the intervals shown (as recorded), with their marks."""
    parts = []
    for method in _present(methods):
        if method == "bootstrap":
            parts.append(f"bootstrap = {INTERVAL_METHODS['bootstrap']}")
        elif method == "none":
            parts.append(f"no interval = {INTERVAL_METHODS['none']}")
        elif method is None:
            parts.append(f"(?) = {NOT_RECORDED} (a result file older than the record)")
        else:
            parts.append(f"{interval_mark(method).strip()} = {INTERVAL_METHODS.get(method, method)}")
    return "95% intervals: " + "; ".join(parts) + "." if parts else ""


def axis_label(methods: Iterable[str | None]) -> str:
    """A plot's short label for its intervals: ``95% interval: bootstrap``, or the methods present."""
    present = [m for m in _present(methods) if m != "none"] or ["none"]
    noun = "intervals" if len(present) > 1 else "interval"
    return f"95% {noun}: " + "; ".join(_SHORT.get(m, str(m)) for m in present)
