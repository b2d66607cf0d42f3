"""``--aa-method`` and ``--aa-option KEY=VALUE``: an ``_lpf<N>`` name's anti-aliasing method and its options.

Both flags come from the method table (``antialiased.models.antialias.METHODS``): the choices, the
help (which methods have a filter, each method's own options) and the checks, so a new method
appears here without an edit. Values are Python literals where they parse as one (``groups=4``,
``hidden_channels=0.125``, ``include_stem=True``, ``hidden_channels=None``), else strings
(``crop=authors``); the names and values are checked against ``antialias()``'s options and the
method's own (``get_model_spec``), one line naming the fix.

Example:
    >>> parse_aa_option("groups=4"), parse_aa_option("crop=authors"), parse_aa_option("hidden_channels=0.125")
    (('groups', 4), ('crop', 'authors'), ('hidden_channels', 0.125))
"""
from __future__ import annotations

import argparse
import ast
from typing import Any

from antialiased.models.antialias import METHODS
from antialiased.models.antialias._options import has_filter

__all__ = ["add_aa_flags", "parse_aa_option", "aa_options_from_args", "aa_method_help"]


def parse_aa_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> ``(key, value)``; the value a Python literal if it is one, else the string."""
    key, equals, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not equals or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. groups=4 or crop=authors), got {text!r}")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        value = raw.strip()
    return key, value


def aa_method_help() -> str:
    """The ``--aa-method`` help: the default, the methods without a filter, each method's own options."""
    filterless = sorted(name for name, m in METHODS.items() if not has_filter(m))
    own = "; ".join(f"{name}: {', '.join(o.name for o in m.method_options)}"
                    for name, m in sorted(METHODS.items()) if m.method_options)
    return (f"anti-aliasing method of an ARCH_lpfN name (default: blurpool, the paper's); the others convert the "
            f"baseline with antialias() (for the paper's 23 architectures too: torchvision's model, no published "
            f"weights). {', '.join(filterless)} have no filter: N is accepted and ignored. Each method's own "
            f"options (--aa-option): {own}. docs/methods.md describes each")


def add_aa_flags(group: Any) -> None:
    """Add ``--aa-method`` and ``--aa-option`` to a parser or argument group."""
    group.add_argument("--aa-method", "--aa_method", dest="aa_method", default=None, choices=sorted(METHODS),
                       help=aa_method_help())
    group.add_argument("--aa-option", "--aa_option", dest="aa_options", action="append", default=None,
                       type=parse_aa_option, metavar="KEY=VALUE",
                       help="an antialias() option of an ARCH_lpfN name, repeatable: pad_type=zero, "
                            "include_stem=True, circular=True (APS/LPS), or the method's own (groups=4 for "
                            "adaptive, hidden_channels=0.125 for lps, crop=authors for flc/asap, ...)")


def aa_options_from_args(args: argparse.Namespace) -> dict[str, Any] | None:
    """The ``--aa-option`` pairs as a dict (the last of a repeated key wins), or None when none was given."""
    pairs = getattr(args, "aa_options", None)
    return dict(pairs) if pairs else None
