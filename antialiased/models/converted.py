"""torchvision's classification models by name, anti-aliased by ``antialias()``: the ``"torchvision"`` source.

``create_model("efficientnet_b0_lpf4")`` is torchvision's ``efficientnet_b0`` converted with
``antialias(model, filter_size=4, method="blurpool")``; ``aa_method=`` picks another method of
:data:`~antialiased.models.antialias.METHODS`. ``create_model("efficientnet_b0")`` is the plain
torchvision model. The paper's 23 architectures keep their own source (its module layout and
published weights); they come here only for methods other than ``"blurpool"``.

Conversion keeps the state-dict keys, so ``pretrained=True`` is the baseline's torchvision weights
(as the baseline's ``pretrained=True`` loads them) in the converted model, and a converted model's
checkpoint is also a valid baseline checkpoint: the spec is recorded with it for that reason.
"""
from __future__ import annotations

import torch
import torchvision
from torch import nn

from antialiased.errors import ModelError
from antialiased.models import _torchvision
from antialiased.models.antialias import METHODS, antialias
from antialiased.models.registry import ModelSpec, Source, baseline_spec, register_source
from antialiased.models.weights_info import WeightsInfo, baseline_info, torchvision_info

__all__ = ["NOT_CONVERTIBLE", "TORCHVISION_SOURCE", "cannot_convert", "convert"]

NOT_CONVERTIBLE: dict[str, str] = {
    "vit_": "is a vision transformer: its only subsampling is the patch embedding, a conv whose kernel equals "
            "its stride (cutting the image into tokens), so antialias() has nothing to anti-alias and refuses it",
    "swin_": "is a Swin transformer: its only strided layer is the patch embedding, a conv whose kernel equals "
             "its stride (cutting the image into tokens), so antialias() has nothing to anti-alias and refuses it",
}
"""Name prefixes of torchvision models ``antialias()`` refuses, with the reason (checked by the tests).
Their baselines are model names; their ``_lpf<N>`` names are not. (MaxViT is a hybrid: its MBConv
stages subsample, so ``maxvit_t_lpf<N>`` exists.)"""


def cannot_convert(arch: str) -> str | None:
    """Why torchvision's ``arch`` has no anti-aliased names, or None if it has.

    Example:
        >>> cannot_convert("efficientnet_b0") is None, cannot_convert("vit_b_16")[:23]
        (True, 'is a vision transformer')
    """
    return next((reason for prefix, reason in NOT_CONVERTIBLE.items() if arch.startswith(prefix)), None)


def convert(model: nn.Module, spec: ModelSpec) -> nn.Module:
    """``model`` (a baseline) anti-aliased as ``spec`` says: ``antialias(model, filter_size, method)``.

    Converts in place and returns the model (a ``GraphModule`` where the rewrite needed one) with the
    same state-dict keys and ``model.antialias_summary``.

    Raises:
        ModelError: the model cannot be anti-aliased (e.g. a vision transformer), naming ``spec``.
    """
    # Tracing runs forward code on the real buffers: timm's BatchNormAct2d counts num_batches_tracked up
    # while being traced. The converted model must hold exactly the baseline's (e.g. pretrained) state.
    buffers = {name: buffer.detach().clone() for name, buffer in model.named_buffers()}
    try:
        model = antialias(model, filter_size=spec.filter_size, method=spec.method)
    except ModelError as err:
        raise ModelError(f"cannot make {spec.name!r}: {err} (its baseline {baseline_spec(spec).name!r} is a "
                         f"model name)") from err
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name in buffers:
                buffer.copy_(buffers[name])
    return model


def _archs() -> list[str]:
    return torchvision.models.list_models(module=torchvision.models)


def _build(spec: ModelSpec, **kwargs) -> nn.Module:
    model = torchvision.models.get_model(spec.arch, weights=None, **kwargs)
    return convert(model, spec) if spec.antialiased else model


def _pretrained(spec: ModelSpec, force_nonfinetuned: bool = False) -> WeightsInfo:
    info = torchvision_info(_torchvision.baseline_weights(spec.arch))
    return baseline_info(info) if spec.antialiased else info


def _load_pretrained(spec: ModelSpec, info: WeightsInfo, *, progress: bool = True, **kwargs) -> nn.Module:
    weights = (info.baseline or info).torchvision
    model = _torchvision.build_pretrained(spec.arch, weights, progress=progress, **kwargs)
    return convert(model, spec) if spec.antialiased else model


TORCHVISION_SOURCE = register_source(Source(
    name="torchvision", prefix="", archs=_archs, has_baseline=lambda arch: True, build=_build,
    pretrained=_pretrained, load_pretrained=_load_pretrained, method="blurpool", methods=lambda: tuple(METHODS),
    cannot_convert=cannot_convert, convert=convert))
"""Every torchvision classification model, baseline and converted (after the paper's source)."""
