"""What ``antialias()`` did: every site it changed, and every subsampling it left alone, with why.

Example:
    >>> s = AntialiasSummary(method="blurpool", filter_size=4)
    >>> s.add_change("maxpool", "max_pool", "MaxPool2d(k=3, s=2, p=1)", "MaxPool2d(k=2, s=1) + BlurPool(s=2)")
    >>> s.add_left_alone("conv1", "conv", "Conv2d(3->64, k=7, s=2)", "stem: reads the image")
    >>> print(s)  # doctest: +NORMALIZE_WHITESPACE
    antialias(method='blurpool', filter_size=4): 1 changed, 1 left alone
    changed   maxpool  max_pool  MaxPool2d(k=3, s=2, p=1) -> MaxPool2d(k=2, s=1) + BlurPool(s=2)
    left      conv1    conv      Conv2d(3->64, k=7, s=2)     stem: reads the image
    >>> s.to_dict()["changed"][0]["path"]
    'maxpool'
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["SiteChange", "SiteLeftAlone", "AntialiasSummary"]


@dataclass(frozen=True)
class SiteChange:
    """A site that was rewritten: where, what it was, what it became."""

    path: str
    kind: str
    before: str
    after: str


@dataclass(frozen=True)
class SiteLeftAlone:
    """A subsampling (or a layer that looks like one) that was not rewritten, and why."""

    path: str
    kind: str
    before: str
    reason: str


@dataclass
class AntialiasSummary:
    """The record attached to a converted model as ``model.antialias_summary``.

    Attributes:
        method, filter_size, pad_type, include_stem: the options of the conversion.
        changed: every rewritten site, in model order.
        left_alone: every subsampling site not rewritten, with the reason (nothing is skipped silently).
        graph_modules: paths of submodules replaced by a ``torch.fx.GraphModule`` (the model's own
            forward needed a new layer between two of its calls); ``""`` is the model itself.
    """

    method: str
    filter_size: int
    pad_type: str = "reflect"
    include_stem: bool = False
    changed: list[SiteChange] = field(default_factory=list)
    left_alone: list[SiteLeftAlone] = field(default_factory=list)
    graph_modules: list[str] = field(default_factory=list)

    def add_change(self, path: str, kind: str, before: str, after: str) -> None:
        self.changed.append(SiteChange(path, kind, before, after))

    def add_left_alone(self, path: str, kind: str, before: str, reason: str) -> None:
        self.left_alone.append(SiteLeftAlone(path, kind, before, reason))

    def __len__(self) -> int:
        return len(self.changed) + len(self.left_alone)

    def to_dict(self) -> dict:
        """Plain data (for JSON)."""
        return asdict(self)

    def __str__(self) -> str:
        head = (
            f"antialias(method={self.method!r}, filter_size={self.filter_size}): "
            f"{len(self.changed)} changed, {len(self.left_alone)} left alone"
        )
        rows = [("changed", c.path, c.kind, f"{c.before} -> {c.after}") for c in self.changed]
        rows += [("left", s.path, s.kind, f"{s.before}     {s.reason}") for s in self.left_alone]
        if not rows:
            return head
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3] for row in rows]
        if self.graph_modules:
            lines.append("graph modules: " + ", ".join(p or "<model>" for p in self.graph_modules))
        return "\n".join([head, *lines])
