"""The evaluation preprocessing a model was trained for, as recorded in its checkpoint, and how an
evaluation or an export settles it with the values a user gives.

Training records :class:`Preprocessing` (resize, center crop, normalization of its validation) in
every checkpoint under :data:`PREPROCESSING_KEY`, and weights exported from a checkpoint keep it.
:func:`settle_preprocessing` then takes, for each setting, the value given explicitly, else the
recorded one, else the paper's ImageNet default; an explicit value that differs from the record is
used, with a warning naming both.

Example:
    >>> cifar = Preprocessing(crop_size=32, resize_size=37)
    >>> Preprocessing.from_record(cifar.to_record(), "ckpt") == cifar
    True
    >>> settle_preprocessing(cifar, "ckpt").resize_size                    # nothing given: the record
    37
    >>> settle_preprocessing(None, "w.pth", crop_size=64).resize_size       # no record: the paper's ratio
    73
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from torchvision import transforms as T

from antialiased.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from antialiased.errors import ConfigError, WeightsError

__all__ = ["PREPROCESSING_KEY", "PAPER_RESIZE_RATIO", "Preprocessing", "recorded_preprocessing",
           "settle_preprocessing", "resize_for_crop"]

PREPROCESSING_KEY = "preprocessing"  # the checkpoint entry (and exported weights' entry) holding the record
PAPER_RESIZE_RATIO = 256 / 224  # the paper's evaluation: resize the shorter side to 256, center crop 224


def resize_for_crop(crop_size: int, ratio: float = PAPER_RESIZE_RATIO) -> int:
    """The shorter side to resize to before a ``crop_size`` center crop, at ``ratio`` (the paper's 256/224).

    Example:
        >>> resize_for_crop(224), resize_for_crop(32), resize_for_crop(32, 40 / 32)
        (256, 37, 40)
    """
    return round(crop_size * ratio)


@dataclass(frozen=True)
class Preprocessing:
    """Resize the shorter side to ``resize_size``, center crop ``crop_size``, normalize with ``mean``/``std``
    (per channel, on [0, 1] values): what a model's validation fed it during training."""

    crop_size: int = 224
    resize_size: int = 256
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def to_record(self) -> dict[str, Any]:
        """Plain values, for a checkpoint loadable with ``torch.load(weights_only=True)``."""
        return {"crop_size": int(self.crop_size), "resize_size": int(self.resize_size),
                "mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_record(cls, record: Any, source: str) -> "Preprocessing":
        """The record :meth:`to_record` wrote; :class:`WeightsError` naming ``source`` when it is malformed."""
        try:
            made = cls(int(record["crop_size"]), int(record["resize_size"]),
                       tuple(float(v) for v in record["mean"]), tuple(float(v) for v in record["std"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"{source} records {PREPROCESSING_KEY!r} as {record!r}, not crop_size, resize_size, "
                               f"mean and std; re-save the file without that entry (evaluation then uses "
                               f"--crop-size and the ImageNet defaults)") from exc
        made.check(source)
        return made

    def check(self, source: str, error: type[Exception] = WeightsError) -> None:
        """Refuse sizes below 1, a resize smaller than the crop, or a mean/std that is not 3 finite numbers."""
        stats_ok = all(len(v) == 3 and all(math.isfinite(x) for x in v) for v in (self.mean, self.std))
        if self.crop_size < 1 or self.resize_size < self.crop_size or not stats_ok or min(self.std) <= 0:
            raise error(f"{source}: unusable preprocessing (crop {self.crop_size}, resize {self.resize_size}, "
                               f"mean {list(self.mean)}, std {list(self.std)}): the crop must be >= 1 and at most "
                               f"the resize, mean and std 3 finite numbers each, std > 0")

    def transform(self) -> T.Compose:
        """Resize -> CenterCrop -> ToTensor -> Normalize, the evaluation transform these settings describe."""
        return T.Compose([T.Resize(self.resize_size), T.CenterCrop(self.crop_size), T.ToTensor(),
                          T.Normalize(self.mean, self.std)])


def recorded_preprocessing(recorded: Mapping[str, Any] | None, source: str) -> Preprocessing | None:
    """The :class:`Preprocessing` a file recorded (``weights_info.recorded``), or None when it records none."""
    if not recorded or recorded.get(PREPROCESSING_KEY) is None:
        return None
    return Preprocessing.from_record(recorded[PREPROCESSING_KEY], source)


def _shown(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _warn_conflicts(recorded: Preprocessing, given: Mapping[str, Any], source: str, labels: Mapping[str, str]) -> None:
    own = {"crop size": recorded.crop_size, "resize size": recorded.resize_size, "mean": recorded.mean,
           "std": recorded.std}
    for setting, value in given.items():
        if value is not None and value != own[setting]:
            warnings.warn(f"{labels.get(setting, setting)} {_shown(value)} differs from the {setting} "
                          f"{_shown(own[setting])} that {source} recorded from its training; using "
                          f"{_shown(value)} as given", UserWarning, stacklevel=4)


def _stats(values: Sequence[float] | None) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in values)


def settle_preprocessing(recorded: Preprocessing | None, source: str, *, crop_size: int | None = None,
                         resize_size: int | None = None, mean: Sequence[float] | None = None,
                         std: Sequence[float] | None = None, labels: Mapping[str, str] | None = None) -> Preprocessing:
    """Each setting: the value given, else the one ``recorded``, else :class:`Preprocessing`'s default.

    A crop given without a resize keeps the recorded resize/crop ratio (the paper's 256/224 when
    nothing is recorded). A given value that differs from the record is used, with a warning naming
    both (``source``: the weights, e.g. ``'checkpoint c10/model_best.pth.tar'``; ``labels``: how the
    caller's flags name the settings 'crop size', 'resize size', 'mean' and 'std', e.g. ``--crop-size``).
    """
    base = recorded or Preprocessing()
    given = {"crop size": crop_size, "resize size": resize_size, "mean": _stats(mean), "std": _stats(std)}
    if recorded is not None:
        _warn_conflicts(recorded, given, source, labels or {})
    crop = crop_size if crop_size is not None else base.crop_size
    if resize_size is None:
        resize_size = base.resize_size if crop == base.crop_size else \
            resize_for_crop(crop, base.resize_size / base.crop_size)
    chosen = Preprocessing(crop, resize_size, given["mean"] or base.mean, given["std"] or base.std)
    chosen.check("the settings given", ConfigError)  # the record itself was checked when read
    return chosen
