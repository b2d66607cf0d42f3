"""A protocol as one registration: its flag, the tasks it runs for, its scorer, its printed lines, its result
fields, and the figures the audit and the report show.

:class:`Protocol` is the interface; :mod:`antialiased.evaluation.protocols` registers every protocol
(with :func:`register`, once each) and :data:`PROTOCOLS` is the registry everything else reads: the
command line makes its flags (``-e``, ``-es``, ... with their help) from :func:`protocol_flags`, the
runner builds scorers and reports from it, the audit takes its protocols, short names and metric
rows from it, and ``antialiased report`` its table columns.

Several tasks may share a flag: ``-es`` is the shift-consistency protocol of a classifier and the
per-pixel one of a segmentation model, two registrations with the same :class:`Flag`;
:func:`resolve_protocols` picks the one of a run's task.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Sequence

import numpy as np
import torch

from antialiased.errors import ConfigError
from antialiased.evaluation.saving import ImageSaver
from antialiased.support.registry import Registry


__all__ = ["Flag", "Figure", "Protocol", "ProtocolContext", "ProtocolReport", "PROTOCOLS", "register",
           "protocol_flags", "flag_help", "resolve_protocols", "audit_protocols", "protocol_aliases",
           "audit_figures", "task_of_protocol"]


@dataclass(frozen=True)
class Flag:
    """A command-line flag asking for a protocol (of whichever task the run has): ``-es/--evaluate-shift``.

    Example:
        >>> f = Flag("-es", "--evaluate-shift", "shift consistency")
        >>> f.dest, f.alias
        ('evaluate_shift', 'es')
    """

    short: str
    long: str
    help: str

    @property
    def dest(self) -> str:
        """The attribute argparse stores it in."""
        return self.long.lstrip("-").replace("-", "_")

    @property
    def alias(self) -> str:
        """The short name the audit's ``--protocols`` takes (the flag without its dash)."""
        return self.short.lstrip("-")


@dataclass(frozen=True)
class Figure:
    """A figure of a protocol's result file (``metrics[key]``, its interval ``metrics[key + '_ci95']``) as the
    audit's metrics table and the report's invariance table show it: ``label`` and ``unit`` ('%' or '' for a ratio)."""

    key: str
    label: str
    unit: str = "%"


@dataclass
class ProtocolContext:
    """What a protocol may use: the run's settings, its device, where files go, the model's name, the task."""

    config: Any
    device: torch.device
    out_dir: Path | None
    model_name: str
    write_files: bool = True
    units: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # per protocol, all ranks
    cached: bool = False
    task: str = "classification"
    classes: list[str] | None = None  # class names in output order, once the data and the model are known

    def saver(self, protocol: str) -> Callable | None:
        if not self.config.save_images or self.out_dir is None or not self.write_files:
            return None
        data = self.config.data  # settled: the normalization this evaluation feeds the model
        stats = {k: v for k, v in (("mean", data.mean), ("std", data.std)) if v is not None}
        return ImageSaver(self.out_dir / "images" / protocol, **stats)


@dataclass
class ProtocolReport:
    """A protocol's result as shown and recorded: printed lines, result-file metrics and settings."""

    lines: list[str]
    metrics: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)


class Protocol:
    """One protocol. Subclasses set the class attributes and implement :meth:`build` and :meth:`report`.

    Attributes:
        name: the result file's ``"protocol"`` (and the scorer's name).
        flag: the flag that asks for it (None: asked for otherwise, e.g. ``-ens`` or the audit).
        flag_help: this protocol's part of the flag's help, after the flag's own (for a second task's
            registration of a flag: what the flag does for that task).
        tasks: the tasks (names of :data:`~antialiased.evaluation.tasks.TASKS`) it runs for.
        aliases: more short names for the audit's ``--protocols`` (besides the flag's).
        audit: whether the audit runs it by default.
        in_tables: whether its result feeds the paper-style tables of ``antialiased report`` (their
            columns are the task's, :attr:`~antialiased.evaluation.task.Task.table_columns`).
        figures: its figures in the audit's metrics table and the report's invariance table.
    """

    name: ClassVar[str] = "protocol"
    flag: ClassVar[Flag | None] = None
    flag_help: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = ("classification",)
    aliases: ClassVar[tuple[str, ...]] = ()
    audit: ClassVar[bool] = True
    in_tables: ClassVar[bool] = True
    figures: ClassVar[tuple[Figure, ...]] = ()

    def build(self, ctx: ProtocolContext) -> Any:
        """The scorer of this protocol for a run's settings."""
        raise NotImplementedError

    def report(self, out: dict[str, Any], ctx: ProtocolContext) -> ProtocolReport:
        """The printed lines, result-file metrics and settings of the scorer's result ``out``."""
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.name} ({self.flag.short})" if self.flag is not None else self.name


PROTOCOLS: Registry[Protocol] = Registry("protocol")  # name -> registration, in the order results are reported


def register(cls: type[Protocol]) -> type[Protocol]:
    """Class decorator: add a protocol to :data:`PROTOCOLS` (each name once; a flag once per task)."""
    for other in PROTOCOLS.values() if cls.name not in PROTOCOLS else ():  # a name again: add() says so
        if cls.flag is not None and other.flag == cls.flag and set(other.tasks) & set(cls.tasks):
            raise ConfigError(f"{cls.flag.short} is already {other.name!r}'s for the tasks {other.tasks}")
    PROTOCOLS.add(cls.name, cls())
    return cls


def protocol_flags() -> list[Flag]:
    """Every protocol flag once, in registry order."""
    return list(dict.fromkeys(p.flag for p in PROTOCOLS.values() if p.flag is not None))


def flag_help(flag: Flag) -> str:
    """The flag's help: its own, then what it does for other tasks (``; segmentation: ...``)."""
    parts = [flag.help] + [p.flag_help for p in PROTOCOLS.values() if p.flag == flag and p.flag_help]
    return "; ".join(parts)


def task_of_protocol(name: str) -> str | None:
    """The task a protocol's result belongs to (None: an unregistered name, or one run for several tasks)."""
    protocol = PROTOCOLS.get(name)
    return protocol.tasks[0] if protocol is not None and len(protocol.tasks) == 1 else None


def _for_task(protocol: Protocol, task: str) -> Protocol | None:
    if task in protocol.tasks:
        return protocol
    if protocol.flag is None:
        return None
    return next((p for p in PROTOCOLS.values() if p.flag == protocol.flag and task in p.tasks), None)


def resolve_protocols(names: Sequence[str], task: str) -> tuple[str, ...]:
    """The registrations of ``task`` for ``names`` (a name of another task's registration of the same flag is
    replaced by ``task``'s: ``shift_consistency`` -> ``segmentation_consistency``).

    Raises:
        ConfigError: an unknown name, or a protocol ``task`` has no registration of.

    Example:
        >>> resolve_protocols(["accuracy", "shift_consistency"], "segmentation")
        ('segmentation_accuracy', 'segmentation_consistency')
    """
    unknown = [n for n in names if n not in PROTOCOLS]
    if unknown:
        raise ConfigError(f"unknown protocol(s) {unknown}; choose from {', '.join(PROTOCOLS)}")
    found = []
    for name in names:
        protocol = _for_task(PROTOCOLS[name], task)
        if protocol is None:
            offered = [p.flag.short if p.flag else p.name for p in PROTOCOLS.values() if task in p.tasks]
            raise ConfigError(f"{PROTOCOLS[name].describe()} is not defined for {task} models; they have "
                              f"{', '.join(dict.fromkeys(offered))}")
        found.append(protocol.name)
    return tuple(found)


def audit_protocols(task: str = "classification") -> tuple[str, ...]:
    """The protocols the audit runs by default for ``task``, in report order: the flags' order (as the flags
    print their results), then those without a flag."""
    flags = protocol_flags()
    chosen = [(name, p) for name, p in PROTOCOLS.items() if p.audit and task in p.tasks]
    rank = {name: flags.index(p.flag) if p.flag in flags else len(flags) for name, p in chosen}
    return tuple(sorted(rank, key=lambda name: rank[name]))  # stable: registry order within a rank


def protocol_aliases() -> dict[str, str]:
    """The audit's short names: each flag without its dash, and each registration's aliases, -> a protocol
    name (the first registration's; :func:`resolve_protocols` takes it to the run's task)."""
    found: dict[str, str] = {}
    for name, protocol in PROTOCOLS.items():
        for alias in ((protocol.flag.alias,) if protocol.flag else ()) + protocol.aliases:
            found.setdefault(alias, name)
    return found


def audit_figures(names: Iterable[str] | None = None) -> list[tuple[str, Figure]]:
    """``(protocol, figure)`` of every registered figure (of ``names`` only, if given), in registry order."""
    chosen = PROTOCOLS if names is None else {n: PROTOCOLS[n] for n in PROTOCOLS if n in set(names)}
    return [(name, figure) for name, p in chosen.items() for figure in p.figures]
