"""One epoch of a run: train, validate, then (rank 0) save the checkpoint and the epoch's records."""
from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

from antialiased.errors import TrainingError
from antialiased.support import distributed as dist_utils
from antialiased.support.checkpoints import export_weights, load_checkpoint
from antialiased.training.checkpoint import BEST_NAME, CHECKPOINT_NAME, discard_recovery, run_checkpoints, save_epoch
from antialiased.training.config import TrainConfig
from antialiased.training.data import SKIPPED_NAME, SkippedFiles, checkpoint_settings
from antialiased.training.engine import NonFiniteLossError, evaluate, train_one_epoch
from antialiased.training.method_rules import apply_epoch_schedules
from antialiased.training.model_setup import model_identity
from antialiased.training.recovery import RecoveryWriter
from antialiased.training.rng import capture_rng_state
from antialiased.training.setup import Session, log

__all__ = ["run_epoch", "export_best", "reduce_train_stats"]


def reduce_train_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """One rank's :func:`train_one_epoch` statistics combined over all ranks (image-weighted means)."""
    parts = dist_utils.all_gather_object(stats)
    images = sum(p["images"] for p in parts)
    per_image = max(images, 1.0)
    counted = [p.get("counted", p["images"]) for p in parts]  # images, or labelled pixels for segmentation
    return {"loss": sum(p["loss"] * p["images"] for p in parts) / per_image,
            "acc1": sum(p["acc1"] * n for p, n in zip(parts, counted)) / max(sum(counted), 1.0),
            "images": images,
            "images_per_s": sum(p["images_per_s"] for p in parts),
            "data_time": max(p["data_time"] for p in parts),
            "skipped_batches": max(p["skipped_batches"] for p in parts),  # every rank skips the same steps
            "unreadable": sum(p["unreadable"] for p in parts),
            "unreadable_indices": [i for p in parts for i in p["unreadable_indices"]]}


def _non_finite(exc: NonFiniteLossError, out_dir: Path) -> NonFiniteLossError:
    """The error to show: what happened and a way on from a checkpoint that exists."""
    kept = run_checkpoints(out_dir)
    kept = [p for p in kept if p.name == CHECKPOINT_NAME] or kept
    if not kept:
        return NonFiniteLossError(f"{exc}; training stopped before any checkpoint was written. Start again with a "
                                  f"smaller --lr, or with --amp bf16 instead of fp16")
    last = kept[0]
    epoch = load_checkpoint(last).get("epoch")
    return NonFiniteLossError(f"{exc}; training stopped and nothing was saved from this epoch: the last good "
                              f"checkpoint, {last} (epoch {epoch}), is kept. Continue from it with a smaller learning "
                              f"rate (--weights {last} --start-epoch {epoch} --lr LR), or with --amp bf16 instead of "
                              f"fp16 (--resume {last})")


def _recovery_writer(cfg: TrainConfig, s: Session, epoch: int) -> RecoveryWriter | None:
    if not (cfg.checkpoint_every or cfg.checkpoint_every_steps):
        return None
    return RecoveryWriter(cfg, epoch, partial(_checkpoint_state, cfg, s, epoch), lambda: list(s.logger.records),
                          s.generator.get_state(), s.skip_vote, s.out_dir, len(s.data.train_loader.dataset))


def _train(cfg: TrainConfig, s: Session, epoch: int, progress: bool) -> dict[str, Any]:
    optim = cfg.optim
    start, s.epoch_start = s.epoch_start, None  # a recovery checkpoint's epoch resumes part-way, once
    s.data.train_sampler.set_epoch(epoch)
    if start is not None:
        s.data.train_sampler.set_start(start.batches_done * cfg.data.batch_size)  # those batches are not read again
    apply_epoch_schedules(s.model_without_ddp, epoch)  # the methods' schedules, e.g. LPS's Gumbel temperature
    try:
        stats = train_one_epoch(s.model, s.criterion, s.optimizer, s.data.train_loader, s.device, epoch + 1,
                                scaler=s.scaler, amp_dtype=s.amp_dtype, batch_accum=optim.batch_accum,
                                max_iters=optim.max_train_iters, print_freq=cfg.print_freq,
                                channels_last=cfg.channels_last, progress=progress, skip_vote=s.skip_vote,
                                start=start, on_step=_recovery_writer(cfg, s, epoch), rules=s.task.rules)
    except NonFiniteLossError as exc:
        raise _non_finite(exc, s.out_dir) from None
    stats = reduce_train_stats(stats)
    if stats["images"] == 0:
        raise TrainingError(f"epoch {epoch + 1} had no usable training batch: all {stats['skipped_batches']} were "
                            f"skipped ({stats['unreadable']} unreadable images in {cfg.data.root}; see the list in "
                            f"{s.out_dir / SKIPPED_NAME}). Remove or repair them")
    return stats


def _record_skipped(s: Session, train: dict[str, Any], val: dict[str, Any]) -> None:
    if s.skipped is None:
        s.skipped = SkippedFiles(s.out_dir)
        s.skipped.add_listed("train", s.data.train_loader.dataset)
        s.skipped.add_listed("val", s.data.val_loader.dataset)
    s.skipped.add("train", s.data.train_loader.dataset, train["unreadable_indices"])
    s.skipped.add("val", s.data.val_loader.dataset, val["skipped_indices"])
    s.skipped.save()
    if train["unreadable"] or train["skipped_batches"] or val["skipped"]:
        log(f"=> skipped {train['unreadable']} unreadable training image(s), {train['skipped_batches']} training "
            f"batch(es) with too few readable images and {val['skipped']} validation image(s); the files and reasons "
            f"are in {s.skipped.path}")


def _checkpoint_state(cfg: TrainConfig, s: Session, epoch_done: int, rng_states: list, records: list) -> dict:
    return {"epoch": epoch_done, "arch": cfg.model.arch, "state_dict": s.model_without_ddp.state_dict(),
            s.task.best_key: s.best_acc1, "optimizer": s.optimizer.state_dict(),
            "lr_scheduler": s.scheduler.state_dict(),
            "scaler": s.scaler.state_dict() if s.scaler is not None else None, "rng_state": rng_states,
            "num_classes": s.num_classes, "classes": s.data.classes, "data": s.data.root,
            **checkpoint_settings(s.data), **model_identity(s.model_without_ddp), "log": records,
            "config": cfg.record(), "data_seed": s.data_seed}


def run_epoch(cfg: TrainConfig, s: Session, epoch: int) -> None:
    """Train and validate epoch ``epoch`` (0-based); rank 0 saves the checkpoint, then the log."""
    main_process = dist_utils.is_main_process()
    progress = main_process and cfg.progress
    lr = s.optimizer.param_groups[0]["lr"]
    start = time.perf_counter()
    train = _train(cfg, s, epoch, progress)
    s.scheduler.step()
    dist_utils.broadcast_buffers(s.model_without_ddp)  # validate (and save) rank 0's statistics everywhere
    val = s.task.validate(s.eval_model, s.data.val_loader, s.device, cfg=cfg, amp_dtype=s.amp_dtype,
                          progress=progress)
    if val is None:  # the paper's top-1/top-5 protocol
        val = evaluate(s.eval_model, s.data.val_loader, s.device, amp_dtype=s.amp_dtype,
                       channels_last=cfg.channels_last, progress=progress)
    val = {**val, "skipped": int(val.get("skipped", 0)),
           "skipped_indices": [i for part in dist_utils.all_gather_object(list(val.get("skipped_indices", [])))
                               for i in part]}
    figure = val[s.task.metric]  # acc@1, or mIoU for segmentation
    is_best = figure > s.best_acc1 or not (s.out_dir / BEST_NAME).exists()
    s.best_acc1 = max(figure, s.best_acc1)
    rng_states = dist_utils.all_gather_object(capture_rng_state(s.generator))
    if not main_process:
        return
    record = {"epoch": epoch + 1, "lr": lr, "train_loss": train["loss"], **s.task.epoch_fields(train, val),
              "val_images": val["count"], s.task.best_key: s.best_acc1,
              "val_split": s.data.val_split,
              "images_per_s": train["images_per_s"], "data_time": train["data_time"],
              "train_images": int(train["images"]), "train_unreadable": train["unreadable"],
              "train_skipped_batches": train["skipped_batches"], "val_skipped": val["skipped"],
              "epoch_time": time.perf_counter() - start, "time": time.time()}
    save_epoch(s.out_dir, _checkpoint_state(cfg, s, epoch + 1, rng_states, [*s.logger.records, record]),
               is_best=is_best)
    discard_recovery(s.out_dir)  # the epoch's checkpoint supersedes it
    s.logger.write(record)
    print(f"Epoch {epoch + 1}/{cfg.optim.epochs}: lr {lr:.4g}  {s.task.epoch_line(train, val)}  "
          f"{train['images_per_s']:.1f} img/s  data {train['data_time']:.3f} s/batch", flush=True)
    _record_skipped(s, train, val)


def export_best(cfg: TrainConfig, out_dir: Path) -> Path | None:
    """``--save_weights`` after training: the weights of ``model_best`` (or the last checkpoint)."""
    source = out_dir / BEST_NAME if (out_dir / BEST_NAME).exists() else out_dir / CHECKPOINT_NAME
    if not source.exists():
        return None
    written = export_weights(source, cfg.save_weights, arch=cfg.model.arch)
    log(f"=> wrote the weights of {source} to {written}")
    return written
