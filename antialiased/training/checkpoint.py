"""Training checkpoints: atomic writes, safe loading, and the paper's weight export.

A checkpoint is a dict with ``epoch`` (epochs completed), ``arch``, ``state_dict`` (no DataParallel,
DDP or ``torch.compile`` prefixes), ``best_acc1``, ``optimizer``, ``lr_scheduler``, ``scaler`` and
``rng_state`` (one entry per rank). Everything in it loads with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "link_checkpoint",
    "load_checkpoint",
    "remove_stale_temporaries",
    "strip_prefixes",
    "export_weights",
    "export_weights_from_args",
]

# Wrappers that rename every key of a state dict: DataParallel/DDP ('module.') and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or does not fit the requested run."""


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` with ``torch.save`` so that ``path`` is always either the old or the new file.

    The bytes go to a temporary file in the same directory, are flushed to disk, and only then
    replace ``path`` in one rename: a crash or kill at any moment leaves a loadable checkpoint.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> p = save_checkpoint({"epoch": 1, "state_dict": {"w": torch.ones(2)}}, f"{d}/checkpoint.pth.tar")
        >>> torch.load(p, weights_only=True)["epoch"]
        1
    """
    path = Path(path)
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            torch.save(dict(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def link_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Make ``dst`` a copy of the finished file ``src``, atomically (a hard link where possible).

    A hard link costs nothing; later replacing ``src`` with a new file leaves ``dst`` untouched.
    """
    src, dst = Path(src), Path(dst)
    tmp = _tmp_path(dst)
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(src, tmp)
        except OSError:  # file systems without hard links
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dst.parent)
    return dst


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete half-written ``.NAME.tmp-PID`` files of killed writers (PIDs no longer running here)."""
    removed = []
    for tmp in Path(directory).glob(".*.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # its writer is still alive
        except ProcessLookupError:
            pass
        except PermissionError:  # alive, owned by someone else
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint or weights file with ``weights_only=True``, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (give the path of a checkpoint.pth.tar, "
                              f"checkpoint_NNN.pth.tar or model_best.pth.tar written by training)")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated files, pickles with arbitrary objects, non-torch files
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict")
    return obj


def strip_prefixes(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Remove DataParallel/DDP ('module.') and torch.compile ('_orig_mod.') prefixes from every key.

    Example:
        >>> strip_prefixes({"module._orig_mod.fc.weight": 1, "fc.bias": 2})
        {'fc.weight': 1, 'fc.bias': 2}
    """
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in _WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def model_state_from(checkpoint: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The de-prefixed model weights of a training checkpoint, weights file or bare state dict."""
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(f"{source} has no model state dict (expected a 'state_dict' entry)")
    return strip_prefixes(state)


def check_arch(checkpoint: Mapping[str, Any], arch: str, source: str) -> None:
    """Refuse a checkpoint written for another architecture, naming both."""
    saved = checkpoint.get("arch")
    if saved is not None and saved != arch:
        raise CheckpointError(f"{source} was trained as '{saved}', but -a/--arch is '{arch}'; "
                              f"pass -a {saved} (or another checkpoint)")


def export_weights(checkpoint_path: str | os.PathLike, out_path: str | os.PathLike, *,
                   arch: str | None = None) -> Path:
    """Write ``{'state_dict': ...}`` from a training checkpoint: no optimizer, no wrapper prefixes.

    The result loads with ``--weights`` and ``create_model(arch, weights=out_path)``.
    """
    checkpoint = load_checkpoint(checkpoint_path)
    if arch is not None:
        check_arch(checkpoint, arch, str(checkpoint_path))
    state = model_state_from(checkpoint, str(checkpoint_path))
    out_path = Path(out_path)
    if out_path.parent and not out_path.parent.exists():
        out_path.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint({"state_dict": state}, out_path)


def export_weights_from_args(args: argparse.Namespace) -> int:
    """``main.py -a ARCH --resume CKPT --save_weights OUT``: the paper's post-processing step.

    Without ``--resume`` but with ``--data`` it trains first and then exports ``model_best``.
    """
    if not args.resume and getattr(args, "data", None):
        from antialiased.training.runner import run

        return run(args)
    if not args.resume:
        raise SystemExit("--save_weights needs --resume CHECKPOINT (the training checkpoint to export), e.g. "
                         "main.py -a resnet18_lpf4 --resume out/model_best.pth.tar --save_weights weights.pth.tar")
    try:
        out = export_weights(args.resume, args.save_weights, arch=args.arch)
    except CheckpointError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"=> wrote weights of {args.resume} to {out}")
    return 0
