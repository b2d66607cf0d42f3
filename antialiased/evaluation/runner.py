"""One evaluation run from an :class:`EvalConfig`: data, model, the protocols in one loop, result files.

This is what ``python main.py ... -e/-es/-ed`` and ``antialiased eval`` call after parsing their flags.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import DataLoader

from antialiased.data import ImageFolderDataset, WorkerCheckedLoader, find_val_split, uint8_transform
from antialiased.errors import ConfigError, MissingFileError
from antialiased.evaluation.config import DataSettings, EvalConfig, ModelSource
from antialiased.evaluation.loop import LoopOptions, LoopResult, run_protocols
from antialiased.evaluation.model_setup import (check_class_identity, check_model_classes, load_model, model_identity,
                                                wrap_for_devices)
from antialiased.evaluation.probe import check_classifier
from antialiased.evaluation.protocols import PROTOCOLS, ProtocolContext
from antialiased.evaluation.results import make_result, write_result
from antialiased.support.devices import resolve_amp, seed_everything, select_device
from antialiased.support.distributed import DistInfo, ShardSampler, detect_launch, init_distributed, is_main_process

__all__ = ["evaluate", "EvalReport", "ProtocolRun", "read_class_list", "evaluated_classes", "check_models_fit_data"]

log = logging.getLogger("antialiased.eval")


@dataclass
class ProtocolRun:
    """One protocol's outcome: its raw result, what is printed, and the result file (main process only)."""

    name: str
    result: dict[str, Any]
    lines: list[str]
    record: dict[str, Any] | None = None
    path: Path | None = None


@dataclass
class EvalReport:
    """Everything an evaluation run produced."""

    runs: list[ProtocolRun]
    skipped_files: list[str]
    device: torch.device
    loop: LoopResult
    identity: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> ProtocolRun:
        return next(run for run in self.runs if run.name == name)


def read_class_list(path: str | os.PathLike | None) -> list[str] | None:
    """Class folder names, one per line, in the model's output order (None: no list given).

    Raises:
        MissingFileError: no such file.
        ConfigError: the list is empty or names a class twice (two outputs cannot share a folder).
    """
    if path is None:
        return None
    file = Path(path)
    if not file.is_file():
        raise MissingFileError(f"--class-list {str(path)!r} not found (a text file, one class folder name per line)")
    names = [line.strip() for line in file.read_text().splitlines() if line.strip()]
    if not names:
        raise ConfigError(f"--class-list {str(path)!r} is empty: list the model's classes, one class folder name "
                          f"per line, in its output order")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"--class-list {str(path)!r} repeats class names: it lists "
                          f"{', '.join(map(repr, repeated[:5]))} twice; each class folder once, in the model's "
                          f"output order")
    return names


def evaluated_classes(data: DataSettings) -> tuple[list[str], Path]:
    """The classes an evaluation of ``data`` scores, in target order, and its validation folder.

    The ``--class-list`` when given (checked against the class folders), else the class folders;
    the files are listed, no image is decoded.
    """
    val_dir = find_val_split(data.root, data.val_split)
    dataset = ImageFolderDataset(val_dir, classes=read_class_list(data.class_list))
    return list(dataset.classes), val_dir


def check_models_fit_data(models: Sequence[ModelSource], data: DataSettings) -> None:
    """Refuse, before any model runs, one whose weights mean other classes than ``data``'s.

    For several evaluations in a row (the audit): :func:`evaluate` checks its own model, but only
    after the models before it ran. Models whose check cannot fail (random weights; ImageNet
    weights on class folders, which are listed in sorted order) are not loaded here.

    Raises:
        DataError: see :func:`~antialiased.evaluation.model_setup.check_class_identity`.
    """
    chosen = [m for m in models if m.weights or m.checkpoint or (m.pretrained and data.class_list is not None)]
    if not chosen:
        return
    classes, val_dir = evaluated_classes(data)
    for source in chosen:
        model = load_model(source, len(classes))
        check_class_identity(getattr(model, "weights_info", None), classes, where=str(val_dir),
                             class_list=data.class_list)
        del model


def _decode_size(config: EvalConfig, scorers) -> int:
    size = max(s.input_size or config.data.crop_size for s in scorers)
    centered = any(getattr(s, "centered", s.name == "accuracy") for s in scorers)
    if centered and size > config.data.crop_size and (size - config.data.crop_size) % 2:
        raise ConfigError(f"center crops (-e, -ec, -ef, -ea, -eq) with the other shift protocols need an even "
                          f"--max-shift (the center crop of the "
                          f"{size} image must equal Resize + CenterCrop({config.data.crop_size})), got "
                          f"{config.data.max_shift}")
    return size


def _dataset(config: EvalConfig, decode: int) -> tuple[ImageFolderDataset, Path]:
    data = config.data
    val_dir = find_val_split(data.root, data.val_split)
    resize = data.crop_size + data.max_shift
    dataset = ImageFolderDataset(val_dir, transform=uint8_transform(resize, decode), strict=data.strict,
                                 classes=read_class_list(data.class_list), return_index=True,
                                 draft=resize if data.fast_decode else None, placeholder_size=(resize, resize))
    return dataset, val_dir


def _loader(dataset: ImageFolderDataset, config: EvalConfig, device: torch.device, dist: DistInfo) -> DataLoader:
    # Under a distributed launch each rank takes every world_size-th image: no padding, no image twice.
    sampler = ShardSampler(dataset, rank=dist.rank, world_size=dist.world_size) if dist.distributed else None
    return WorkerCheckedLoader(dataset, batch_size=config.data.batch_size, shuffle=False, sampler=sampler,
                               num_workers=config.data.workers, pin_memory=device.type == "cuda")


def _start(config: EvalConfig) -> tuple[torch.device, bool, DistInfo]:
    """Join the process group of a distributed launch, pick the device, seed."""
    run = config.run
    dist = init_distributed(detect_launch(world_size=run.world_size, rank=run.rank), backend=run.dist_backend,
                            init_method=run.dist_url)
    device, data_parallel = select_device(run.gpu, distributed=dist.distributed, local_rank=dist.local_rank)
    seed_everything(run.seed)  # the same on every rank: a random model must be the same model everywhere
    return device, data_parallel, dist


def _settings(config: EvalConfig, decode: int, amp: str | None) -> dict[str, Any]:
    data = config.data
    return {"batch_size": data.batch_size, "crop_size": data.crop_size, "max_shift": data.max_shift,
            "resize": data.crop_size + data.max_shift, "decode_size": decode, "workers": data.workers,
            "fast_decode": data.fast_decode, "channels_last": config.run.channels_last, "amp": amp,
            "class_list": None if data.class_list is None else str(data.class_list)}


def evaluate(config: EvalConfig) -> EvalReport:
    """Run the protocols of ``config`` on its model and data, sharing one decode of every image.

    Writes one result file per protocol into ``config.out_dir`` (on the main process; never over an
    existing file). Raises the package's errors (:mod:`antialiased.errors`) with the fix in the message.
    """
    config = config.resolved()  # validated; crop, resize and normalization decided for the weights
    unknown = [p for p in config.protocols if p not in PROTOCOLS]
    if unknown:
        raise ConfigError(f"unknown protocol(s) {unknown}; choose from {', '.join(PROTOCOLS)}")
    device, data_parallel, dist = _start(config)
    out_dir = None if config.out_dir is None else Path(config.out_dir)
    ctx = ProtocolContext(config, device, out_dir, config.model.name, write_files=is_main_process())
    scorers = [PROTOCOLS[name].build(ctx) for name in config.protocols]
    decode = _decode_size(config, scorers)
    dataset, val_dir = _dataset(config, decode)
    model = load_model(config.model, len(dataset.classes))
    # weights trained on other classes (or ImageNet's in another order) would be scored without complaint
    check_class_identity(getattr(model, "weights_info", None), dataset.classes, where=str(val_dir),
                         class_list=config.data.class_list)
    identity = model_identity(model)
    model = wrap_for_devices(model, device, data_parallel=data_parallel, channels_last=config.run.channels_last,
                             compile_model=config.run.compile)
    check_classifier(model, config.data.crop_size, device)
    check_model_classes(model, len(dataset.classes), config.data.crop_size, device, str(val_dir),
                        class_list=config.data.class_list)
    amp_dtype, _ = resolve_amp(config.run.amp, device)
    log.info("evaluating %s (%s) on %s: %d images, %d classes, device %s", config.model.name, identity["weights"], val_dir,
             len(dataset), len(dataset.classes), device)
    options = LoopOptions(amp_dtype=amp_dtype, channels_last=config.run.channels_last,
                          progress=config.run.progress, print_freq=config.run.print_freq,
                          cache_bytes=config.cache_mb << 20)
    loop = run_protocols(model, _loader(dataset, config, device, dist), device, scorers, options)
    ctx.units, ctx.cached = loop.units, loop.cached
    return _report(config, ctx, loop, dataset, val_dir, identity, _settings(config, decode, config.run.amp))


def _report(config: EvalConfig, ctx: ProtocolContext, loop: LoopResult, dataset: ImageFolderDataset,
            val_dir: Path, identity: dict[str, Any], settings: dict[str, Any]) -> EvalReport:
    reasons = dataset.skip_report(loop.skipped_indices)  # {path: why}: scan-time skips and unreadable images
    skipped = sorted(reasons)
    runs = []
    for name in config.protocols:
        out = loop.results[name]
        shown = PROTOCOLS[name].report(out, ctx)
        run = ProtocolRun(name, out, shown.lines)
        if ctx.write_files:
            run.record = make_result(**identity, protocol=name, dataset=str(val_dir.resolve()), seed=config.run.seed,
                                     device=str(ctx.device), metrics=shown.metrics,
                                     counts={"images": loop.count, "skipped": len(skipped)}, skipped_files=skipped,
                                     settings={**settings, **shown.settings}, classes=list(dataset.classes),
                                     skip_reasons=reasons)
            if ctx.out_dir is not None:
                run.path = write_result(run.record, ctx.out_dir)
        runs.append(run)
    return EvalReport(runs, skipped, ctx.device, loop, identity)
