"""Device, mixed-precision, CPU-thread and seeding choices, the same for evaluation and training."""
from __future__ import annotations

import contextlib
import logging
import os
import random
import warnings
from typing import ContextManager, Iterator

import numpy as np
import torch

from antialiased.errors import ConfigError

__all__ = ["AMP_CHOICES", "select_device", "resolve_amp", "autocast", "seed_everything", "available_cpus",
           "threads_beside_workers"]

log = logging.getLogger(__name__)

AMP_CHOICES = ("auto", "bf16", "fp16")
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def select_device(gpu: int | None = None, *, distributed: bool = False,
                  local_rank: int = 0) -> tuple[torch.device, bool]:
    """``(device, use_data_parallel)`` for this process.

    One GPU per process under a distributed launch (``local_rank``); ``gpu`` pins one GPU; otherwise
    the first GPU, with DataParallel over all of them when several are visible; the CPU when CUDA is
    absent (with a warning when ``gpu`` asked for one).

    Example:
        >>> select_device(None) if not torch.cuda.is_available() else (torch.device("cpu"), False)
        (device(type='cpu'), False)
    """
    cuda = torch.cuda.is_available()
    if not cuda:
        if gpu is not None:
            warnings.warn(f"GPU {gpu} was requested but CUDA is not available: running on the CPU",
                          RuntimeWarning, stacklevel=2)
        return torch.device("cpu"), False
    count = torch.cuda.device_count()
    if distributed:
        return torch.device("cuda", local_rank % count), False
    if gpu is not None:
        if not 0 <= gpu < count:
            raise ConfigError(f"--gpu {gpu}: this machine has {count} GPU(s), numbered 0..{count - 1}")
        return torch.device("cuda", gpu), False
    return torch.device("cuda", 0), count > 1


def resolve_amp(amp: str | None, device: torch.device) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    """``(autocast dtype, grad scaler)`` for ``amp`` in {None, 'auto', 'bf16', 'fp16'}.

    bf16 needs no scaler; fp16 gets a ``GradScaler`` (CUDA only: on the CPU bf16 is used instead).

    Example:
        >>> resolve_amp(None, torch.device("cpu"))
        (None, None)
        >>> resolve_amp("auto", torch.device("cpu"))
        (torch.bfloat16, None)
    """
    if amp is None:
        return None, None
    if amp not in AMP_CHOICES:
        raise ConfigError(f"--amp must be one of {', '.join(AMP_CHOICES)}; got {amp!r}")
    if device.type != "cuda":
        if amp == "fp16":
            warnings.warn("--amp fp16 needs CUDA; using bf16 autocast on the CPU", RuntimeWarning, stacklevel=2)
        return torch.bfloat16, None
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = _AMP_DTYPES[amp]
    return dtype, (torch.amp.GradScaler("cuda") if dtype == torch.float16 else None)


def autocast(device: torch.device, dtype: torch.dtype | None) -> ContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``'s type, or a no-op when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int | None, rank: int = 0) -> None:
    """Seed every generator (offset by rank) and ask for deterministic kernels; without a seed, speed."""
    if seed is None:
        torch.backends.cudnn.benchmark = True
        return
    seed = seed + rank
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # warn_only: a few CUDA kernels (e.g. some pooling backward passes) have no deterministic version.
    torch.use_deterministic_algorithms(True, warn_only=True)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, as PyTorch counts them; ``os.cpu_count()`` elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# torch's intra-op thread count as the package found it: a later different count was set by someone.
_THREADS_AT_IMPORT = torch.get_num_threads()
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_announced = False


def _threads_chosen_by_user() -> bool:
    """OMP_NUM_THREADS / MKL_NUM_THREADS set, or ``torch.set_num_threads`` called since the package was imported."""
    return any(os.environ.get(name) for name in _THREAD_VARIABLES) or torch.get_num_threads() != _THREADS_AT_IMPORT


@contextlib.contextmanager
def threads_beside_workers(device: torch.device | str, workers: int) -> Iterator[int]:
    """On the CPU, torch's intra-op threads lowered to ``max(1, cores - workers)`` while ``workers``
    data-loading processes run beside the model, then restored; yields the count in effect.

    With 2 torch threads and 2 decode workers on 2 cores, every parallel region of the forward
    pass waits for a core a worker holds (benchmarks/profile_protocols.py). Nothing changes on
    other devices, without workers, or when the user chose the count: OMP_NUM_THREADS or
    MKL_NUM_THREADS set, or ``torch.set_num_threads`` called after ``antialiased`` was imported
    (a call before that import cannot be told from torch's default; the count is only ever lowered).

    Example:
        >>> with threads_beside_workers("cuda", 4) as threads:  # other devices: untouched
        ...     threads == torch.get_num_threads()
        True
    """
    global _announced
    before = torch.get_num_threads()
    threads = min(before, max(1, available_cpus() - workers))
    if torch.device(device).type != "cpu" or workers <= 0 or threads == before or _threads_chosen_by_user():
        yield before
        return
    if not _announced:
        _announced = True
        log.debug("CPU evaluation: %d torch thread(s) beside %d loader worker(s) on %d core(s) (was %d; "
                  "restored after)", threads, workers, available_cpus(), before)
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)
