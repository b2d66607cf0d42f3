"""What an evaluation run needs, as typed settings: the model, the data, the device, the protocols.

The command line builds an :class:`EvalConfig` from its flags; Python code builds one directly:

Example:
    >>> cfg = EvalConfig(model=ModelSource("resnet18_lpf4", pretrained=True), data=DataSettings("ILSVRC2012"),
    ...                  protocols=("accuracy", "shift_consistency"))
    >>> cfg.validate()
    >>> cfg.data.crop_size + cfg.data.max_shift
    256
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from antialiased.errors import ConfigError
from antialiased.evaluation.invariance import InvarianceOptions
from antialiased.evaluation.segmentation_settings import SegmentationOptions

__all__ = ["ModelSource", "DataSettings", "RunSettings", "ShiftOptions", "EnsembleOptions", "EvalConfig"]


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
    """

    name: str
    pretrained: bool = False
    force_nonfinetuned: bool = False
    weights: str | os.PathLike | None = None
    checkpoint: str | os.PathLike | None = None
    aa_method: str | None = None

    def validate(self) -> None:
        if sum([bool(self.pretrained), bool(self.weights), bool(self.checkpoint)]) > 1:
            raise ConfigError("give only one of --pretrained, --weights PATH and --resume PATH")


@dataclass(frozen=True)
class DataSettings:
    """The validation images: where, how they are read and batched, and the crop geometry.

    Images are resized to ``crop_size + max_shift`` (256) on the shorter side and center-cropped
    to the largest view a protocol needs (224 for accuracy alone, 256 for the shift protocols).
    """

    root: str | os.PathLike | None
    batch_size: int = 256
    workers: int = 4
    crop_size: int = 224
    max_shift: int = 32
    strict: bool = False
    class_list: str | os.PathLike | None = None
    fast_decode: bool = False

    def validate(self) -> None:
        checks = [(self.batch_size < 1, f"-b/--batch-size must be >= 1, got {self.batch_size}"),
                  (self.workers < 0, f"-j/--workers must be >= 0, got {self.workers}"),
                  (self.crop_size < 1 or self.max_shift < 1,
                   f"--crop-size and --max-shift must be positive, got {self.crop_size} and {self.max_shift}")]
        for failed, message in checks:
            if failed:
                raise ConfigError(message)


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
        self.invariance.validate(self.data.max_shift, self.data.crop_size, self.protocols)
