"""Checkpoint and state-dict I/O, one place for evaluation, training, export and the model registry.

A training checkpoint is a dict with ``epoch`` (epochs completed), ``arch``, ``state_dict`` (no
DataParallel, DDP or ``torch.compile`` prefixes), ``best_acc1``, ``optimizer``, ``lr_scheduler``,
``scaler``, ``rng_state`` and the run's identity; a weights file is ``{"state_dict": ...}`` or a bare
state dict. Everything loads with ``torch.load(weights_only=True)``; every write is atomic (a kill at
any moment leaves the old file or the new one).
"""
from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from antialiased.errors import CheckpointError, MissingFileError, WeightsError
from antialiased.support.files import fsync_dir, output_error

__all__ = [
    "save_checkpoint",
    "link_checkpoint",
    "load_checkpoint",
    "remove_stale_temporaries",
    "strip_prefixes",
    "extract_state_dict",
    "load_weights_file",
    "WeightsFile",
    "read_weights_file",
    "load_into",
    "check_arch",
    "export_weights",
]

# What a checkpoint records about its run that an exported weights file keeps.
IDENTITY_KEYS = ("arch", "num_classes", "classes", "data", "model_spec", "weights_info", "preprocessing")


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
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) or "unexpected pos" in str(exc):  # torch reports a full disk this way
            raise output_error(exc if isinstance(exc, OSError) else OSError(28, "No space left on device"),
                               path, "checkpoint") from exc
        raise
    fsync_dir(path.parent)
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
    fsync_dir(dst.parent)
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


_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DistributedDataParallel, torch.compile


def strip_prefixes(state_dict: Mapping[str, Any], keep: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Drop ``module.`` / ``_orig_mod.`` when every key has it (and, given ``keep``, its keys do not)."""
    state_dict = dict(state_dict)
    changed = True
    while changed and state_dict:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if keep is not None and any(k.startswith(prefix) for k in keep):
                continue
            if all(k.startswith(prefix) for k in state_dict):
                state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
                changed = True
    return state_dict


def extract_state_dict(obj: Any, source: str = "the weights") -> dict[str, torch.Tensor]:
    """The model state dict inside a loaded weights object, with wrapper prefixes removed.

    Accepts a bare state dict, ``{"state_dict": ...}`` (the published files, the paper's training
    checkpoints with optimizer state etc.), ``{"model": ...}`` (torchvision's references) and keys
    prefixed by ``module.`` (DataParallel / DDP) or ``_orig_mod.`` (torch.compile).

    Example:
        >>> sd = extract_state_dict({"epoch": 3, "state_dict": {"module.fc.weight": torch.ones(2, 2)}})
        >>> list(sd)
        ['fc.weight']
    """
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{source} does not hold a state dict but a {type(obj).__name__}. Save weights with "
                         "torch.save(model.state_dict(), path) or torch.save({'state_dict': model.state_dict()}, path).")
    if not obj:
        raise WeightsError(f"{source} holds an empty state dict.")
    bad = [k for k, v in obj.items()
           if not isinstance(k, str) or not (isinstance(v, torch.Tensor) or str(k).endswith("_extra_state"))]
    if bad:
        keys = ", ".join(repr(k) for k in list(obj)[:8])
        raise WeightsError(f"{source} is not a state dict (name -> tensor): {len(bad)} entries are not tensors, e.g. "
                         f"{bad[0]!r}. Top-level keys: {keys}{', ...' if len(obj) > 8 else ''}. Expected a state "
                         f"dict, or a checkpoint with one under {' / '.join(repr(k) for k in _WRAPPER_KEYS)}.")
    return strip_prefixes(dict(obj))


# Entries of a training checkpoint that restore a run rather than describe the weights.
_RESUME_STATE = frozenset({"optimizer", "lr_scheduler", "scaler", "rng_state"})


@dataclass(frozen=True)
class WeightsFile:
    """A weights file or training checkpoint as read from disk.

    Attributes:
        path: the file, absolute.
        state_dict: the model's weights (wrapper prefixes removed), see :func:`extract_state_dict`.
        metadata: the file's other top-level entries that describe the weights (a training checkpoint's
            ``arch``, ``epoch``, ``best_acc1``, ``num_classes``, ``classes``, ``args``, ...), without the
            state dict and the optimizer/scheduler/scaler/RNG state; empty for a bare state dict.
    """

    path: Path
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_checkpoint(self) -> bool:
        """True for a training checkpoint (it records the epochs completed), False for a weights file."""
        return "epoch" in self.metadata


def _torch_load_weights(p: Path) -> Any:
    if not p.exists():
        raise MissingFileError(f"Weights file not found: {p}")
    if p.is_dir():
        raise WeightsError(f"{p} is a folder; pass the path of a weights file (.pth / .pth.tar).")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise WeightsError(f"{p} is not a PyTorch weights file ({exc}).") from exc
        raise WeightsError(
            f"{p} holds pickled Python objects besides tensors, which torch.load(weights_only=True) refuses for "
            f"safety (for instance a whole model saved with torch.save(model, ...)). If you trust the file, "
            f"re-save its weights: torch.save(torch.load(path, weights_only=False).state_dict(), 'weights.pth').") from exc
    except Exception as exc:  # torch.load raises assorted types (KeyError, EOFError, RuntimeError) on junk
        raise WeightsError(f"{p} is not a PyTorch weights file (torch.load failed: "
                         f"{type(exc).__name__}: {str(exc)[:200]}).") from exc


def _metadata(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, Mapping):
        return {}
    wrapper = next((k for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
    if wrapper is None:
        return {}  # a bare state dict: every entry is a weight
    return {k: v for k, v in obj.items() if k != wrapper and k not in _RESUME_STATE}


def read_weights_file(path: str | os.PathLike) -> WeightsFile:
    """Read a local weights file or training checkpoint: its state dict and what it records about it.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "ckpt.pth.tar"
        >>> torch.save({"epoch": 2, "arch": "net", "classes": ["cat", "dog"], "optimizer": {},
        ...             "state_dict": {"module.fc.weight": torch.ones(2, 3)}}, p)
        >>> f = read_weights_file(p)
        >>> list(f.state_dict), f.metadata, f.is_checkpoint
        (['fc.weight'], {'epoch': 2, 'arch': 'net', 'classes': ['cat', 'dog']}, True)

    Raises:
        MissingFileError: no such file.
        WeightsError: a folder, not a PyTorch file, pickled Python objects, or no state dict inside.
    """
    p = Path(path).expanduser().absolute()
    obj = _torch_load_weights(p)
    return WeightsFile(p, extract_state_dict(obj, source=str(p)), _metadata(obj))


def load_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a local weights file or training checkpoint (``torch.load(weights_only=True)``) into a state dict.

    See :func:`extract_state_dict` for the accepted layouts, :func:`read_weights_file` for the
    file's metadata too.

    Raises:
        MissingFileError: no such file.
        WeightsError: a folder, not a PyTorch file, pickled Python objects, or no state dict inside.
    """
    p = Path(path).expanduser()
    return extract_state_dict(_torch_load_weights(p), source=str(p))


def _sample(keys: list[str], n: int = 5) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys) - n} more)" if len(keys) > n else "")


def _mismatch_hints(mismatched: list[tuple[str, tuple, tuple]], missing: list[str],
                    unexpected: list[str], expected_keys: list[str]) -> list[str]:
    hints = []
    filt = [(k, f, m) for k, f, m in mismatched if k.endswith("filt")]
    if filt:
        k, f, m = filt[0]
        hints.append(f"blur filters differ ({k}: file {f[-1]} taps, model {m[-1]}): the file is for another "
                     f"filter size (_lpf{f[-1]} instead of _lpf{m[-1]}).")
    head = set(expected_keys[-2:])
    if mismatched and not missing and not unexpected and all(k in head for k, _, _ in mismatched):
        k, f, m = mismatched[0]
        hints.append(f"only the classifier differs ({k}: {f[0]} outputs in the file, {m[0]} in the model): build "
                     f"the model with num_classes={f[0]}, or load the weights into a model with the file's "
                     f"classes and replace the classifier afterwards.")
    if missing and unexpected and not filt:
        hints.append("the file was probably saved for another architecture (or the baseline without blur).")
    return hints


def load_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str, *,
              expected_missing: Collection[str] = ()) -> None:
    """Load ``state_dict`` into ``model`` strictly; if it does not fit, a :class:`WeightsError` names the keys.

    A model that carries ``key_remap`` (an object with ``apply(model, state_dict)``: the key mapping its
    own ``load_state_dict`` pre-hook applies, see :mod:`antialiased.models.keymap`) gets the file's keys
    mapped first, so the check sees what ``load_state_dict`` would load.

    Args:
        model: the model to fill.
        state_dict: e.g. from :func:`load_weights_file` or :func:`load_published`.
        source: where the weights came from, for the error message (a path or a name).
        expected_missing: model keys the file may not hold (they keep the model's values): the state
            of layers a conversion added, for a baseline's file.

    Example:
        >>> load_into(nn.Linear(3, 2), {"weight": torch.zeros(2, 3), "bias": torch.zeros(2)}, "zeros")
        >>> load_into(nn.Linear(3, 2), {"weight": torch.zeros(2, 4)}, "bad.pth")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        antialiased.errors.WeightsError: Weights from bad.pth do not fit Linear (strict loading): 1 missing key ...
    """
    expected = model.state_dict()
    state_dict = strip_prefixes(dict(state_dict), keep=expected)
    for prefix in _WRAPPER_PREFIXES:  # a wrapped model (DDP, torch.compile) and weights saved without the wrapper
        if expected and state_dict and all(k.startswith(prefix) for k in expected) \
                and not any(k.startswith(prefix) for k in state_dict):
            state_dict = {prefix + k: v for k, v in state_dict.items()}
    remap = getattr(model, "key_remap", None)
    if remap is not None:
        try:
            state_dict = remap.apply(model, state_dict)
        except WeightsError as err:
            raise WeightsError(f"Weights from {source} do not fit {type(model).__name__}: {err}") from None
    missing = [k for k in expected if k not in state_dict and k not in expected_missing]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [(k, tuple(state_dict[k].shape), tuple(expected[k].shape)) for k in expected
                  if k in state_dict and isinstance(state_dict[k], torch.Tensor)
                  and isinstance(expected[k], torch.Tensor) and state_dict[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key{'s' * (len(missing) != 1)} (in the model, not in the file): "
                         f"{_sample(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key{'s' * (len(unexpected) != 1)} (in the file, not in "
                         f"the model): {_sample(unexpected)}")
        if mismatched:
            shown = "; ".join(f"{k}: file {list(f)} vs model {list(m)}" for k, f, m in mismatched[:5])
            more = f"; ... ({len(mismatched) - 5} more)" if len(mismatched) > 5 else ""
            parts.append(f"{len(mismatched)} shape mismatch{'es' * (len(mismatched) != 1)}: {shown}{more}")
        hints = _mismatch_hints(mismatched, missing, unexpected, list(expected))
        message = (f"Weights from {source} do not fit {type(model).__name__} (strict loading): "
                   + "\n  ".join(parts) + "".join(f"\nHint: {h}" for h in hints))
        raise WeightsError(message)
    model.load_state_dict(state_dict, strict=not expected_missing)


def check_arch(checkpoint: Mapping[str, Any], arch: str, source: str) -> None:
    """Refuse a checkpoint written for another architecture, naming both."""
    saved = checkpoint.get("arch")
    if saved is not None and saved != arch:
        raise CheckpointError(f"{source} was trained as '{saved}', but -a/--arch is '{arch}'; "
                              f"pass -a {saved} (or another checkpoint)")


def export_weights(checkpoint_path: str | os.PathLike, out_path: str | os.PathLike, *,
                   arch: str | None = None) -> Path:
    """Write ``{'state_dict': ...}`` from a training checkpoint: no optimizer, no wrapper prefixes.

    The run's identity (:data:`IDENTITY_KEYS`: arch, classes, data folder, model spec, weights
    source) travels along, so evaluating the exported file still checks its classes. The result
    loads with ``--weights`` and ``create_model(arch, weights=out_path)``.
    """
    checkpoint = load_checkpoint(checkpoint_path)
    if arch is not None:
        check_arch(checkpoint, arch, str(checkpoint_path))
    state = extract_state_dict(checkpoint, source=str(checkpoint_path))
    identity = {key: checkpoint[key] for key in IDENTITY_KEYS if checkpoint.get(key) is not None}
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint({"state_dict": state, **identity}, out_path)


