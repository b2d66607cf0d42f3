"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from antialiased.errors import OutputError

__all__ = ["atomic_write_bytes", "atomic_write_text", "write_new_file", "fsync_dir", "output_error"]


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename inside ``directory`` durable (no-op where directories cannot be opened)."""
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


def output_error(exc: OSError, path: str | os.PathLike, what: str = "file") -> OutputError:
    """An :class:`OutputError` naming ``path`` and the fix for a failed write (disk full, no permission, ...)."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += ": the disk is full; free some space (or write elsewhere) and run again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason += ": choose a folder you can write to"
    return OutputError(f"cannot write the {what} {os.fspath(path)} ({reason}). Files written before are intact.")


def _umask() -> int:
    # Linux reports it without changing it; os.umask would briefly set 0 for every thread.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _default_mode() -> int:
    # mkstemp creates files readable by their owner only; give results the usual 0666 & ~umask.
    return 0o666 & ~_umask()


def _write_temporary(directory: Path, data: bytes, name: str = "file") -> Path:
    # Named .NAME.tmp-RANDOM-PID so that checkpoints.remove_stale_temporaries can tell a killed
    # writer's leftover (dead PID) from a live writer's file.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.tmp-", suffix=f"-{os.getpid()}")
    try:
        os.fchmod(fd, _default_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and one rename (replacing any old file).

    Raises:
        OutputError: the folder cannot be written (full disk, permissions); ``path`` is untouched.

    Example:
        >>> import tempfile
        >>> p = atomic_write_bytes(Path(tempfile.mkdtemp()) / "a.txt", b"hello")
        >>> p.read_bytes(), oct(p.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
        (b'hello', True)
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _write_temporary(path.parent, data, path.name)
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise output_error(exc, path) from exc
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_new_file(directory: str | os.PathLike, stem: str, suffix: str, data: bytes) -> Path:
    """Write ``data`` atomically as ``stem + suffix`` in ``directory``, or ``stem_1``, ``stem_2``... if taken.

    Never replaces an existing file, even when several processes write the same name at once: the
    finished temporary file is hard-linked to the name, which fails if the name exists.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> [write_new_file(d, "run", ".json", b"{}").name for _ in range(3)]
        ['run.json', 'run_1.json', 'run_2.json']
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = _write_temporary(directory, data, f"{stem}{suffix}")
    except OSError as exc:
        raise output_error(exc, directory / f"{stem}{suffix}") from exc
    try:
        n = 0
        while True:
            path = directory / (f"{stem}{suffix}" if n == 0 else f"{stem}_{n}{suffix}")
            try:
                os.link(tmp, path)
                break
            except FileExistsError:
                n += 1
            except OSError as exc:  # file systems without hard links: exclusive create, then rename over it
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    raise output_error(exc, path) from exc
                try:
                    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    n += 1
                    continue
                os.replace(tmp, path)
                break
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(directory)
    return path
