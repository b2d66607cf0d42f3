"""torchvision's pretrained baselines: which weights ``pretrained=True`` means, and their download.

The file is fetched into torch hub's cache by :func:`~antialiased.support.downloads.fetch_to_cache`
(a timeout on stalled transfers, SHA-256 checked as it streams, one atomic rename, leftovers of
killed downloads removed) before torchvision builds the model; torchvision then finds it there and
downloads nothing (torch hub's own download has no timeout and leaves ``.partial`` files behind).
"""
from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models import WeightsEnum

from antialiased.errors import DownloadError, ModelError, WeightsError
from antialiased.models.weights import WeightsDownloadError
from antialiased.support.downloads import fetch_to_cache

__all__ = ["PAPER_BASELINE_WEIGHTS", "baseline_weights", "build_pretrained", "cached_file", "fetch_baseline",
           "hash_prefix", "weights_description"]

PAPER_BASELINE_WEIGHTS = "IMAGENET1K_V1"
"""torchvision's weights for a baseline with ``pretrained=True``: what torchvision's legacy
``pretrained=True`` loads, i.e. the baselines the paper reports and fine-tuned from (torchvision's
``DEFAULT`` is a newer recipe for some architectures, e.g. ResNet-50 ``IMAGENET1K_V2``)."""


def baseline_weights(arch: str) -> WeightsEnum:
    """The torchvision weights of the baseline ``arch`` that ``pretrained=True`` loads.

    Example:
        >>> baseline_weights("resnet50")
        ResNet50_Weights.IMAGENET1K_V1
    """
    try:
        enum = torchvision.models.get_model_weights(arch)
    except ValueError:
        raise ModelError(f"torchvision has no pretrained weights for {arch!r}; pass a local file with "
                         f"weights=PATH (--weights PATH) or train it") from None
    return enum[PAPER_BASELINE_WEIGHTS] if PAPER_BASELINE_WEIGHTS in enum.__members__ else enum.DEFAULT


def cached_file(url: str, model_dir: str | os.PathLike | None = None) -> Path:
    """Where torch hub keeps the file of ``url``: ``model_dir`` (default ``$TORCH_HOME/hub/checkpoints``) / its name.

    Example:
        >>> cached_file("https://download.pytorch.org/models/resnet18-f37072fd.pth", "/cache").as_posix()
        '/cache/resnet18-f37072fd.pth'
    """
    folder = Path(model_dir) if model_dir is not None else Path(torch.hub.get_dir()) / "checkpoints"
    return folder / os.path.basename(urllib.parse.urlparse(url).path)


def hash_prefix(file_name: str) -> str:
    """The SHA-256 prefix torch hub reads from a file name (``name-<hex>.ext``); '' when there is none.

    Example:
        >>> hash_prefix("resnet18-f37072fd.pth"), hash_prefix("weights.pth")
        ('f37072fd', '')
    """
    match = torch.hub.HASH_REGEX.search(file_name)
    return match.group(1) if match else ""


def weights_description(arch: str, weights: WeightsEnum) -> str:
    """The weights as messages name them, from their own meta: the dataset torchvision scores them on.

    Example:
        >>> from torchvision.models import ResNet18_Weights
        >>> from torchvision.models.segmentation import FCN_ResNet50_Weights
        >>> weights_description("resnet18", ResNet18_Weights.IMAGENET1K_V1)
        "torchvision's ImageNet-1K weights IMAGENET1K_V1 for 'resnet18'"
        >>> weights_description("fcn_resnet50", FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1)
        "torchvision's COCO-val2017-VOC-labels weights COCO_WITH_VOC_LABELS_V1 for 'fcn_resnet50'"
    """
    datasets = ", ".join(weights.meta.get("_metrics") or ())
    return f"torchvision's {datasets + ' ' if datasets else ''}weights {weights.name} for {arch!r}"


def fetch_baseline(arch: str, weights: WeightsEnum, *, progress: bool = True, timeout: float | None = None) -> Path:
    """Download torchvision's ``weights`` for ``arch`` into torch hub's cache (once); the cached file.

    The hash in the file name is checked as torchvision's own loader checks it (``check_hash=True``).

    Raises:
        WeightsDownloadError: no network, HTTP error, a stalled transfer (``timeout`` /
            ``$ANTIALIASED_DOWNLOAD_TIMEOUT``), a body cut short or a wrong checksum; nothing is left
            in the cache, and the message says how to use a local file instead.
        OutputError: the cache folder cannot be written.
    """
    dest = cached_file(weights.url)
    try:
        return fetch_to_cache(weights.url, dest, sha256_prefix=hash_prefix(dest.name), timeout=timeout,
                              progress=progress, what=weights_description(arch, weights),
                              advice=_offline_advice(arch, dest))
    except DownloadError as err:
        raise WeightsDownloadError(str(err), err.url) from err


def build_pretrained(arch: str, weights: WeightsEnum, *, progress: bool = True, **kwargs) -> nn.Module:
    """torchvision's ``arch`` with ``weights`` (downloaded once into torch hub's cache by :func:`fetch_baseline`).

    Raises:
        WeightsError: ``num_classes`` other than the weights' classes.
        WeightsDownloadError: no network, the host failed, a stalled or corrupt transfer; the message says how to
            use a local file.
    """
    classes = len(weights.meta.get("categories") or ())
    if classes and kwargs.get("num_classes", classes) != classes:
        raise WeightsError(
            f"torchvision's {arch} weights {weights.name} have {classes} classes, not num_classes="
            f"{kwargs['num_classes']}: leave num_classes out, or load them with {classes} classes and replace the "
            f"classifier afterwards (or start from them with init_from_baseline / --finetune on {classes} classes)")
    fetch_baseline(arch, weights, progress=progress)
    return torchvision.models.get_model(arch, weights=weights, progress=progress, **kwargs)


def _offline_advice(arch: str, cached: Path) -> str:
    return (f"Without network access, download the file elsewhere and pass it as a local file: weights='path/to/"
            f"{arch}.pth' in create_model(), baseline_weights='path/to/{arch}.pth' in init_from_baseline(), --weights "
            f"PATH (or --baseline-weights PATH with --finetune) on the command line; or put it at {cached} (torch "
            f"hub's cache)")
