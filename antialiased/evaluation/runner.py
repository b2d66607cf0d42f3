"""One evaluation run from an :class:`EvalConfig`: data, model, the protocols in one loop, result files.

This is what ``python main.py ... -e/-es/-ed`` and ``antialiased eval`` call after parsing their flags.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from antialiased.data import ImageFolderDataset, WorkerCheckedLoader, evenly_spaced, find_val_split, validation_sampler
from antialiased.errors import ConfigError
from antialiased.evaluation.classification import read_class_list
from antialiased.evaluation.config import DataSettings, EvalConfig, ModelSource
from antialiased.evaluation.loop import LoopOptions, LoopResult, run_protocols
from antialiased.evaluation.model_setup import (check_class_identity, load_model, model_spec, result_identity,
                                                wrap_for_devices)
from antialiased.evaluation.protocols import PROTOCOLS, ProtocolContext, resolve_protocols
from antialiased.evaluation.results import make_result, write_result
from antialiased.evaluation.task import Task, TaskData
from antialiased.evaluation.tasks import infer_task
from antialiased.support.devices import resolve_amp, seed_everything, select_device
from antialiased.support.distributed import DistInfo, detect_launch, init_distributed, is_main_process

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
        """The run of protocol ``name``, or of the run's task's registration of the same flag
        (``report["accuracy"]`` of a segmentation run is its ``segmentation_accuracy``)."""
        flag = PROTOCOLS[name].flag if name in PROTOCOLS else None
        for run in self.runs:
            if run.name == name or (flag is not None and PROTOCOLS[run.name].flag == flag):
                return run
        raise KeyError(f"no {name!r} in this report: it ran {[run.name for run in self.runs]}")


def evaluated_classes(data: DataSettings) -> tuple[list[str], Path]:
    """The classes an evaluation of ``data`` scores, in target order, and its validation folder.

    The ``--class-list`` when given (checked against the class folders), else the class folders;
    the files are listed, no image is decoded.
    """
    val_dir = find_val_split(data.root, data.val_split)
    dataset = ImageFolderDataset(val_dir, classes=read_class_list(data.class_list))
    return list(dataset.classes), val_dir


def check_models_fit_data(models: Sequence[ModelSource], data: DataSettings, task: str = "classification") -> None:
    """Refuse, before any model runs, one whose weights mean other classes than ``data``'s.

    For several evaluations in a row (the audit): :func:`evaluate` checks its own model, but only
    after the models before it ran. Models whose check cannot fail (random weights; ImageNet
    weights on class folders, which are listed in sorted order) are not loaded here. Class folders
    are classification's: segmentation models are checked against their data by each evaluation.

    Raises:
        DataError: see :func:`~antialiased.evaluation.model_setup.check_class_identity`.
    """
    chosen = [m for m in models if m.weights or m.checkpoint or (m.pretrained and data.class_list is not None)]
    if not chosen or task != "classification":
        return
    classes, val_dir = evaluated_classes(data)
    for source in chosen:
        model = load_model(source, len(classes))
        check_class_identity(getattr(model, "weights_info", None), classes, where=str(val_dir),
                             class_list=data.class_list)
        del model


def _loader(data: TaskData, config: EvalConfig, device: torch.device, dist: DistInfo) -> DataLoader:
    # All images or --max-val-images of them (training's selection); under a distributed launch each rank
    # takes every world_size-th of them: no padding, no image twice.
    dataset = data.dataset
    shard = {"rank": dist.rank, "world_size": dist.world_size} if dist.distributed else {}
    sampler = validation_sampler(len(dataset), config.data.max_images, **shard)
    # WorkerCheckedLoader: a -j above the CPUs is said once, in one line of ours (not PyTorch's warning, twice)
    return WorkerCheckedLoader(dataset, batch_size=data.loader_batch or config.data.batch_size, shuffle=False,
                               sampler=sampler, num_workers=config.data.workers, pin_memory=device.type == "cuda")


def _start(config: EvalConfig) -> tuple[torch.device, bool, DistInfo]:
    """Join the process group of a distributed launch, pick the device, seed."""
    run = config.run
    dist = init_distributed(detect_launch(world_size=run.world_size, rank=run.rank), backend=run.dist_backend,
                            init_method=run.dist_url)
    device, data_parallel = select_device(run.gpu, distributed=dist.distributed, local_rank=dist.local_rank)
    seed_everything(run.seed)  # the same on every rank: a random model must be the same model everywhere
    return device, data_parallel, dist


def _image_count(config: EvalConfig, data: TaskData) -> tuple[int, int]:
    """``(evaluated, in the folder)``: --max-val-images of the folder's images, or all of them."""
    total = len(data.dataset)
    picked = evenly_spaced(total, config.data.max_images)
    return (total if picked is None else len(picked)), total


def _settings(config: EvalConfig, data: TaskData, task: Task) -> dict[str, Any]:
    evaluated, total = _image_count(config, data)
    common = {"workers": config.data.workers, "fast_decode": config.data.fast_decode,
              # a result on a subset is never read as the whole folder's
              "max_val_images": config.data.max_images, "selected_images": evaluated, "folder_images": total,
              "mean": None if config.data.mean is None else list(config.data.mean),
              "std": None if config.data.std is None else list(config.data.std),
              "channels_last": config.run.channels_last, "amp": config.run.amp,
              "class_list": None if config.data.class_list is None else str(config.data.class_list)}
    return {**task.settings(config, data), **common}


def _identity(model: nn.Module, name: str) -> dict[str, Any]:
    """What result files record about the model; a model object without records is named by ``name``."""
    if hasattr(model, "model_spec") and hasattr(model, "weights_info"):
        return result_identity(model)
    spec = getattr(model, "model_spec", None)
    return {"model": name, "arch": getattr(spec, "arch", type(model).__name__),
            "filter_size": getattr(spec, "filter_size", None), "weights": "python:object"}


@dataclass(frozen=True)
class _GivenModel(ModelSource):
    """The label of a model object passed to :func:`evaluate`: no name to resolve, no weights to load."""

    def validate(self) -> None:
        if self.pretrained or self.weights or self.checkpoint:
            raise ConfigError(f"evaluate(config, model=...) evaluates the model object as it is: leave pretrained, "
                              f"weights and checkpoint of config.model ({self.name!r}) unset")


def _device_of(model: nn.Module | None) -> torch.device:
    first = next(model.parameters(), None) if model is not None else None
    return first.device if first is not None else torch.device("cpu")


def evaluate(config: EvalConfig, model: nn.Module | None = None) -> EvalReport:
    """Run the protocols of ``config`` on its model and data, sharing one decode of every image.

    ``model``: evaluate this model object (as it is: its weights, its classes) instead of building
    ``config.model``, whose name then labels the results. The task (classification or
    segmentation) is ``config.task``, else the model's (see :func:`~antialiased.evaluation.tasks.infer_task`);
    the protocol names of ``config`` are taken to that task's registrations (``accuracy`` is
    ``segmentation_accuracy`` for a segmentation model).

    Writes one result file per protocol into ``config.out_dir`` (on the main process; never over an
    existing file). Raises the package's errors (:mod:`antialiased.errors`) with the fix in the message,
    every check of names, settings, data layout and model kind before any image is read.
    """
    if model is not None:  # config.model only names it
        source = config.model
        fields = {f.name: getattr(source, f.name) for f in dataclasses.fields(source)}
        config = dataclasses.replace(config, model=_GivenModel(**fields))
    config = config.resolved()  # validated; the data settings decided for the weights (a checkpoint's record)
    spec = getattr(model, "model_spec", None) if model is not None else model_spec(config.model)
    task = infer_task(config.task, spec, model, _device_of(model))
    names = resolve_protocols(config.protocols, task.name)
    device, data_parallel, dist = _start(config)
    out_dir = None if config.out_dir is None else Path(config.out_dir)
    ctx = ProtocolContext(config, device, out_dir, config.model.name, write_files=is_main_process(), task=task.name)
    scorers = [PROTOCOLS[name].build(ctx) for name in names]
    data = task.open_data(config, scorers)
    if model is None:  # sized by the data's classes when random; data naming none (masks): the model's default
        model = load_model(config.model, None if data.classes is None else len(data.classes))
    identity = _identity(model, config.model.name)
    model = wrap_for_devices(model, device, data_parallel=data_parallel, channels_last=config.run.channels_last,
                             compile_model=config.run.compile)
    task.fit_model(model, data, config, device)
    ctx.classes = data.classes
    amp_dtype, _ = resolve_amp(config.run.amp, device)
    evaluated, total = _image_count(config, data)
    count = (f"{evaluated} of {total} images (--max-val-images, evenly spaced)" if evaluated < total
             else f"{total} images")
    log.info("evaluating %s (%s, %s) on %s: %s, %d classes, device %s", identity["model"], identity["weights"],
             task.name, data.where, count, len(data.classes or ()), device)
    options = LoopOptions(amp_dtype=amp_dtype, channels_last=config.run.channels_last,
                          progress=config.run.progress, print_freq=config.run.print_freq,
                          cache_bytes=config.cache_mb << 20, mean=config.data.mean, std=config.data.std)
    loop = run_protocols(model, _loader(data, config, device, dist), device, scorers, options, task)
    ctx.units, ctx.cached = loop.units, loop.cached
    return _report(config, ctx, loop, data, names, identity, _settings(config, data, task))


def _report(config: EvalConfig, ctx: ProtocolContext, loop: LoopResult, data: TaskData, names: Sequence[str],
            identity: dict[str, Any], settings: dict[str, Any]) -> EvalReport:
    reasons = data.dataset.skip_report(loop.skipped_indices)  # {path: why}: scan-time skips and unreadable files
    skipped = sorted(reasons)
    for path in skipped[:3]:
        log.warning("skipped %s: %s", path, reasons[path])
    runs = []
    for name in names:
        out = loop.results[name]
        shown = PROTOCOLS[name].report(out, ctx)
        run = ProtocolRun(name, out, shown.lines)
        if ctx.write_files:
            run.record = make_result(**identity, protocol=name, dataset=str(Path(data.where).resolve()),
                                     seed=config.run.seed, device=str(ctx.device), metrics=shown.metrics,
                                     counts={"images": loop.count, "skipped": len(skipped)}, skipped_files=skipped,
                                     settings={**settings, **shown.settings}, classes=data.classes,
                                     skip_reasons=reasons, task=ctx.task)
            if ctx.out_dir is not None:
                run.path = write_result(run.record, ctx.out_dir)
        runs.append(run)
    return EvalReport(runs, skipped, ctx.device, loop, identity)
