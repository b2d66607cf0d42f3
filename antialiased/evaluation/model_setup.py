"""Building the model to evaluate from the command line's flags: weights, checkpoint, device, wrappers."""
from __future__ import annotations

import argparse
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

__all__ = ["select_device", "build_model", "wrap_for_devices", "init_distributed", "amp_dtype_from_flag"]

log = logging.getLogger(__name__)


def init_distributed(args: argparse.Namespace) -> bool:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); returns whether distributed."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = getattr(args, "dist_backend", None) or ("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, init_method=getattr(args, "dist_url", None) or "env://")
    return True


def select_device(gpu: int | None, distributed: bool = False) -> torch.device:
    """CUDA when present (``gpu`` picks one; under torchrun: LOCAL_RANK), else the CPU with a warning."""
    if not torch.cuda.is_available():
        if gpu is not None:
            warnings.warn(f"--gpu {gpu} requested but CUDA is not available: evaluating on the CPU", stacklevel=2)
        return torch.device("cpu")
    if distributed:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if gpu is not None:
        if not 0 <= gpu < torch.cuda.device_count():
            raise ValueError(f"--gpu {gpu}: this machine has {torch.cuda.device_count()} GPU(s), ids "
                             f"0..{torch.cuda.device_count() - 1}")
        return torch.device("cuda", gpu)
    return torch.device("cuda", 0)


def amp_dtype_from_flag(flag: str | None, device: torch.device) -> torch.dtype | None:
    if flag is None:
        return None
    if flag == "fp16":
        return torch.float16
    if flag == "bf16" or device.type != "cuda" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _output_size(state_dict: dict[str, torch.Tensor]) -> int | None:
    """Classes of a classifier's state dict: the leading size of its last weight/bias tensor."""
    for key in reversed(list(state_dict)):
        value = state_dict[key]
        if key.endswith(("weight", "bias")) and torch.is_tensor(value) and value.dim() >= 1:
            return int(value.shape[0])
    return None


def _read_checkpoint(path: str) -> dict:
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {path!r} not found (--resume expects a file written by training, "
                                f"e.g. OUT_DIR/model_best.pth.tar)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors of many kinds: report the file, not torch internals
        raise ValueError(f"cannot read checkpoint {path!r}: {err}") from err


def build_model(args: argparse.Namespace, dataset_classes: int) -> tuple[nn.Module, str]:
    """The model of ``-a`` with its weights (published, --weights, --resume or random); and a weights label."""
    import antialiased
    from antialiased.models import weights as wlib

    sources = [bool(args.pretrained), bool(args.weights), bool(args.resume)]
    if sum(sources) > 1:
        raise ValueError("give only one of --pretrained, --weights PATH and --resume PATH")
    arch_name, filter_size = antialiased.parse_model_name(args.arch)
    if args.pretrained:
        model = antialiased.create_model(args.arch, pretrained=True, force_nonfinetuned=args.force_nonfinetuned)
        if filter_size is None:
            return model, "torchvision:DEFAULT"
        entry = wlib.resolve_published(arch_name, filter_size, args.force_nonfinetuned)
        return model, f"published:{entry.name}"
    path = args.weights or args.resume
    if not path:
        warnings.warn(f"no weights given (--pretrained, --weights or --resume): evaluating a randomly initialized "
                      f"{args.arch} with {dataset_classes} outputs", stacklevel=2)
        return antialiased.create_model(args.arch, num_classes=dataset_classes), "random"
    if args.resume:
        checkpoint = _read_checkpoint(path)
        saved_arch = checkpoint.get("arch") if isinstance(checkpoint, dict) else None
        if saved_arch is not None and saved_arch != args.arch:
            raise ValueError(f"checkpoint {path!r} was trained as {saved_arch!r} but -a is {args.arch!r}: "
                             f"pass -a {saved_arch}")
    state_dict = wlib.load_weights_file(path)
    num_classes = _output_size(state_dict) or dataset_classes
    model = antialiased.create_model(args.arch, num_classes=num_classes)
    wlib.load_into(model, state_dict, source=str(path))
    kind = "checkpoint" if args.resume else "file"
    return model, f"{kind}:{Path(path).resolve()}"


def wrap_for_devices(model: nn.Module, device: torch.device, *, gpu: int | None, distributed: bool,
                     channels_last: bool, compile_model: bool) -> nn.Module:
    """Move to ``device``; DataParallel over all GPUs when several are visible and none was picked.

    Under torchrun each process evaluates its own shard and the counts are summed, so no DDP
    wrapper is needed for inference (it only synchronizes gradients).
    """
    model = model.to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile_model:
        model = torch.compile(model)
    if device.type == "cuda" and not distributed and gpu is None and torch.cuda.device_count() > 1:
        log.info("evaluating on %d GPUs with DataParallel", torch.cuda.device_count())
        model = nn.DataParallel(model)
    return model
