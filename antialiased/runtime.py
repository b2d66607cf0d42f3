"""Forward-pass run time of baseline vs anti-aliased models (the paper's "Extra Run-Time" figure).

Each network's variants (baseline and every filter size) are timed in interleaved rounds, so a
change in machine load hits all of them alike; the figure reports the median over rounds.
"""
from __future__ import annotations

import dataclasses
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from antialiased._plotting import pyplot, save_figure
from antialiased.errors import ConfigError
from antialiased.models import create_model, get_model_spec, weights
from antialiased.models.registry import format_model_name
from antialiased.reporting import variant_label

__all__ = ["RuntimeRow", "benchmark_runtime", "time_forward", "published_metrics", "runtime_markdown",
           "plot_runtime", "DEFAULT_ARCHS"]

DEFAULT_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101")  # the seed figure's networks


@dataclass
class RuntimeRow:
    """Run time of one model: median, quartiles and all rounds in milliseconds, plus the paper's metrics."""

    arch: str
    model: str
    filter_size: int | None
    median_ms: float
    q1_ms: float
    q3_ms: float
    times_ms: list[float] = field(default_factory=list)
    acc1: float | None = None
    consistency: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_forward(models: dict[str, nn.Module], batch: torch.Tensor, *, repeats: int = 10, warmup: int = 2,
                 clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Seconds per forward pass of ``batch`` for each model, measured in interleaved rounds.

    Every round times each model once; the order rotates between rounds so no model always runs
    first after another. ``warmup`` untimed rounds come first (allocator, cuDNN autotuning).

    Example:
        >>> times = time_forward({"a": nn.Identity(), "b": nn.ReLU()}, torch.rand(1, 3, 4, 4), repeats=3, warmup=0)
        >>> sorted(times), len(times["a"])
        (['a', 'b'], 3)
    """
    if repeats < 1 or warmup < 0:
        raise ConfigError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    names = list(models)
    times: dict[str, list[float]] = {name: [] for name in names}
    device = batch.device
    with torch.inference_mode():
        for r in range(warmup + repeats):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                _sync(device)
                start = clock()
                models[name](batch)
                _sync(device)
                if r >= warmup:
                    times[name].append(clock() - start)
    return times


def published_metrics(arch: str, filter_size: int | None) -> dict[str, float] | None:
    """The paper's ImageNet accuracy and consistency of a model when the weights registry has them
    (trained-from-scratch files for filter sizes 2-5, torchvision's numbers for the baseline)."""
    if filter_size is None:
        found = getattr(weights, "PAPER_BASELINE_METRICS", {}).get(arch)
    else:
        entry = getattr(weights, "PUBLISHED_WEIGHTS", {}).get(format_model_name(arch, filter_size))
        found = getattr(entry, "metrics", None)
    return dict(found) if found else None


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def benchmark_runtime(archs: Sequence[str] = DEFAULT_ARCHS, filter_sizes: Sequence[int] = (2, 3, 4, 5), *,
                      batch_size: int = 48, image_size: int = 224, device: str | torch.device = "cpu",
                      repeats: int = 10, warmup: int = 2, channels_last: bool = False, seed: int = 0,
                      progress: bool = True) -> list[RuntimeRow]:
    """Time the forward pass of ``<arch>`` and ``<arch>_lpf<N>`` (randomly initialized: time does not
    depend on the weights) on a random batch; one network's variants are interleaved.
    """
    device = torch.device(device)
    if batch_size < 1 or image_size < 32:
        raise ConfigError(f"need batch_size >= 1 and image_size >= 32, got {batch_size} and {image_size}")
    variants: list[int | None] = [None, *dict.fromkeys(filter_sizes)]
    batch = torch.randn(batch_size, 3, image_size, image_size, generator=torch.Generator().manual_seed(seed))
    batch = batch.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    rows: list[RuntimeRow] = []
    for arch in tqdm(archs, desc="bench-runtime", disable=not progress):
        models = {}
        base = get_model_spec(arch)
        for fs in variants:
            spec = dataclasses.replace(base, filter_size=fs)
            name = spec.name
            model = create_model(spec).eval().to(device)
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            models[name] = model
        times = time_forward(models, batch, repeats=repeats, warmup=warmup)
        for fs, (name, secs) in zip(variants, times.items()):
            ms = [1000 * s for s in secs]
            q1, q3 = _quartiles(ms)
            metrics = published_metrics(arch, fs) or {}
            rows.append(RuntimeRow(arch, name, fs, statistics.median(ms), q1, q3, ms,
                                   metrics.get("acc1"), metrics.get("consistency")))
        del models
    return rows


def runtime_markdown(rows: Sequence[RuntimeRow]) -> str:
    """A Markdown table: one row per model with median time, its overhead over the baseline and the
    paper's metrics where known."""
    baseline = {r.arch: r.median_ms for r in rows if r.filter_size is None}
    lines = ["| Network | Variant | Forward (ms, median) | IQR (ms) | vs baseline | Acc (paper) | Cons (paper) |",
             "| :------ | :-----: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        base = baseline.get(r.arch)
        overhead = "" if base is None or r.filter_size is None else f"{100 * (r.median_ms / base - 1):+.1f}%"
        fmt = (lambda v: "" if v is None else f"{v:.2f}")
        lines.append(f"| {r.arch} | {variant_label(r.filter_size)} | {r.median_ms:.2f} | "
                     f"{r.q1_ms:.2f}–{r.q3_ms:.2f} | {overhead} | {fmt(r.acc1)} | {fmt(r.consistency)} |")
    return "\n".join(lines)


def plot_runtime(rows: Sequence[RuntimeRow], path: str | os.PathLike, *, title: str = "") -> Path:
    """The seed's figure: run time (x) against accuracy (left) and consistency (right), a line per
    network through its variants; without the paper's metrics, run time per variant."""
    plt = pyplot()
    archs = list(dict.fromkeys(r.arch for r in rows))
    with_metrics = all(r.acc1 is not None and r.consistency is not None for r in rows)
    if with_metrics:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
        for ax, key, label in ((axes[0], "acc1", "ImageNet accuracy (%, paper)"),
                               (axes[1], "consistency", "Consistency (%, paper)")):
            for i, arch in enumerate(archs):
                mine = [r for r in rows if r.arch == arch]
                ax.plot([r.median_ms for r in mine], [getattr(r, key) for r in mine], "-", color=f"C{i}", lw=1,
                        label=arch)
                for r in mine:
                    ax.plot(r.median_ms, getattr(r, key), "s" if r.filter_size is None else "o", color=f"C{i}",
                            mfc="white" if r.filter_size is None else f"C{i}")
                    ax.annotate(variant_label(r.filter_size), (r.median_ms, getattr(r, key)), fontsize=6,
                                textcoords="offset points", xytext=(3, 3))
            ax.set_xlabel("Forward time (ms, median)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
    else:
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
        labels = list(dict.fromkeys(variant_label(r.filter_size) for r in rows))
        width = 0.8 / max(1, len(archs))
        for i, arch in enumerate(archs):
            mine = {variant_label(r.filter_size): r for r in rows if r.arch == arch}
            xs = [j + i * width for j, lab in enumerate(labels) if lab in mine]
            ax.bar(xs, [mine[lab].median_ms for lab in labels if lab in mine], width, label=arch)
        ax.set_xticks([j + width * (len(archs) - 1) / 2 for j in range(len(labels))], labels)
        ax.set_ylabel("Forward time (ms, median)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title or "Forward pass run time")
    return save_figure(fig, path)
