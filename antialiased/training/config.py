"""What a training run needs to know, as typed records (the command line builds them from its flags).

:class:`TrainConfig` gathers four groups that travel together, :class:`DataConfig`,
:class:`ModelConfig`, :class:`OptimConfig` and :class:`LaunchConfig`, plus the run's own settings
(output folder, resume, precision, logging). :func:`check_config` refuses values that cannot work
before any data is read, with the flag to change in the message.

Example:
    >>> cfg = TrainConfig(data=DataConfig("data/cifar10", crop_size=32), out_dir="runs/c10",
    ...                   model=ModelConfig("resnet18_lpf4"), optim=OptimConfig(lr=0.05, epochs=30))
    >>> check_config(cfg)
    >>> check_config(TrainConfig(data=DataConfig("d"), out_dir="o", optim=OptimConfig(lr=float("nan"))))
    Traceback (most recent call last):
    ...
    antialiased.errors.ConfigError: --lr must be a positive finite number, got nan
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

from antialiased.data import IMAGENET_MEAN, IMAGENET_STD, default_workers
from antialiased.errors import ConfigError
from antialiased.evaluation.tasks import infer_task
from antialiased.models import get_model_spec

__all__ = ["DataConfig", "ModelConfig", "OptimConfig", "LaunchConfig", "TrainConfig", "check_config",
           "RESUME_AUTO", "SCHEDULES"]

RESUME_AUTO = "auto"  # --resume auto: the newest loadable checkpoint in out_dir, or a fresh start
SCHEDULES = ("step", "cosine", "poly")  # poly: per optimizer step (antialiased.training.schedules)
AMP_MODES = (None, "auto", "bf16", "fp16")
CHECKPOINT_EVERY_MINUTES = 30.0  # default: a kill on ImageNet costs at most about this much work


@dataclass
class DataConfig:
    """The dataset folder (``root/train/<class>/*``, ``root/val/<class>/*`` or ``root/test/<class>/*``) and
    how it is read. Validation resizes to :func:`~antialiased.data.resize_for_crop` (the paper's 256 for 224)
    and center-crops ``crop_size``; checkpoints record these settings with ``mean``/``std``."""
    root: str | os.PathLike
    crop_size: int = 224
    batch_size: int = 256  # per process under DDP
    workers: int = field(default_factory=default_workers)  # the paper's 4, at most the CPUs available
    augment: bool = True  # RandomResizedCrop + flip; False: resize + center crop
    strict: bool = False  # stop at the first unreadable image instead of skipping it
    val_split: str | None = None  # the validation folder's name; None: val/, else test/
    max_val_images: int | None = None  # validate on this many images, evenly spaced; None: all
    mean: tuple[float, ...] = IMAGENET_MEAN  # normalization of training and validation inputs
    std: tuple[float, ...] = IMAGENET_STD
    seg_size: int = 520  # segmentation: validation's shorter side, and the base of training's random scale


@dataclass
class ModelConfig:
    """The architecture and where its starting weights come from (at most one source)."""
    arch: str = "resnet18"
    pretrained: bool = False  # the published ImageNet weights
    force_nonfinetuned: bool = False
    weights: str | None = None  # a local weights file or checkpoint
    finetune: bool = False  # the torchvision baseline's weights (the paper's fine-tuning)
    baseline_weights: str | None = None  # with finetune: a local file instead of the download
    num_classes: int | None = None  # default: the number of class folders
    aa_method: str | None = None  # anti-aliasing method of an _lpfN name (None: blurpool, the paper's)
    aa_options: dict | None = None  # its antialias() options (--aa-option KEY=VALUE; the method's own too)


@dataclass
class OptimConfig:
    """SGD, the learning-rate schedule and how long to train."""
    epochs: int = 90
    start_epoch: int = 0
    lr: float = 0.1
    schedule: str = "step"  # or "cosine"
    lr_step: int = 30  # step schedule: x0.1 every lr_step epochs
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_accum: int = 1
    max_train_iters: int | None = None  # stop each epoch after this many batches


@dataclass
class LaunchConfig:
    """Devices and processes. torchrun and SLURM set rank and world size through the environment."""
    gpu: int | None = None
    world_size: int = -1  # the paper's --world-size: nodes with spawn_per_gpu, else processes
    rank: int = -1
    dist_url: str = "env://"
    dist_backend: str | None = None
    spawn_per_gpu: bool = False  # --multiprocessing-distributed: one process per GPU of this node


@dataclass
class TrainConfig:
    """One training run. ``resume`` is a checkpoint path, :data:`RESUME_AUTO` or None."""
    data: DataConfig
    out_dir: str | os.PathLike
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    resume: str | None = None
    task: str | None = None  # "classification" or "segmentation"; None: the model's (antialiased.training.tasks)
    save_weights: str | None = None  # after training, export model_best's weights here
    seed: int | None = None
    amp: str | None = None
    channels_last: bool = False
    compile: bool = False
    tensorboard: bool = False
    print_freq: int = 10
    progress: bool = True
    # Mid-epoch recovery checkpoints (see antialiased.training.recovery): every this many minutes of an
    # epoch (0: never) and/or every this many batches (0: never).
    checkpoint_every: float = CHECKPOINT_EVERY_MINUTES
    checkpoint_every_steps: int = 0

    def record(self) -> dict[str, Any]:
        """The configuration as plain values (for checkpoints loadable with ``weights_only=True``)."""
        def plain(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, os.PathLike):
                return os.fspath(value)
            return value
        return plain(dataclasses.asdict(self))


def _check_counts(cfg: TrainConfig) -> None:
    at_least_one = {"-ep/--epochs": cfg.optim.epochs, "-b/--batch-size": cfg.data.batch_size,
                    "-ba/--batch-accum": cfg.optim.batch_accum, "--lr_step": cfg.optim.lr_step,
                    "-p/--print-freq": cfg.print_freq, "--crop-size": cfg.data.crop_size,
                    "--seg-size": cfg.data.seg_size}
    if cfg.optim.max_train_iters is not None:
        at_least_one["-mti/--max-train-iters"] = cfg.optim.max_train_iters
    if cfg.data.max_val_images is not None:
        at_least_one["--max-val-images"] = cfg.data.max_val_images
    if cfg.model.num_classes is not None:
        at_least_one["--num-classes"] = cfg.model.num_classes
    for flag, value in at_least_one.items():
        if value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}")
    if cfg.data.workers < 0:
        raise ConfigError(f"-j/--workers must be >= 0, got {cfg.data.workers}")
    if cfg.optim.start_epoch < 0:
        raise ConfigError(f"--start-epoch must be >= 0, got {cfg.optim.start_epoch}")


def _check_numbers(optim: OptimConfig) -> None:
    if not (math.isfinite(optim.lr) and optim.lr > 0):
        raise ConfigError(f"--lr must be a positive finite number, got {optim.lr}")
    for flag, value in (("--momentum", optim.momentum), ("--wd/--weight-decay", optim.weight_decay)):
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{flag} must be a finite number >= 0, got {value}")
    if optim.schedule not in SCHEDULES:
        raise ConfigError(f"unknown learning-rate schedule {optim.schedule!r}; choose from {', '.join(SCHEDULES)}")


def _check_normalization(data: DataConfig) -> None:
    for flag, values in (("--mean", data.mean), ("--std", data.std)):
        if len(values) != 3 or not all(math.isfinite(v) for v in values):
            raise ConfigError(f"{flag} takes 3 finite numbers (red, green, blue), got {list(values)}")
    if min(data.std) <= 0:
        raise ConfigError(f"--std must be positive (it divides), got {list(data.std)}")


def _check_model(model: ModelConfig) -> None:
    # an unknown name fails first, with the closest names
    get_model_spec(model.arch, method=model.aa_method, options=model.aa_options)
    sources = [flag for flag, on in (("--pretrained", model.pretrained), ("--finetune", model.finetune),
                                     ("--weights", model.weights)) if on]
    if len(sources) > 1:
        raise ConfigError(f"{' and '.join(sources)} each choose the starting weights; pass only one")
    if model.baseline_weights and not model.finetune:
        raise ConfigError("--baseline-weights is the torchvision file for --finetune; add --finetune")


def check_config(cfg: TrainConfig) -> None:
    """Refuse impossible values and combinations before any work starts (:class:`ConfigError`)."""
    _check_counts(cfg)
    _check_numbers(cfg.optim)
    _check_normalization(cfg.data)
    _check_model(cfg.model)
    infer_task(cfg.task, get_model_spec(cfg.model.arch))  # a classifier with --task segmentation, before any data
    if cfg.amp not in AMP_MODES:
        raise ConfigError(f"--amp must be one of auto, bf16, fp16; got {cfg.amp!r}")
    if not cfg.out_dir:
        raise ConfigError("training needs --out-dir DIR (checkpoints, model_best.pth.tar and log.jsonl are "
                          f"written there), e.g. --out-dir runs/{cfg.model.arch}")
    if not cfg.data.root:
        raise ConfigError("training needs --data DIR (DIR/train/<class>/* and DIR/val/<class>/* or DIR/test/<class>/*)")
    if cfg.launch.spawn_per_gpu and "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        raise ConfigError("--multiprocessing-distributed starts its own processes; under torchrun leave it out")
