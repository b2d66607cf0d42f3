"""The paper's 59 published ImageNet weight files: one typed record each, and their download.

One record per published file (:class:`PublishedWeights`, in the spirit of torchvision's
``Weights``) in :data:`PUBLISHED_WEIGHTS`; :func:`resolve_published` picks the file the paper's code
picks for an architecture and filter size; :func:`load_published` downloads it once into torch hub's
cache (:func:`~antialiased.support.downloads.fetch_to_cache`: progress bar, SHA-256 checked as it streams, one atomic rename, a
timeout on stalled transfers, leftovers of killed downloads removed). Local files are read by
:mod:`antialiased.support.checkpoints`; what a model was loaded with is recorded on the model as
``model.weights_info`` (:mod:`antialiased.models.weights_info`).

The files are fetched from :data:`DEFAULT_BASE_URL` unless the environment variable
``ANTIALIASED_WEIGHTS_URL`` names a mirror (any URL urllib opens, ``file:///dir/`` included)
holding the same file names. It is read at call time, so it can be set after import. A transfer that
sends no data for ``ANTIALIASED_DOWNLOAD_TIMEOUT`` seconds (default 60) gives up with a
:class:`~antialiased.errors.DownloadError` naming the alternatives.
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from torch import nn
from torchvision.models._meta import _IMAGENET_CATEGORIES
from torchvision.transforms._presets import ImageClassification

from antialiased.errors import DownloadError, WeightsDownloadError, WeightsError  # the error re-exported here
from antialiased.models.registry import format_model_name
from antialiased.support.checkpoints import extract_state_dict
from antialiased.support.downloads import (DEFAULT_DOWNLOAD_TIMEOUT, DOWNLOAD_TIMEOUT_ENV, download_timeout,
                                           fetch_to_cache)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_DOWNLOAD_TIMEOUT",
    "DOWNLOAD_TIMEOUT_ENV",
    "IMAGENET_CATEGORIES",
    "IMAGENET_EVAL_TRANSFORMS",
    "WEIGHTS_URL_ENV",
    "PAPER_BASELINE_METRICS",
    "PUBLISHED_WEIGHTS",
    "PublishedWeights",
    "WeightsDownloadError",
    "available_weights",
    "download_timeout",
    "fetch_to_cache",
    "format_weights_table",
    "get_published",
    "load_published",
    "resolve_published",
    "weights_base_url",
]

DEFAULT_BASE_URL = "https://antialiased-cnns.s3.us-east-2.amazonaws.com/weights_v0.1/"
WEIGHTS_URL_ENV = "ANTIALIASED_WEIGHTS_URL"
RECIPE_URL = "https://github.com/adobe/antialiased-cnns/blob/master/README_IMAGENET.md"
_DATA = "/PTH/TO/ILSVRC2012"

IMAGENET_CATEGORIES: tuple[str, ...] = tuple(_IMAGENET_CATEGORIES)
"""The 1000 ImageNet class names in the output order of every ImageNet model here."""

IMAGENET_EVAL_TRANSFORMS: Callable[..., nn.Module] = partial(ImageClassification, crop_size=224, resize_size=256)
"""Builds the paper's evaluation preprocessing: resize 256, center crop 224, ImageNet mean/std."""

# name -> first 8 hex digits of the file's SHA-256 (the suffix of the published file name).
_SHA256: dict[str, str] = {
    "alexnet_lpf2": "da8aca74",
    "alexnet_lpf3": "f9bbc410",
    "alexnet_lpf4": "0114fe25",
    "alexnet_lpf4_finetune": "20598a7a",
    "alexnet_lpf5": "4fa3706a",
    "densenet121_lpf2": "7da7d4cd",
    "densenet121_lpf3": "0f267ad8",
    "densenet121_lpf4": "edeaab00",
    "densenet121_lpf4_finetune": "eceaa619",
    "densenet121_lpf5": "ebc7880c",
    "densenet161_lpf4_finetune": "a5e0f328",
    "densenet169_lpf4_finetune": "992131e6",
    "densenet201_lpf4_finetune": "736979b2",
    "mobilenet_v2_lpf2": "f4379012",
    "mobilenet_v2_lpf3": "23b2e2ee",
    "mobilenet_v2_lpf4": "2e0b9cb9",
    "mobilenet_v2_lpf4_finetune": "7eed94b1",
    "mobilenet_v2_lpf5": "ab8fe968",
    "resnet101_lpf2": "3d00941d",
    "resnet101_lpf3": "928f1444",
    "resnet101_lpf4": "f8a116ff",
    "resnet101_lpf4_finetune": "9280acb0",
    "resnet101_lpf5": "1f3745af",
    "resnet152_lpf4_finetune": "7f67d9ae",
    "resnet18_lpf2": "6e2ee76f",
    "resnet18_lpf3": "449351b9",
    "resnet18_lpf4": "8c77af40",
    "resnet18_lpf4_finetune": "8cc58f59",
    "resnet18_lpf5": "c1eed0a1",
    "resnet34_lpf2": "4707aed9",
    "resnet34_lpf3": "16aa6c48",
    "resnet34_lpf4": "55747267",
    "resnet34_lpf4_finetune": "db622952",
    "resnet34_lpf5": "85283561",
    "resnet50_lpf2": "f0f7589d",
    "resnet50_lpf3": "a4e868d2",
    "resnet50_lpf4": "994b528f",
    "resnet50_lpf4_finetune": "cad66808",
    "resnet50_lpf5": "9953c9ad",
    "resnext101_32x8d_lpf4_finetune": "8f13a25d",
    "resnext50_32x4d_lpf4_finetune": "9106e549",
    "vgg11_bn_lpf4_finetune": "5d60b5e4",
    "vgg11_lpf4_finetune": "35eab449",
    "vgg13_bn_lpf4_finetune": "45e2a72f",
    "vgg13_lpf4_finetune": "d8ff02c4",
    "vgg16_bn_lpf2": "2c2052a8",
    "vgg16_bn_lpf3": "1782878a",
    "vgg16_bn_lpf4": "a1c3559b",
    "vgg16_bn_lpf4_finetune": "1dd798d1",
    "vgg16_bn_lpf5": "c500b52f",
    "vgg16_lpf2": "60268e0c",
    "vgg16_lpf3": "e9b0ce42",
    "vgg16_lpf4": "de9267ac",
    "vgg16_lpf4_finetune": "79c9dff7",
    "vgg16_lpf5": "1391f70c",
    "vgg19_bn_lpf4_finetune": "d0114293",
    "vgg19_lpf4_finetune": "7ab2cf45",
    "wide_resnet101_2_lpf4_finetune": "da4eae04",
    "wide_resnet50_2_lpf4_finetune": "02a183f7",
}

# ImageNet val top-1 (%) and shift consistency (%, -es protocol) from the paper's results tables:
# arch -> (baseline acc1, lpf4 fine-tuned acc1, baseline consistency, lpf4 fine-tuned consistency).
_FINETUNE_TABLE: dict[str, tuple[float, float, float, float]] = {
    "alexnet": (56.55, 56.94, 78.18, 83.31),
    "vgg11": (69.02, 70.51, 86.58, 90.09),
    "vgg13": (69.93, 71.52, 86.92, 90.31),
    "vgg16": (71.59, 72.96, 88.52, 90.91),
    "vgg19": (72.38, 73.54, 89.17, 91.08),
    "vgg11_bn": (70.38, 72.63, 87.16, 90.67),
    "vgg13_bn": (71.55, 73.61, 88.03, 91.09),
    "vgg16_bn": (73.36, 75.13, 89.24, 91.58),
    "vgg19_bn": (74.24, 75.68, 89.59, 91.60),
    "resnet18": (69.74, 71.67, 85.11, 88.36),
    "resnet34": (73.30, 74.60, 87.56, 89.77),
    "resnet50": (76.16, 77.41, 89.20, 91.32),
    "resnet101": (77.37, 78.38, 89.81, 91.97),
    "resnet152": (78.31, 79.07, 90.92, 92.42),
    "resnext50_32x4d": (77.62, 77.93, 90.17, 91.48),
    "resnext101_32x8d": (79.31, 79.33, 91.33, 92.67),
    "wide_resnet50_2": (78.47, 78.70, 90.77, 92.46),
    "wide_resnet101_2": (78.85, 78.99, 90.93, 92.10),
    "densenet121": (74.43, 75.79, 88.81, 90.35),
    "densenet169": (75.60, 76.73, 89.68, 90.61),
    "densenet201": (76.90, 77.31, 90.36, 91.32),
    "densenet161": (77.14, 77.88, 90.82, 91.66),
    "mobilenet_v2": (71.88, 72.72, 86.50, 87.73),
}

# Trained from scratch (README_IMAGENET.md per-filter tables: Rect-2, Tri-3, Tri-4, Bin-5):
# arch -> {filter_size: (acc1, consistency)}.
_SCRATCH_TABLE: dict[str, dict[int, tuple[float, float]]] = {
    "alexnet": {2: (57.24, 81.33), 3: (56.90, 82.15), 4: (56.72, 82.54), 5: (56.58, 82.51)},
    "vgg16": {2: (72.15, 89.24), 3: (72.20, 89.60), 4: (72.43, 89.92), 5: (72.33, 90.19)},
    "vgg16_bn": {2: (74.01, 90.72), 3: (73.91, 91.10), 4: (74.12, 91.22), 5: (74.05, 91.35)},
    "resnet18": {2: (71.39, 86.90), 3: (71.69, 87.51), 4: (71.48, 88.07), 5: (71.38, 88.25)},
    "resnet34": {2: (74.46, 89.14), 3: (74.33, 89.32), 4: (74.38, 89.53), 5: (74.20, 89.49)},
    "resnet50": {2: (76.81, 89.96), 3: (76.83, 90.91), 4: (77.23, 91.29), 5: (77.04, 91.31)},
    "resnet101": {2: (77.82, 91.04), 3: (78.13, 91.62), 4: (78.22, 91.85), 5: (77.92, 91.74)},
    "densenet121": {2: (75.04, 89.53), 3: (75.14, 89.78), 4: (75.29, 90.29), 5: (75.03, 90.39)},
    "mobilenet_v2": {2: (72.63, 87.33), 3: (72.59, 87.46), 4: (72.72, 87.72), 5: (72.50, 87.79)},
}

# Extra flags of the seed's from-scratch training commands (README_IMAGENET.md, section 2).
_SCRATCH_FLAGS: dict[str, str] = {
    "alexnet": "--gpu 0 --lr .01",
    "vgg16": "--lr .01 -b 128 -ba 2",
    "vgg16_bn": "--lr .05 -b 128 -ba 2",
    "mobilenet_v2": "--lr .05 --cos_lr --wd 4e-5 --ep 150",
}

PAPER_BASELINE_METRICS: Mapping[str, Mapping[str, float]] = MappingProxyType({
    arch: MappingProxyType({"acc1": row[0], "consistency": row[2]}) for arch, row in _FINETUNE_TABLE.items()
})
"""The paper's numbers for torchvision's baseline (non-anti-aliased) models: ``{arch: {"acc1", "consistency"}}``."""


def weights_base_url() -> str:
    """The base URL that published files are fetched from: ``$ANTIALIASED_WEIGHTS_URL`` or the paper's host.

    Example:
        >>> weights_base_url() == (os.environ.get("ANTIALIASED_WEIGHTS_URL") or DEFAULT_BASE_URL)
        True
    """
    return os.environ.get(WEIGHTS_URL_ENV) or DEFAULT_BASE_URL


@dataclass(frozen=True)
class PublishedWeights:
    """One published weight file of the paper and what goes with it.

    Attributes:
        name: registry key, e.g. ``resnet50_lpf4_finetune``.
        arch: architecture, e.g. ``resnet50``; the model to build is :attr:`model_name`.
        filter_size: size of the blur filter (2..5).
        finetuned: True if fine-tuned from torchvision's baseline weights, False if trained from scratch.
        file_name: ``<name>-<sha256>.pth``; the file holds ``{"state_dict": ...}``.
        sha256: the first 8 hex digits of the file's SHA-256, checked on download.
        metrics: the paper's ImageNet val ``acc1`` and shift ``consistency`` (%) for this file.
        recipe: how the file was trained (the seed's command); :attr:`recipe_url` has the details.
        categories: the 1000 ImageNet class names, in output order.
        transforms: builds the evaluation preprocessing (resize 256, center crop 224, ImageNet mean/std).

    Example:
        >>> w = PUBLISHED_WEIGHTS["resnet18_lpf3"]
        >>> w.model_name, w.finetuned, w.metrics["acc1"], w.categories[0]
        ('resnet18_lpf3', False, 71.69, 'tench')
        >>> w.transforms()
        ImageClassification(
            crop_size=[224]
            resize_size=[256]
            mean=[0.485, 0.456, 0.406]
            std=[0.229, 0.224, 0.225]
            interpolation=InterpolationMode.BILINEAR
        )
    """

    name: str
    arch: str
    filter_size: int
    finetuned: bool
    file_name: str
    sha256: str
    metrics: Mapping[str, float] = field(compare=False)
    recipe: str = field(compare=False, repr=False)
    recipe_url: str = field(default=RECIPE_URL, compare=False, repr=False)
    categories: tuple[str, ...] = field(default=IMAGENET_CATEGORIES, compare=False, repr=False)
    transforms: Callable[..., nn.Module] = field(default=IMAGENET_EVAL_TRANSFORMS, compare=False, repr=False)

    @property
    def url(self) -> str:
        """Download URL under the current base URL (``$ANTIALIASED_WEIGHTS_URL`` if set)."""
        return weights_base_url().rstrip("/") + "/" + self.file_name

    @property
    def model_name(self) -> str:
        """The :func:`create_model` name of the architecture these weights fit, e.g. ``resnet50_lpf4``."""
        return format_model_name(self.arch, self.filter_size)

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    @property
    def meta(self) -> dict[str, Any]:
        """torchvision-style metadata (``categories``, ``recipe``, ``_metrics``, ...)."""
        return {
            "categories": list(self.categories),
            "recipe": self.recipe_url,
            "_docs": self.recipe,
            "_metrics": {"ImageNet-1K": {"acc@1": self.metrics.get("acc1"),
                                         "consistency": self.metrics.get("consistency")}},
            "file_name": self.file_name,
            "sha256_prefix": self.sha256,
        }


FINETUNED_SUFFIX = "_finetune"  # a published file's name: its model's name, plus this for the fine-tuned one


def _parse_name(name: str) -> tuple[str, int, bool]:
    stem, finetuned = (name[: -len(FINETUNED_SUFFIX)], True) if name.endswith(FINETUNED_SUFFIX) else (name, False)
    arch, _, size = stem.rpartition("_lpf")
    return arch, int(size), finetuned


def _recipe(arch: str, filter_size: int, finetuned: bool) -> str:
    model = format_model_name(arch, filter_size)
    if not finetuned:
        flags = _SCRATCH_FLAGS.get(arch, "")
        return f"python main.py --data {_DATA} -a {model} --out-dir {model} {flags}".rstrip()
    if arch == "resnet50":
        return f"python main.py --data {_DATA} -a {model} --out-dir {model} --lr .01 -ep 60 --finetune"
    # The seed gives the exact fine-tuning command for ResNet-50 only; the others follow its rule.
    return (f"python main.py --data {_DATA} -a {model} --out-dir {model} -ep 60 --finetune "
            "(fine-tuned from torchvision's weights over the last 2/3 of training: "
            "lr 10x lower than from scratch, 60 epochs)")


def _metrics(arch: str, filter_size: int, finetuned: bool) -> Mapping[str, float]:
    if finetuned:
        row = _FINETUNE_TABLE[arch]
        acc1, consistency = row[1], row[3]
    else:
        acc1, consistency = _SCRATCH_TABLE[arch][filter_size]
    return MappingProxyType({"acc1": acc1, "consistency": consistency})


def _build_registry() -> dict[str, PublishedWeights]:
    registry = {}
    for name, sha in _SHA256.items():
        arch, size, finetuned = _parse_name(name)
        registry[name] = PublishedWeights(
            name=name, arch=arch, filter_size=size, finetuned=finetuned, file_name=f"{name}-{sha}.pth",
            sha256=sha, metrics=_metrics(arch, size, finetuned), recipe=_recipe(arch, size, finetuned))
    return registry


PUBLISHED_WEIGHTS: dict[str, PublishedWeights] = _build_registry()
"""All 59 published files, keyed by name (``<arch>_lpf<N>`` or ``<arch>_lpf4_finetune``)."""


def _published_archs() -> list[str]:
    return sorted({w.arch for w in PUBLISHED_WEIGHTS.values()})


def _check_arch(arch: str) -> None:
    archs = _published_archs()
    if arch not in archs:
        close = difflib.get_close_matches(arch, archs, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise WeightsError(f"No published weights for architecture {arch!r}.{hint} "
                         f"Architectures with published weights: {', '.join(archs)}.")


def _describe_available(arch: str) -> str:
    parts = [f"filter size {w.filter_size} ({'fine-tuned' if w.finetuned else 'from scratch'}, {w.name})"
             for w in available_weights(arch)]
    return "; ".join(parts)


def available_weights(arch: str | None = None, *, filter_size: int | None = None,
                      finetuned: bool | None = None) -> list[PublishedWeights]:
    """The published weight records, optionally filtered, sorted by name.

    Example:
        >>> [w.name for w in available_weights("resnet152")]
        ['resnet152_lpf4_finetune']
        >>> len(available_weights()), len(available_weights(finetuned=True))
        (59, 23)
        >>> [w.name for w in available_weights("resnet18", filter_size=4)]
        ['resnet18_lpf4', 'resnet18_lpf4_finetune']
    """
    if arch is not None:
        _check_arch(arch)
    return [w for _, w in sorted(PUBLISHED_WEIGHTS.items())
            if (arch is None or w.arch == arch)
            and (filter_size is None or w.filter_size == filter_size)
            and (finetuned is None or w.finetuned == finetuned)]


def format_weights_table(weights: Iterable[PublishedWeights] | None = None) -> str:
    """A plain-text table of published weights (all by default) for listings such as ``antialiased models``.

    Example:
        >>> print(format_weights_table(available_weights("resnet152")))
        weights                  model           training     acc1  consistency  file
        resnet152_lpf4_finetune  resnet152_lpf4  fine-tuned  79.07        92.42  resnet152_lpf4_finetune-7f67d9ae.pth
    """
    records = list(PUBLISHED_WEIGHTS.values() if weights is None else weights)
    rows = [("weights", "model", "training", "acc1", "consistency", "file")]
    rows += [(w.name, w.model_name, "fine-tuned" if w.finetuned else "scratch", f"{w.metrics['acc1']:.2f}",
              f"{w.metrics['consistency']:.2f}", w.file_name) for w in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {3, 4}  # numbers
    return "\n".join("  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                                for i, cell in enumerate(row)).rstrip() for row in rows)


def get_published(name: str) -> PublishedWeights:
    """The record of one published file by name, e.g. ``resnet50_lpf4_finetune``.

    Example:
        >>> get_published("resnet50_lpf4_finetune").file_name
        'resnet50_lpf4_finetune-cad66808.pth'
    """
    try:
        return PUBLISHED_WEIGHTS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(PUBLISHED_WEIGHTS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise WeightsError(f"Unknown published weights {name!r}.{hint} "
                         "See antialiased.models.weights.available_weights() for the 59 names.") from None


def resolve_published(arch: str, filter_size: int, force_nonfinetuned: bool = False) -> PublishedWeights:
    """The published file that the paper's code loads for ``<arch>_lpf<filter_size>`` with ``--pretrained``.

    Filter size 4 gets the weights fine-tuned from torchvision's baseline, other sizes (or
    ``force_nonfinetuned=True``) the weights trained from scratch.

    Raises:
        WeightsError: no such file; the message lists what ``arch`` does have.

    Example:
        >>> resolve_published("resnet50", 4).name
        'resnet50_lpf4_finetune'
        >>> resolve_published("resnet50", 4, force_nonfinetuned=True).name
        'resnet50_lpf4'
        >>> resolve_published("densenet121", 2).name
        'densenet121_lpf2'
    """
    _check_arch(arch)
    if filter_size is None or isinstance(filter_size, bool) or not isinstance(filter_size, int):
        raise WeightsError(f"filter_size must be an integer (the N of {arch}_lpfN), got {filter_size!r}; baseline "
                         f"models without blur use torchvision's weights.")
    finetuned = format_model_name(arch, 4) + FINETUNED_SUFFIX
    if filter_size == 4 and not force_nonfinetuned and finetuned in PUBLISHED_WEIGHTS:
        return PUBLISHED_WEIGHTS[finetuned]
    name = format_model_name(arch, filter_size)
    if name in PUBLISHED_WEIGHTS:
        return PUBLISHED_WEIGHTS[name]
    if filter_size == 4 and force_nonfinetuned:
        raise WeightsError(f"{arch} has no weights trained from scratch, only the fine-tuned {finetuned}: "
                         f"drop force_nonfinetuned (--force_nonfinetuned). Published for {arch}: "
                         f"{_describe_available(arch)}.")
    raise WeightsError(f"No published weights for {name} (filter size {filter_size}). Published for {arch}: "
                     f"{_describe_available(arch)}. Train your own or pass a local file with weights=PATH "
                     f"(--weights PATH).")


def _local_file_advice(w: PublishedWeights, cached: Path) -> str:
    return (f"  - use a mirror that holds the same file names: export {WEIGHTS_URL_ENV}=https://host/dir/ "
            f"(or file:///local/dir/)\n"
            f"  - download {w.file_name} elsewhere and put it at {cached} (torch hub's cache), or\n"
            f"  - load a local copy: create_model({w.model_name!r}, weights='/path/to/{w.file_name}') "
            f"in Python, --weights PATH on the command line")


def _published_advice(w: PublishedWeights, cached: Path) -> str:
    mirror = os.environ.get(WEIGHTS_URL_ENV)
    source = f"the mirror {WEIGHTS_URL_ENV}={mirror}; check that it holds the file" if mirror else "the paper's host"
    return f"The file {w.file_name} comes from {source}. Alternatives:\n" + _local_file_advice(w, cached)


def load_published(w: PublishedWeights | str, *, progress: bool = True, model_dir: str | os.PathLike | None = None,
                   timeout: float | None = None) -> dict[str, torch.Tensor]:
    """Download (once; then from torch hub's cache) and verify a published file; return its state dict.

    Args:
        w: a record of :data:`PUBLISHED_WEIGHTS` (or its name).
        progress: show a download progress bar on stderr.
        model_dir: cache folder; default ``$TORCH_HOME/hub/checkpoints`` (torch hub's).
        timeout: seconds without data after which the download gives up; default
            ``$ANTIALIASED_DOWNLOAD_TIMEOUT``, else 60 (:func:`download_timeout`).

    Raises:
        WeightsDownloadError: host unreachable, HTTP error (e.g. 404), a stalled transfer, a body cut
            short, SHA-256 mismatch, or an unreadable cached file. A failed or killed download never
            leaves the weights file behind (see :func:`fetch_to_cache`).
        OutputError: the cache folder cannot be written.
    """
    if isinstance(w, str):
        w = get_published(w)
    url = w.url
    cache_dir = Path(model_dir) if model_dir is not None else Path(torch.hub.get_dir()) / "checkpoints"
    cached = cache_dir / w.file_name
    try:
        fetch_to_cache(url, cached, sha256_prefix=w.sha256, timeout=timeout, progress=progress,
                       what=f"the published weights {w.name!r}", advice=_published_advice(w, cached))
    except DownloadError as exc:
        raise WeightsDownloadError(str(exc), exc.url) from exc
    try:
        obj = torch.load(cached, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file put there by hand, a disk error
        raise WeightsDownloadError(
            f"The cached weights file {cached} cannot be read ({type(exc).__name__}: {str(exc)[:200]}). "
            f"Delete it and run again to download it afresh from {url}.", url) from exc
    return extract_state_dict(obj, source=f"{w.name} ({cached})")
