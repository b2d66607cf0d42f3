"""A training run's folder: which checkpoint files it holds, how each epoch's is written, which to resume.

Files in ``out_dir``:

- ``checkpoint.pth.tar``: the newest epoch; ``checkpoint_prev.pth.tar``: the epoch before, a
  separate file (a torn or corrupt newest file leaves it intact);
- ``checkpoint_NNN.pth.tar`` every :data:`SNAPSHOT_EVERY` epochs and ``model_best.pth.tar``;
- ``checkpoint_recovery.pth.tar``: a mid-epoch recovery checkpoint (``--checkpoint-every``), replaced
  atomically by the next one and deleted once the epoch's own checkpoint is written. It holds all
  a resume needs (plus ``mid_epoch``: the batches done, the running sums, the data order's seed),
  so ``--resume auto`` continues from it when it continues the newest epoch checkpoint's run. It is
  never linked to ``model_best`` or a snapshot; evaluation's and export's ``--resume auto`` take
  the newest *end-of-epoch* checkpoint (validated, in the log) and name a newer recovery file;
- ``checkpoint_new.pth.tar`` exists only for a moment: each epoch is written there first (atomically,
  see :func:`~antialiased.support.checkpoints.save_checkpoint`), linked to its snapshot and best
  names, and then renamed in place of ``checkpoint.pth.tar`` after the old one became
  ``checkpoint_prev.pth.tar``. A kill at any moment leaves a loadable newest checkpoint, and a full
  disk fails before any existing file changed.

A checkpoint dict holds ``epoch`` (epochs completed), ``arch``, ``state_dict``, ``best_acc1``,
``optimizer``, ``lr_scheduler``, ``scaler``, ``rng_state`` (one per rank), the run's identity
(``classes``, ``num_classes``, ``data``, ``model_spec``/``weights_info`` when the model has them),
``log`` (the epoch records so far) and ``config``; all of it loads with ``weights_only=True``.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any, Mapping

from antialiased.errors import CheckpointError, OutputError
from antialiased.support.checkpoints import link_checkpoint, load_checkpoint, save_checkpoint
from antialiased.support.class_lists import class_difference
from antialiased.support.files import fsync_dir, output_error

__all__ = ["CHECKPOINT_NAME", "PREVIOUS_NAME", "STAGING_NAME", "BEST_NAME", "RECOVERY_NAME", "MID_EPOCH_KEY",
           "SNAPSHOT_EVERY", "snapshot_name", "run_checkpoints", "refuse_other_run", "save_epoch", "save_recovery",
           "discard_recovery", "find_resumable", "find_mid_epoch", "describe_progress", "load_for_resume",
           "check_classes"]

CHECKPOINT_NAME = "checkpoint.pth.tar"
PREVIOUS_NAME = "checkpoint_prev.pth.tar"
STAGING_NAME = "checkpoint_new.pth.tar"
BEST_NAME = "model_best.pth.tar"
RECOVERY_NAME = "checkpoint_recovery.pth.tar"
MID_EPOCH_KEY = "mid_epoch"  # in a recovery checkpoint: where in its epoch it was written
SNAPSHOT_EVERY = 10  # epochs between kept checkpoint_NNN.pth.tar files, as in the paper
_SNAPSHOT = re.compile(r"checkpoint_(\d+)\.pth\.tar$")
UNREADABLE_SUFFIX = ".unreadable"


def snapshot_name(epoch: int) -> str:
    """``checkpoint_NNN.pth.tar``.

    Example:
        >>> snapshot_name(30)
        'checkpoint_030.pth.tar'
    """
    return f"checkpoint_{epoch:03d}.pth.tar"


def run_checkpoints(out_dir: str | os.PathLike) -> list[Path]:
    """The checkpoint files of a run in ``out_dir``, newest first (by construction, not by loading).

    Order: the staging file (a kill between its write and its rename), the newest, the previous,
    the snapshots from the latest down, then ``model_best``.
    """
    out = Path(out_dir)
    if not out.is_dir():
        return []
    snapshots = sorted((p for p in out.iterdir() if _SNAPSHOT.fullmatch(p.name)),
                       key=lambda p: int(_SNAPSHOT.fullmatch(p.name).group(1)), reverse=True)
    named = [out / n for n in (STAGING_NAME, CHECKPOINT_NAME, PREVIOUS_NAME)]
    return [p for p in [*named, *snapshots, out / BEST_NAME] if p.is_file()]


def _inside(path: str | os.PathLike | None, folder: Path) -> bool:
    if not path:
        return False
    return Path(path).expanduser().resolve().parent == folder.resolve()


def refuse_other_run(out_dir: str | os.PathLike, *, resume: str | None, weights: str | None) -> None:
    """Refuse to start a run that would overwrite the checkpoints of another run in ``out_dir``.

    Continuing the run in the folder is fine: ``resume`` (a file of the folder, or ``'auto'``),
    or starting weights taken from one of its files. Raises :class:`OutputError` naming the fixes.
    """
    out = Path(out_dir).expanduser()
    found = run_checkpoints(out) + [p for p in (out / RECOVERY_NAME,) if p.is_file()]
    if not found:
        return
    if resume == "auto" or _inside(resume, out) or _inside(weights, out):
        return
    what = f"--resume {resume} is from another folder" if resume else "this is a new run (no --resume)"
    raise OutputError(f"--out-dir {out} holds the checkpoints of another run ({', '.join(p.name for p in found)}) "
                      f"and {what}: starting would overwrite them. To continue that run pass --resume auto "
                      f"(or --resume {out / found[0].name}); to start a new one choose a new --out-dir")


def save_epoch(out_dir: str | os.PathLike, state: Mapping[str, Any], *, is_best: bool) -> Path:
    """Write one epoch's checkpoint (see the module docstring for the order of the steps)."""
    out = Path(out_dir)
    try:
        staged = save_checkpoint(state, out / STAGING_NAME)
    except OutputError as exc:  # e.g. a full disk: nothing else has changed yet
        kept = (f"the newest complete checkpoint, {out / CHECKPOINT_NAME}, is unchanged; continue from it with "
                f"--resume auto" if (out / CHECKPOINT_NAME).exists() else "no earlier checkpoint exists")
        raise OutputError(f"{exc} Epoch {state.get('epoch')} was not saved: {kept}") from exc
    epoch = int(state["epoch"])
    try:
        if epoch % SNAPSHOT_EVERY == 0:
            link_checkpoint(staged, out / snapshot_name(epoch))
        if is_best:
            link_checkpoint(staged, out / BEST_NAME)
    except OSError as exc:
        raise output_error(exc, out / CHECKPOINT_NAME, "checkpoint") from exc
    return _finish_save(staged)


def describe_progress(checkpoint: Mapping[str, Any]) -> str:
    """How far a checkpoint's run had got, for messages.

    Example:
        >>> describe_progress({"epoch": 3})
        'epoch 3'
        >>> describe_progress({"epoch": 3, "mid_epoch": {"epoch": 4, "batches_done": 1200, "batches": 5005}})
        'epoch 4, batch 1200 of 5005'
    """
    mid = checkpoint.get(MID_EPOCH_KEY)
    if isinstance(mid, Mapping):
        return f"epoch {mid.get('epoch', '?')}, batch {mid.get('batches_done', '?')} of {mid.get('batches', '?')}"
    return f"epoch {checkpoint.get('epoch', '?')}"


def save_recovery(out_dir: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write a mid-epoch recovery checkpoint: atomically, so the previous one stays until this one is complete."""
    out = Path(out_dir)
    try:
        return save_checkpoint(state, out / RECOVERY_NAME)
    except OutputError as exc:
        raise OutputError(f"{exc} The mid-epoch recovery checkpoint was not written (the files written before are "
                          f"intact; --checkpoint-every 0 turns these checkpoints off)") from exc


def discard_recovery(out_dir: str | os.PathLike) -> None:
    """Remove the recovery checkpoint once the epoch's own checkpoint (which supersedes it) is complete."""
    try:
        (Path(out_dir) / RECOVERY_NAME).unlink(missing_ok=True)
    except OSError:
        pass  # ignored from now on: an older epoch than the newest checkpoint's (see find_mid_epoch)


def _continues(recovery: Mapping[str, Any], base: Mapping[str, Any] | None) -> bool:
    """Whether ``recovery`` was written later in the run that wrote ``base``: its epochs are base's and more."""
    if base is None:
        return True
    done, base_done = recovery.get("epoch"), base.get("epoch")
    if not isinstance(done, int) or not isinstance(base_done, int) or done < base_done:
        return False
    base_log = list(base.get("log") or [])
    return list(recovery.get("log") or [])[:len(base_log)] == base_log


def find_mid_epoch(out_dir: str | os.PathLike, base: tuple[Path, dict[str, Any]] | None, *,
                   set_aside: bool = False) -> tuple[Path, dict[str, Any]] | None:
    """The recovery checkpoint of ``out_dir`` when it continues ``base`` (the newest epoch checkpoint, or None).

    One that is unreadable, or stale (older than ``base``, or from a run that started again), is passed
    over; with ``set_aside`` it is removed (an unreadable one renamed to ``NAME.unreadable``).
    """
    path = Path(out_dir) / RECOVERY_NAME
    if not path.is_file():
        return None
    try:
        recovery = load_checkpoint(path)
    except CheckpointError as exc:
        warnings.warn(f"--resume auto: passed over {_describe_failure(path, exc, set_aside)}", RuntimeWarning,
                      stacklevel=2)
        return None
    if isinstance(recovery.get(MID_EPOCH_KEY), Mapping) and _continues(recovery, base[1] if base else None):
        return path, recovery
    if set_aside:
        discard_recovery(out_dir)
    return None


def _set_aside(path: Path) -> Path:
    """Rename an unreadable checkpoint so that later saves and resumes never take it again."""
    aside = path.with_name(path.name + UNREADABLE_SUFFIX)
    os.replace(path, aside)
    return aside


def find_resumable(out_dir: str | os.PathLike, *, set_aside: bool = True,
                   mid_epoch: bool = True) -> tuple[Path, dict[str, Any]] | None:
    """``--resume auto``: the newest checkpoint of ``out_dir`` that loads, or None when there is none.

    A newest file that is torn or corrupt is passed over with a warning naming it (and, with
    ``set_aside``, renamed to ``NAME.unreadable``). With ``mid_epoch`` a recovery checkpoint that
    continues the newest epoch checkpoint comes first (see :func:`find_mid_epoch`). Raises
    :class:`CheckpointError` when checkpoint files exist but none of them loads.
    """
    found, failures = _newest_epoch_checkpoint(out_dir)
    if mid_epoch and (recovery := find_mid_epoch(out_dir, found, set_aside=set_aside)) is not None:
        found = recovery  # it holds the whole run, even when no epoch checkpoint loads
    if failures and found is not None:
        names = ", ".join(_describe_failure(p, e, set_aside) for p, e in failures)
        warnings.warn(f"--resume auto: passed over {names}; resuming from {found[0]} "
                      f"({describe_progress(found[1])})", RuntimeWarning, stacklevel=2)
    if failures and found is None:
        raise CheckpointError(f"--resume auto: no checkpoint in {out_dir} can be read "
                              f"({'; '.join(str(e) for _, e in failures)}). Start again with a new --out-dir")
    if found is not None and found[0].name == STAGING_NAME and set_aside:
        found = _finish_save(found[0]), found[1]
    return found


def _newest_epoch_checkpoint(out_dir: str | os.PathLike) -> tuple[tuple[Path, dict[str, Any]] | None, list]:
    """The newest end-of-epoch checkpoint that loads (or None), and the newer ones that did not."""
    failures = []
    for path in run_checkpoints(out_dir):
        try:
            return (path, load_checkpoint(path)), failures
        except CheckpointError as exc:
            failures.append((path, exc))
    return None, failures


def _finish_save(staged: Path) -> Path:
    """Complete :func:`save_epoch` for a staged checkpoint whose renames a kill cut short."""
    out = staged.parent
    try:
        if (out / CHECKPOINT_NAME).exists():
            os.replace(out / CHECKPOINT_NAME, out / PREVIOUS_NAME)
        os.replace(staged, out / CHECKPOINT_NAME)
    except OSError as exc:
        raise output_error(exc, out / CHECKPOINT_NAME, "checkpoint") from exc
    fsync_dir(out)
    return out / CHECKPOINT_NAME


def _describe_failure(path: Path, exc: Exception, set_aside: bool) -> str:
    reason = str(exc).split(": ", 1)[-1][:120]
    if set_aside and path.name != BEST_NAME:
        return f"{path.name} (unreadable: {reason}; renamed to {_set_aside(path).name})"
    return f"{path.name} (unreadable: {reason})"


def load_for_resume(path: str | os.PathLike) -> dict[str, Any]:
    """Load an explicitly named checkpoint; if it cannot be read, the error names those that can."""
    path = Path(path).expanduser()
    try:
        return load_checkpoint(path)
    except CheckpointError as exc:
        others = []
        for other in run_checkpoints(path.parent):
            if other.resolve() == path.resolve():
                continue
            try:
                others.append(f"{other} (epoch {load_checkpoint(other).get('epoch', '?')})")
            except CheckpointError:
                continue
            if len(others) == 3:
                break
        hint = (f"readable checkpoints in that folder: {', '.join(others)}; pass one of them to --resume, or "
                f"--resume auto to take the newest" if others else
                "no other checkpoint of that folder can be read; start again without --resume in a new --out-dir")
        raise CheckpointError(f"{exc}. {hint}") from None


def check_classes(checkpoint: Mapping[str, Any], classes: list[str], source: str, data: str) -> None:
    """Refuse to resume a checkpoint on data whose class folders differ from those it was trained on."""
    saved = checkpoint.get("classes")
    if saved is None or list(saved) == list(classes):
        return
    saved = list(saved)
    detail = class_difference(saved, classes)
    raise CheckpointError(f"{source} was trained on {len(saved)} classes that differ from the {len(classes)} "
                          f"class folders of --data {data} ({detail}). Resume with the data it was trained on, or "
                          f"start a new run from its weights (--weights {source} --out-dir NEW_DIR)")
