"""segmentation_models_pytorch's models as ``smp/<Arch>-<encoder>``: the ``"smp"`` family (an optional extra).

A name is smp's architecture class and its encoder, split at the first ``-``: ``smp/Unet-resnet34``
is ``smp.Unet(encoder_name="resnet34")``, ``smp/DeepLabV3Plus-resnet50``, ``smp/Unet-tu-resnet18``
(a timm encoder: smp's ``tu-`` names), ``smp/FPN-timm-efficientnet-b0``. ``_lpf<N>`` is the model
converted by :func:`~antialiased.models.antialias.antialias` (downsampling in the encoder,
upsampling in the decoder), ``aa_method=`` choosing the method. Builder keywords are smp's
(``decoder_channels=...``); ``num_classes`` is smp's ``classes`` (default: smp's own, 1).

``pretrained=True`` (``--pretrained``) is what smp's ``encoder_weights="imagenet"`` loads: the
encoder's ImageNet weights from smp's hub repository, pinned to smp's revision; the decoder and head
start random. The file is fetched by :func:`~antialiased.support.downloads.fetch_to_cache` into
torch hub's cache (``$TORCH_HOME/hub/checkpoints/smp``) from ``$HF_ENDPOINT`` (default
``https://huggingface.co``, the Hugging Face hub's own variable) and loaded strictly into
``model.encoder``; a failed download names the local-file alternatives. Encoders from timm (``tu-``)
take timm's pretrained weights through smp and timm. smp is imported only for ``smp/`` names;
without it, a :class:`~antialiased.errors.MissingDependencyError` gives the pip command.
"""
from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from antialiased.errors import DownloadError, MissingDependencyError, ModelError, WeightsDownloadError, WeightsError
from antialiased.models._timm import has_pretrained as timm_has_pretrained
from antialiased.models.converted import convert
from antialiased.models.registry import ArchNames, Family, ModelSpec
from antialiased.models.weights_info import WeightsInfo
from antialiased.support.downloads import fetch_to_cache

__all__ = ["SMP", "SMP_PREFIX", "SMP_INSTALL", "SmpWeights", "import_smp", "smp_parts"]

SMP_PREFIX = "smp/"
SMP_INSTALL = "pip install 'antialiased[segmentation]'"
HF_ENDPOINT_ENV = "HF_ENDPOINT"
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
_TIMM_ENCODER = "tu-"


def import_smp() -> ModuleType:
    """The ``segmentation_models_pytorch`` module, or a :class:`MissingDependencyError` with the pip command."""
    try:
        import segmentation_models_pytorch as smp  # optional dependency: imported only for smp/ names
    except ImportError as err:
        raise MissingDependencyError(
            f"smp/ model names need segmentation_models_pytorch, an optional dependency: {SMP_INSTALL} "
            f"(or pip install segmentation-models-pytorch)") from err
    return smp


def smp_parts(arch: str) -> tuple[str, str]:
    """``(architecture, encoder)`` of an smp family architecture: split at the first ``-``.

    Example:
        >>> smp_parts("Unet-resnet34"), smp_parts("FPN-timm-efficientnet-b0")
        (('Unet', 'resnet34'), ('FPN', 'timm-efficientnet-b0'))
    """
    architecture, _, encoder = arch.partition("-")
    return architecture, encoder


def _classes(smp: ModuleType) -> dict[str, type]:
    """smp's architectures by class name (``Unet``, ``DeepLabV3Plus``, ...)."""
    return {cls.__name__: cls for cls in smp.MODEL_ARCHITECTURES_MAPPING.values()}


def _has_encoder(smp: ModuleType, encoder: str) -> bool:
    if encoder in smp.encoders.encoders:
        return True
    if encoder.startswith(_TIMM_ENCODER) and len(encoder) > len(_TIMM_ENCODER):
        import timm  # a dependency of smp

        return bool(timm.is_model(encoder[len(_TIMM_ENCODER):]))
    return False


def _has_arch(arch: str) -> bool:
    smp = import_smp()
    architecture, encoder = smp_parts(arch)
    return architecture in _classes(smp) and _has_encoder(smp, encoder)


def _archs() -> list[str]:
    """Every architecture with every smp encoder (timm's ``tu-`` encoders are names too, not listed)."""
    smp = import_smp()
    return [f"{architecture}-{encoder}" for architecture in _classes(smp) for encoder in smp.encoders.get_encoder_names()]


def _smp_kwargs(spec: ModelSpec, kwargs: dict[str, Any]) -> dict[str, Any]:
    if kwargs.get("encoder_weights") is not None:
        raise ModelError(f"{spec.name!r}: its encoder's ImageNet weights are loaded with pretrained=True "
                         f"(--pretrained); leave encoder_weights out")
    kwargs = {key: value for key, value in kwargs.items() if key != "encoder_weights"}
    if "num_classes" in kwargs:
        if "classes" in kwargs:
            raise ModelError(f"{spec.name!r}: give num_classes or smp's classes, not both")
        kwargs["classes"] = kwargs.pop("num_classes")
    return kwargs


def _create(spec: ModelSpec, encoder_weights: Any, kwargs: dict[str, Any]) -> nn.Module:
    smp = import_smp()
    architecture, encoder = smp_parts(spec.arch)
    try:
        return _classes(smp)[architecture](encoder_name=encoder, encoder_weights=encoder_weights,
                                           **_smp_kwargs(spec, kwargs))
    except (KeyError, ValueError, TypeError, AttributeError, NotImplementedError) as err:
        raise ModelError(f"segmentation_models_pytorch cannot build {spec.baseline().name!r} "
                         f"({type(err).__name__}: {err}); pick another encoder or architecture") from err


def _build(spec: ModelSpec, **kwargs: Any) -> nn.Module:
    model = _create(spec, None, kwargs)
    return convert(model, spec) if spec.antialiased else model


# --------------------------------------------------------------------------- pretrained encoders


def _imagenet_settings(spec: ModelSpec) -> dict[str, str]:
    """smp's ``imagenet`` entry (``repo_id``, ``revision``) for ``spec``'s encoder."""
    smp = import_smp()
    encoder = smp_parts(spec.arch)[1]
    settings = smp.encoders.encoders[encoder]["pretrained_settings"]
    if "imagenet" not in settings:
        raise WeightsError(f"smp has no ImageNet weights for the encoder {encoder!r} (its weights: "
                           f"{', '.join(settings) or 'none'}); train {spec.name!r} from scratch, or pass a local "
                           f"file with weights=PATH (--weights PATH)")
    return dict(settings["imagenet"])


def _resolve(spec: ModelSpec) -> WeightsInfo | None:
    if spec.antialiased:
        return None  # the encoder's weights are the baseline's: the converted model starts from them
    encoder = smp_parts(spec.arch)[1]
    if encoder.startswith(_TIMM_ENCODER):
        name = encoder[len(_TIMM_ENCODER):]
        if not timm_has_pretrained(name):
            raise WeightsError(f"timm has no pretrained weights for the encoder {name!r}; train {spec.name!r} from "
                               f"scratch, or pass a local file with weights=PATH (--weights PATH)")
        return WeightsInfo("smp", f"smp:timm:{name}")
    return WeightsInfo("smp", f"smp:{_imagenet_settings(spec)['repo_id']}")


def encoder_weights_url(repo_id: str, revision: str) -> str:
    """Where smp's hub file of an encoder is: ``$HF_ENDPOINT/<repo>/resolve/<revision>/model.safetensors``.

    Example:
        >>> encoder_weights_url("smp-hub/resnet18.imagenet", "abc").split("/", 3)[3]
        'smp-hub/resnet18.imagenet/resolve/abc/model.safetensors'
    """
    endpoint = (os.environ.get(HF_ENDPOINT_ENV) or DEFAULT_HF_ENDPOINT).rstrip("/")
    return f"{endpoint}/{repo_id}/resolve/{revision}/model.safetensors"


def _cached_encoder_file(repo_id: str, revision: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / "smp" / f"{repo_id.replace('/', '--')}-{revision[:12]}.safetensors"


def _offline_advice(spec: ModelSpec, dest: Path) -> str:
    base = spec.baseline().name
    return (f"Without network access, build the model elsewhere with create_model({base!r}, pretrained=True), save "
            f"its state_dict() and pass that file: weights='path/to/model.pth' in create_model(), --weights PATH on "
            f"the command line (--finetune --baseline-weights PATH for an _lpf name); or put the encoder's "
            f"model.safetensors at {dest}; or set {HF_ENDPOINT_ENV} to a mirror of the Hugging Face hub")


def _fetch_encoder(spec: ModelSpec, progress: bool) -> dict[str, torch.Tensor]:
    settings = _imagenet_settings(spec)
    repo_id, revision = settings["repo_id"], settings["revision"]
    dest = _cached_encoder_file(repo_id, revision)
    try:
        path = fetch_to_cache(encoder_weights_url(repo_id, revision), dest, progress=progress,
                              what=f"smp's ImageNet weights of the encoder {smp_parts(spec.arch)[1]!r} ({repo_id})",
                              advice=_offline_advice(spec, dest))
    except DownloadError as err:
        raise WeightsDownloadError(str(err), err.url) from err
    from safetensors.torch import load_file  # a dependency of smp (and of timm)

    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # noqa: BLE001 - safetensors' SafetensorError derives from Exception only
        raise WeightsError(f"{path} is not a readable safetensors file ({err}); delete it to download it again") from err


def _load(spec: ModelSpec, info: WeightsInfo, progress: bool, kwargs: dict[str, Any]) -> nn.Module:
    """The baseline with its encoder's pretrained weights (the decoder and head start random)."""
    if kwargs.get("in_channels", 3) != 3:
        raise WeightsError(f"{spec.name!r}: the encoder's ImageNet weights take 3 input channels; leave in_channels "
                           f"out with pretrained=True, or train from scratch")
    if smp_parts(spec.arch)[1].startswith(_TIMM_ENCODER):
        try:
            return _create(spec, True, dict(kwargs))  # timm downloads the encoder's weights itself
        except OSError as err:
            raise WeightsDownloadError(f"Could not download timm's pretrained weights for the encoder of "
                                       f"{spec.name!r} ({err}). {_offline_advice(spec, Path(torch.hub.get_dir()))}"
                                       ) from err
    state = _fetch_encoder(spec, progress)
    model = _create(spec, None, dict(kwargs))
    try:
        model.encoder.load_state_dict(state)  # strict, as smp loads it
    except RuntimeError as err:
        raise WeightsError(f"smp's ImageNet weights do not fit the encoder of {spec.name!r}: "
                           f"{str(err).splitlines()[0]}") from err
    return model


class SmpWeights:
    """The :class:`~antialiased.models.registry.WeightsSource` of smp's baselines: the encoder's ImageNet
    weights (smp's ``encoder_weights="imagenet"``); anti-aliased names start from their baseline's."""

    def resolve(self, spec: ModelSpec, force_nonfinetuned: bool = False) -> WeightsInfo | None:
        return _resolve(spec)

    def load(self, spec: ModelSpec, info: WeightsInfo, *, progress: bool = True, **kwargs: Any) -> nn.Module:
        return _load(spec, info, progress, kwargs)


SMP = Family(name="smp", prefix=SMP_PREFIX, build=_build, weights=SmpWeights(), task="segmentation",
             names=ArchNames(archs=_archs, contains=_has_arch, listed_by_default=False))
"""segmentation_models_pytorch's models (``smp/`` names); listed by :func:`~antialiased.models.list_models`
only for patterns starting with ``smp/``."""
