"""torchvision's classification models by name, anti-aliased by ``antialias()``: the ``"torchvision"`` family.

``create_model("efficientnet_b0_lpf4")`` is torchvision's ``efficientnet_b0`` converted with
``antialias(model, filter_size=4, method="blurpool")``; ``aa_method=`` picks another method of
:data:`~antialiased.models.antialias.METHODS` and ``aa_options=`` its options.
``create_model("efficientnet_b0")`` is the plain torchvision model. The paper's 23 architectures
belong to the ``"paper"`` family (:mod:`antialiased.models.paper`), whatever the method.

Conversion keeps the state-dict keys, so ``pretrained=True`` is the baseline's torchvision weights
loaded into the converted model by :func:`~antialiased.models.transfer.load_baseline`, and a
converted model's checkpoint is also a valid baseline checkpoint: the spec is recorded with it for
that reason. :func:`convert` and :class:`TorchvisionWeights` serve the other families too.
"""
from __future__ import annotations

import torch
import torchvision
from torch import nn

from antialiased.errors import ModelError
from antialiased.models import _torchvision
from antialiased.models.antialias import antialias
from antialiased.models.antialias._paper import PAPER_TABLE
from antialiased.models.registry import ArchNames, Family, ModelSpec
from antialiased.models.weights_info import WeightsInfo, torchvision_info

__all__ = ["NOT_CONVERTIBLE", "TORCHVISION", "TorchvisionWeights", "cannot_convert", "convert"]

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
    """``model`` (a baseline) anti-aliased as ``spec`` says: ``antialias(model, filter_size, method, **options)``.

    Converts in place and returns the model (a ``GraphModule`` where the rewrite needed one) with the
    same state-dict keys and ``model.antialias_summary``.

    Raises:
        ModelError: the model cannot be anti-aliased (e.g. a vision transformer), naming ``spec``.
    """
    # Tracing runs forward code on the real buffers: timm's BatchNormAct2d counts num_batches_tracked up
    # while being traced. The converted model must hold exactly the baseline's (e.g. pretrained) state.
    buffers = {name: buffer.detach().clone() for name, buffer in model.named_buffers()}
    try:
        model = antialias(model, filter_size=spec.filter_size, method=spec.method, **dict(spec.options))
    except ModelError as err:
        raise ModelError(f"cannot make {spec.name!r}: {err} (its baseline {spec.baseline().name!r} is a model "
                         f"name)") from err
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name in buffers:
                buffer.copy_(buffers[name])
    return model


class TorchvisionWeights:
    """The :class:`~antialiased.models.registry.WeightsSource` of torchvision's baselines.

    A baseline's ``pretrained=True`` is torchvision's ``IMAGENET1K_V1`` where it exists (else
    ``DEFAULT``); its anti-aliased names have no weights of their own (they start from the baseline's).
    """

    def resolve(self, spec: ModelSpec, force_nonfinetuned: bool = False) -> WeightsInfo | None:
        return None if spec.antialiased else torchvision_info(_torchvision.baseline_weights(spec.arch))

    def load(self, spec: ModelSpec, info: WeightsInfo, *, progress: bool = True, **kwargs) -> nn.Module:
        return _torchvision.build_pretrained(spec.arch, info.torchvision, progress=progress, **kwargs)


_PAPER_ARCHS = frozenset(arch for family in PAPER_TABLE for arch in family.archs)


def _archs() -> list[str]:
    return [arch for arch in torchvision.models.list_models(module=torchvision.models) if arch not in _PAPER_ARCHS]


def _build(spec: ModelSpec, **kwargs) -> nn.Module:
    model = torchvision.models.get_model(spec.arch, weights=None, **kwargs)
    return convert(model, spec) if spec.antialiased else model


TORCHVISION = Family(name="torchvision", names=ArchNames(archs=_archs, cannot_convert=cannot_convert),
                     build=_build, weights=TorchvisionWeights())
"""Every torchvision classification model but the paper's 23, baseline and converted."""
