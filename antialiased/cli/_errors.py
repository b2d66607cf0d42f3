"""Turn the library's expected failures into one clear line at the command line, not a traceback.

Expected failures are the package's own exceptions (:class:`antialiased.errors.AntialiasedError`):
a bad name, an unfit file, a folder in the wrong layout, a download that failed. Anything else is
a bug and keeps its traceback.
"""
from __future__ import annotations

import functools
import os
import sys
from typing import Callable

from antialiased.errors import AntialiasedError

__all__ = ["user_errors", "error_message", "TRACEBACK_ENV"]

TRACEBACK_ENV = "ANTIALIASED_TRACEBACK"


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


def user_errors(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a CLI ``main``: the package's errors print ``prog: error: ...`` and exit with status 2.

    Set the environment variable ``ANTIALIASED_TRACEBACK=1`` to see the full traceback instead.
    """

    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def wrapped(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except AntialiasedError as exc:
                if os.environ.get(TRACEBACK_ENV):
                    raise
                print(f"{prog}: error: {error_message(exc)}\n(set {TRACEBACK_ENV}=1 for the full traceback)",
                      file=sys.stderr)
                return 2

        return wrapped

    return decorate
