"""Per-epoch logs: one JSON line per epoch in ``log.jsonl``, optionally TensorBoard scalars.

The whole file is rewritten atomically after each epoch (it is small), so a kill never leaves a
half-written line, and a resumed run starts from exactly the records of the checkpoint it resumes.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from antialiased.errors import MissingDependencyError
from antialiased.support.files import atomic_write_text

__all__ = ["EpochLogger", "LOG_NAME", "read_log", "require_tensorboard"]

LOG_NAME = "log.jsonl"


def require_tensorboard():
    """``SummaryWriter``, or a clear error saying how to install TensorBoard."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # optional dependency
    except ImportError as exc:
        raise MissingDependencyError("--tensorboard needs the 'tensorboard' package: pip install tensorboard "
                                     "(or drop --tensorboard; log.jsonl is always written)") from exc
    return SummaryWriter


def read_log(path: str | os.PathLike, *, up_to_epoch: int | None = None) -> list[dict[str, Any]]:
    """The records of a ``log.jsonl`` (lines that do not parse are left out), up to an epoch.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "log.jsonl"
        >>> _ = p.write_text('{"epoch": 1}\\n{"epoch": 2}\\n{"epo')
        >>> read_log(p), read_log(p, up_to_epoch=1)
        ([{'epoch': 1}, {'epoch': 2}], [{'epoch': 1}])
    """
    records = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and (up_to_epoch is None or int(record.get("epoch", 0)) <= up_to_epoch):
            records.append(record)
    return records


class EpochLogger:
    """Keeps the run's epoch records in ``out_dir/log.jsonl`` and mirrors numbers to TensorBoard.

    ``history`` is what the file holds at the start (a resumed run's earlier epochs); it is
    written at once, which also cuts off records of epochs a resumed checkpoint does not have.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> with EpochLogger(d) as log:
        ...     log.write({"epoch": 1, "lr": 0.1, "val_acc1": 12.5})
        >>> open(f"{d}/log.jsonl").read()
        '{"epoch": 1, "lr": 0.1, "val_acc1": 12.5}\\n'
    """

    def __init__(self, out_dir: str | os.PathLike, *, tensorboard: bool = False,
                 history: Iterable[Mapping[str, Any]] = ()) -> None:
        self.path = Path(out_dir) / LOG_NAME
        self.records = [dict(r) for r in history]
        if self.records or self.path.exists():
            self._flush()
        self.writer = require_tensorboard()(log_dir=str(Path(out_dir) / "tensorboard")) if tensorboard else None

    def _flush(self) -> None:
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.records))

    def write(self, record: Mapping[str, Any]) -> None:
        self.records.append(dict(record))
        self._flush()
        if self.writer is not None:
            step = int(record.get("epoch", 0))
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(key, value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __enter__(self) -> "EpochLogger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
