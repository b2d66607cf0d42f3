"""Device, mixed precision and seeding choices for a training process."""
from __future__ import annotations

import os
import random
import warnings

import numpy as np
import torch

__all__ = ["resolve_device", "resolve_amp", "seed_everything"]

_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(gpu: int | None, *, distributed: bool = False, local_rank: int = 0) -> tuple[torch.device, bool]:
    """``(device, use_data_parallel)`` for this process.

    One process per GPU under DDP; ``--gpu N`` pins one GPU; otherwise every visible GPU through
    DataParallel; the CPU when CUDA is absent (with a warning if ``--gpu`` asked for one).
    """
    cuda = torch.cuda.is_available()
    if distributed:
        return (torch.device("cuda", local_rank % torch.cuda.device_count()) if cuda else torch.device("cpu")), False
    if gpu is not None:
        if not cuda:
            warnings.warn(f"--gpu {gpu} was given but CUDA is not available: training on the CPU", RuntimeWarning,
                          stacklevel=2)
            return torch.device("cpu"), False
        if not 0 <= gpu < torch.cuda.device_count():
            raise SystemExit(f"--gpu {gpu}: this machine has {torch.cuda.device_count()} GPU(s), "
                             f"numbered 0..{torch.cuda.device_count() - 1}")
        return torch.device("cuda", gpu), False
    if cuda:
        return torch.device("cuda", 0), torch.cuda.device_count() > 1
    return torch.device("cpu"), False


def resolve_amp(amp: str | None, device: torch.device) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    """``(autocast dtype, grad scaler)`` for ``--amp`` {None, 'auto', 'bf16', 'fp16'}.

    bf16 needs no scaler; fp16 gets a ``GradScaler``. On the CPU only bf16 autocast is used.

    Example:
        >>> resolve_amp(None, torch.device("cpu"))
        (None, None)
        >>> resolve_amp("auto", torch.device("cpu"))
        (torch.bfloat16, None)
    """
    if amp is None:
        return None, None
    if amp not in ("auto", *_AMP_DTYPES):
        raise ValueError(f"--amp must be one of auto, bf16, fp16; got {amp!r}")
    if device.type != "cuda":
        if amp == "fp16":
            warnings.warn("--amp fp16 needs CUDA; using bf16 autocast on the CPU", RuntimeWarning, stacklevel=2)
        return torch.bfloat16, None
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = _AMP_DTYPES[amp]
    return dtype, (torch.amp.GradScaler("cuda") if dtype == torch.float16 else None)


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
