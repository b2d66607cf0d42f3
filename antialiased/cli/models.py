"""``antialiased models``: list the model names and which pretrained ImageNet weights they start from."""
from __future__ import annotations

import argparse
from typing import Sequence

from antialiased.cli._parser import ArgumentParser
from antialiased.errors import AntialiasedError
from antialiased.models import ModelSpec, get_family, get_model_spec, list_models
from antialiased.models.weights import PUBLISHED_WEIGHTS

__all__ = ["get_args_parser", "model_rows", "main"]


def get_args_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="antialiased models",
        description="List model names for create_model() / -a ARCH: '<arch>' is the baseline, '<arch>_lpf<N>' "
        "the anti-aliased model with an N-tap blur filter: the baseline converted by antialias() (--aa-method picks "
        "the method). The paper's 23 architectures have its published weights; every other torchvision classifier, "
        "and timm's models as 'timm/<name>' and 'timm/<name>_lpf<N>', start from their baseline's. "
        "Weights column: published file names, 'torchvision' or 'timm' (the baseline's own), "
        "'baseline:torchvision' or 'baseline:timm' (the baseline's weights in the converted model, to fine-tune).",
    )
    parser.add_argument("patterns", nargs="*", metavar="PATTERN",
                        help="only names matching these fnmatch patterns, e.g. 'resnet*_lpf4'; timm's ~1400 "
                             "architectures are listed only for patterns starting with 'timm/', e.g. 'timm/resnet*'")
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


def _weights_text(spec: ModelSpec, published: dict[str, list[str]]) -> str:
    """What ``create_model(name, pretrained=True)`` loads, in a few words ('' where nothing), as the family says."""
    source = get_family(spec.family).weights
    try:
        info = None if source is None else source.resolve(spec)
        if info is None and spec.antialiased and source is not None:  # it starts from its baseline's
            base = source.resolve(spec.baseline())
            return "" if base is None else f"baseline:{base.kind}"
    except AntialiasedError:  # no such file, no pretrained tag: nothing to download
        return ""
    if info is None:
        return ""
    return ", ".join(published.get(spec.name, [])) if info.kind == "published" else info.kind


def model_rows(patterns: Sequence[str] = (), exclude: Sequence[str] = (), pretrained: bool = False) -> list[tuple[str, str]]:
    """``(name, weights)`` rows: weights are 'torchvision' / 'timm' for baselines, the published file names
    for the paper's anti-aliased models that have them, 'baseline:<source>' for converted models ('' where
    none exist)."""
    published = _published_by_model()
    rows = []
    for name in list_models(include=list(patterns) or None, exclude=list(exclude)):
        weights = _weights_text(get_model_spec(name), published)
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
