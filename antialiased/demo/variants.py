"""The demo's variants: a baseline net, or that net converted by :func:`~antialiased.models.antialias.antialias`.

A variant is an anti-aliasing method and a filter size, written ``METHOD[:N]`` on the command
line (``blurpool:4``, ``blur-first:4``, ``aps``, ``aps-lpf:3``, ``adaptive:5``, ``lps``; ``baseline`` for
none), several at once separated by commas or spaces. ``N`` left out means 1, antialias's "no blur"
(what ``aps`` is), or the method's default where it has no such size (``adaptive``: 3); methods without
a filter (``aps``, ``lps``, ``flc``, ``asap``, ``wavelet``, ``tips``) take no ``N``. Methods that support
circular padding (the APS and LPS methods) are built with ``circular=True``: their point is exact
invariance to circular shifts, which needs every layer to pad circularly. Every variant of a net starts
from the same baseline, built under the same seed: the baseline's weights are the same in all variants of
a run (learned methods add only their own layers' parameters).

A variant's model name is the registry's (:func:`~antialiased.models.registry.format_model_name`:
``<net>_lpf<N>``), with ``@<method>`` for a method other than the paper's, as ``antialiased audit -a
NAME@METHOD`` writes it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from torch import nn

from antialiased.demo.nets import build_net
from antialiased.errors import ConfigError
from antialiased.models.antialias import METHODS, antialias, check_method
from antialiased.models.antialias._options import has_filter, resolve_filter_size
from antialiased.models.registry import DEFAULT_METHOD, format_model_name
from antialiased.reporting import variant_label

__all__ = ["BASELINE", "Variant", "parse_variant", "parse_variants", "build_variant", "convert_variant"]

# row labels of the methods (blurpool rows use the paper's filter names: Rect-2, Tri-3, ...)
_METHOD_LABELS = {"blur-first": "Blur-first", "aps": "APS", "aps-lpf": "APS-LPF", "adaptive": "Adaptive",
                  "lps": "LPS", "lps-lpf": "LPS-LPF", "flc": "FLC", "asap": "ASAP", "wavelet": "Wavelet",
                  "tips": "TIPS"}


@dataclass(frozen=True)
class Variant:
    """A way to build a demo net: ``method=None`` is the baseline; ``filter_size`` 1 means no blur.

    Example:
        >>> [parse_variant(s).label for s in ("baseline", "blurpool:3", "blur-first:4", "aps", "aps-lpf:3")]
        ['Baseline', 'Tri-3', 'Blur-first-4', 'APS', 'APS-LPF-3']
        >>> [parse_variant(s).label for s in ("adaptive", "lps", "lps-lpf:3", "flc", "asap", "wavelet", "tips")]
        ['Adaptive-3', 'LPS', 'LPS-LPF-3', 'FLC', 'ASAP', 'Wavelet', 'TIPS']
        >>> parse_variant("aps").circular, [parse_variant(s).model_name("net") for s in ("blurpool:4", "lps")]
        (True, ['net_lpf4', 'net_lpf1@lps'])
    """

    method: str | None = None
    filter_size: int = 1

    def __post_init__(self) -> None:
        if self.method is None:
            return
        check_method(self.method)
        if has_filter(METHODS[self.method]):
            try:
                resolve_filter_size(METHODS[self.method], self.filter_size)
            except ConfigError as err:
                raise ConfigError(f"variant {self.spec!r}: {err}") from None
        elif self.filter_size != 1:
            raise ConfigError(f"variant {self.spec!r}: method {self.method!r} applies no blur filter, so the filter "
                              f"size {self.filter_size} would be ignored; write {self.method!r} alone (or a method "
                              f"with a blur, e.g. 'aps-lpf:{self.filter_size}')")

    @property
    def circular(self) -> bool:
        """Whether it is built with ``circular=True`` (the methods that support it)."""
        return self.method is not None and METHODS[self.method].supports_circular

    @property
    def spec(self) -> str:
        if self.method is None:
            return "baseline"
        return self.method + (f":{self.filter_size}" if self.filter_size > 1 else "")

    @property
    def label(self) -> str:
        if self.method is None:
            return "Baseline"
        if self.method == "blurpool":
            return variant_label(self.filter_size)
        name = _METHOD_LABELS.get(self.method, self.method)
        return name + (f"-{self.filter_size}" if self.filter_size > 1 else "")

    def model_name(self, net: str) -> str:
        """The registry's name (``<net>_lpf<N>``), with ``@<method>`` for a method other than the paper's."""
        if self.method is None:
            return format_model_name(net)
        name = format_model_name(net, self.filter_size)
        return name if self.method == DEFAULT_METHOD else f"{name}@{self.method}"

    def call(self, net: str) -> str:
        """The Python call that builds it, for the output (the filter size where the method has one)."""
        if self.method is None:
            return f"{net}()"
        size = f", filter_size={self.filter_size}" if has_filter(METHODS[self.method]) else ""
        circular = ", circular=True" if self.circular else ""
        return f"antialias({net}(), method={self.method!r}{size}{circular})"


BASELINE = Variant()


def parse_variant(text: str) -> Variant:
    """``'baseline'`` or ``'METHOD[:N]'`` -> :class:`Variant` (clear errors for unknown methods and sizes).

    Example:
        >>> parse_variant("aps-lpf:3")
        Variant(method='aps-lpf', filter_size=3)
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"a variant is 'baseline' or METHOD[:N] such as 'blurpool:4' or 'aps', got {text!r}")
    if text.strip() == "baseline":
        return BASELINE
    method, _, size = text.strip().partition(":")
    try:
        check_method(method)
    except ConfigError as err:
        raise ConfigError(f"variant {text!r}: {err}") from None
    if size and not (size.isdigit() and 1 <= int(size) <= 7):
        raise ConfigError(f"variant {text!r}: the filter size after ':' must be an integer from 1 to 7, "
                          f"e.g. '{method}:4'")
    sizes = METHODS[method].filter_sizes
    return Variant(method, int(size) if size else 1 if 1 in sizes else METHODS[method].default_filter_size)


def parse_variants(texts: Iterable[str]) -> list[Variant]:
    """Variants written one per item or several in one, separated by commas (``--methods adaptive,lps``).

    Example:
        >>> [v.spec for v in parse_variants(["adaptive,lps", "aps-lpf:3"])]
        ['adaptive:3', 'lps', 'aps-lpf:3']
    """
    return [parse_variant(part) for text in texts for part in str(text).split(",") if part.strip()]


def build_variant(net: str, variant: Variant, *, num_classes: int, width: int,
                  input_size: tuple[int, int, int]) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``net`` and convert it as ``variant`` says; returns the model and how it was built.

    The record holds the call, and for converted nets ``antialias_summary`` (every site changed
    and left alone). A filter size the method cannot take was refused when ``variant`` was made
    (``aps:3``: APS has no blur; ``aps-lpf:3`` has).
    """
    model = build_net(net, num_classes=num_classes, width=width)
    built: dict[str, Any] = {"call": variant.call(net), "circular": variant.circular}
    if variant.method is None:
        return model, built
    return convert_variant(model, variant, input_size=input_size, built=built)


def convert_variant(model: nn.Module, variant: Variant, *, input_size: tuple[int, int, int], built: dict[str, Any],
                    **options: Any) -> tuple[nn.Module, dict[str, Any]]:
    """``antialias(model, ...)`` as ``variant`` says (``options``: further arguments, e.g. ``upsample=False``);
    adds the summary to ``built``."""
    model = antialias(model, method=variant.method, filter_size=variant.filter_size, circular=variant.circular,
                      input_size=input_size, **options)
    built["antialias_summary"] = model.antialias_summary.to_dict()
    built["summary_text"] = str(model.antialias_summary)
    return model, built
