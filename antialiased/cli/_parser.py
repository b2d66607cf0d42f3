"""The argument parser of every sub-command: argparse's, plus close matches for a mistyped flag.

argparse already corrects a mistyped choice (``--amp bf61`` lists the choices) and an ambiguous
prefix (``--epoch`` could match ``--epochs`` or ``--epochs-shift``); for a flag that matches
nothing it only says "unrecognized arguments". :class:`ArgumentParser` adds the closest known
flags to that message, once for every command.
"""
from __future__ import annotations

import argparse
import difflib
import importlib.metadata
from typing import NoReturn

__all__ = ["ArgumentParser", "close_flags", "package_version"]

_UNRECOGNIZED = "unrecognized arguments: "


def close_flags(token: str, known: dict[str, object]) -> list[str]:
    """The known flags closest to a mistyped one, one name per option (``--name=value`` compared by its name).

    ``known`` maps each flag to its option (aliases of one option share it); only flags nearly as close
    as the closest are kept.

    Example:
        >>> epochs, shift = object(), object()
        >>> close_flags("--epohcs", {"--epochs": epochs, "--ep": epochs, "-ep": epochs, "--epochs-shift": shift})
        ['--epochs']
        >>> close_flags("--zzz", {"--epochs": epochs})
        []
    """
    name = token.split("=", 1)[0]
    long_form = name.startswith("--")
    best: dict[int, tuple[float, str]] = {}  # option -> (score, flag)
    for flag, option in known.items():
        if flag.startswith("--") != long_form:
            continue
        score = difflib.SequenceMatcher(None, name, flag).ratio()
        if score >= 0.6 and score > best.get(id(option), (0.0, ""))[0]:
            best[id(option)] = (score, flag)
    ranked = sorted(best.values(), reverse=True)
    return [flag for score, flag in ranked[:3] if score >= ranked[0][0] - 0.1]


def _or(flags: list[str]) -> str:
    return flags[0] if len(flags) == 1 else f"{', '.join(flags[:-1])} or {flags[-1]}"


class ArgumentParser(argparse.ArgumentParser):
    """:class:`argparse.ArgumentParser` whose "unrecognized arguments" error names the closest flags.

    Example:
        >>> import contextlib, io
        >>> parser = ArgumentParser(prog="demo")
        >>> _ = parser.add_argument("--epochs", type=int)
        >>> err = io.StringIO()
        >>> with contextlib.redirect_stderr(err), contextlib.suppress(SystemExit):
        ...     parser.parse_args(["--epohcs", "3"])
        >>> err.getvalue().splitlines()[-1]
        'demo: error: unrecognized arguments: --epohcs 3 (did you mean --epochs?)'
    """

    def error(self, message: str) -> NoReturn:
        if message.startswith(_UNRECOGNIZED):
            known = {flag: action for flag, action in self._option_string_actions.items()
                     if action.help is not argparse.SUPPRESS}
            unknown = [t for t in message[len(_UNRECOGNIZED):].split() if t.startswith("-") and len(t) > 1]
            hints = [(token, close) for token in unknown if (close := close_flags(token, known))]
            if len(hints) == 1 and len(unknown) == 1:
                message += f" (did you mean {_or(hints[0][1])}?)"
            elif hints:
                message += " (" + "; ".join(f"{token}: did you mean {_or(close)}?" for token, close in hints) + ")"
        super().error(message)


def package_version() -> str:
    """The installed package's version (the source tree's ``__version__`` when it is not installed)."""
    try:
        return importlib.metadata.version("antialiased")
    except importlib.metadata.PackageNotFoundError:
        from antialiased import __version__  # the whole package: only where the metadata is missing
        return __version__
