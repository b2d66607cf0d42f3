"""``antialiased models``: list the model names and which have pretrained ImageNet weights."""
from __future__ import annotations

import argparse
from typing import Sequence

from antialiased.models import get_model_spec, list_models
from antialiased.models.weights import PUBLISHED_WEIGHTS

__all__ = ["get_args_parser", "model_rows", "main"]


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="antialiased models",
        description="List model names for create_model() / -a ARCH: '<arch>' is the torchvision baseline, "
        "'<arch>_lpf<N>' the anti-aliased model with an N-tap blur filter.",
    )
    parser.add_argument("patterns", nargs="*", metavar="PATTERN",
                        help="only names matching these fnmatch patterns, e.g. 'resnet*_lpf4'")
    parser.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                        help="leave out names matching PATTERN (repeatable)")
    parser.add_argument("--pretrained", action="store_true",
                        help="only names with pretrained ImageNet weights (create_model(name, pretrained=True))")
    return parser


def _published_by_model() -> dict[str, list[str]]:
    by_model: dict[str, list[str]] = {}
    for w in sorted(PUBLISHED_WEIGHTS.values(), key=lambda w: w.name):
        by_model.setdefault(w.model_name, []).append(w.name)
    return by_model


def model_rows(patterns: Sequence[str] = (), exclude: Sequence[str] = (), pretrained: bool = False) -> list[tuple[str, str]]:
    """``(name, weights)`` rows: weights are 'torchvision' for baselines, the published file names
    for anti-aliased models that have them ('' where none exist)."""
    published = _published_by_model()
    rows = []
    for name in list_models(include=list(patterns) or None, exclude=list(exclude)):
        spec = get_model_spec(name)
        weights = "torchvision" if not spec.antialiased else ", ".join(published.get(name, []))
        if pretrained and not weights:
            continue
        rows.append((name, weights))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    rows = model_rows(args.patterns, args.exclude, args.pretrained)
    if not rows:
        print("no model names match; run 'antialiased models' for the full list")
        return 1
    width = max(len(name) for name, _ in rows)
    print(f"{'model':<{width}}  pretrained weights")
    for name, weights in rows:
        print(f"{name:<{width}}  {weights or '-'}".rstrip())
    return 0
