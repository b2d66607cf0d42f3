"""Putting a checkpoint back: model, optimizer, schedule position, AMP scaler, every RNG, the log."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn

from antialiased.models.registry import check_recorded_spec
from antialiased.support.checkpoints import check_arch, extract_state_dict, load_into
from antialiased.training.checkpoint import MID_EPOCH_KEY
from antialiased.training.config import OptimConfig
from antialiased.training.optim import build_lr_scheduler
from antialiased.training.rng import restore_rng_state

__all__ = ["Resumed", "restore"]


@dataclass
class Resumed:
    """Where a resumed run continues."""
    start_epoch: int
    best_acc1: float
    scheduler: Any
    history: list[dict[str, Any]] | None = None  # the checkpoint's epoch records, when it has them
    notes: list[str] = field(default_factory=list)  # what the user should know, printed by rank 0
    data_seed: int | None = None  # the seed of the run's training order, when the checkpoint records it
    mid_epoch: dict[str, Any] | None = None  # a recovery checkpoint's position in its epoch
    source: str | None = None  # the checkpoint resumed


def _restore_schedule(checkpoint: Mapping[str, Any], optimizer: torch.optim.Optimizer, scheduler: Any,
                      optim: OptimConfig, epoch: int, source: str, notes: list[str]) -> Any:
    if checkpoint.get("lr_scheduler") is None:
        # The paper's checkpoints set the lr by hand each epoch: rebuild the schedule at this epoch.
        for group in optimizer.param_groups:
            group["initial_lr"] = optim.lr
        return build_lr_scheduler(optimizer, schedule=optim.schedule, lr_step=optim.lr_step, epochs=optim.epochs,
                                  start_epoch=epoch)
    scheduler.load_state_dict(checkpoint["lr_scheduler"])
    # The position comes from the checkpoint, the shape from the flags (e.g. a longer cosine run).
    for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * factor(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]  # what get_last_lr() reports
    if abs(scheduler.base_lrs[0] - optim.lr) > 1e-12 * max(optim.lr, 1.0):
        notes.append(f"note: {source} was trained with --lr {scheduler.base_lrs[0]:g}; resuming continues with it "
                     f"(--lr {optim.lr:g} is ignored). To restart with another lr, pass --weights {source} "
                     f"--start-epoch {epoch} --lr LR instead of --resume")
    return scheduler


def restore(checkpoint: Mapping[str, Any], source: str, *, arch: str, model: nn.Module,
            optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any, generator: torch.Generator,
            rank: int, optim: OptimConfig, best_key: str = "best_acc1", best_label: str = "acc@1") -> Resumed:
    """Load ``checkpoint`` (read from ``source``) into the run's objects, refusing another architecture.

    A weights file (no ``epoch``) only sets the weights: training starts at ``optim.start_epoch``
    with a fresh optimizer. ``best_key``: the checkpoint's record of the best validation figure (``best_acc1``,
    ``best_miou`` for segmentation), named ``best_label`` in messages.
    """
    check_arch(checkpoint, arch, source)
    spec = getattr(getattr(model, "module", model), "model_spec", None)  # DDP/DataParallel hold it on .module
    if spec is not None:  # converted models share keys across filter sizes and methods: the record decides
        check_recorded_spec(checkpoint.get("model_spec"), spec, source)
    load_into(model, extract_state_dict(checkpoint, source=source), source=source)
    if "epoch" not in checkpoint:
        return Resumed(optim.start_epoch, 0.0, scheduler,
                       notes=[f"{source} holds weights only; starting at epoch {optim.start_epoch} with a fresh "
                              f"optimizer"])
    epoch = int(checkpoint["epoch"])
    notes: list[str] = []
    if "optimizer" in checkpoint:
        optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler = _restore_schedule(checkpoint, optimizer, scheduler, optim, epoch, source, notes)
    if scaler is not None and checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])
    rng = checkpoint.get("rng_state")
    if rng:
        restore_rng_state(rng[rank % len(rng)], generator)
    best = float(checkpoint.get(best_key, 0.0))
    history = checkpoint.get("log")
    mid = checkpoint.get(MID_EPOCH_KEY)
    where = f", then {mid['batches_done']} of the {mid['batches']} batches of epoch {epoch + 1}" if mid else ""
    notes.append(f"resumed {source}: {epoch} epoch(s) done{where}, best {best_label} {best:.3f}")
    seed = checkpoint.get("data_seed")
    return Resumed(epoch, best, scheduler, list(history) if history is not None else None, notes,
                   int(seed) if seed is not None else None, dict(mid) if mid else None, source)
