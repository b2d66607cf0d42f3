"""antialias() on every family it claims to cover: torchvision classification and segmentation, timm CNNs.

For each model: the converted model loads the baseline's state dict strictly, runs forward and
backward at 224 and at the smallest of 32/64/80 pixels the baseline accepts, with the baseline's
output shape; and its summary accounts for every subsampling and upsampling the baseline really
does. Those are found independently of the engine: a ``TorchFunctionMode`` records every strided
convolution or pool, every adaptive pool that shrinks its input, and every upsampling (a strided
transposed convolution, an interpolation that enlarges a map larger than 1x1, a pixel shuffle)
during a forward pass of the baseline (also in training mode for models with training-only heads),
attributed to the innermost module running.

The default suite uses the smallest member of each family (narrow where the builder allows);
``-m sweep`` runs every torchvision classification and segmentation builder.
"""
from __future__ import annotations

import copy
import warnings
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.overrides import TorchFunctionMode
from torchvision.models import efficientnet as tv_efficientnet
from torchvision.models.convnext import CNBlockConfig
from torchvision.models.regnet import BlockParams
from torchvision.models.resnet import BasicBlock, Bottleneck

from antialiased.errors import ModelError
from antialiased.models.antialias import AntialiasSummary, AntialiasWarning, antialias

_CONVS = {torch.conv1d, torch.conv2d, torch.conv3d, F.conv1d, F.conv2d, F.conv3d}
_TRANSPOSED = {F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d}
_POOLS = {F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, torch.max_pool2d}
_SHUFFLE = {F.pixel_shuffle, torch.pixel_shuffle}
_ADAPTIVE = {F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, F.adaptive_max_pool1d,
             F.adaptive_max_pool2d, F.adaptive_max_pool3d}


def _arg(args, kwargs, index, name, default=None):
    return kwargs[name] if name in kwargs else args[index] if len(args) > index else default


def _above_one(value) -> bool:
    return any(int(v) > 1 for v in (value if isinstance(value, (tuple, list)) else (value,)))


def _tensor(value):
    if isinstance(value, (tuple, list)):
        return _tensor(value[0]) if value else None
    return value if isinstance(value, torch.Tensor) else None


class _SubsamplingRecorder(TorchFunctionMode):
    """Records (innermost module path, kind) of every call that subsamples or upsamples."""

    def __init__(self, where: list[str]) -> None:
        super().__init__()
        self.where, self.found = where, set()

    def _kind(self, func, args, kwargs, out) -> str | None:
        if func in _CONVS:
            return "conv" if _above_one(_arg(args, kwargs, 3, "stride", 1)) else None
        if func in _TRANSPOSED:
            return "upsample" if _above_one(_arg(args, kwargs, 3, "stride", 1)) else None
        if func in _SHUFFLE:
            return "upsample"
        if func is F.interpolate:
            before, after = args[0].shape[2:], _tensor(out).shape[2:]
            return "upsample" if any(a > b for a, b in zip(after, before)) and max(before) > 1 else None
        if func in _POOLS:
            stride = _arg(args, kwargs, 2, "stride") or _arg(args, kwargs, 1, "kernel_size")
            return "pool" if _above_one(stride) else None
        if func in _ADAPTIVE:
            before, after = args[0].shape[2:], _tensor(out).shape[2:]
            return "adaptive" if any(a < b for a, b in zip(after, before)) else None
        return None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        kind = self._kind(func, args, kwargs, out)
        if kind is not None:
            self.found.add((self.where[-1] if self.where else "", kind))
        return out


def real_subsampling(model: nn.Module, x: torch.Tensor, training: bool = False) -> tuple[set, object]:
    """What ``model`` subsamples in a forward pass of ``x`` (and the output); see the module doc."""
    where: list[str] = []
    handles = []
    for path, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(lambda m, a, path=path: where.append(path)))
        handles.append(module.register_forward_hook(lambda m, a, out: (where.pop(), None)[1]))
    was = model.training
    model.train(training)
    try:
        with torch.no_grad(), _SubsamplingRecorder(where) as recorder:
            out = model(x)
    finally:
        model.train(was)
        for handle in handles:
            handle.remove()
    return recorder.found, out


def check_summary(summary: AntialiasSummary, found: set[tuple[str, str]]) -> None:
    """Every real subsampling or upsampling is in the summary, and every change is at a real one."""
    entries = summary.changed + summary.left_alone

    def listed(path: str, entry) -> bool:  # a functional call is listed as <module>.<call name>
        return entry.path == path or (entry.before.startswith("F.") and entry.path.rpartition(".")[0] == path)

    missing = [(path, kind) for path, kind in found if not any(listed(path, e) for e in entries)]
    assert not missing, f"subsampling or upsampling not in the summary: {missing}"
    real = {path for path, _ in found}
    invented = [c.path for c in summary.changed if not any(listed(path, c) for path in real)]
    assert not invented, f"changed where nothing subsamples or upsamples: {invented}"


def _output(y):
    return y["out"] if isinstance(y, dict) else y.logits if hasattr(y, "logits") else y


def check_model(build: Callable[[], nn.Module], small: int = 32, sizes: tuple[int, ...] = (224,),
                record_training: int | None = None) -> nn.Module:
    """Convert a fresh baseline and check keys, shapes, gradients and the summary (see the module doc).

    ``small`` is the smallest of 32, 64, 80 the baseline accepts; ``record_training`` (an input size)
    also records the baseline's subsampling in training mode (heads that only run in training).
    """
    torch.manual_seed(0)
    baseline = build().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", AntialiasWarning)
        model = antialias(copy.deepcopy(baseline), filter_size=3)
    state, want = model.state_dict(), baseline.state_dict()
    assert list(state) == list(want) and all(torch.equal(state[k], v) for k, v in want.items())  # untouched
    model.load_state_dict(want, strict=True)
    model.eval()
    for size in sorted({small, *sizes}):
        x = torch.rand(1, 3, size, size, requires_grad=True)
        out = _output(model(x))
        out.float().sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        if size == small:
            found, want = real_subsampling(baseline, x.detach())
        else:
            with torch.no_grad():
                want = baseline(x)
        assert out.shape == _output(want).shape, size
    if record_training:
        found |= real_subsampling(baseline, torch.rand(2, 3, record_training, record_training), training=True)[0]
    check_summary(model.antialias_summary, found)
    return model


def _vgg() -> nn.Module:
    features = torchvision.models.vgg.make_layers([8, "M", 16, "M", 16, 16, "M", 32, 32, "M", 512, "M"], batch_norm=True)
    model = torchvision.models.VGG(features, num_classes=10, init_weights=False)
    model.classifier = nn.Linear(512 * 7 * 7, 10)  # the stock 4096-wide head costs 400 MB and tests nothing here
    return model


def _efficientnet_v2() -> nn.Module:
    setting = [tv_efficientnet.FusedMBConvConfig(1, 3, 1, 8, 8, 1), tv_efficientnet.FusedMBConvConfig(4, 3, 2, 8, 16, 1),
               tv_efficientnet.MBConvConfig(4, 3, 2, 16, 24, 1, width_mult=1.0, depth_mult=1.0)]
    return torchvision.models.EfficientNet(setting, dropout=0.1, last_channel=64, num_classes=10)


def _fcn() -> nn.Module:
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.segmentation.fcn import FCN, FCNHead

    backbone = torchvision.models.ResNet(Bottleneck, [1, 1, 1, 1], width_per_group=16,
                                         replace_stride_with_dilation=[False, True, True])
    return FCN(IntermediateLayerGetter(backbone, {"layer4": "out"}), FCNHead(2048, 5))


def _efficientnet() -> nn.Module:
    setting = [tv_efficientnet.MBConvConfig(1, 3, 1, 8, 8, 1), tv_efficientnet.MBConvConfig(6, 3, 2, 8, 16, 1),
               tv_efficientnet.MBConvConfig(6, 5, 2, 16, 24, 1)]
    return torchvision.models.EfficientNet(setting, dropout=0.2, num_classes=10)


def _regnet() -> nn.Module:
    params = BlockParams.from_init_params(depth=4, w_0=8, w_a=8.0, w_m=2.0, group_width=8, se_ratio=0.25)
    return torchvision.models.RegNet(params, num_classes=10)


TV = torchvision.models
CLASSIFICATION: dict[str, tuple[Callable[[], nn.Module], dict]] = {
    "alexnet": (lambda: TV.alexnet(num_classes=10), {"small": 64}),
    "vgg": (_vgg, {}),
    "resnet": (lambda: TV.ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10), {}),
    "resnext": (lambda: TV.ResNet(Bottleneck, [1, 1, 1, 1], groups=4, width_per_group=4, num_classes=10), {}),
    "densenet": (lambda: TV.DenseNet(8, (1, 1, 1, 1), 16, bn_size=2, num_classes=10), {}),
    "mobilenet_v2": (lambda: TV.mobilenet_v2(width_mult=0.25, num_classes=10), {}),
    "mobilenet_v3": (lambda: TV.mobilenet_v3_small(width_mult=0.25, num_classes=10), {}),
    "efficientnet": (_efficientnet, {}),
    "efficientnet_v2": (_efficientnet_v2, {}),
    "regnet": (_regnet, {}),
    "convnext": (lambda: TV.ConvNeXt([CNBlockConfig(8, 16, 1), CNBlockConfig(16, 32, 1), CNBlockConfig(32, 64, 1),
                                      CNBlockConfig(64, None, 1)], num_classes=10), {}),
    "shufflenet_v2": (lambda: TV.shufflenet_v2_x0_5(num_classes=10), {}),
    "mnasnet": (lambda: TV.MNASNet(0.25, num_classes=10), {}),
    "squeezenet": (lambda: TV.squeezenet1_1(num_classes=10), {}),
    # fixed widths: 224 (and Inception's auxiliary head) in the sweep, to keep the default suite fast
    "googlenet": (lambda: TV.googlenet(num_classes=10, init_weights=False), {"record_training": 32, "sizes": ()}),
    "inception_v3": (lambda: TV.inception_v3(num_classes=10, init_weights=False, aux_logits=False),
                     {"small": 80, "sizes": ()}),
}
SEGMENTATION: dict[str, Callable[[], nn.Module]] = {
    "fcn": _fcn,
    "deeplabv3": lambda: TV.segmentation.deeplabv3_mobilenet_v3_large(weights_backbone=None, num_classes=5),
    "lraspp": lambda: TV.segmentation.lraspp_mobilenet_v3_large(weights_backbone=None, num_classes=5),
}


@pytest.mark.parametrize("family", sorted(CLASSIFICATION))
def test_torchvision_classification_families(family):
    build, options = CLASSIFICATION[family]
    check_model(build, **options)


@pytest.mark.parametrize("family", sorted(SEGMENTATION))
def test_torchvision_segmentation_models(family):
    model = check_model(SEGMENTATION[family], sizes=())
    dilated = [s for s in model.antialias_summary.left_alone if s.kind == "dilated_conv"]
    assert dilated and all("no subsampling to blur" in s.reason for s in dilated)  # said, not silently skipped
    # The head's final upsampling to the input size (F.interpolate(size=...)) gets the blur after it.
    final = [c for c in model.antialias_summary.changed if c.path == "interpolate"]
    assert len(final) == 1 and final[0].kind == "interpolate" and "BlurPool" in final[0].after


TIMM_MODELS = {
    "resnet": {"model_name": "resnet18", "layers": [1, 1, 1, 1]},
    "resnetd": {"model_name": "resnet10t"},
    "efficientnet": {"model_name": "tinynet_e"},
    "mobilenetv3": {"model_name": "mobilenetv3_small_050"},
    "regnet": {"model_name": "regnetx_002"},
    "convnext": {"model_name": "convnext_atto", "depths": (1, 1, 1, 1), "dims": (16, 32, 64, 128)},
    "cspnet": {"model_name": "cs3darknet_s"},
}


@pytest.mark.parametrize("family", sorted(TIMM_MODELS))
def test_timm_cnns(family):
    timm = pytest.importorskip("timm", reason="timm is an optional dependency (pip install timm)")
    check_model(lambda: timm.create_model(**TIMM_MODELS[family], num_classes=10))


def test_timm_models_already_anti_aliased_are_left_as_they_are():
    timm = pytest.importorskip("timm", reason="timm is an optional dependency (pip install timm)")
    model = antialias(timm.create_model("resnetblur18", num_classes=10))
    blurred = [s.path for s in model.antialias_summary.left_alone if s.kind == "blur"]
    assert "layer2.0.aa" in blurred and "already anti-aliased" in model.antialias_summary.left_alone[0].reason \
        or blurred


def test_timm_vision_transformer_is_a_clear_error():
    timm = pytest.importorskip("timm", reason="timm is an optional dependency (pip install timm)")
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=10, depth=1)
    with pytest.raises(ModelError, match=r"patch_embed\.proj .*patch embedding of a vision transformer"):
        antialias(vit)


def _sweep_names() -> list[str]:
    return sorted(set(torchvision.models.list_models(module=torchvision.models)))


# Builders the sweep runs with other settings: the smallest input they accept, training-only heads.
_SWEEP_OPTIONS = {
    "alexnet": {"small": 64}, "googlenet": {"record_training": 32}, "inception_v3": {"small": 80, "record_training": 299},
    "maxvit_t": {"small": 224, "sizes": ()},
}


@pytest.mark.sweep
@pytest.mark.parametrize("name", _sweep_names())
def test_every_torchvision_classification_model(name):
    kwargs = {"num_classes": 10, **({"init_weights": False} if name in ("googlenet", "inception_v3") else {})}
    build = lambda: torchvision.models.get_model(name, **kwargs)  # noqa: E731
    if name.startswith(("vit_", "swin")):
        with pytest.raises(ModelError, match="patch embedding"):
            antialias(build())
        return
    check_model(build, **_SWEEP_OPTIONS.get(name, {}))


_SEGMENTATION_SMALL = {"fcn_resnet50": 64, "fcn_resnet101": 64, "deeplabv3_resnet50": 64, "deeplabv3_resnet101": 64}


@pytest.mark.sweep
@pytest.mark.parametrize("name", sorted(torchvision.models.list_models(module=torchvision.models.segmentation)))
def test_every_torchvision_segmentation_model(name):
    build = lambda: torchvision.models.get_model(name, weights_backbone=None, num_classes=5)  # noqa: E731
    check_model(build, small=_SEGMENTATION_SMALL.get(name, 32), sizes=())
