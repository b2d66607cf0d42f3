"""Mid-epoch recovery checkpoints: when one is due, what it adds to a checkpoint, and resuming from one.

An ImageNet epoch takes hours on one GPU; a kill should not cost it all. Every
``TrainConfig.checkpoint_every`` minutes of an epoch (default 30) and/or every
``checkpoint_every_steps`` batches, at the end of an optimizer step (so no gradient is half
accumulated), every rank hands rank 0 its running sums and random-number-generator states, and rank
0 writes ``checkpoint_recovery.pth.tar`` (see :mod:`antialiased.training.checkpoint`). It is the
ordinary checkpoint (weights, optimizer, schedule, AMP scaler, log, ...) plus :data:`MID_EPOCH_KEY`:
the epoch in progress, the batches done, what fixes the batches (batch size, accumulation,
processes, images) and each rank's sums. ``rng_state`` holds the data loader's generator as it was
at the epoch's start, so the resumed epoch draws the same worker seeds; the order of the epoch
comes from the run's ``data_seed`` (:mod:`antialiased.training.sampling`), and the sampler starts
after the batches done, which are never read again.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from antialiased.errors import CheckpointError, ConfigError
from antialiased.support import distributed as dist_utils
from antialiased.training.checkpoint import CHECKPOINT_NAME, MID_EPOCH_KEY, describe_progress, save_recovery
from antialiased.training.config import TrainConfig
from antialiased.training.engine import EpochStart, NonFiniteLossError
from antialiased.training.rng import capture_rng_state

__all__ = ["RecoveryWriter", "check_recovery_config", "epoch_start_from", "new_data_seed"]


def check_recovery_config(cfg: TrainConfig) -> None:
    """Refuse recovery intervals that cannot work (:class:`ConfigError` naming the flag)."""
    if not (math.isfinite(cfg.checkpoint_every) and cfg.checkpoint_every >= 0):
        raise ConfigError(f"--checkpoint-every takes minutes >= 0 (0 turns mid-epoch checkpoints off), got "
                          f"{cfg.checkpoint_every}")
    if cfg.checkpoint_every_steps < 0:
        raise ConfigError(f"--checkpoint-every-steps takes a number of batches >= 0 (0: off), got "
                          f"{cfg.checkpoint_every_steps}")


def new_data_seed(cfg: TrainConfig) -> int:
    """The seed of the training order for a new run: ``--seed``, else rank 0's random choice (on every rank)."""
    if cfg.seed is not None:
        return int(cfg.seed)
    return int(dist_utils.all_gather_object(int(torch.randint(0, 2 ** 62, ()).item()))[0])


class RecoveryWriter:
    """``train_one_epoch``'s ``on_step``: writes a recovery checkpoint when one is due (every rank calls it).

    Args:
        cfg: the run (its intervals, batch settings).
        epoch: the epoch in progress (0-based).
        state: the checkpoint of this moment, given the RNG states of every rank and the log records.
        records: the log records of the epochs done.
        loader_state: the data loader generator's state at the epoch's start.
        vote: agrees on "time is up" over the ranks (rank clocks differ); identity for one process.
    """

    def __init__(self, cfg: TrainConfig, epoch: int, state: Callable[[list, list], dict[str, Any]],
                 records: Callable[[], list], loader_state: torch.Tensor, vote: Callable[[bool], bool],
                 out_dir: Any, images: int) -> None:
        self.cfg, self.epoch, self.state, self.records = cfg, epoch, state, records
        self.loader_state, self.vote, self.out_dir, self.images = loader_state, vote, out_dir, images
        self.every_s = cfg.checkpoint_every * 60.0
        self.last_time, self.last_batches = time.monotonic(), 0

    def _due(self, batches_done: int) -> bool:
        steps = self.cfg.checkpoint_every_steps
        if steps and batches_done - self.last_batches >= steps:
            return True
        if not self.every_s:
            return False
        return self.vote(time.monotonic() - self.last_time >= self.every_s)

    def __call__(self, batches_done: int, total: int, sums: Callable[[], dict[str, Any]]) -> None:
        if not self._due(batches_done):
            return
        parts = dist_utils.all_gather_object(sums())
        bad = [p["loss_sum"] for p in parts if not math.isfinite(p["loss_sum"])]
        if bad:  # never save a diverged model as the point to come back to
            raise NonFiniteLossError(f"the training loss is {bad[0]} in epoch {self.epoch + 1}, batch {batches_done}")
        rng = dist_utils.all_gather_object({**capture_rng_state(), "loader": self.loader_state})
        if dist_utils.is_main_process():
            state = self.state(rng, self.records())
            state[MID_EPOCH_KEY] = {"epoch": self.epoch + 1, "batches_done": batches_done, "batches": total,
                                    **self._batch_settings(), "sums": parts}
            save_recovery(self.out_dir, state)
        self.last_time, self.last_batches = time.monotonic(), batches_done

    def _batch_settings(self) -> dict[str, Any]:
        return {"batch_size": self.cfg.data.batch_size, "batch_accum": self.cfg.optim.batch_accum,
                "world_size": dist_utils.get_world_size(), "train_images": self.images}


def epoch_start_from(mid: Mapping[str, Any], source: str, *, cfg: TrainConfig, rank: int, batches: int,
                     images: int) -> EpochStart:
    """Where this rank resumes the epoch of a recovery checkpoint; refuses one written with other batches.

    ``batches`` and ``images``: the epoch's batch count and the training images, as this run has them.
    """
    now = {"batch_size": cfg.data.batch_size, "batch_accum": cfg.optim.batch_accum,
           "world_size": dist_utils.get_world_size(), "train_images": images}
    names = {"batch_size": "-b", "batch_accum": "-ba", "world_size": "processes", "train_images": "training images"}
    differ = [f"{names[key]} {mid.get(key)} then, {value} now" for key, value in now.items() if mid.get(key) != value]
    if not differ and mid.get("batches") != batches:  # the same batches, but not as many (-mti)
        differ = [f"batches per epoch {mid.get('batches')} then, {batches} now (-mti)"]
    if differ:
        epoch_file = Path(source).parent / CHECKPOINT_NAME
        way_out = (f"from the end of the epoch before: --resume {epoch_file}" if epoch_file.exists() else
                   f"delete it to start again with the new settings (no epoch was complete)")
        raise CheckpointError(f"{source} is a mid-epoch recovery checkpoint ({describe_progress({MID_EPOCH_KEY: mid})})"
                              f" whose remaining batches depend on settings that changed ({'; '.join(differ)}). "
                              f"Resume with the settings it was written with, or {way_out}")
    return EpochStart(int(mid["batches_done"]), dict(mid["sums"][rank]))
