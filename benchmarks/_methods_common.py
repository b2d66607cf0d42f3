"""What the methods benchmarks share (issue 19): method specs, building a method's model, saved-activation
accounting, the run budget and mean ± std tables (the learned layers' optimizer settings and schedules are
the package's own: ``antialiased.training.method_rules``).

The scripts: ``methods_cifar.py`` (accuracy and consistency of every method trained from scratch),
``finetune_methods.py`` (converting a trained baseline, before and after a short fine-tune) and
``bench_methods_cost.py`` (speed and memory on ResNet-50 and ConvNeXt-T). Timing, machine info
and JSON writing come from ``benchmarks/common.py``.

A method is written ``NAME[:N]`` (``blurpool:3``, ``aps``, ``adaptive:3``): an
``antialias(model, method=NAME, filter_size=N)`` registration; ``baseline`` is the unconverted
model. A name the issue lists that this version of the package has not registered yet is kept as a
row that says "not available in this version": it is never trained, timed or faked.
"""
from __future__ import annotations

import math
import statistics
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import common  # noqa: E402,F401  (puts the project on sys.path when run from a checkout)
from antialiased.errors import ConfigError  # noqa: E402
from antialiased.models.antialias import INSERTED, METHODS, antialias  # noqa: E402

__all__ = [
    "ALL_METHODS",
    "ISSUE_19_METHODS",
    "NOT_AVAILABLE",
    "MethodSpec",
    "parse_methods",
    "convert",
    "inserted_layers",
    "SavedActivations",
    "RunBudget",
    "mean_std",
    "markdown_table",
    "MIB",
]

MIB = 2 ** 20
NOT_AVAILABLE = "not available in this version"

#: The methods of issue 19 (their ``method=`` names), registered by the engine as they land.
ISSUE_19_METHODS = ("adaptive", "lps", "lps-lpf", "flc", "asap", "wavelet", "tips")

#: Every method the benchmarks compare by default, with the filter size each is run at: the
#: paper's blur at 3 and 5 taps, the blur-first placement and the APS/LPS blurs at 3 (the CIFAR
#: choice of the APS paper), DDAC's published k=3; methods without a filter take no size (a
#: method written without ``:N`` gets antialias()'s default filter size).
ALL_METHODS = ("baseline", "blurpool:3", "blurpool:5", "blur-first:3", "aps", "aps-lpf:3", "adaptive:3", "lps",
               "lps-lpf:3", "flc", "asap", "wavelet", "tips")

@dataclass(frozen=True)
class MethodSpec:
    """One row of a comparison: ``method`` None is the baseline; ``filter_size`` None: none given."""

    text: str
    method: str | None = None
    filter_size: int | None = None

    @property
    def available(self) -> bool:
        return self.method is None or self.method in METHODS

    def circular(self, policy: str) -> bool:
        """``circular=True`` for methods that support it under policy 'supported' (their point is
        exact invariance to circular shifts, which needs every layer to pad circularly)."""
        return policy == "supported" and self.method is not None and METHODS[self.method].supports_circular

    def options(self, policy: str) -> dict:
        """The ``antialias()`` keyword arguments: the filter size where one is given (else antialias's
        default for the method; a method without a filter ignores it), ``circular`` under ``policy``."""
        size = {} if self.filter_size is None else {"filter_size": self.filter_size}
        return {"method": self.method, **size, **({"circular": True} if self.circular(policy) else {})}

    def call(self, net: str, policy: str) -> str:
        """The Python call that builds the row's model, for the output."""
        if self.method is None:
            return f"{net}()"
        return f"antialias({net}(), " + ", ".join(f"{k}={v!r}" for k, v in self.options(policy).items()) + ")"


def _parse_one(text: str) -> MethodSpec:
    name, colon, size = text.strip().partition(":")
    if name == "baseline" and not colon:
        return MethodSpec("baseline")
    known = sorted(set(METHODS) | set(ISSUE_19_METHODS))
    if name not in known:
        raise ConfigError(f"unknown method {text!r}; methods: baseline, {', '.join(known)} (NAME or NAME:N)")
    if colon and not (size.isdigit() and 1 <= int(size) <= 7):
        raise ConfigError(f"method {text!r}: the filter size after ':' must be an integer from 1 to 7")
    return MethodSpec(text.strip(), name, int(size) if colon else None)


def parse_methods(texts: Sequence[str]) -> list[MethodSpec]:
    """``['baseline', 'blurpool:3', ...]`` -> specs, in order, each once (clear errors for bad names).

    Example:
        >>> [(s.method, s.filter_size) for s in parse_methods(["baseline", "blurpool:3", "aps"])]
        [(None, None), ('blurpool', 3), ('aps', None)]
    """
    specs = [_parse_one(t) for t in texts]
    seen = [s.text for s in specs]
    if not specs or len(set(seen)) != len(seen):
        raise ConfigError(f"--methods: give one or more methods, each once; got {seen}")
    return specs


def convert(model: nn.Module, spec: MethodSpec, policy: str, input_size: tuple[int, int, int]) -> nn.Module:
    """``model`` converted as ``spec`` says (in place; the baseline is returned unchanged)."""
    if spec.method is None:
        return model
    return antialias(model, **spec.options(policy), input_size=input_size)


def inserted_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Path -> layer, for every layer ``antialias()`` inserted into ``model``."""
    return {path: module for path, module in model.named_modules() if getattr(module, INSERTED, False)}


@dataclass
class LayerSaved:
    """What one inserted layer's forward saved for backward (distinct storages, parameters excluded)."""

    input_bytes: int = 0
    input_ptr: int = -1
    storages: dict[int, int] = field(default_factory=dict)

    def summary(self) -> dict:
        others = [n for ptr, n in self.storages.items() if ptr != self.input_ptr]
        base = max(self.input_bytes, 1)
        return {"input_MiB": self.input_bytes / MIB, "saved_MiB": sum(self.storages.values()) / MIB,
                "keeps_input": self.input_ptr in self.storages,
                "largest_other_vs_input": max(others, default=0) / base,
                "input_sized_kept": sum(n >= self.input_bytes for n in self.storages.values()),
                "saved_vs_input": sum(self.storages.values()) / base}


class SavedActivations:
    """The tensors autograd saves for backward during a forward pass, in total and per inserted layer.

    Each storage counts once (whatever views of it are saved); parameters and buffers are left out.
    A tensor is charged to the innermost inserted layer running when it is saved. Tensors kept by
    activation checkpointing (``torch.utils.checkpoint``: LPS's ``recompute``) are held by the
    checkpoint, not saved through these hooks: they are the checkpointed call's inputs.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> with SavedActivations(net) as saved:
        ...     _ = net(torch.rand(2, 3, 8, 8))
        >>> saved.total_bytes == (2 * 3 * 8 * 8 + 2 * 4 * 6 * 6) * 4  # conv input, relu output
        True
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.total: dict[int, int] = {}
        self.layers = {path: LayerSaved() for path in inserted_layers(model)}
        self._stack: list[str] = []
        self._own = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in self._own:
            nbytes = t.untyped_storage().nbytes()
            self.total[ptr] = nbytes
            if self._stack:
                self.layers[self._stack[-1]].storages[ptr] = nbytes
        return t

    def _hooks(self) -> list:
        handles = []
        for path, layer in inserted_layers(self.model).items():
            def before(_module, args, path=path):
                first = args[0] if args and torch.is_tensor(args[0]) else None
                if first is not None:
                    self.layers[path].input_bytes = first.numel() * first.element_size()
                    self.layers[path].input_ptr = first.untyped_storage().data_ptr()
                self._stack.append(path)

            def after(*_) -> None:  # returns None: a forward hook's return value would replace the output
                self._stack.pop()

            handles.append(layer.register_forward_pre_hook(before))
            handles.append(layer.register_forward_hook(after))
        return handles

    def __enter__(self) -> "SavedActivations":
        self._handles = self._hooks()
        self._context = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._context.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._context.__exit__(*exc)
        for handle in self._handles:
            handle.remove()

    @property
    def total_bytes(self) -> int:
        return sum(self.total.values())

    def per_layer(self) -> dict[str, dict]:
        return {path: layer.summary() for path, layer in self.layers.items()}


def activation_bytes(model: nn.Module, images: torch.Tensor, amp_dtype: torch.dtype | None = None) -> int:
    """Bytes autograd saves for backward in one training-mode forward pass of ``images``."""
    was_training = model.training
    model.train()
    with SavedActivations(model) as saved, torch.autocast(images.device.type, amp_dtype,
                                                          enabled=amp_dtype is not None):
        out = model(images)
    del out
    model.train(was_training)
    return saved.total_bytes


class RunBudget:
    """Whether another run fits in ``seconds`` (None: no limit) counted from ``start`` (a
    ``time.perf_counter()`` value; default: now), judged by the runs so far.

    A run's expected time is the mean of the earlier runs of the same key (its method), else of all
    runs, else 0 (a first run starts while any time is left).
    """

    def __init__(self, seconds: float | None, start: float | None = None) -> None:
        if seconds is not None and seconds <= 0:
            raise ConfigError(f"--budget-seconds must be > 0, got {seconds}")
        self.seconds = seconds
        self.start = time.perf_counter() if start is None else start
        self.times: dict[str, list[float]] = defaultdict(list)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def expected(self, key: str) -> float:
        own = self.times.get(key)
        every = [t for ts in self.times.values() for t in ts]
        return statistics.mean(own) if own else statistics.mean(every) if every else 0.0

    def fits(self, key: str) -> bool:
        return self.seconds is None or self.elapsed() + self.expected(key) <= self.seconds

    def record(self, key: str, seconds: float) -> None:
        self.times[key].append(seconds)

    @contextmanager
    def timed(self, key: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.record(key, time.perf_counter() - start)


def mean_std(values: Sequence[float | None], digits: int = 2) -> str:
    """``'93.12 ± 0.21'`` (sample std over seeds); one value alone; '-' for none.

    Example:
        >>> mean_std([93.0, 94.0]), mean_std([93.0]), mean_std([None])
        ('93.50 ± 0.71', '93.00', '-')
    """
    found = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not found:
        return "-"
    mean = statistics.mean(found)
    if len(found) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(found):.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table.

    Example:
        >>> print(markdown_table(["a", "b"], [[1, "x"]]))
        | a | b |
        | --- | --- |
        | 1 | x |
    """
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
