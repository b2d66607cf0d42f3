"""What ``antialias()`` did: every site it changed, and every subsampling it left alone, with why.

Printed, the summary is one line per site (``changed <path> ...`` / ``left <path> ...``), every
description on one line; a reason shared by several sites is printed once, as a numbered note
(``[1] 17 adaptive pools: ...``) the sites point to. The head shows the options the method uses
(plain APS has no filter size).

Example:
    >>> s = AntialiasSummary(method="blurpool", filter_size=4)
    >>> s.add_change("maxpool", "max_pool", "MaxPool2d(k=3, s=2, p=1)", "MaxPool2d(k=2, s=1) + BlurPool(s=2)")
    >>> s.add_left_alone("conv1", "conv", "Conv2d(3->64, k=7, s=2)", "stem: reads the image")
    >>> for path in ("a.pool", "b.pool"):
    ...     s.add_left_alone(path, "adaptive_pool", "AdaptiveAvgPool2d(\\n  output_size=1\\n)", "fixed output size")
    >>> print(s)  # doctest: +NORMALIZE_WHITESPACE
    antialias(method='blurpool', filter_size=4): 1 changed, 3 left alone
    changed  maxpool  max_pool       MaxPool2d(k=3, s=2, p=1) -> MaxPool2d(k=2, s=1) + BlurPool(s=2)
    left     conv1    conv           Conv2d(3->64, k=7, s=2)         stem: reads the image
    left     a.pool   adaptive_pool  AdaptiveAvgPool2d(output_size=1)  [1]
    left     b.pool   adaptive_pool  AdaptiveAvgPool2d(output_size=1)  [1]
    [1] 2 adaptive pools: fixed output size
    >>> s.to_dict()["left_alone"][1]["before"]
    'AdaptiveAvgPool2d(output_size=1)'
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable

__all__ = ["SiteChange", "SiteLeftAlone", "AntialiasSummary", "one_line"]

# The plural (and singular) of a site kind in a group's note, where "<kind with spaces>s" reads badly.
_KIND_NAMES: dict[str, tuple[str, str]] = {
    "conv": ("strided conv", "strided convs"),
    "avg_pool": ("average pool", "average pools"),
    "lp_pool": ("LP pool", "LP pools"),
    "space_to_depth": ("pixel unshuffle", "pixel unshuffles"),
    "slice": ("strided slice", "strided slices"),
    # an entry of APS/LPS's phase hand-off: a subsampling handing its phase on, or an upsampling taking one
    "phase": ("phase hand-off", "phase hand-offs"),
    "transposed_conv": ("strided transposed conv", "strided transposed convs"),
    "interpolate": ("interpolation", "interpolations"),
    "pixel_shuffle": ("pixel shuffle", "pixel shuffles"),
    "padding": ("padding layer", "padding layers"),
    "blur": ("blur layer", "blur layers"),
    "custom": ("custom layer", "custom layers"),
}
_REWRITTEN_NOTE = ("forward now runs its edited torch.fx graph (same object; its class kept as the base of "
                   "Antialiased<Class>, so methods, attributes and isinstance are kept; Python branches on the "
                   "arguments were fixed when traced)")


def one_line(text: str) -> str:
    """A module's repr (or any text) on one line, its lines joined as a call's arguments.

    Example:
        >>> one_line("CircularPool2d(\\n  pads=[1, 1, 1, 1]\\n  (pool): MaxPool2d(kernel_size=2)\\n)")
        'CircularPool2d(pads=[1, 1, 1, 1], (pool): MaxPool2d(kernel_size=2))'
    """
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    out = lines[0] if lines else ""
    for line in lines[1:]:
        out += line if out.endswith("(") or line.startswith(")") else ", " + line
    return out


def _kind_name(kind: str, count: int) -> str:
    singular, plural = _KIND_NAMES.get(kind, (kind.replace("_", " "), kind.replace("_", " ") + "s"))
    return f"{count} {singular if count == 1 else plural}"


@dataclass(frozen=True)
class SiteChange:
    """A site that was rewritten: where, what it was, what it became (descriptions on one line)."""

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
        method: the method's name.
        filter_size, pad_type: the blur's options, or None where the method has no blur (plain APS).
        include_stem: the stem was converted too (asked for, or implied by the method).
        circular: circular padding everywhere (APS methods).
        method_options: the method's own options as used (defaults included), e.g. adaptive's ``groups``.
        changed: every rewritten site, in model order.
        left_alone: every subsampling site not rewritten, with the reason (nothing is skipped silently).
        graph_modules: paths of modules whose own forward needed a new call between two of its calls;
            each now runs its edited ``torch.fx`` graph as its forward and stays an instance of its
            class (now the base of ``Antialiased<Class>``); ``""`` is the model itself.
    """

    method: str
    filter_size: int | None
    pad_type: str | None = "reflect"
    include_stem: bool = False
    changed: list[SiteChange] = field(default_factory=list)
    left_alone: list[SiteLeftAlone] = field(default_factory=list)
    graph_modules: list[str] = field(default_factory=list)
    circular: bool = False
    method_options: dict = field(default_factory=dict)  # the method's own options (adaptive's groups, ...)

    def add_change(self, path: str, kind: str, before: str, after: str) -> None:
        self.changed.append(SiteChange(path, kind, one_line(before), one_line(after)))

    def add_left_alone(self, path: str, kind: str, before: str, reason: str) -> None:
        self.left_alone.append(SiteLeftAlone(path, kind, one_line(before), " ".join(reason.split())))

    def add_graph_modules(self, paths: Iterable[str]) -> None:
        """Record modules that now run an edited graph, once each."""
        self.graph_modules += [p for p in dict.fromkeys(paths) if p not in self.graph_modules]

    def __len__(self) -> int:
        return len(self.changed) + len(self.left_alone)

    def to_dict(self) -> dict:
        """Plain data (for JSON)."""
        return asdict(self)

    def options_text(self) -> str:
        """The call's options that matter for this method: its blur's (if any), circular, include_stem."""
        parts = [f"method={self.method!r}"]
        if self.filter_size is not None:
            parts.append(f"filter_size={self.filter_size}")
        if self.pad_type not in (None, "reflect"):
            parts.append(f"pad_type={self.pad_type!r}")
        parts += [f"{name}=True" for name in ("circular", "include_stem") if getattr(self, name)]
        parts += [f"{name}={value!r}" for name, value in self.method_options.items()]
        return ", ".join(parts)

    def _notes(self) -> tuple[dict[str, int], list[str]]:
        """Reasons shared by several sites: their note numbers, and the notes' lines."""
        by_reason: dict[str, list[SiteLeftAlone]] = {}
        for site in self.left_alone:
            by_reason.setdefault(site.reason, []).append(site)
        numbers, lines = {}, []
        for reason, sites in by_reason.items():
            if len(sites) > 1:
                numbers[reason] = len(numbers) + 1
                kinds = {kind: sum(s.kind == kind for s in sites) for kind in dict.fromkeys(s.kind for s in sites)}
                what = (_kind_name(sites[0].kind, len(sites)) if len(kinds) == 1 else
                        f"{len(sites)} layers ({', '.join(_kind_name(k, n) for k, n in kinds.items())})")
                lines.append(f"[{numbers[reason]}] {what}: {reason}")
        return numbers, lines

    def __str__(self) -> str:
        head = f"antialias({self.options_text()}): {len(self.changed)} changed, {len(self.left_alone)} left alone"
        numbers, notes = self._notes()
        rows = [("changed", c.path, c.kind, f"{c.before} -> {c.after}", "") for c in self.changed]
        rows += [("left", s.path, s.kind, s.before, f"[{numbers[s.reason]}]" if s.reason in numbers else s.reason)
                 for s in self.left_alone]
        widths = [max((len(row[i]) for row in rows), default=0) for i in range(3)]
        before = max((len(row[3]) for row in rows if row[0] == "left"), default=0)
        lines = [head]
        for row in rows:
            cells = [cell.ljust(w) for cell, w in zip(row[:3], widths)]
            last = row[3] if row[0] == "changed" else f"{row[3].ljust(before)}  {row[4]}"
            lines.append("  ".join(cells + [last]).rstrip())
        lines += notes
        if self.graph_modules:
            lines.append(f"{', '.join(p or '<model>' for p in sorted(self.graph_modules))}: {_REWRITTEN_NOTE}")
        return "\n".join(lines)
