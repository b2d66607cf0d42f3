"""Per-epoch logs: one JSON line per epoch in ``log.jsonl``, optionally TensorBoard scalars."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

__all__ = ["EpochLogger", "LOG_NAME", "require_tensorboard"]

LOG_NAME = "log.jsonl"


def require_tensorboard():
    """``SummaryWriter``, or a clear error saying how to install TensorBoard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise SystemExit("--tensorboard needs the 'tensorboard' package: pip install tensorboard "
                         "(or drop --tensorboard; log.jsonl is always written)") from exc
    return SummaryWriter


class EpochLogger:
    """Appends ``record`` dicts to ``out_dir/log.jsonl`` (durably) and mirrors numbers to TensorBoard.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> with EpochLogger(d) as log:
        ...     log.write({"epoch": 1, "lr": 0.1, "val_acc1": 12.5})
        >>> open(f"{d}/log.jsonl").read()
        '{"epoch": 1, "lr": 0.1, "val_acc1": 12.5}\\n'
    """

    def __init__(self, out_dir: str | os.PathLike, *, tensorboard: bool = False) -> None:
        self.path = Path(out_dir) / LOG_NAME
        self.writer = require_tensorboard()(log_dir=str(Path(out_dir) / "tensorboard")) if tensorboard else None

    def write(self, record: Mapping[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(dict(record)) + "\n")
            f.flush()
            os.fsync(f.fileno())
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
