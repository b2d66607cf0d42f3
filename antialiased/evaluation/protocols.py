"""The protocols an evaluation run can ask for: the registry (:data:`PROTOCOLS`, name -> :class:`Protocol`),
filled once by the task's protocol modules, and what the report reads from it.

Adding a protocol is a :class:`~antialiased.evaluation.loop.Scorer` and one :class:`Protocol` class
decorated with :func:`~antialiased.evaluation.protocol.register` (in
:mod:`~antialiased.evaluation.classification_protocols` or
:mod:`~antialiased.evaluation.segmentation_protocols`): its flag and help, printed lines, result-file
fields, audit rows and report columns follow from it.
"""
from __future__ import annotations

from typing import Any

from antialiased.evaluation import classification_protocols as _classification  # noqa: F401  (registers)
from antialiased.evaluation import segmentation_protocols as _segmentation  # noqa: F401  (registers)
from antialiased.evaluation.protocol import (PROTOCOLS, Figure, Flag, Protocol, ProtocolContext, ProtocolReport,
                                             audit_figures, audit_protocols, flag_help, protocol_aliases,
                                             protocol_flags, register, resolve_protocols, task_of_protocol)
from antialiased.evaluation.tasks import get_task

__all__ = ["PROTOCOLS", "Figure", "Flag", "Protocol", "ProtocolContext", "ProtocolReport", "register",
           "protocol_flags", "flag_help", "resolve_protocols", "audit_protocols", "protocol_aliases", "audit_figures",
           "task_of_protocol", "record_task", "table_values", "table_labels", "is_table_figure"]


def record_task(record: dict[str, Any]) -> str:
    """The task of a result record: its protocol's (a record of another writer, e.g. the demo: classification)."""
    return str(record.get("task") or task_of_protocol(str(record.get("protocol"))) or "classification")


def table_values(record: dict[str, Any]) -> tuple[float | None, float | None]:
    """The record's values for the two columns of its task's tables (accuracy, consistency), None where absent.

    Records of protocols whose figures are not the tables' (``-ed``: Acc@1 over the diagonal crops) give none.

    Example:
        >>> table_values({"protocol": "accuracy", "metrics": {"acc1": 71.5}})
        (71.5, None)
        >>> table_values({"protocol": "segmentation_accuracy", "metrics": {"miou": 60.2, "pixel_acc": 90.0}})
        (60.2, None)
        >>> table_values({"protocol": "diagonal", "metrics": {"acc1": 70.0}})
        (None, None)
    """
    protocol = PROTOCOLS.get(str(record.get("protocol")))
    if protocol is not None and not protocol.in_tables:
        return None, None
    metrics = record.get("metrics") or {}
    (acc_key, _), (cons_key, _) = get_task(record_task(record)).table_columns
    return metrics.get(acc_key), metrics.get(cons_key)


def table_labels(task: str) -> tuple[str, str]:
    """The column labels of a task's tables: ('Accuracy', 'Consistency'), ('mIoU', ...)."""
    (_, accuracy), (_, consistency) = get_task(task).table_columns
    return accuracy, consistency


def is_table_figure(protocol: str, key: str) -> bool:
    """Whether a protocol's figure is one of its task's two table columns (shown there, not with the others)."""
    registered = PROTOCOLS.get(protocol)
    if registered is None or not registered.in_tables:
        return False
    return any(key == column for task in registered.tasks for column, _ in get_task(task).table_columns)
