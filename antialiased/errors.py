"""The package's own exceptions: what a user can fix, with the fix in the message.

Every error the library raises on purpose derives from :class:`AntialiasedError` and from the
built-in exception a caller would expect (``ValueError`` for bad values, ``OSError`` for files,
``RuntimeError`` for failures while running), so both ``except ValueError`` and
``except AntialiasedError`` work. The command line turns these, and only these, into one line and
exit status 2; anything else is a bug and keeps its traceback.

This module imports nothing from the package, so every layer can use it.

Example:
    >>> err = ConfigError("--lr must be a positive number, got nan")
    >>> isinstance(err, ValueError), isinstance(err, AntialiasedError)
    (True, True)
"""
from __future__ import annotations

__all__ = [
    "AntialiasedError",
    "ConfigError",
    "ModelError",
    "WeightsError",
    "CheckpointError",
    "DataError",
    "DownloadError",
    "WeightsDownloadError",
    "TrainingError",
    "OutputError",
    "MissingFileError",
    "MissingDependencyError",
]


class AntialiasedError(Exception):
    """Base class: an expected failure whose message names the thing at fault and the fix."""


class ConfigError(AntialiasedError, ValueError):
    """An argument value or a combination of arguments that cannot work."""


class ModelError(AntialiasedError, ValueError):
    """A model name that is unknown, or a model that cannot be built or converted as asked."""


class WeightsError(AntialiasedError, ValueError):
    """Weights that cannot be read, or do not fit the model they are loaded into."""


class CheckpointError(WeightsError):
    """A training checkpoint that is missing, unreadable, or does not fit the requested run."""


class DataError(AntialiasedError, ValueError):
    """A dataset folder with the wrong layout, unusable files, or classes that do not match the model."""


class DownloadError(AntialiasedError, RuntimeError):
    """A download that failed, was cut short or does not match its published hash."""

    def __init__(self, message: str, url: str = "") -> None:
        super().__init__(message)
        self.url = url

    def __reduce__(self):  # keep ``url`` when re-raised from a DataLoader worker or another process
        return (type(self), (str(self), self.url))


class WeightsDownloadError(DownloadError):
    """Weights (published, torchvision's or timm's) could not be downloaded, verified or read from the cache;
    the message lists the offline alternatives."""


class TrainingError(AntialiasedError, RuntimeError):
    """Training cannot go on (for instance the loss stopped being finite)."""


class OutputError(AntialiasedError, OSError):
    """An output that cannot be written: a folder that is not writable, a file in the way, a full disk."""


class MissingFileError(AntialiasedError, FileNotFoundError):
    """An input file or folder that does not exist."""


class MissingDependencyError(AntialiasedError, ImportError):
    """An optional package that this feature needs is not installed; the message gives the pip command."""
