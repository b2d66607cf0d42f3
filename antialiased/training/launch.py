"""Starting the processes of a run: the paper's one-process-per-GPU spawn, and which launch is rank 0.

torchrun and SLURM start the processes themselves (see
:func:`antialiased.support.distributed.detect_launch`); ``--multiprocessing-distributed`` starts
one per GPU of this node here, with ``torch.multiprocessing.spawn``.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

import torch
from torch.multiprocessing import ProcessRaisedException

from antialiased import errors
from antialiased.errors import ConfigError
from antialiased.training.config import LaunchConfig, TrainConfig

__all__ = ["per_gpu_config", "spawn_per_gpu", "is_rank_zero_launch", "package_error_from_trace"]


def _package_errors() -> dict[str, type[errors.AntialiasedError]]:
    """Every error class of the package, by the ``module.Class`` name a traceback prints."""
    found, todo = {}, [errors.AntialiasedError]
    while todo:
        cls = todo.pop()
        found[f"{cls.__module__}.{cls.__qualname__}"] = cls
        todo += cls.__subclasses__()
    return found


def per_gpu_config(cfg: TrainConfig, gpus: int) -> tuple[TrainConfig, list[str]]:
    """The configuration of each spawned process, and notes for the user.

    The paper's (and pytorch/examples') meaning in this mode: ``--world-size`` and ``--rank`` count
    nodes, ``-b`` and ``-j`` are per node and split over its GPUs.

    Example:
        >>> from antialiased.training.config import DataConfig
        >>> cfg = TrainConfig(data=DataConfig("d", batch_size=256, workers=16), out_dir="o",
        ...                   launch=LaunchConfig(world_size=2, rank=1, spawn_per_gpu=True))
        >>> one, notes = per_gpu_config(cfg, 4)
        >>> one.launch.world_size, one.launch.rank, one.data.batch_size, one.data.workers
        (8, 1, 64, 4)
    """
    notes = []
    batch = cfg.data.batch_size
    if batch % gpus:
        notes.append(f"note: -b {batch} does not divide over {gpus} GPUs; each process takes {max(1, batch // gpus)}")
    data = dataclasses.replace(cfg.data, batch_size=max(1, batch // gpus),
                               workers=(cfg.data.workers + gpus - 1) // gpus)
    launch = dataclasses.replace(cfg.launch, world_size=max(cfg.launch.world_size, 1) * gpus,
                                 rank=max(cfg.launch.rank, 0))
    return dataclasses.replace(cfg, data=data, launch=launch), notes


def spawn_per_gpu(cfg: TrainConfig, worker: Callable[[int, TrainConfig], object]) -> None:
    """Run ``worker(index, per_process_config)`` in one process per visible GPU and wait for them."""
    gpus = torch.cuda.device_count()
    if gpus == 0:
        raise ConfigError("--multiprocessing-distributed starts one process per GPU and no GPU is visible; on CPUs "
                          "use: torchrun --nproc_per_node N main.py ...")
    one, notes = per_gpu_config(cfg, gpus)
    for note in notes:
        print(f"=> {note}", flush=True)
    if one.launch.dist_url == "env://":
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29500")
    try:
        torch.multiprocessing.spawn(worker, nprocs=gpus, args=(one,))
    except ProcessRaisedException as exc:
        known = package_error_from_trace(str(exc))
        if known is None:
            raise
        raise known from exc


def package_error_from_trace(trace: str) -> errors.AntialiasedError | None:
    """The package's exception that a spawned process raised, rebuilt from its traceback text.

    ``torch.multiprocessing.spawn`` hands the parent only the text; rebuilding the exception lets
    the command line show its one-line message instead of two tracebacks.

    Example:
        >>> package_error_from_trace("Traceback ...\\nantialiased.errors.DataError: no images in d\\n")
        DataError('no images in d')
        >>> package_error_from_trace("...\\nantialiased.training.engine.NonFiniteLossError: the loss is nan")
        NonFiniteLossError('the loss is nan')
        >>> package_error_from_trace("Traceback ...\\nRuntimeError: CUDA error") is None
        True
    """
    best = None
    for name, cls in _package_errors().items():
        at = trace.rfind(f"\n{name}: ")
        if at >= 0 and (best is None or at > best[0]):
            best = (at, name, cls)
    if best is None:
        return None
    at, name, cls = best
    return cls(trace[at + len(name) + 3:].strip())


def is_rank_zero_launch(launch: LaunchConfig) -> bool:
    """Whether this process is (or, with the spawn, starts) rank 0: the one that prepares ``out_dir``."""
    env = os.environ
    for name in ("RANK", "SLURM_PROCID"):
        if name in env:
            return env[name] == "0"
    return launch.rank <= 0
