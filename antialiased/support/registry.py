"""A name -> registration table whose names are registered once each (tasks, training tasks, protocols).

Example:
    >>> tasks = Registry("task")
    >>> tasks.add("classification", 1), tasks["classification"], list(tasks)
    (1, 1, ['classification'])
    >>> tasks.add("classification", 2)
    Traceback (most recent call last):
    ...
    antialiased.errors.ConfigError: task 'classification' is registered twice
    >>> tasks.known("segmentaton")
    Traceback (most recent call last):
    ...
    antialiased.errors.ConfigError: unknown task 'segmentaton'; choose from classification
"""
from __future__ import annotations

from typing import TypeVar

from antialiased.errors import ConfigError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(dict[str, T]):
    """A dict of registrations by name, in registration order; ``what`` names them in its messages."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def add(self, name: str, item: T) -> T:
        """Register ``item`` as ``name``; a second registration of a name is a ConfigError."""
        if name in self:
            raise ConfigError(f"{self.what} {name!r} is registered twice")
        self[name] = item
        return item

    def copy(self) -> "Registry[T]":
        """A registry of the same registrations (e.g. to register more for a while, in tests)."""
        other: Registry[T] = Registry(self.what)
        other.update(self)
        return other

    def known(self, name: str) -> T:
        """The registration called ``name``; a ConfigError naming the known ones otherwise."""
        if name not in self:
            raise ConfigError(f"unknown {self.what} {name!r}; choose from {', '.join(self)}")
        return self[name]
