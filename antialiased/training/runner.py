"""Training as the paper's ``main.py`` does it, organised like torchvision's reference script.

:func:`train` is the entry point: it checks the configuration and the output folder, then runs
:func:`train_worker` once, or once per GPU for ``LaunchConfig.spawn_per_gpu``. ``train_worker``
joins the process group (torchrun, SLURM or explicit ranks), builds data, model, optimizer and
schedule, resumes if asked, and runs ``train_one_epoch`` + ``evaluate`` per epoch, writing
checkpoints, ``log.jsonl`` and ``skipped_images.json`` from rank 0 only.

Example (a sketch; see :mod:`antialiased.training.config` for every field)::

    from antialiased.training import DataConfig, ModelConfig, OptimConfig, TrainConfig, train
    summary = train(TrainConfig(data=DataConfig("cifar10", crop_size=32), out_dir="runs/c10",
                                model=ModelConfig("resnet18_lpf4"), optim=OptimConfig(lr=0.05, epochs=30),
                                resume="auto"))
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from antialiased.errors import OutputError
from antialiased.support import distributed as dist_utils
from antialiased.support.checkpoints import remove_stale_temporaries
from antialiased.training.checkpoint import refuse_other_run
from antialiased.training.config import TrainConfig, check_config
from antialiased.training.epoch import export_best, run_epoch
from antialiased.training.launch import is_rank_zero_launch, spawn_per_gpu
from antialiased.training.metrics_log import LOG_NAME, EpochLogger, read_log, require_tensorboard
from antialiased.training.recovery import check_recovery_config
from antialiased.training.setup import build_session

__all__ = ["train", "train_worker", "prepare_out_dir", "TrainSummary"]


@dataclass
class TrainSummary:
    """What a finished run did (read from its log, so that the spawning parent knows it too)."""
    out_dir: Path
    epochs_done: int  # epochs completed in total, earlier runs included
    epochs_trained: int  # epochs this call trained
    best_acc1: float | None
    last: dict[str, Any] | None  # the last epoch's log record
    best_miou: float | None = None  # segmentation runs: the best validation mIoU


def prepare_out_dir(out_dir: str | os.PathLike) -> Path:
    """Create ``out_dir`` and prove it is writable, before hours of training depend on it."""
    path = Path(out_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write to --out-dir {str(path)!r}: {exc.strerror or exc}. "
                          f"Choose a folder you can write to.") from None
    for tmp in remove_stale_temporaries(path):
        print(f"=> removed {tmp.name}, a checkpoint left half-written by a killed run", flush=True)
    return path


def _summary(out_dir: Path, epochs_before: int) -> TrainSummary:
    records = read_log(out_dir / LOG_NAME)
    last = records[-1] if records else None
    done = int(last["epoch"]) if last else 0
    best = max((r["val_acc1"] for r in records if "val_acc1" in r), default=None)
    best_miou = max((r["val_miou"] for r in records if "val_miou" in r), default=None)
    return TrainSummary(out_dir, done, max(done - epochs_before, 0), best, last, best_miou)


def train(cfg: TrainConfig) -> TrainSummary:
    """Run the training that ``cfg`` describes (in this process, or one process per GPU).

    Raises the package's exceptions (:mod:`antialiased.errors`) for anything the user can fix: bad
    values, a folder holding another run, unreadable checkpoints, a full disk, a non-finite loss.
    """
    check_config(cfg)
    check_recovery_config(cfg)
    if cfg.tensorboard:
        require_tensorboard()
    out_dir = Path(cfg.out_dir).expanduser()
    refuse_other_run(out_dir, resume=cfg.resume, weights=cfg.model.weights)
    if is_rank_zero_launch(cfg.launch):
        prepare_out_dir(out_dir)
    if cfg.launch.spawn_per_gpu:
        before = _summary(out_dir, 0).epochs_done if cfg.resume else 0
        spawn_per_gpu(cfg, _spawned_worker)
        return _summary(out_dir, before)
    return train_worker(cfg)


def _spawned_worker(index: int, cfg: TrainConfig) -> None:
    train_worker(cfg, spawned_index=index)


def _nothing_to_train(cfg: TrainConfig, done: int) -> None:
    if dist_utils.is_main_process():
        print(f"=> nothing to train: {done} epoch(s) are done and -ep/--epochs is {cfg.optim.epochs}. To train "
              f"longer, run the same command with a larger -ep (e.g. -ep {done + 10})",
              flush=True)


def train_worker(cfg: TrainConfig, spawned_index: int | None = None) -> TrainSummary:
    """One training process (rank); see the module docstring."""
    launch = cfg.launch
    info = dist_utils.detect_launch(world_size=launch.world_size, rank=launch.rank, spawned_index=spawned_index)
    dist_utils.init_distributed(info, backend=launch.dist_backend, init_method=launch.dist_url)
    try:
        session = build_session(cfg, info)
        if info.rank == 0:
            session.logger = EpochLogger(session.out_dir, tensorboard=cfg.tensorboard, history=session.history)
        if session.start_epoch >= cfg.optim.epochs:
            _nothing_to_train(cfg, session.start_epoch)
        try:
            for epoch in range(session.start_epoch, cfg.optim.epochs):
                run_epoch(cfg, session, epoch)
        finally:
            if session.logger is not None:
                session.logger.close()
        if cfg.save_weights and info.rank == 0:
            export_best(cfg, session.out_dir)
        if info.distributed:
            torch.distributed.barrier()
        return _summary(session.out_dir, session.start_epoch)
    finally:
        dist_utils.cleanup()

