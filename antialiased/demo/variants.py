"""The demo's variants: a baseline net, or that net converted by :func:`~antialiased.models.antialias.antialias`.

A variant is an anti-aliasing method and a filter size, written ``METHOD[:N]`` on the command
line (``blurpool:4``, ``blur-first:4``, ``aps``, ``aps-lpf:3``; ``baseline`` for none). ``N``
left out means 1, antialias's "no blur" (what ``aps`` is). Methods that support circular padding
(the APS methods) are built with ``circular=True``: their point is exact invariance to circular
shifts, which needs every layer to pad circularly. Every variant of a net starts from the same
baseline, built under the same seed: the conversion adds no parameters, so all variants of a run
start from the same weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from antialiased.demo.nets import build_net
from antialiased.errors import ConfigError
from antialiased.layers import BlurPool
from antialiased.layers.polyphase import AdaptivePolyphaseSampling
from antialiased.models.antialias import METHODS, antialias, check_method
from antialiased.reporting import variant_label

__all__ = ["BASELINE", "Variant", "parse_variant", "build_variant", "convert_variant"]

# row labels of the methods (blurpool rows use the paper's filter names: Rect-2, Tri-3, ...)
_METHOD_LABELS = {"blur-first": "Blur-first", "aps": "APS", "aps-lpf": "APS-LPF"}


@dataclass(frozen=True)
class Variant:
    """A way to build a demo net: ``method=None`` is the baseline; ``filter_size`` 1 means no blur.

    Example:
        >>> [parse_variant(s).label for s in ("baseline", "blurpool:3", "blur-first:4", "aps", "aps-lpf:3")]
        ['Baseline', 'Tri-3', 'Blur-first-4', 'APS', 'APS-LPF-3']
        >>> parse_variant("aps").circular, parse_variant("blurpool:4").model_name("smallresnet")
        (True, 'smallresnet_lpf4')
    """

    method: str | None = None
    filter_size: int = 1

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
        if self.method is None:
            return net
        if self.method == "blurpool":  # the registry's names of the paper's recipe
            return f"{net}_lpf{self.filter_size}"
        return f"{net}_{self.method}" + (str(self.filter_size) if self.filter_size > 1 else "")

    def call(self, net: str) -> str:
        """The Python call that builds it, for the output."""
        if self.method is None:
            return f"{net}()"
        circular = ", circular=True" if self.circular else ""
        return f"antialias({net}(), method={self.method!r}, filter_size={self.filter_size}{circular})"


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
    return Variant(method, int(size) if size else 1)


def _filter_sizes(model: nn.Module) -> set[int]:
    return {int(m.filt_size) for m in model.modules() if isinstance(m, (BlurPool, AdaptivePolyphaseSampling))}


def build_variant(net: str, variant: Variant, *, num_classes: int, width: int,
                  input_size: tuple[int, int, int]) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``net`` and convert it as ``variant`` says; returns the model and how it was built.

    The record holds the call, and for converted nets ``antialias_summary`` (every site changed
    and left alone). Raises :class:`ConfigError` when the method ignores the filter size asked for
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
    adds the summary to ``built``. Raises :class:`ConfigError` when the method ignores the filter size."""
    model = antialias(model, method=variant.method, filter_size=variant.filter_size, circular=variant.circular,
                      input_size=input_size, **options)
    if variant.filter_size > 1 and _filter_sizes(model) != {variant.filter_size}:
        raise ConfigError(f"variant {variant.spec!r}: method {variant.method!r} applies no blur filter, so the "
                          f"filter size {variant.filter_size} would be ignored; write {variant.method!r} alone "
                          f"(or a method with a blur, e.g. 'aps-lpf:{variant.filter_size}')")
    built["antialias_summary"] = model.antialias_summary.to_dict()
    built["summary_text"] = str(model.antialias_summary)
    return model, built
