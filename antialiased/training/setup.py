"""Everything a training process builds before its first epoch, gathered in a :class:`Session`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from antialiased.errors import ConfigError
from antialiased.support import distributed as dist_utils
from antialiased.support.devices import resolve_amp, seed_everything, select_device
from antialiased.training.checkpoint import check_classes, find_resumable, load_for_resume
from antialiased.training.config import RESUME_AUTO, TrainConfig
from antialiased.training.data import SkippedFiles, TrainData
from antialiased.training.engine import EpochStart, SkipVote, min_train_batch
from antialiased.training.metrics_log import LOG_NAME, read_log
from antialiased.training.model_setup import wrap_model
from antialiased.training.optim import build_optimizer
from antialiased.training.recovery import epoch_start_from, new_data_seed
from antialiased.training.resume import Resumed, restore
from antialiased.training.schedules import build_schedule
from antialiased.training.task import TrainingTask
from antialiased.training.tasks import TRAINING_TASKS, training_task

__all__ = ["Session", "build_session", "build_criterion", "log"]


def log(*parts: Any) -> None:
    """Print on rank 0 only."""
    if dist_utils.is_main_process():
        print(*parts, flush=True)


def build_criterion() -> nn.Module:
    """The paper's loss (unreadable images never reach it: the loop takes them out first)."""
    return nn.CrossEntropyLoss()


@dataclass
class Session:
    """Everything one training process carries from epoch to epoch."""
    model: nn.Module  # possibly wrapped (DDP / DataParallel) and compiled
    model_without_ddp: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    data: TrainData
    device: torch.device
    amp_dtype: torch.dtype | None
    generator: torch.Generator
    out_dir: Path
    num_classes: int
    eval_model: nn.Module  # the model validation runs (no DDP: shards may differ in size)
    skip_vote: SkipVote
    start_epoch: int = 0
    best_acc1: float = 0.0  # the best validation figure of the task's metric: acc@1, or mIoU for segmentation
    history: list[dict[str, Any]] | None = None  # log.jsonl's records before the first epoch of this call
    logger: Any = None  # EpochLogger, on rank 0
    skipped: SkippedFiles | None = None  # on rank 0
    data_seed: int = 0  # the seed of the training order (see antialiased.training.sampling)
    epoch_start: EpochStart | None = None  # where the first epoch resumes, from a mid-epoch recovery checkpoint
    task: TrainingTask = field(default_factory=lambda: TRAINING_TASKS["classification"])  # data, loss, validation


def _checkpoint_to_resume(cfg: TrainConfig, rank: int) -> tuple[str, dict[str, Any]] | None:
    """``(source, checkpoint)`` for ``cfg.resume``; with 'auto' rank 0 chooses and the others follow."""
    if not cfg.resume:
        return None
    if cfg.resume != RESUME_AUTO:
        return cfg.resume, load_for_resume(cfg.resume)
    found = find_resumable(cfg.out_dir) if rank == 0 else None
    chosen = dist_utils.all_gather_object(str(found[0]) if found else None)[0]
    if chosen is None:
        log(f"=> --resume auto: no checkpoint in {cfg.out_dir} yet; starting a new run")
        return None
    return chosen, (found[1] if found else load_for_resume(chosen))


def _check_batch(cfg: TrainConfig, model: nn.Module) -> None:
    needed = min_train_batch(model.train())
    if cfg.data.batch_size < needed:
        raise ConfigError(f"-b {cfg.data.batch_size}: {cfg.model.arch} has batch norm, which needs at least "
                          f"{needed} images per batch and process in training; pass -b {needed} or more "
                          f"(-ba N accumulates N batches into one step if memory is short)")


def _resume(cfg: TrainConfig, info: dist_utils.DistInfo, data: TrainData, model: nn.Module,
            optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any, generator: torch.Generator,
            task: TrainingTask) -> Resumed:
    source = _checkpoint_to_resume(cfg, info.rank)
    if source is None:
        history = read_log(Path(cfg.out_dir) / LOG_NAME, up_to_epoch=cfg.optim.start_epoch) if cfg.model.weights \
            else []
        return Resumed(cfg.optim.start_epoch, 0.0, scheduler, history)
    path, checkpoint = source
    check_classes(checkpoint, data.classes, path, str(cfg.data.root))
    resumed = restore(checkpoint, path, arch=cfg.model.arch, model=model, optimizer=optimizer, scheduler=scheduler,
                      scaler=scaler, generator=generator, rank=info.rank, optim=cfg.optim, best_key=task.best_key,
                      best_label=task.metric_label)
    if resumed.history is None:  # a checkpoint from before logs travelled inside: cut the file back
        resumed.history = read_log(Path(cfg.out_dir) / LOG_NAME, up_to_epoch=resumed.start_epoch)
    for note in resumed.notes:
        log(f"=> {note}")
    return resumed


def _training_order(cfg: TrainConfig, info: dist_utils.DistInfo, data: TrainData,
                    resumed: Resumed) -> tuple[int, EpochStart | None]:
    """The run's data seed (recorded, else --seed, else new), set on the sampler, and where the first epoch
    resumes when the checkpoint is a mid-epoch recovery one."""
    seed = resumed.data_seed if resumed.data_seed is not None else new_data_seed(cfg)
    data.train_sampler.seed = seed
    if not resumed.mid_epoch:
        return seed, None
    batches = len(data.train_loader)
    if cfg.optim.max_train_iters is not None:
        batches = min(batches, cfg.optim.max_train_iters)
    return seed, epoch_start_from(resumed.mid_epoch, str(resumed.source), cfg=cfg, rank=info.rank, batches=batches,
                                  images=len(data.train_loader.dataset))


def _epochs_left(start: int, epochs: int) -> str:
    return f"epochs {start + 1}..{epochs}" if start < epochs else f"{start} of {epochs} epochs already done"


def _amp_name(dtype: torch.dtype | None) -> str:
    return {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def build_session(cfg: TrainConfig, info: dist_utils.DistInfo) -> Session:
    """Data, model, optimizer, schedule and the resumed state for this process."""
    device, data_parallel = select_device(cfg.launch.gpu, distributed=info.distributed, local_rank=info.local_rank)
    amp_dtype, scaler = resolve_amp(cfg.amp, device)
    seed_everything(cfg.seed, info.rank)
    generator = torch.Generator()
    generator.manual_seed(cfg.seed + info.rank if cfg.seed is not None else generator.seed())

    task = training_task(cfg)
    data = task.load_data(cfg.data, distributed=info.distributed, generator=generator,
                          pin_memory=device.type == "cuda", seed=cfg.seed)
    model, num_classes = task.build_model(cfg, data, device)
    _check_batch(cfg, model)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    wrapped = wrap_model(model, device, distributed=info.distributed, data_parallel=data_parallel)
    optim = cfg.optim
    optimizer = build_optimizer(model, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
    scheduler = build_schedule(optimizer, optim, len(data.train_loader))
    resumed = _resume(cfg, info, data, model, optimizer, scheduler, scaler, generator, task)
    data_seed, epoch_start = _training_order(cfg, info, data, resumed)
    # Under DDP validation runs the unwrapped model (weights equal on every rank, buffers broadcast
    # before each validation) on unpadded shards: no per-batch collectives, no image counted twice.
    eval_model = model if info.distributed else wrapped
    if cfg.compile:
        wrapped = torch.compile(wrapped)
        eval_model = wrapped if eval_model is not model else torch.compile(model)
    log(f"=> training {cfg.model.arch} on {device} ({info.source}, world size {info.world_size}"
        f"{', DataParallel' if data_parallel else ''}): {len(data.train_loader.dataset)} train / "
        f"{len(data.val_loader.dataset)} val images, {len(data.classes)} classes; batch {cfg.data.batch_size} x "
        f"{optim.batch_accum} accumulated x {info.world_size} process(es); amp {_amp_name(amp_dtype)}; "
        f"{_epochs_left(resumed.start_epoch, optim.epochs)}")
    criterion = task.criterion(model)
    return Session(wrapped, model, criterion if criterion is not None else build_criterion(), optimizer,
                   resumed.scheduler, scaler, data, device, amp_dtype, generator, Path(cfg.out_dir).expanduser(),
                   num_classes, eval_model, SkipVote(), resumed.start_epoch, resumed.best_acc1, resumed.history,
                   data_seed=data_seed, epoch_start=epoch_start, task=task)
