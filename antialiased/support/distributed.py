"""torch.distributed set-up from torchrun, SLURM or the paper's explicit flags.

Three ways to start a multi-process run, in the order they are detected:

* ``torchrun`` (or any launcher setting ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``, ``env://``);
* SLURM (``srun``): ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``; the first host of the job's
  node list becomes ``MASTER_ADDR`` unless it is set;
* the paper's ``--multiprocessing-distributed --world-size NODES --rank NODE --dist-url URL``, one
  process per GPU started with ``torch.multiprocessing.spawn``, or ``--world-size/--rank`` by hand.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from antialiased.errors import ConfigError

__all__ = [
    "DistInfo",
    "detect_launch",
    "init_distributed",
    "cleanup",
    "all_reduce_sum",
    "is_main_process",
    "get_rank",
    "get_world_size",
    "all_gather_object",
    "first_slurm_host",
    "ShardSampler",
    "broadcast_buffers",
]


@dataclass
class DistInfo:
    distributed: bool = False
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    source: str = "single process"


def first_slurm_host(nodelist: str) -> str:
    """The first host name of a SLURM node list such as ``gpu[03-05,9],cpu1``.

    Example:
        >>> first_slurm_host("gpu[03-05,9],cpu1")
        'gpu03'
        >>> first_slurm_host("node7")
        'node7'
    """
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        raise ConfigError(f"cannot parse SLURM node list {nodelist!r}; set MASTER_ADDR to the first node's host name")
    stem, ranges = match.groups()
    if not ranges:
        return stem
    return stem + ranges.split(",")[0].split("-")[0]


def _env_int(name: str) -> int:
    return int(os.environ[name])


def detect_launch(*, world_size: int = -1, rank: int = -1, spawned_index: int | None = None) -> DistInfo:
    """Work out rank and world size from the environment or the explicit values (nothing is initialized).

    ``world_size``/``rank`` are the paper's ``--world-size``/``--rank``: nodes and node rank with
    ``spawned_index`` (one spawned process per GPU), processes and process rank without.
    """
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        world = _env_int("WORLD_SIZE")
        return DistInfo(world > 1, _env_int("RANK"), world, int(env.get("LOCAL_RANK", 0)), "torchrun (env://)")
    if spawned_index is not None:
        # The paper's scheme: --world-size counts nodes and --rank numbers them until run() scales them.
        per_node = max(torch.cuda.device_count(), 1)
        return DistInfo(True, rank * per_node + spawned_index, world_size, spawned_index,
                        "--multiprocessing-distributed")
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        env.setdefault("MASTER_ADDR", first_slurm_host(env.get("SLURM_STEP_NODELIST", env.get("SLURM_JOB_NODELIST", "127.0.0.1"))))
        env.setdefault("MASTER_PORT", "29500")
        return DistInfo(True, _env_int("SLURM_PROCID"), _env_int("SLURM_NTASKS"), int(env.get("SLURM_LOCALID", 0)), "SLURM")
    if world_size > 1:
        if rank < 0:
            raise ConfigError(f"--world-size {world_size} needs --rank (this process's rank, 0..{world_size - 1})")
        return DistInfo(True, rank, world_size, rank % max(torch.cuda.device_count(), 1), "--world-size/--rank")
    return DistInfo()


def init_distributed(info: DistInfo, *, backend: str | None = None, init_method: str = "env://") -> DistInfo:
    """Join the process group when ``info`` (from :func:`detect_launch`) is distributed.

    Pins each process to its own GPU; nccl on GPUs, gloo on CPUs unless ``backend`` says otherwise.
    Does nothing when the group is already initialized (a caller that set it up itself).
    """
    if not info.distributed or (dist.is_available() and dist.is_initialized()):
        return info
    use_cuda = torch.cuda.is_available()
    backend = backend or ("nccl" if use_cuda else "gloo")
    if backend == "nccl" and not use_cuda:
        warnings.warn("--dist-backend nccl needs CUDA; using gloo on the CPU", stacklevel=2)
        backend = "gloo"
    if use_cuda:
        torch.cuda.set_device(info.local_rank % torch.cuda.device_count())
    if init_method == "env://" and info.source == "--world-size/--rank":
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29500")
    dist.init_process_group(backend=backend, init_method=init_method, world_size=info.world_size, rank=info.rank)
    dist.barrier()
    return info


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum numbers over ranks when torch.distributed is initialized (identity otherwise)."""
    values = [float(v) for v in values]
    if get_world_size() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (a one-element list outside distributed runs)."""
    if get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Give every rank ``src``'s buffers (batch-norm statistics drift apart per rank during training)."""
    if get_world_size() == 1:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=src)


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th index from ``rank``: each sample on exactly one rank, none repeated.

    DistributedSampler pads the last shard with repeats so that all ranks run equally many batches;
    for validation that would count some images twice. Shards here may differ by one sample, so
    the model evaluated must not run collectives per batch (the unwrapped model, not DDP).

    Example:
        >>> [list(ShardSampler(range(5), rank=r, world_size=2)) for r in (0, 1)]
        [[0, 2, 4], [1, 3]]
    """

    def __init__(self, dataset, *, rank: int | None = None, world_size: int | None = None) -> None:
        self.size = len(dataset)
        self.rank = get_rank() if rank is None else rank
        self.world_size = get_world_size() if world_size is None else world_size

    def __iter__(self):
        return iter(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world_size))
