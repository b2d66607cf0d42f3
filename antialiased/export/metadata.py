"""What an exported file says about itself: model, weights, input contract and preprocessing.

ONNX files carry it in ``metadata_props`` (onnxruntime: ``session.get_modelmeta().custom_metadata_map``),
``.pt2`` files in an extra file ``antialiased.json`` (``torch.export.load(path, extra_files=...)``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping

from torch import nn

from antialiased import __version__
from antialiased.data import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, recorded_preprocessing, settle_preprocessing
from antialiased.errors import ConfigError
from antialiased.models.antialias import METHODS
from antialiased.models.antialias._options import has_filter

__all__ = ["ExportMetadata", "EXTRA_FILE", "NOT_RECORDED", "antialiasing_of", "blur_filter_sizes", "eval_resize",
           "identity_of", "input_hw", "input_size_for", "preprocessing_of"]

PAPER_RESIZE_RATIO = 256 / 224  # resize the shorter side to 256, center crop 224

EXTRA_FILE = "antialiased.json"

NOT_RECORDED = "not recorded"


def input_hw(input_size: int | tuple[int, int]) -> tuple[int, int]:
    """``224`` or ``(97, 131)`` as ``(height, width)``, checked.

    Example:
        >>> input_hw(224), input_hw((97, 131))
        ((224, 224), (97, 131))
    """
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size):
        raise ConfigError(f"--input-size must be a positive integer (or a (height, width) pair), got {input_size!r}")
    return size  # type: ignore[return-value]


def eval_resize(hw: tuple[int, int], ratio: float = PAPER_RESIZE_RATIO) -> int:
    """The shorter side to resize to before the center crop: ``ratio`` (the paper's 256/224) times the crop.

    Example:
        >>> eval_resize((224, 224)), eval_resize((128, 128)), eval_resize((97, 131)), eval_resize((224, 224), 232 / 224)
        (256, 146, 150, 232)
    """
    return round(max(hw) * ratio)


def preprocessing_of(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...], float]:
    """``(mean, std, resize / crop ratio)`` of the evaluation transforms the model's weights expect.

    Read from the record the registry attaches: the preprocessing a training checkpoint (or weights
    exported from one) recorded (``weights_info.recorded``), else ``model.weights_info.transforms()``
    (torchvision's ``ImageClassification`` style) where there is one; the paper's ImageNet
    preprocessing otherwise.

    Example:
        >>> preprocessing_of(nn.Linear(2, 2))
        ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1.1428571428571428)
    """
    recorded = _recorded(model)
    if recorded is not None:  # what the training that wrote the file validated with
        return tuple(recorded.mean), tuple(recorded.std), recorded.resize_size / recorded.crop_size
    make = getattr(getattr(model, "weights_info", None), "transforms", None)
    transform = make() if callable(make) else None
    mean = tuple(float(v) for v in getattr(transform, "mean", IMAGENET_MEAN))
    std = tuple(float(v) for v in getattr(transform, "std", IMAGENET_STD))
    resize, crop = getattr(transform, "resize_size", None), getattr(transform, "crop_size", None)
    sizes = [s[0] if isinstance(s, (list, tuple)) and s else s for s in (resize, crop)]
    ratio = sizes[0] / sizes[1] if all(isinstance(s, int) and s > 0 for s in sizes) else PAPER_RESIZE_RATIO
    return mean, std, ratio


def _recorded(model: nn.Module) -> Preprocessing | None:
    info = getattr(model, "weights_info", None)
    return recorded_preprocessing(getattr(info, "recorded", None), str(getattr(info, "label", "the weights")))


def input_size_for(model: nn.Module, given: int | None) -> int:
    """The input side to export at: ``given``, else the crop the weights' training recorded (e.g. 32 for a
    CIFAR checkpoint), else 224; a ``given`` size that differs from the record is used, with a warning.

    Example:
        >>> input_size_for(nn.Linear(2, 2), None), input_size_for(nn.Linear(2, 2), 96)
        (224, 96)
    """
    info = getattr(model, "weights_info", None)
    return settle_preprocessing(_recorded(model), str(getattr(info, "label", "the weights")), crop_size=given,
                                labels={"crop size": "--input-size"}).crop_size


def blur_filter_sizes(model: nn.Module) -> list[int]:
    """The filter sizes of the model's anti-aliasing; empty for a baseline and for methods without a filter.

    A registry model's spec says it (its filter size where its method has a filter: none for ``aps``,
    ``lps``, ``flc``, ...; the N of ``_lpf<N>`` is only accepted by them), else the summary of
    :func:`~antialiased.models.antialias.antialias` (its ``filter_size``, None for such methods), else, for
    a model built by hand, the distinct ``filt_size`` of its layers above 1 (size 1 is no filter: a
    polyphase sampler without a blur records it).

    Example:
        >>> from antialiased.models import create_model
        >>> blur_filter_sizes(create_model("resnet18_lpf3")), blur_filter_sizes(create_model("resnet18"))
        ([3], [])
        >>> blur_filter_sizes(create_model("resnet18_lpf3", aa_method="lps"))
        []
    """
    spec = getattr(model, "model_spec", None)
    if getattr(spec, "filter_size", None) is not None and spec.method in METHODS:
        return [spec.filter_size] if has_filter(METHODS[spec.method]) else []
    summary = getattr(model, "antialias_summary", None)
    if isinstance(getattr(summary, "method", None), str):
        return [] if summary.filter_size is None else [summary.filter_size]
    return sorted({m.filt_size for m in model.modules() if isinstance(getattr(m, "filt_size", None), int)
                   and not isinstance(m.filt_size, bool) and m.filt_size > 1})


def antialiasing_of(model: nn.Module) -> tuple[str, str]:
    """``(source, method)``: where the model's architecture comes from and how it was anti-aliased.

    Read from the spec the registry attaches (``model.model_spec``: its family ``paper``,
    ``torchvision`` or ``timm``; method: a name of ``METHODS`` such as ``blurpool`` or ``lps``, ``none`` for a baseline);
    for a model converted by hand with :func:`~antialiased.models.antialias.antialias`, the method of
    its ``antialias_summary``; :data:`NOT_RECORDED` otherwise.

    Example:
        >>> from antialiased.models import create_model
        >>> antialiasing_of(create_model("resnet18_lpf3")), antialiasing_of(create_model("resnet18"))
        (('paper', 'blurpool'), ('paper', 'none'))
        >>> antialiasing_of(nn.Linear(2, 2))
        ('not recorded', 'not recorded')
    """
    spec = getattr(model, "model_spec", None)
    if callable(getattr(spec, "to_dict", None)):
        record = spec.to_dict()
        return str(record.get("family") or record.get("source") or NOT_RECORDED), str(record.get("method") or "none")
    method = getattr(getattr(model, "antialias_summary", None), "method", None)
    return NOT_RECORDED, str(method) if isinstance(method, str) else NOT_RECORDED


def identity_of(model: nn.Module, num_classes: int) -> tuple[str, str]:
    """``(classes, data)``: the class names in output order as a JSON list, and the data folder of training.

    Read from the record the registry attaches (``model.weights_info``): a checkpoint's recorded
    ``classes`` (or the weights' categories, e.g. ImageNet's for published and torchvision weights)
    when they name exactly ``num_classes`` outputs, and the ``data`` folder a training checkpoint
    recorded; :data:`NOT_RECORDED` where the model does not know.

    Example:
        >>> identity_of(nn.Linear(2, 2), 2)
        ('not recorded', 'not recorded')
    """
    info = getattr(model, "weights_info", None)
    names = getattr(info, "classes", None) or getattr(info, "categories", None)
    recorded = getattr(info, "recorded", None)
    data = recorded.get("data") if isinstance(recorded, Mapping) else None
    classes = json.dumps(list(names)) if names and len(names) == num_classes else NOT_RECORDED
    return classes, str(data) if data else NOT_RECORDED


@dataclass(frozen=True)
class ExportMetadata:
    """The metadata written into an exported file; all values are strings in the file.

    Attributes:
        model_name: the registry name (``create_model`` / ``-a``), or the class name of the model.
        filter_size: the blur filter size(s), e.g. ``"4"``; ``"none"`` for a model without blur.
        weights: where the weights came from (a published file, a path, a checkpoint, random).
        input_size: ``(height, width)`` of the input the file takes.
        num_classes: length of the logits vector.
        mean, std: the per-channel normalization the input must already have (RGB, [0, 1] scale).
        resize: the shorter side to resize photos to before center-cropping ``input_size``
            (default: the paper's 256/224 ratio, scaled to the input size).
        source: where the architecture comes from (``paper``, ``torchvision``, ``timm``; see
            :func:`antialiasing_of`).
        method: how it was anti-aliased (``blurpool``, ``blur-first``, ``aps``, ``aps-lpf``; ``none``
            for a baseline).
        classes: the class names in output order, a JSON list (see :func:`identity_of`).
        data: the data folder the weights were trained on, where a checkpoint recorded it.

    Example:
        >>> m = ExportMetadata("resnet18_lpf4", "4", "random initialization", (224, 224), 1000, source="paper",
        ...                    method="blurpool")
        >>> props = m.to_props()
        >>> props["input"], props["mean"], props["resize"]
        ('float32 NCHW [batch, 3, 224, 224], RGB scaled to [0, 1] then (x - mean) / std', '0.485,0.456,0.406', '256')
        >>> props["source"], props["method"]
        ('paper', 'blurpool')
        >>> ExportMetadata.from_props(props) == m
        True
    """

    model_name: str
    filter_size: str
    weights: str
    input_size: tuple[int, int]
    num_classes: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resize: int = 0
    antialiased_version: str = __version__
    source: str = NOT_RECORDED
    method: str = NOT_RECORDED
    classes: str = NOT_RECORDED
    data: str = NOT_RECORDED

    def __post_init__(self) -> None:
        if not self.resize:  # frozen: set the default that depends on input_size once
            object.__setattr__(self, "resize", eval_resize(self.input_size))

    def to_props(self) -> dict[str, str]:
        """String key/value pairs, the form ONNX ``metadata_props`` hold."""
        h, w = self.input_size
        return {
            "model_name": self.model_name,
            "filter_size": self.filter_size,
            "source": self.source,
            "method": self.method,
            "weights": self.weights,
            "input_size": f"{h}x{w}",
            "num_classes": str(self.num_classes),
            "mean": ",".join(f"{v:g}" for v in self.mean),
            "std": ",".join(f"{v:g}" for v in self.std),
            "resize": str(self.resize),
            "antialiased_version": self.antialiased_version,
            "input": f"float32 NCHW [batch, 3, {h}, {w}], RGB scaled to [0, 1] then (x - mean) / std",
            "output": f"logits [batch, {self.num_classes}] (no softmax)",
            "preprocessing": f"resize the shorter side to {self.resize} (bilinear), center crop {h}x{w}, "
                             f"scale to [0, 1], normalize with mean and std",
            "classes": self.classes,
            "data": self.data,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_props(), indent=2)

    @classmethod
    def from_props(cls, props: Mapping[str, str]) -> ExportMetadata:
        """Read back :meth:`to_props` (or the JSON of :meth:`to_json`)."""
        h, w = (int(v) for v in str(props["input_size"]).split("x"))
        return cls(model_name=props["model_name"], filter_size=props["filter_size"], weights=props["weights"],
                   input_size=(h, w), num_classes=int(props["num_classes"]),
                   mean=tuple(float(v) for v in props["mean"].split(",")),
                   std=tuple(float(v) for v in props["std"].split(",")),
                   resize=int(props.get("resize") or 0),
                   antialiased_version=props["antialiased_version"],
                   source=props.get("source", NOT_RECORDED), method=props.get("method", NOT_RECORDED),
                   classes=props.get("classes", NOT_RECORDED), data=props.get("data", NOT_RECORDED))
