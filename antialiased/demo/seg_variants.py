"""The segmentation demo's variants: a baseline U-Net, or that net converted by
:func:`~antialiased.models.antialias.antialias`.

A variant is a classification demo variant (:class:`~antialiased.demo.variants.Variant`: a method
and a filter size, ``METHOD[:N]``) and whether the upsamplings are converted too: ``blurpool:3``
converts the subsamplings and the upsamplings (a stride-1 blur after each), ``blurpool:3/down``
the subsamplings only (``antialias(..., upsample=False)``). Methods that support circular padding
(the APS methods) are built with ``circular=True``, whose point is exact equivariance to circular
shifts: every conv pads circularly and APS's polyphase upsampling zero-inserts on the phase its
subsampling kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from antialiased.demo.seg_nets import build_seg_net
from antialiased.demo.variants import BASELINE, Variant, convert_variant, parse_variant
from antialiased.errors import ConfigError

__all__ = ["DOWN_ONLY", "SegVariant", "parse_seg_variant", "build_seg_variant", "default_seg_variants"]

DOWN_ONLY = "/down"  # the suffix of a variant that leaves the upsamplings alone


@dataclass(frozen=True)
class SegVariant:
    """A way to build a segmentation demo net: a :class:`Variant` and whether its upsamplings are converted.

    Example:
        >>> [parse_seg_variant(s).label for s in ("baseline", "blurpool:3/down", "blurpool:3", "aps")]
        ['Baseline', 'Tri-3, down only', 'Tri-3, down + up', 'APS, circular, polyphase up']
        >>> [parse_seg_variant(s).model_name("unet") for s in ("baseline", "blurpool:3/down", "blurpool:3")]
        ['unet', 'unet_lpf3_down', 'unet_lpf3']
    """

    base: Variant = BASELINE
    upsample: bool = True

    @property
    def method(self) -> str | None:
        return self.base.method

    @property
    def filter_size(self) -> int:
        return self.base.filter_size

    @property
    def circular(self) -> bool:
        return self.base.circular

    @property
    def spec(self) -> str:
        return self.base.spec + ("" if self.upsample or self.method is None else DOWN_ONLY)

    @property
    def label(self) -> str:
        if self.method is None:
            return self.base.label
        circular = ", circular" if self.circular else ""
        if not self.upsample:
            return f"{self.base.label}{circular}, down only"
        up = "polyphase up" if self.method.startswith("aps") else "down + up"
        return f"{self.base.label}{circular}, {up}"

    def model_name(self, net: str) -> str:
        return self.base.model_name(net) + ("" if self.upsample or self.method is None else "_down")

    def call(self, net: str) -> str:
        """The Python call that builds it, for the output."""
        text = self.base.call(net)
        return text if self.upsample or self.method is None else text[:-1] + ", upsample=False)"


def parse_seg_variant(text: str) -> SegVariant:
    """``'baseline'``, ``'METHOD[:N]'`` (down + up) or ``'METHOD[:N]/down'`` (down only) -> :class:`SegVariant`.

    Example:
        >>> parse_seg_variant("blurpool:4/down")
        SegVariant(base=Variant(method='blurpool', filter_size=4), upsample=False)
        >>> parse_seg_variant("baseline/down")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        antialiased.errors.ConfigError: variant 'baseline/down': the baseline converts nothing, so '/down' ...
    """
    stripped = text.strip() if isinstance(text, str) else text
    down = isinstance(stripped, str) and stripped.endswith(DOWN_ONLY)
    base = parse_variant(stripped[:-len(DOWN_ONLY)] if down else stripped)
    if down and base.method is None:
        raise ConfigError(f"variant {text!r}: the baseline converts nothing, so {DOWN_ONLY!r} does not apply; "
                          f"write 'baseline'")
    return SegVariant(base, upsample=not down)


def default_seg_variants(filter_sizes: tuple[int, ...] | list[int]) -> list[SegVariant]:
    """The issue's comparison: baseline; blurpool down only and down + up at each filter size; APS circular.

    Example:
        >>> [v.spec for v in default_seg_variants([3])]
        ['baseline', 'blurpool:3/down', 'blurpool:3', 'aps']
    """
    pairs = [parse_seg_variant(f"blurpool:{n}{suffix}") for n in filter_sizes for suffix in (DOWN_ONLY, "")]
    return [SegVariant(), *pairs, parse_seg_variant("aps")]


def build_seg_variant(net: str, variant: SegVariant, *, num_classes: int, width: int,
                      input_size: tuple[int, int, int]) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``net`` and convert it as ``variant`` says; returns the model and how it was built.

    The record holds the call, whether it is circular and whether the upsamplings were converted,
    and for converted nets ``antialias_summary`` (every site changed and left alone). Raises
    :class:`ConfigError` when the method ignores the filter size asked for (``aps:3``).
    """
    model = build_seg_net(net, num_classes=num_classes, width=width)
    built: dict[str, Any] = {"call": variant.call(net), "circular": variant.circular, "upsample": variant.upsample}
    if variant.method is None:
        return model, built
    return convert_variant(model, variant.base, input_size=input_size, built=built, upsample=variant.upsample)
