"""How every command ends: one clear line for expected failures, Ctrl-C and warnings; quiet on a closed pipe.

Expected failures are the package's own exceptions (:class:`antialiased.errors.AntialiasedError`):
a bad name, an unfit file, a folder in the wrong layout, a download that failed. Anything else is
a bug and keeps its traceback. :func:`user_errors` also makes

- Ctrl-C (SIGINT) end with one line and exit status 130 (a command may raise
  :class:`CommandInterrupted` to say more, e.g. training names the checkpoint to resume from); a
  second Ctrl-C while the first is handled ends the process at once;
- output piped into a reader that stopped early (``antialiased models | head``) end quietly with
  status 0, as Python's documentation recommends (stdout redirected to ``/dev/null``, so nothing is
  reported again at interpreter shutdown);
- library warnings print as one line, ``PROG: warning: ...``, without the source line.
"""
from __future__ import annotations

import _thread
import contextlib
import functools
import os
import select
import signal
import sys
import threading
import warnings
from typing import Callable, Iterator

from tqdm import tqdm

from antialiased.errors import AntialiasedError

__all__ = ["user_errors", "error_message", "CommandInterrupted", "TRACEBACK_ENV", "INTERRUPTED_STATUS"]

TRACEBACK_ENV = "ANTIALIASED_TRACEBACK"
INTERRUPTED_STATUS = 130  # 128 + SIGINT, what shells report for a process ended by Ctrl-C


class CommandInterrupted(Exception):
    """Raised by a command that was interrupted (Ctrl-C) to end with its own one-line message."""


def error_message(exc: BaseException) -> str:
    """The message of ``exc``; for one re-raised from a DataLoader worker, the original message only.

    Example:
        >>> from antialiased.errors import DataError
        >>> error_message(DataError("Caught DataError in DataLoader worker process 0.\\nOriginal Traceback "
        ...                         "(most recent call last):\\n  File ...\\nantialiased.errors.DataError: bad file\\n"
        ...                         "second line"))
        'bad file\\nsecond line'
    """
    message = str(exc)
    if not (message.startswith("Caught ") and "Original Traceback" in message):
        return message
    # The traceback ends with "module.Type: message" (the message may span several lines).
    for name in (f"{type(exc).__module__}.{type(exc).__qualname__}: ", f"{type(exc).__qualname__}: "):
        at = message.rfind("\n" + name)
        if at >= 0:
            return message[at + 1 + len(name):].strip()
    last = message.strip().splitlines()[-1]
    return last.split(": ", 1)[-1]


def _close_progress_bars() -> None:
    """End the progress bars an exception left open, so that the message starts on a line of its own."""
    for bar in list(getattr(tqdm, "_instances", ())):
        with contextlib.suppress(Exception):
            bar.close()


def _say(text: str) -> None:
    """Print on stderr; a closed stderr (``2>&1 | head``) is silenced instead of raising again."""
    try:
        _close_progress_bars()
        print(text, file=sys.stderr, flush=True)
    except BrokenPipeError:
        _discard(sys.stderr)


def _discard(stream) -> None:
    """Point ``stream``'s file descriptor at /dev/null: what is still buffered, and later output, goes nowhere."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (captured by a test harness)
        pass


def _reader_gone(stream) -> bool:
    """Whether ``stream`` is a pipe whose reader has closed it (POLLERR on the write end)."""
    try:
        poller = select.poll()
        poller.register(stream.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return True  # no poll(): the broken pipe is taken to be the output's


# Code that an exception must not interrupt: forking a process (CPython drops an exception raised in an
# at-fork hook, leaving e.g. the logging lock held in both processes) and starting torch's data-loader
# workers (an iterator interrupted half-built fails again in its __del__).
_STARTING_PROCESSES = (("_launch", os.path.join("multiprocessing", "popen_fork.py")),
                       ("__init__", os.path.join("torch", "utils", "data", "dataloader.py")))


def _starting_processes(frame) -> bool:
    """Whether the interrupted code is inside :data:`_STARTING_PROCESSES`."""
    while frame is not None:
        code = frame.f_code
        if any(code.co_name == name and code.co_filename.endswith(file) for name, file in _STARTING_PROCESSES):
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def _interrupt_once() -> Iterator[None]:
    """The first Ctrl-C raises KeyboardInterrupt (cleanup runs); a second one ends the process at once.

    Data-loader workers (forked children) ignore it: the main process stops them. While workers are
    being started the interrupt waits a moment (see :data:`_STARTING_PROCESSES`).
    """
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # a caller (an outer command, a test harness) chose its own handling
        return
    owner = os.getpid()

    def first(signum, frame):
        if os.getpid() != owner:
            return
        if _starting_processes(frame):
            threading.Timer(0.05, _thread.interrupt_main).start()
            return
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@contextlib.contextmanager
def _one_line_warnings(prog: str) -> Iterator[None]:
    """Format warnings as ``PROG: warning: message`` (no category, file or source line).

    Only the formatting changes: warnings recorded by ``warnings.catch_warnings(record=True)`` (pytest's
    ``warns``, a caller's own) are recorded as before, and filters apply as before.
    """
    formatted = warnings.formatwarning

    def one_line(message, category, filename, lineno, line=None) -> str:
        return f"{prog}: warning: {message}\n"

    warnings.formatwarning = one_line
    try:
        yield
    finally:
        if warnings.formatwarning is one_line:
            warnings.formatwarning = formatted


def _run(prog: str, main: Callable[..., int], args: tuple, kwargs: dict) -> int:
    try:
        status = main(*args, **kwargs)
        sys.stdout.flush()  # a closed pipe shows here, not as "Exception ignored" at interpreter exit
        return status
    except AntialiasedError as exc:
        if os.environ.get(TRACEBACK_ENV):
            raise
        _say(f"{prog}: error: {error_message(exc)}\n(set {TRACEBACK_ENV}=1 for the full traceback)")
        return 2
    except CommandInterrupted as exc:
        if str(exc):
            _say(f"{prog}: {exc}")
        return INTERRUPTED_STATUS
    except KeyboardInterrupt:
        if os.environ.get(TRACEBACK_ENV):
            raise
        _say(f"{prog}: interrupted")
        return INTERRUPTED_STATUS
    except BrokenPipeError:
        if not _reader_gone(sys.stdout):
            raise  # some other pipe (a worker's, a socket's): a real failure
        _discard(sys.stdout)
        return 0


def user_errors(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a CLI ``main``: see the module docstring. Package errors exit with status 2.

    Set the environment variable ``ANTIALIASED_TRACEBACK=1`` to see the full traceback instead.
    """

    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def wrapped(*args, **kwargs) -> int:
            with _interrupt_once(), _one_line_warnings(prog):
                return _run(prog, main, args, kwargs)

        return wrapped

    return decorate
