"""``antialias(model)``: anti-alias any CNN's subsampling, in place (the engine and its method table).

The methods live in one table, :data:`METHODS` (``_methods``); the interface a method implements
(:class:`Site`, :class:`Rewrite`, :class:`Skip`, :class:`RewriteContext`, :class:`Method`) in
``_types``. See ``_methods`` for how to add one.
"""
from antialiased.models.antialias._engine import INSERTED, AntialiasWarning, antialias
from antialiased.models.antialias._methods import METHODS, check_method, register_method
from antialiased.models.antialias._field_methods import ADAPTIVE, ASAP, FLC, TIPS, WAVELET
from antialiased.models.antialias._lps_method import LPS, LPS_LPF
from antialiased.models.antialias._summary import AntialiasSummary, SiteChange, SiteLeftAlone
from antialiased.models.antialias._types import (
    SITE_KINDS,
    Method,
    MethodOption,
    PaperChoice,
    Rewrite,
    RewriteContext,
    Site,
    Skip,
)

for _method in (ADAPTIVE, LPS, LPS_LPF, FLC, ASAP, WAVELET, TIPS):  # issue 19's methods (docs/methods.md)
    register_method(_method)

__all__ = [
    "antialias",
    "AntialiasWarning",
    "INSERTED",
    "METHODS",
    "register_method",
    "check_method",
    "AntialiasSummary",
    "SiteChange",
    "SiteLeftAlone",
    "SITE_KINDS",
    "Method",
    "MethodOption",
    "PaperChoice",
    "Rewrite",
    "RewriteContext",
    "Site",
    "Skip",
]
