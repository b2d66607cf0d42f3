"""timm's models as ``timm/<name>`` and ``timm/<name>_lpf<N>``: the ``"timm"`` family (timm is optional).

``<name>`` is any of timm's model names, optionally with a pretrained tag (``timm/resnet50``,
``timm/resnet50.a1_in1k_lpf4``). The ``_lpf<N>`` names are timm's model converted by
:func:`~antialiased.models.antialias.antialias` (same keys, so timm's pretrained weights load
into them through :func:`~antialiased.models.transfer.load_baseline`); timm's transformers are
refused by ``antialias()`` when built. timm is imported only when a ``timm/`` name is used
(importing it takes seconds); without it, a
:class:`~antialiased.errors.MissingDependencyError` gives the pip command.

Pretrained weights that timm takes from a URL (torch hub's cache) are fetched first by
:func:`~antialiased.support.downloads.fetch_to_cache` (a timeout on stalled transfers, one atomic
rename, leftovers of killed downloads removed), where timm then finds them; those on the Hugging
Face hub are timm's to download (``HF_HUB_DOWNLOAD_TIMEOUT``, ``HF_HUB_OFFLINE``).
"""
from __future__ import annotations

import math
from functools import partial
from types import ModuleType

from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms._presets import ImageClassification

from antialiased.errors import DownloadError, MissingDependencyError, ModelError, WeightsError
from antialiased.models._torchvision import cached_file, hash_prefix
from antialiased.models.converted import convert
from antialiased.models.registry import ArchNames, Family, ModelSpec
from antialiased.models.weights import WeightsDownloadError
from antialiased.models.weights_info import WeightsInfo, timm_info
from antialiased.support.downloads import fetch_to_cache, hugging_face_hub_access

__all__ = ["TIMM", "TIMM_PREFIX", "TimmWeights", "has_pretrained", "import_timm"]

TIMM_PREFIX = "timm/"


def import_timm() -> ModuleType:
    """The ``timm`` module, or a :class:`MissingDependencyError` with the pip command."""
    try:
        import timm  # optional dependency: imported only for timm/ names
    except ImportError as err:
        raise MissingDependencyError(
            "timm/ model names need timm, an optional dependency: pip install timm "
            "(or pip install 'antialiased[timm]')") from err
    return timm


def _has_arch(arch: str) -> bool:
    timm = import_timm()
    base, dot, tag = arch.partition(".")
    if not timm.is_model(base):
        return False
    if dot and arch not in timm.list_pretrained(f"{base}.*"):
        tags = [name.partition(".")[2] for name in timm.list_pretrained(f"{base}.*")]
        raise ModelError(f"timm has no pretrained tag {tag!r} for {base!r}; its tags: {', '.join(tags) or 'none'} "
                         f"(e.g. {TIMM_PREFIX}{base}.{tags[0] if tags else '<tag>'}), or leave the tag out")
    return True


def _build(spec: ModelSpec, **kwargs) -> nn.Module:
    model = import_timm().create_model(spec.arch, pretrained=False, **kwargs)
    return convert(model, spec) if spec.antialiased else model


def _eval_transforms(cfg) -> partial:
    """timm's evaluation preprocessing as torchvision's ``ImageClassification`` (what the package reads)."""
    crop = int(cfg.input_size[-1])
    try:
        interpolation = InterpolationMode(cfg.interpolation)
    except ValueError:
        interpolation = InterpolationMode.BILINEAR
    return partial(ImageClassification, crop_size=crop, resize_size=math.floor(crop / (cfg.crop_pct or 0.875)),
                   mean=tuple(cfg.mean), std=tuple(cfg.std), interpolation=interpolation)


def _pretrained_cfg(arch: str):
    cfg = import_timm().models.get_pretrained_cfg(arch)
    return cfg if cfg is not None and (cfg.hf_hub_id or cfg.url or cfg.file) else None


def has_pretrained(arch: str) -> bool:
    """Whether timm has pretrained weights for ``arch`` (a timm name, optionally with a tag)."""
    return _pretrained_cfg(arch) is not None


def _resolve(spec: ModelSpec) -> WeightsInfo | None:
    if spec.antialiased:
        return None  # timm's weights are the baseline's: the converted model starts from them
    cfg = _pretrained_cfg(spec.arch)
    if cfg is None:
        base = spec.arch.partition(".")[0]
        raise WeightsError(f"timm has no pretrained weights for {spec.arch!r} (timm.list_pretrained('{base}*') "
                           f"lists what exists); train it, or pass a local file with weights=PATH (--weights PATH)")
    name = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else cfg.architecture
    return timm_info(name, cfg.num_classes, _eval_transforms(cfg))


def _offline_advice(arch: str, cache: str) -> str:
    return (f"Without network access, download the file elsewhere (a .safetensors file: save it as a .pth with "
            f"torch.save(safetensors.torch.load_file(F), '{arch}.pth')) and pass it as a local file: "
            f"weights='path/to/{arch}.pth' in create_model(), baseline_weights='path/to/{arch}.pth' in "
            f"init_from_baseline(), --weights PATH (or --baseline-weights PATH with --finetune) on the command line; "
            f"or {cache}")


def _download_error(spec: ModelSpec, err: OSError) -> WeightsDownloadError:
    return WeightsDownloadError(
        f"Could not download timm's pretrained weights for {spec.arch!r} ({err}). "
        f"{_offline_advice(spec.arch, 'put it in the Hugging Face cache and set HF_HUB_OFFLINE=1')}")


def _weights_url(spec: ModelSpec, kwargs: dict) -> str | None:
    """The URL timm reads ``spec``'s weights from through torch hub; None when they come from elsewhere.

    timm's order (``timm.models._builder._resolve_pretrained_source``): a state dict or file given in
    the config, else the Hugging Face hub, else the URL.
    """
    timm = import_timm()
    base, _, tag = spec.arch.partition(".")
    cfg = timm.models.resolve_pretrained_cfg(base, pretrained_cfg=kwargs.get("pretrained_cfg") or tag or None,
                                             pretrained_cfg_overlay=kwargs.get("pretrained_cfg_overlay"))
    if cfg.source in ("hf-hub", "local-dir") or cfg.state_dict or cfg.file or cfg.hf_hub_id:
        return None
    return cfg.url if isinstance(cfg.url, str) and cfg.url else None


def _prefetch(spec: ModelSpec, kwargs: dict, progress: bool) -> None:
    """Fetch the file timm would download with torch hub into the place it looks first (its cache)."""
    url = _weights_url(spec, kwargs)
    if url is None:
        return
    dest = cached_file(url, kwargs.get("cache_dir"))
    # timm checks the hash in the file name only when asked (timm.models.set_pretrained_check_hash)
    checked = getattr(getattr(import_timm().models, "_builder", None), "_CHECK_HASH", False)
    try:
        fetch_to_cache(url, dest, sha256_prefix=hash_prefix(dest.name) if checked else "", progress=progress,
                       what=f"timm's pretrained weights for {spec.arch!r}",
                       advice=_offline_advice(spec.arch, f"put it at {dest} (torch hub's cache)"))
    except DownloadError as err:
        raise WeightsDownloadError(str(err), err.url) from err


def _check_classes(spec: ModelSpec, info: WeightsInfo, kwargs: dict) -> None:
    classes = info.num_classes
    if classes and kwargs.get("num_classes", classes) != classes:
        raise WeightsError(
            f"timm's {spec.arch} weights have {classes} classes, not num_classes={kwargs['num_classes']}: leave "
            f"num_classes out, or start from them with init_from_baseline / --finetune on {classes} classes and "
            f"replace the classifier afterwards")


def _load(spec: ModelSpec, info: WeightsInfo, progress: bool, kwargs: dict) -> nn.Module:
    """timm's model with its pretrained weights (a URL's file fetched first; the Hugging Face hub's by timm)."""
    timm = import_timm()
    _check_classes(spec, info, kwargs)
    _prefetch(spec, kwargs, progress)
    try:
        with hugging_face_hub_access():  # offline: one probe, then the cache or a clear error (no minute of retries)
            return timm.create_model(spec.arch, pretrained=True, **kwargs)
    except OSError as err:  # URLError, Hugging Face's LocalEntryNotFoundError, ...: no network or no file
        raise _download_error(spec, err) from err


class TimmWeights:
    """The :class:`~antialiased.models.registry.WeightsSource` of timm's baselines: timm's pretrained
    weights (the default tag, or the name's); anti-aliased names start from their baseline's."""

    def resolve(self, spec: ModelSpec, force_nonfinetuned: bool = False) -> WeightsInfo | None:
        return _resolve(spec)

    def load(self, spec: ModelSpec, info: WeightsInfo, *, progress: bool = True, **kwargs) -> nn.Module:
        return _load(spec, info, progress, kwargs)


TIMM = Family(name="timm", prefix=TIMM_PREFIX, build=_build, weights=TimmWeights(),
              names=ArchNames(archs=lambda: import_timm().list_models(), contains=_has_arch, listed_by_default=False))
"""timm's models (``timm/`` names); listed by :func:`~antialiased.models.list_models` only for
patterns starting with ``timm/``."""
