"""A method's filter size and its own options, checked against its registration (one line per bad value).

``antialias(model, method=m, filter_size=N, **options)``: ``filter_size=None`` is the method's
default (``Method.default_filter_size``: 4 for blurpool, 3 for adaptive); a method without a
filter (``"filter_size"`` not in ``Method.options``: aps, lps, flc, asap, wavelet, tips) accepts
any size from 1 to 7 (an ``_lpf<N>`` name's N) and ignores it. ``options`` are the method's own
(``Method.method_options``), each checked by its :class:`~._types.MethodOption`; an option the
method does not have is refused with the ones it has.

Example:
    >>> from antialiased.models.antialias import METHODS
    >>> resolve_filter_size(METHODS["blurpool"], None), resolve_filter_size(METHODS["aps"], 6)
    (4, 6)
    >>> resolve_method_options(METHODS["blurpool"], {"groups": 4})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    antialiased.errors.ConfigError: method 'blurpool' has no option 'groups' (it has none); 'groups' is an option of ...
"""
from __future__ import annotations

from typing import Any, Mapping

from antialiased.errors import ConfigError
from antialiased.layers import MAX_FILTER_SIZE
from antialiased.models.antialias._types import Method

__all__ = ["has_filter", "resolve_filter_size", "resolve_method_options", "all_method_options"]


def has_filter(method: Method) -> bool:
    """Whether the method's layers read ``filter_size`` (its summary and name then show it)."""
    return "filter_size" in method.options


def _sizes_text(sizes: tuple[int, ...]) -> str:
    if list(sizes) == list(range(sizes[0], sizes[-1] + 1)):
        return f"an integer from {sizes[0]} to {sizes[-1]}"
    return f"one of {', '.join(map(str, sizes[:-1]))} or {sizes[-1]}"


def resolve_filter_size(method: Method, filter_size: object) -> int:
    """The filter size ``antialias()`` uses for ``method``: the given one (checked) or the method's default."""
    if filter_size is None:
        return method.default_filter_size
    sizes = method.filter_sizes if has_filter(method) else tuple(range(1, MAX_FILTER_SIZE + 1))
    if not isinstance(filter_size, int) or isinstance(filter_size, bool) or filter_size not in sizes:
        why = "" if has_filter(method) else f" (method {method.name!r} has no filter and ignores it)"
        raise ConfigError(f"filter_size must be {_sizes_text(sizes)} for method {method.name!r}{why}, got "
                          f"{filter_size!r}; leave it out for the method's default ({method.default_filter_size})")
    return filter_size


def all_method_options() -> dict[str, list[str]]:
    """Option name -> the methods that have it."""
    from antialiased.models.antialias._methods import METHODS

    found: dict[str, list[str]] = {}
    for method in METHODS.values():
        for option in method.method_options:
            found.setdefault(option.name, []).append(method.name)
    return found


def resolve_method_options(method: Method, given: Mapping[str, Any]) -> dict[str, Any]:
    """Every option of ``method`` (the given value, checked, else its default); unknown names are refused."""
    known = {option.name: option for option in method.method_options}
    unknown = [name for name in given if name not in known]
    if unknown:
        has = ", ".join(known) if known else "none"
        elsewhere = {name: methods for name, methods in all_method_options().items() if name in unknown}
        hint = "; ".join(f"{name!r} is an option of {', '.join(methods)}" for name, methods in elsewhere.items())
        others = hint or "options of other methods: " + (", ".join(sorted(all_method_options())) or "none")
        raise ConfigError(f"method {method.name!r} has no option {', '.join(map(repr, unknown))} (it has {has}); "
                          f"{others}")
    return {name: option.check(given[name]) if name in given else option.default for name, option in known.items()}
