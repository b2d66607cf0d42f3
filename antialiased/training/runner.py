"""Training as the paper's ``main.py`` does it, organised like torchvision's reference script.

``run(args)`` is the entry point of ``main.py``/``antialiased train``: it checks the flags and the
output folder, then starts :func:`main` once, or once per GPU for ``--multiprocessing-distributed``.
``main(args)`` joins the process group (torchrun, SLURM or explicit flags), builds data, model,
optimizer and schedule, resumes if asked, and runs ``train_one_epoch`` + ``evaluate`` per epoch,
writing checkpoints and ``log.jsonl`` from rank 0 only.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from antialiased.training import distributed as dist_utils
from antialiased.training.checkpoint import (
    CheckpointError,
    check_arch,
    export_weights,
    export_weights_from_args,
    link_checkpoint,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from antialiased.training.devices import resolve_amp, resolve_device, seed_everything
from antialiased.training.engine import NonFiniteLossError, evaluate, train_one_epoch
from antialiased.training.metrics_log import EpochLogger, require_tensorboard
from antialiased.training.optim import build_lr_scheduler, build_optimizer
from antialiased.training.rng import capture_rng_state, restore_rng_state

__all__ = ["run", "main", "load_data", "build_model", "build_criterion", "check_args", "check_out_dir", "TrainData"]

CHECKPOINT_NAME = "checkpoint.pth.tar"
BEST_NAME = "model_best.pth.tar"
SNAPSHOT_EVERY = 10  # epochs between kept checkpoint_NNN.pth.tar files, as in the paper
IMAGENET_CLASSES = 1000
EVAL_CROP_RATIO = 224 / 256  # the paper's protocol: resize to 256, center crop 224


def _log(*parts: Any) -> None:
    if dist_utils.is_main_process():
        print(*parts, flush=True)


# ---------------------------------------------------------------------------------------- checks
def check_args(args: argparse.Namespace) -> None:
    """Refuse impossible flag values and combinations before any work starts."""
    positive = {"--epochs": args.epochs, "-b/--batch-size": args.batch_size, "-ba/--batch-accum": args.batch_accum,
                "--lr_step": args.lr_step, "-p/--print-freq": args.print_freq, "--crop-size": args.crop_size}
    if args.max_train_iters is not None:
        positive["-mti/--max-train-iters"] = args.max_train_iters
    for flag, value in positive.items():
        if value < 1:
            raise SystemExit(f"error: {flag} must be at least 1, got {value}")
    if args.workers < 0:
        raise SystemExit(f"error: -j/--workers must be >= 0, got {args.workers}")
    if args.lr <= 0:
        raise SystemExit(f"error: --lr must be positive, got {args.lr}")
    if args.start_epoch < 0:
        raise SystemExit(f"error: --start-epoch must be >= 0, got {args.start_epoch}")
    if args.num_classes is not None and args.num_classes < 1:
        raise SystemExit(f"error: --num-classes must be at least 1, got {args.num_classes}")
    sources = [flag for flag, on in (("--pretrained", args.pretrained), ("--finetune", args.finetune),
                                     ("--weights", args.weights)) if on]
    if len(sources) > 1:
        raise SystemExit(f"error: {' and '.join(sources)} each choose the starting weights; pass only one")
    if args.baseline_weights and not args.finetune:
        raise SystemExit("error: --baseline-weights is the torchvision file for --finetune; add --finetune")
    if not args.out_dir:
        raise SystemExit("error: training needs --out-dir DIR (checkpoints, model_best.pth.tar and log.jsonl "
                         "are written there), e.g. --out-dir runs/" + args.arch)
    if args.multiprocessing_distributed and "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        raise SystemExit("error: --multiprocessing-distributed starts its own processes; under torchrun leave it out")
    if args.tensorboard:
        require_tensorboard()


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """Create ``out_dir`` and prove it is writable, before hours of training depend on it."""
    path = Path(out_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise SystemExit(f"error: cannot write to --out-dir {str(path)!r}: {exc.strerror or exc}. "
                         f"Choose a folder you can write to.") from None
    for tmp in remove_stale_temporaries(path):
        print(f"=> removed {tmp.name}, a checkpoint left half-written by a killed run")
    return path


# ------------------------------------------------------------------------------------------ data
@dataclass
class TrainData:
    train_loader: DataLoader
    val_loader: DataLoader
    train_sampler: DistributedSampler | None
    classes: list[str]


def _dataset(root: Path, transform, strict: bool) -> Any:
    from antialiased.data import CorruptImageError, DatasetLayoutError, ImageFolderDataset

    try:
        return ImageFolderDataset(root, transform=transform, strict=strict)
    except (DatasetLayoutError, CorruptImageError) as exc:
        raise SystemExit(f"error: {exc}") from None


def load_data(args: argparse.Namespace, *, distributed: bool, generator: torch.Generator,
              pin_memory: bool) -> TrainData:
    """Training (RandomResizedCrop + flip) and validation (resize + center crop) loaders."""
    from antialiased.data import DatasetLayoutError, eval_transform, find_split, train_transform

    try:
        train_dir, val_dir = find_split(args.data, "train"), find_split(args.data, "val")
    except DatasetLayoutError as exc:
        raise SystemExit(f"error: {exc}") from None
    if train_dir.resolve() == val_dir.resolve():
        raise SystemExit(f"error: training needs both {args.data}/train and {args.data}/val "
                         f"(found one folder of classes only)")
    crop = args.crop_size
    resize = round(crop / EVAL_CROP_RATIO)
    train_set = _dataset(train_dir, train_transform(crop=crop, augment=not args.no_data_aug, resize=resize),
                         args.strict)
    val_set = _dataset(val_dir, eval_transform(resize=resize, crop=crop), args.strict)
    if val_set.classes != train_set.classes:
        only_val = sorted(set(val_set.classes) - set(train_set.classes))
        only_train = sorted(set(train_set.classes) - set(val_set.classes))
        raise SystemExit(f"error: {train_dir} and {val_dir} must hold the same class folders (labels are their "
                         f"sorted order); only in val: {only_val[:5]}, only in train: {only_train[:5]}")

    if distributed:
        train_sampler = DistributedSampler(train_set, shuffle=True, seed=args.seed or 0)
        val_sampler = dist_utils.ShardSampler(val_set)
        per_rank = len(train_sampler)
    else:
        train_sampler = val_sampler = None
        per_rank = len(train_set)
    # A trailing batch of one image breaks batch norm; drop the remainder when there is a full batch.
    drop_last = per_rank >= args.batch_size
    # No persistent workers: fresh workers each epoch are seeded from `generator`, whose state the
    # checkpoint keeps, so a resumed run draws the same augmentations as an uninterrupted one.
    common = dict(batch_size=args.batch_size, num_workers=args.workers, pin_memory=pin_memory)
    train_loader = DataLoader(train_set, sampler=train_sampler, shuffle=train_sampler is None,
                              generator=generator, drop_last=drop_last, **common)
    val_loader = DataLoader(val_set, sampler=val_sampler, shuffle=False, **common)
    return TrainData(train_loader, val_loader, train_sampler, list(train_set.classes))


# ----------------------------------------------------------------------------------------- model
def build_criterion() -> nn.Module:
    """The paper's loss; unreadable images (target -100) are ignored."""
    return nn.CrossEntropyLoss()


def _model_classes(args: argparse.Namespace, dataset_classes: int) -> int:
    """Classifier outputs: ImageNet's 1000 when starting from ImageNet weights, else the class folders."""
    imagenet_start = args.pretrained or (args.finetune and not args.baseline_weights)
    if imagenet_start:
        flag = "--finetune" if args.finetune else "--pretrained"
        if args.num_classes not in (None, IMAGENET_CLASSES) or (
                args.num_classes is None and dataset_classes != IMAGENET_CLASSES):
            raise SystemExit(f"error: {flag} starts from ImageNet weights with {IMAGENET_CLASSES} classes, but the "
                             f"data has {dataset_classes} class folders; train from scratch (drop {flag}) on this "
                             f"dataset{' or give --baseline-weights with its classes' if args.finetune else ''}")
        return IMAGENET_CLASSES
    n = args.num_classes or dataset_classes
    if n < dataset_classes:
        raise SystemExit(f"error: --num-classes {n} is smaller than the {dataset_classes} class folders of the data")
    return n


def build_model(args: argparse.Namespace, num_classes: int) -> nn.Module:
    """The model to train: from scratch, the published weights, a local file, or the baseline's weights."""
    from antialiased.models import create_model

    try:
        if args.finetune:
            from antialiased.models.transfer import init_from_baseline

            return init_from_baseline(args.arch, baseline_weights=args.baseline_weights or "DEFAULT",
                                      num_classes=num_classes)
        if args.pretrained:
            return create_model(args.arch, pretrained=True, force_nonfinetuned=args.force_nonfinetuned)
        return create_model(args.arch, weights=args.weights, num_classes=num_classes)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:  # unknown names, unfit or missing weights
        raise SystemExit(f"error: cannot build {args.arch!r}: {exc}") from None


def _wrap(model: nn.Module, device: torch.device, *, distributed: bool, data_parallel: bool) -> nn.Module:
    if distributed:
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if data_parallel:
        return nn.DataParallel(model)
    return model


# ---------------------------------------------------------------------------------------- resume
def _resume(args: argparse.Namespace, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
            scaler, generator: torch.Generator, rank: int) -> tuple[int, float, Any]:
    """Restore a checkpoint; returns (start epoch, best acc1, scheduler)."""
    from antialiased.models.weights import load_into

    checkpoint = load_checkpoint(args.resume)
    check_arch(checkpoint, args.arch, args.resume)
    state = checkpoint.get("state_dict", checkpoint)
    try:
        load_into(model, state, source=args.resume)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    if "epoch" not in checkpoint:  # a weights file: start training from these weights
        _log(f"=> {args.resume} holds weights only; starting at epoch {args.start_epoch} with a fresh optimizer")
        return args.start_epoch, 0.0, scheduler
    epoch = int(checkpoint["epoch"])
    if "optimizer" in checkpoint:
        optimizer.load_state_dict(checkpoint["optimizer"])
    if checkpoint.get("lr_scheduler") is not None:
        scheduler.load_state_dict(checkpoint["lr_scheduler"])
        # The position comes from the checkpoint, the shape from the flags (e.g. a longer cosine run).
        for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
            group["lr"] = base * factor(scheduler.last_epoch)
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]  # what get_last_lr() reports
        if abs(scheduler.base_lrs[0] - args.lr) > 1e-12 * max(args.lr, 1.0):
            _log(f"=> note: {args.resume} was trained with --lr {scheduler.base_lrs[0]:g}; resuming continues with "
                 f"it (--lr {args.lr:g} is ignored). To restart with another lr, pass --weights {args.resume} "
                 f"--start-epoch {epoch} --lr LR instead of --resume")
    else:  # the paper's checkpoints set the lr by hand each epoch: rebuild the schedule at this epoch
        for group in optimizer.param_groups:
            group["initial_lr"] = args.lr
        scheduler = build_lr_scheduler(optimizer, schedule="cosine" if args.cos_lr else "step",
                                       lr_step=args.lr_step, epochs=args.epochs, start_epoch=epoch)
    if scaler is not None and checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])
    rng = checkpoint.get("rng_state")
    if rng:
        restore_rng_state(rng[rank % len(rng)], generator)
    best = float(checkpoint.get("best_acc1", 0.0))
    _log(f"=> resumed {args.resume}: {epoch} epoch(s) done, best acc@1 {best:.3f}")
    return epoch, best, scheduler


# ------------------------------------------------------------------------------------ the loop
def _reduce_train_stats(stats: dict[str, float]) -> dict[str, float]:
    parts = dist_utils.all_gather_object(stats)
    images = sum(p["images"] for p in parts)
    return {"loss": sum(p["loss"] * p["images"] for p in parts) / images,
            "acc1": sum(p["acc1"] * p["images"] for p in parts) / images,
            "images_per_s": sum(p["images_per_s"] for p in parts),
            "data_time": max(p["data_time"] for p in parts)}


def _save_epoch(out_dir: Path, state: dict[str, Any], epoch_done: int, is_best: bool) -> Path:
    path = save_checkpoint(state, out_dir / CHECKPOINT_NAME)
    if epoch_done % SNAPSHOT_EVERY == 0:
        link_checkpoint(path, out_dir / f"checkpoint_{epoch_done:03d}.pth.tar")
    if is_best:
        link_checkpoint(path, out_dir / BEST_NAME)
    return path


def _non_finite_exit(exc: NonFiniteLossError, out_dir: Path) -> SystemExit:
    last = out_dir / CHECKPOINT_NAME
    if last.exists():
        kept = f"the last good checkpoint, {last} (epoch {load_checkpoint(last).get('epoch')}), is kept"
    else:
        kept = "no checkpoint had been written yet"
    return SystemExit(f"error: {exc}; training stopped and nothing was saved from this epoch: {kept}. "
                      f"Continue from it with a smaller learning rate (--weights {last} --start-epoch N --lr LR), "
                      f"or with --amp bf16 instead of fp16 (--resume {last})")


def _amp_name(dtype: torch.dtype | None) -> str:
    return {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


@dataclass
class _Session:
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
    best_acc1: float = 0.0
    logger: EpochLogger | None = None
    eval_model: nn.Module | None = None  # the model validation runs (no DDP: shards may differ in size)


def main(args: argparse.Namespace, spawned_index: int | None = None) -> int:
    """One training process (rank); see the module docstring."""
    info = dist_utils.init_distributed(args, spawned_index)
    try:
        session, start_epoch = _setup(args, info)
        if info.rank == 0:
            session.logger = EpochLogger(session.out_dir, tensorboard=args.tensorboard)
        try:
            for epoch in range(start_epoch, args.epochs):
                _run_epoch(args, session, epoch)
        finally:
            if session.logger is not None:
                session.logger.close()
        if args.save_weights and info.rank == 0:
            _export_best(args, session.out_dir)
        if info.distributed:
            torch.distributed.barrier()
        return 0
    finally:
        dist_utils.cleanup()


def _setup(args: argparse.Namespace, info: dist_utils.DistInfo) -> tuple[_Session, int]:
    device, data_parallel = resolve_device(args.gpu, distributed=info.distributed, local_rank=info.local_rank)
    amp_dtype, scaler = resolve_amp(args.amp, device)
    seed_everything(args.seed, info.rank)
    generator = torch.Generator()
    generator.manual_seed(args.seed + info.rank if args.seed is not None else generator.seed())

    data = load_data(args, distributed=info.distributed, generator=generator, pin_memory=device.type == "cuda")
    num_classes = _model_classes(args, len(data.classes))
    model = build_model(args, num_classes).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    wrapped = _wrap(model, device, distributed=info.distributed, data_parallel=data_parallel)

    optimizer = build_optimizer(model, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    scheduler = build_lr_scheduler(optimizer, schedule="cosine" if args.cos_lr else "step", lr_step=args.lr_step,
                                   epochs=args.epochs, start_epoch=args.start_epoch)
    start_epoch, best_acc1 = args.start_epoch, 0.0
    if args.resume:
        try:
            start_epoch, best_acc1, scheduler = _resume(args, model, optimizer, scheduler, scaler, generator,
                                                        info.rank)
        except CheckpointError as exc:
            raise SystemExit(f"error: {exc}") from None
    # Under DDP validation runs the unwrapped model (weights equal on every rank, buffers broadcast
    # before each validation) on unpadded shards: no per-batch collectives, no image counted twice.
    eval_model = model if info.distributed else wrapped
    if args.compile:
        wrapped = torch.compile(wrapped)
        eval_model = wrapped if eval_model is not model else torch.compile(model)

    _log(f"=> training {args.arch} on {device} ({info.source}, world size {info.world_size}"
         f"{', DataParallel' if data_parallel else ''}): {len(data.train_loader.dataset)} train / "
         f"{len(data.val_loader.dataset)} val images, {len(data.classes)} classes; batch {args.batch_size} x "
         f"{args.batch_accum} accumulated x {info.world_size} process(es); amp {_amp_name(amp_dtype)}; "
         f"epochs {start_epoch + 1}..{args.epochs}")
    session = _Session(wrapped, model, build_criterion(), optimizer, scheduler, scaler, data, device, amp_dtype,
                       generator, Path(args.out_dir).expanduser(), num_classes, best_acc1,
                       eval_model=eval_model)
    return session, start_epoch


def _export_best(args: argparse.Namespace, out_dir: Path) -> None:
    source = out_dir / BEST_NAME if (out_dir / BEST_NAME).exists() else out_dir / CHECKPOINT_NAME
    if source.exists():
        _log(f"=> wrote the weights of {source} to {export_weights(source, args.save_weights, arch=args.arch)}")


def _run_epoch(args: argparse.Namespace, s: _Session, epoch: int) -> None:
    main_process = dist_utils.is_main_process()
    progress = main_process and not args.no_progress
    if s.data.train_sampler is not None:
        s.data.train_sampler.set_epoch(epoch)
    lr = s.optimizer.param_groups[0]["lr"]
    start = time.perf_counter()
    try:
        train = train_one_epoch(s.model, s.criterion, s.optimizer, s.data.train_loader, s.device, epoch + 1,
                                scaler=s.scaler, amp_dtype=s.amp_dtype, batch_accum=args.batch_accum,
                                max_iters=args.max_train_iters, print_freq=args.print_freq,
                                channels_last=args.channels_last, progress=progress)
    except NonFiniteLossError as exc:
        raise _non_finite_exit(exc, s.out_dir) from None
    s.scheduler.step()
    dist_utils.broadcast_buffers(s.model_without_ddp)  # validate (and save) rank 0's statistics everywhere
    val = evaluate(s.eval_model, s.data.val_loader, s.device, amp_dtype=s.amp_dtype, channels_last=args.channels_last,
                   progress=progress)
    train = _reduce_train_stats(train)
    is_best = val["acc1"] > s.best_acc1 or not (s.out_dir / BEST_NAME).exists()
    s.best_acc1 = max(val["acc1"], s.best_acc1)
    rng_states = dist_utils.all_gather_object(capture_rng_state(s.generator))
    if not main_process:
        return
    state = {"epoch": epoch + 1, "arch": args.arch, "state_dict": s.model_without_ddp.state_dict(),
             "best_acc1": s.best_acc1, "optimizer": s.optimizer.state_dict(),
             "lr_scheduler": s.scheduler.state_dict(),
             "scaler": s.scaler.state_dict() if s.scaler is not None else None, "rng_state": rng_states,
             "num_classes": s.num_classes, "classes": s.data.classes, "args": _plain_args(args)}
    _save_epoch(s.out_dir, state, epoch + 1, is_best)
    record = {"epoch": epoch + 1, "lr": lr, "train_loss": train["loss"], "train_acc1": train["acc1"],
              "val_acc1": val["acc1"], "val_acc5": val["acc5"], "val_images": val["count"], "best_acc1": s.best_acc1,
              "images_per_s": train["images_per_s"], "data_time": train["data_time"],
              "epoch_time": time.perf_counter() - start, "time": time.time()}
    s.logger.write(record)
    print(f"Epoch {epoch + 1}/{args.epochs}: lr {lr:.4g}  train loss {train['loss']:.4f} acc@1 {train['acc1']:.2f}"
          f"  val acc@1 {val['acc1']:.3f} acc@5 {val['acc5']:.3f}  {train['images_per_s']:.1f} img/s  "
          f"data {train['data_time']:.3f} s/batch", flush=True)


def _plain_args(args: argparse.Namespace) -> dict[str, Any]:
    # Only plain values, so the checkpoint stays loadable with weights_only=True.
    return {k: v for k, v in vars(args).items() if v is None or isinstance(v, (bool, int, float, str))}


# ------------------------------------------------------------------------------------- launcher
def _spawned_main(index: int, args: argparse.Namespace) -> None:
    main(args, spawned_index=index)


def _spawn(args: argparse.Namespace) -> int:
    gpus = torch.cuda.device_count()
    if gpus == 0:
        raise SystemExit("error: --multiprocessing-distributed starts one process per GPU and no GPU is visible; "
                         "on CPUs use: torchrun --nproc_per_node N main.py ...")
    args.world_size = max(args.world_size, 1) * gpus
    args.rank = max(args.rank, 0)
    # The paper's (and pytorch/examples') meaning in this mode: -b and -j are per node, split over its GPUs.
    if args.batch_size % gpus:
        print(f"=> note: -b {args.batch_size} does not divide over {gpus} GPUs; each process takes "
              f"{max(1, args.batch_size // gpus)}")
    args.batch_size = max(1, args.batch_size // gpus)
    args.workers = (args.workers + gpus - 1) // gpus
    if args.dist_url == "env://":
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29500")
    torch.multiprocessing.spawn(_spawned_main, nprocs=gpus, args=(args,))
    return 0


def _is_rank_zero_launch(args: argparse.Namespace) -> bool:
    env = os.environ
    for name in ("RANK", "SLURM_PROCID"):
        if name in env:
            return env[name] == "0"
    return args.rank <= 0


def run(args: argparse.Namespace) -> int:
    """Entry point of ``main.py`` / ``antialiased train`` (after argument parsing)."""
    # --crop-size, --strict and --no-progress are shared with evaluation; a namespace built by hand may lack them.
    for name, default in (("crop_size", 224), ("strict", False), ("no_progress", False), ("num_classes", None),
                          ("baseline_weights", None)):
        if not hasattr(args, name):
            setattr(args, name, default)
    if not args.data:
        if args.resume and args.save_weights:
            return export_weights_from_args(args)
        raise SystemExit("error: training needs --data DIR (DIR/train/<class>/*, DIR/val/<class>/*)")
    check_args(args)
    if _is_rank_zero_launch(args):
        check_out_dir(args.out_dir)
    if args.multiprocessing_distributed:
        return _spawn(args)
    return main(args)

