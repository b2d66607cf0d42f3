"""Turn the library's expected failures into one clear line at the command line, not a traceback."""
from __future__ import annotations

import functools
import os
import sys
from typing import Callable

__all__ = ["user_errors", "TRACEBACK_ENV"]

TRACEBACK_ENV = "ANTIALIASED_TRACEBACK"


def _expected() -> tuple[type[BaseException], ...]:
    # Bad names, unfit or missing files, layouts and downloads: things the user can fix.
    from antialiased.models.weights import WeightsDownloadError
    from antialiased.training.engine import NonFiniteLossError

    return (ValueError, OSError, WeightsDownloadError, NonFiniteLossError)


def user_errors(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a CLI ``main``: expected errors print ``prog: error: ...`` and exit with status 2.

    Set the environment variable ``ANTIALIASED_TRACEBACK=1`` to see the full traceback instead.
    """

    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def wrapped(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except _expected() as exc:
                if os.environ.get(TRACEBACK_ENV):
                    raise
                print(f"{prog}: error: {exc}\n(set {TRACEBACK_ENV}=1 for the full traceback)", file=sys.stderr)
                return 2

        return wrapped

    return decorate
