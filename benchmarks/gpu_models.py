"""Part 1 of ``bench_gpu.py``: the models, one training or inference step each, timed in rounds.

A :class:`Runner` is one (model, mode) pair: ``train`` (SGD step, bf16 autocast, channels_last),
``train-compiled`` (the same through ``torch.compile``, sharing the model's weights) or ``infer``
(``inference_mode``, bf16, channels_last). Each keeps its per-step times, its peak memory over
the resident weights (CUDA) and, in training, the bytes autograd saves for backward.
"""
from __future__ import annotations

import argparse
import importlib
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from common import median
from torch import nn

import antialiased
from antialiased.models import create_model

__all__ = ["ModelSpec", "MODELS", "Runner", "build_runners", "model_rows", "target_rows"]

MIB = float(1 << 20)


@dataclass(frozen=True)
class ModelSpec:
    """One contender: ``key`` for --models, ``label`` in tables, ``group`` (its baseline is the
    group's model with ``baseline=True``)."""

    key: str
    label: str
    group: str
    build: Callable[[], nn.Module]
    baseline: bool = False


def _timm(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        return importlib.import_module("timm").create_model(name, pretrained=False)
    return build


MODELS = (
    ModelSpec("tv50", "torchvision resnet50", "ResNet-50", lambda: create_model("resnet50"), baseline=True),
    ModelSpec("lpf4", "ours resnet50_lpf4 (paper)", "ResNet-50", lambda: create_model("resnet50_lpf4")),
    ModelSpec("blurfirst", "ours blur-first, filter 4", "ResNet-50",
              lambda: antialiased.antialias(create_model("resnet50"), method="blur-first", filter_size=4)),
    ModelSpec("aps", "ours aps", "ResNet-50", lambda: antialiased.antialias(create_model("resnet50"), method="aps")),
    ModelSpec("timmblur50", "timm resnetblur50", "ResNet-50", _timm("resnetblur50")),
    ModelSpec("ours50", "ours timm/resnet50_lpf3", "ResNet-50", lambda: create_model("timm/resnet50_lpf3")),
    ModelSpec("timm50d", "timm resnet50d", "ResNet-50-D", _timm("resnet50d"), baseline=True),
    ModelSpec("timmaa50d", "timm resnetaa50d", "ResNet-50-D", _timm("resnetaa50d")),
    ModelSpec("ours50d", "ours timm/resnet50d_lpf3", "ResNet-50-D", lambda: create_model("timm/resnet50d_lpf3")),
)

# (ours, timm's hand-built model of the same group): the "at least as fast, no more memory" targets.
SAME_JOB = (("ours50", "timmblur50"), ("ours50d", "timmaa50d"))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Runner:
    """One (model, mode) pair and what was measured for it."""

    spec: ModelSpec
    mode: str
    model: nn.Module
    device: torch.device
    args: argparse.Namespace
    times: list[float] = field(default_factory=list)
    peak_mib: float | None = None
    saved_mib: float | None = None
    compile_s: float | None = None
    last_step_s: float = 0.0

    def __post_init__(self) -> None:
        self.images = self.args.infer_batch if self.mode == "infer" else self.args.batch
        size = self.args.size
        self.x = torch.randn(self.images, 3, size, size, device=self.device).contiguous(memory_format=torch.channels_last)
        self.y = torch.randint(0, 1000, (self.images,), device=self.device)
        compiled = self.mode == "train-compiled"
        self.fn = torch.compile(self.model, backend=self.args.compile_backend) if compiled else self.model
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9) if self.mode != "infer" else None

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def step(self) -> None:
        if self.optimizer is None:
            self.model.eval()
            with torch.inference_mode(), self._autocast():
                self.fn(self.x)
            return
        self.model.train()
        with self._autocast():
            loss = F.cross_entropy(self.fn(self.x).float(), self.y)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def warm(self, steps: int) -> float:
        """Untimed steps (the first compiles, under torch.compile); returns their seconds."""
        _sync(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            step_start = time.perf_counter()
            self.step()
            _sync(self.device)
            self.last_step_s = time.perf_counter() - step_start
        return time.perf_counter() - start

    def timed(self, steps: int) -> None:
        _sync(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        _sync(self.device)
        self.times.append((time.perf_counter() - start) / steps)

    def measure_memory(self) -> None:
        if self.device.type == "cuda":
            _sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            resident = torch.cuda.memory_allocated(self.device)
            self.step()
            _sync(self.device)
            self.peak_mib = (torch.cuda.max_memory_allocated(self.device) - resident) / MIB
        if self.mode == "train":
            self.saved_mib = _saved_bytes(self.model, self.x, self._autocast()) / MIB

    def images_per_s(self) -> float | None:
        return self.images / median(self.times) if self.times else None


def _saved_bytes(model: nn.Module, x: torch.Tensor, autocast: torch.autocast) -> int:
    """Bytes autograd keeps for backward in one training forward (each storage once, weights excluded)."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in weights:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
        model(x)
    return sum(seen.values())


def _build(spec: ModelSpec, device: torch.device, notes: list[str]) -> nn.Module | None:
    try:
        model = spec.build()
    except ImportError as exc:  # timm not installed: said, never faked
        notes.append(f"{spec.label}: skipped ({exc}; pip install -r benchmarks/requirements.txt)")
        return None
    return model.to(device=device, memory_format=torch.channels_last)


def build_runners(args: argparse.Namespace, device: torch.device, budget) -> tuple[list[Runner], list[str]]:
    """Every model's eager runners (warmed up, memory measured) while part 1's budget allows, then
    the compiled ones that fit."""
    notes: list[str] = []
    runners, models, cost = [], {}, 0.0
    for spec in (m for m in MODELS if m.key in args.models):
        if budget.models_left() < 2 * cost:
            notes.append(f"{spec.label}: skipped (building and warming it, about {cost:.0f} s, did not fit the budget)")
            continue
        start = time.perf_counter()
        model = _build(spec, device, notes)
        if model is None:
            continue
        models[spec.key] = (spec, model)
        for mode in ("train", "infer"):
            runner = Runner(spec, mode, model, device, args)
            runner.warm(args.warmup)
            runner.measure_memory()
            runners.append(runner)
        cost = time.perf_counter() - start
        print(f"  {spec.label}: built and warmed in {cost:.0f} s ({budget.elapsed():.0f} s)", flush=True)
    _add_compiled(args, models, runners, budget, notes, device)
    return runners, notes


def _add_compiled(args: argparse.Namespace, models: dict, runners: list[Runner], budget, notes: list[str],
                  device: torch.device) -> None:
    """Compiled training runners in --compile order while part 1's budget allows (keeping time
    for at least 3 rounds); a compile's cost is estimated from the previous one."""
    estimate = 60.0 if args.quick else 90.0
    for key in args.compile:
        if key not in models:
            continue
        spec, model = models[key]
        rounds_reserve = min(3, args.repeats) * sum(r.last_step_s for r in runners) * args.steps
        if budget.models_left() < estimate + rounds_reserve:
            notes.append(f"{spec.label}: not compiled (about {estimate:.0f} s of compiling left no room "
                         f"in the budget)")
            continue
        runner = Runner(spec, "train-compiled", model, device, args)
        first = runner.warm(1)
        runner.warm(max(1, args.warmup - 1))
        runner.compile_s = max(0.0, first - runner.last_step_s)
        estimate = 1.2 * first
        runner.measure_memory()
        runners.append(runner)
        print(f"  {spec.label}: compiled in {runner.compile_s:.0f} s ({budget.elapsed():.0f} s)", flush=True)


def model_rows(runners: list[Runner], args: argparse.Namespace) -> list[dict]:
    """One row per model: images/s per mode, overhead over its group's baseline, memory."""
    by_key: dict[str, dict] = {}
    for r in runners:
        row = by_key.setdefault(r.spec.key, {"key": r.spec.key, "model": r.spec.label, "group": r.spec.group,
                                             "baseline": r.spec.baseline})
        row[f"{r.mode} img/s"] = r.images_per_s()
        row[f"{r.mode} peak MiB"] = r.peak_mib
        if r.saved_mib is not None:
            row["saved MiB"] = r.saved_mib
        if r.compile_s is not None:
            row["compile s"] = r.compile_s
    baselines = {row["group"]: row for row in by_key.values() if row["baseline"]}
    for row in by_key.values():
        base = baselines.get(row["group"])
        for mode in ("train", "train-compiled", "infer"):
            mine, theirs = row.get(f"{mode} img/s"), (base or {}).get(f"{mode} img/s")
            row[f"{mode} overhead"] = theirs / mine - 1.0 if mine and theirs else None
    return list(by_key.values())


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def target_rows(rows: list[dict]) -> list[dict]:
    """The issue's targets, each with its measured value and whether it is met (None: not measured)."""
    by_key = {r["key"]: r for r in rows}
    found = []
    for ours, theirs in SAME_JOB:
        a, b = by_key.get(ours), by_key.get(theirs)
        for mode in ("train", "train-compiled", "infer"):
            speed = _ratio((a or {}).get(f"{mode} img/s"), (b or {}).get(f"{mode} img/s"))
            found.append({"target": f"{ours} vs {theirs}, {mode}: speed >= 1.00x", "value": speed,
                          "met": None if speed is None else speed >= 1.0})
        memory = _ratio((a or {}).get("train peak MiB"), (b or {}).get("train peak MiB"))
        found.append({"target": f"{ours} vs {theirs}, train peak memory <= 1.00x", "value": memory,
                      "met": None if memory is None else memory <= 1.0})
    infer = by_key.get("lpf4", {}).get("infer overhead")
    found.append({"target": "paper recipe (lpf4) inference overhead <= +13% (paper, 2080 Ti)", "value": infer,
                  "met": None if infer is None else infer <= 0.13})
    for mode in ("train", "train-compiled"):
        train = by_key.get("blurfirst", {}).get(f"{mode} overhead")
        found.append({"target": f"blur-first {mode} overhead <= +10%", "value": train,
                      "met": None if train is None else train <= 0.10})
    return found
