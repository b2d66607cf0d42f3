"""What an evaluation run needs, as typed settings: the model, the data, the device, the protocols.

The command line builds an :class:`EvalConfig` from its flags; Python code builds one directly:

Example:
    >>> cfg = EvalConfig(model=ModelSource("resnet18_lpf4", pretrained=True), data=DataSettings("ILSVRC2012"),
    ...                  protocols=("accuracy", "shift_consistency"))
    >>> cfg.validate()
    >>> cfg.data.resize, cfg.resolved().data.crop_size
    (256, 224)
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from antialiased.data import (IMAGENET_MEAN, IMAGENET_STD, Preprocessing, default_workers, recorded_preprocessing,
                              settle_preprocessing)
from antialiased.errors import ConfigError
from antialiased.evaluation.invariance import InvarianceOptions
from antialiased.models import get_model_spec
from antialiased.models.weights_info import file_info
from antialiased.support.checkpoints import read_weights_file
from antialiased.evaluation.segmentation_settings import SegmentationOptions

__all__ = ["ModelSource", "DataSettings", "RunSettings", "ShiftOptions", "EnsembleOptions", "EvalConfig",
           "recorded_preprocessing_of", "DEFAULT_CROP", "DEFAULT_MAX_SHIFT"]

log = logging.getLogger("antialiased.eval")

DEFAULT_CROP, DEFAULT_MAX_SHIFT = 224, 32  # the paper's protocol: 224 crops of the image resized to 256


@dataclass(frozen=True)
class ModelSource:
    """The model to evaluate and where its weights come from (at most one of the three; none: random).

    Args:
        name: a registry name, e.g. ``'resnet50_lpf4'`` or the baseline ``'resnet50'``.
        pretrained: the published weights (torchvision's for a baseline).
        force_nonfinetuned: with ``pretrained``, the from-scratch weights instead of fine-tuned ones.
        weights: a local weights file (a state dict or ``{'state_dict': ...}``).
        checkpoint: a training checkpoint (``--resume``); its recorded architecture must match.
        aa_method: the anti-aliasing method of an ``_lpf<N>`` name (``--aa-method``; None: ``"blurpool"``).
        aa_options: its ``antialias()`` options (``--aa-option KEY=VALUE``; the method's own too).
    """

    name: str
    pretrained: bool = False
    force_nonfinetuned: bool = False
    weights: str | os.PathLike | None = None
    checkpoint: str | os.PathLike | None = None
    aa_method: str | None = None
    aa_options: Mapping[str, Any] | None = None

    def validate(self) -> None:
        # an unknown name fails first, with the closest names
        get_model_spec(self.name, method=self.aa_method, options=self.aa_options)
        if sum([bool(self.pretrained), bool(self.weights), bool(self.checkpoint)]) > 1:
            raise ConfigError("give only one of --pretrained, --weights PATH and --resume PATH")


@dataclass(frozen=True)
class DataSettings:
    """The validation images: where, how they are read and batched, the crop geometry and normalization.

    Images are resized to ``crop_size + max_shift`` on the shorter side and center-cropped to the
    largest view a protocol needs (``crop_size`` for accuracy alone, ``crop_size + max_shift`` for
    the shift protocols). Settings left at None are decided for the weights evaluated
    (:meth:`settle`, run by :meth:`EvalConfig.resolved`): what a training checkpoint (or weights
    exported from one) recorded, else the paper's ImageNet protocol (224 + 32, ImageNet mean/std).
    ``val_split`` names the validation folder (None: ``val/``, else ``test/``). ``max_images``: evaluate
    that many images, evenly spaced in the folder's order (training's ``--max-val-images`` selection,
    :func:`~antialiased.data.validation_sampler`; None: all of them).
    """

    root: str | os.PathLike | None
    batch_size: int = 256
    workers: int = field(default_factory=default_workers)
    crop_size: int | None = None
    max_shift: int | None = None
    strict: bool = False
    class_list: str | os.PathLike | None = None
    fast_decode: bool = False
    val_split: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    max_images: int | None = None

    def geometry(self) -> tuple[int, int]:
        """``(crop_size, max_shift)``, with the paper's 224 and 32 for settings not decided yet."""
        return (self.crop_size if self.crop_size is not None else DEFAULT_CROP,
                self.max_shift if self.max_shift is not None else DEFAULT_MAX_SHIFT)

    @property
    def resize(self) -> int:
        """The shorter side images are resized to: ``crop_size + max_shift``."""
        return sum(self.geometry())

    def settle(self, recorded: Preprocessing | None, source: str = "the weights") -> "DataSettings":
        """These settings with none left undecided: each given value, else ``recorded``'s, else the default.

        With a record, the resize is the recorded one (``max_shift`` = resize - crop) unless
        ``max_shift`` is given; a given value that differs from the record is used with a warning
        naming both (see :func:`~antialiased.data.settle_preprocessing`).

        Example:
            >>> from antialiased.data import Preprocessing
            >>> cifar = Preprocessing(crop_size=32, resize_size=37)
            >>> s = DataSettings("data").settle(cifar)
            >>> s.crop_size, s.max_shift, s.resize
            (32, 5, 37)
            >>> DataSettings("data", crop_size=64).settle(None).resize
            96
        """
        if recorded is None:
            crop, shift = self.geometry()
            chosen = Preprocessing(crop, crop + shift, *(v or d for v, d in ((self.mean, IMAGENET_MEAN),
                                                                               (self.std, IMAGENET_STD))))
        else:
            resize = None if self.max_shift is None else (self.crop_size or recorded.crop_size) + self.max_shift
            chosen = settle_preprocessing(recorded, source, crop_size=self.crop_size, resize_size=resize,
                                          mean=self.mean, std=self.std, labels=_FLAG_LABELS)
        return dataclasses.replace(self, crop_size=chosen.crop_size, max_shift=chosen.resize_size - chosen.crop_size,
                                   mean=tuple(chosen.mean), std=tuple(chosen.std))

    def validate(self) -> None:
        crop, shift = self.geometry()
        checks = [(self.batch_size < 1, f"-b/--batch-size must be >= 1, got {self.batch_size}"),
                  (self.workers < 0, f"-j/--workers must be >= 0, got {self.workers}"),
                  (crop < 1 or shift < 1, f"--crop-size and --max-shift must be positive, got {crop} and {shift}"),
                  (self.max_images is not None and self.max_images < 1,
                   f"--max-val-images must be at least 1, got {self.max_images} (leave it out for all images)")]
        for failed, message in checks:
            if failed:
                raise ConfigError(message)
        for flag, values in (("--mean", self.mean), ("--std", self.std)):
            if values is not None and (len(values) != 3 or not all(math.isfinite(v) for v in values)):
                raise ConfigError(f"{flag} takes 3 finite numbers (red, green, blue), got {list(values)}")
        if self.std is not None and min(self.std) <= 0:
            raise ConfigError(f"--std must be positive (it divides), got {list(self.std)}")


# How the evaluation's flags name the settings, for the warning when one differs from the record.
_FLAG_LABELS = {"crop size": "--crop-size", "resize size": "the resize (--crop-size + --max-shift)",
                "mean": "--mean", "std": "--std"}


def recorded_preprocessing_of(model: "ModelSource") -> tuple[Preprocessing | None, str]:
    """The preprocessing the model's weights file or checkpoint recorded (None: none, or no file), and
    the weights' name for messages; read from the file's record (``weights_info.recorded``)."""
    path = model.checkpoint or model.weights
    if not path:
        return None, model.name
    info = file_info(read_weights_file(path))
    source = f"{info.kind} {path}"
    return recorded_preprocessing(info.recorded, source), source


@dataclass(frozen=True)
class RunSettings:
    """Device, precision, seeding, progress and the distributed launch (torchrun sets the last ones)."""

    gpu: int | None = None
    amp: str | None = None
    channels_last: bool = True
    compile: bool = False
    seed: int | None = None
    progress: bool = True
    print_freq: int = 10
    dist_backend: str | None = None
    dist_url: str = "env://"
    world_size: int = -1
    rank: int = -1


@dataclass(frozen=True)
class ShiftOptions:
    """``-es``: passes over the data, offsets per batch (the paper) or per image, forward-pass size."""

    epochs: int = 5
    independent: bool = False
    forward_batch: int | None = None

    def validate(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"--epochs-shift must be >= 1, got {self.epochs}")
        if self.forward_batch is not None and self.forward_batch < 0:
            raise ConfigError(f"--forward-batch must be >= 0, got {self.forward_batch}")


@dataclass(frozen=True)
class EnsembleOptions:
    """``-ens E``: average over E random crops (logits, or softmax outputs), the center one first if asked."""

    crops: int = 0
    softmax: bool = False
    center_first: bool = False


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation run: which protocols (names of :data:`antialiased.evaluation.PROTOCOLS`) on what.

    ``cache_mb``: memory for the first pass's decoded images, reused by protocols with several
    passes. ``out_dir``: where result files go (None: write none). ``save_images``: also write
    the images each protocol feeds the model as PNG files. ``task``: ``"classification"`` or
    ``"segmentation"`` (None: the model's, see :mod:`antialiased.evaluation.tasks`); ``segmentation``:
    how segmentation models are evaluated.
    """

    model: ModelSource
    data: DataSettings
    protocols: tuple[str, ...] = ("accuracy",)
    run: RunSettings = field(default_factory=RunSettings)
    shift: ShiftOptions = field(default_factory=ShiftOptions)
    ensemble: EnsembleOptions = field(default_factory=EnsembleOptions)
    invariance: InvarianceOptions = field(default_factory=InvarianceOptions)
    cache_mb: int = 4096
    out_dir: str | os.PathLike | None = "results"
    save_images: bool = False
    task: str | None = None
    segmentation: SegmentationOptions = field(default_factory=SegmentationOptions)

    def validate(self) -> None:
        """Raise :class:`~antialiased.errors.ConfigError` for settings that cannot work, before any work.

        (Protocol names are checked against the table by :func:`antialiased.evaluation.evaluate`.)
        """
        if not self.protocols:
            raise ConfigError("no protocol to run: give at least one (e.g. -e)")
        if len(set(self.protocols)) != len(self.protocols):
            raise ConfigError(f"each protocol may run once, got {list(self.protocols)}")
        if self.cache_mb < 0:
            raise ConfigError(f"--cache-mb must be >= 0, got {self.cache_mb}")
        self.model.validate()
        self.data.validate()
        self.shift.validate()
        crop, shift = self.data.geometry()
        self.invariance.validate(shift, crop, self.protocols)

    def resolved(self) -> "EvalConfig":
        """This configuration, validated, with the data settings decided for its weights (:meth:`DataSettings.settle`):
        a checkpoint evaluates at the crop, resize and normalization of its training unless told otherwise."""
        self.validate()
        recorded, source = recorded_preprocessing_of(self.model)  # read even when all is given: to warn
        config = dataclasses.replace(self, data=self.data.settle(recorded, source))
        if recorded is not None:
            d = config.data
            log.info("preprocessing of %s: resize %d, center crop %d, mean %s, std %s (recorded by its training, "
                     "unless given)", source, d.resize, d.crop_size, list(d.mean), list(d.std))
        config.validate()
        return config
