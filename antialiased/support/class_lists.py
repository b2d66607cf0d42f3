"""How two class lists differ, in one wording: for evaluation's and training's class-identity checks.

Weights record the class folders they were trained on, in output order; evaluating or resuming
them on data with another list would score or train the wrong labels without complaint. Both
checks describe the difference with :func:`class_difference`.
"""
from __future__ import annotations

from collections.abc import Sequence

__all__ = ["class_difference", "format_classes"]


def format_classes(classes: Sequence[str], limit: int = 12) -> str:
    """A class list for messages, shortened past ``limit`` names.

    Example:
        >>> format_classes(["cat", "dog"]), format_classes([f"c{i}" for i in range(20)], limit=4)
        ("['cat', 'dog']", "['c0', 'c1', ... (20 in all)]")
    """
    if len(classes) <= limit:
        return repr(list(classes))
    return "[" + ", ".join(map(repr, classes[:limit - 2])) + f", ... ({len(classes)} in all)]"


def class_difference(recorded: Sequence[str], classes: Sequence[str]) -> str:
    """What differs between the classes weights ``recorded`` (output order) and the data's ``classes``.

    Example:
        >>> class_difference(["cat", "dog"], ["dog", "cat"])
        "the same classes in another order: output 0 is 'cat', the data's class 0 is 'dog'"
        >>> class_difference(["cat", "dog"], ["cat", "emu"])
        "only in the data: ['emu']; only in the model: ['dog']"
    """
    recorded, classes = list(recorded), list(classes)
    if sorted(recorded) == sorted(classes):
        first = next((i for i, (a, b) in enumerate(zip(recorded, classes)) if a != b), 0)
        return (f"the same classes in another order: output {first} is {recorded[first]!r}, the data's class "
                f"{first} is {classes[first]!r}")
    known, present = set(recorded), set(classes)
    parts = [f"only in the data: {format_classes([c for c in classes if c not in known])}" if present - known else "",
             f"only in the model: {format_classes([c for c in recorded if c not in present])}" if known - present
             else ""]
    return "; ".join(p for p in parts if p)
