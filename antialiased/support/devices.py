"""Device, mixed-precision and seeding choices, the same for evaluation and training."""
from __future__ import annotations

import contextlib
import os
import random
import warnings
from typing import ContextManager

import numpy as np
import torch

from antialiased.errors import ConfigError

__all__ = ["AMP_CHOICES", "select_device", "resolve_amp", "autocast", "seed_everything"]

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
