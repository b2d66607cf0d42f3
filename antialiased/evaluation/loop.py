"""The one evaluation loop: a model over a loader, scored by one or more protocols.

Everything a protocol has in common lives here, once: eval and inference mode, dropping unreadable
images (target :data:`~antialiased.data.SKIPPED_TARGET`), moving each batch to the device and
normalizing it there (uint8 images are 4x less to move than floats), the forward pass (autocast,
channels_last, auxiliary outputs), on a CPU torch's threads lowered to the cores the loader's workers
leave free while they run, a progress bar in images/s, passes over the data kept in memory, the sum
over ranks and the empty-dataset error.

What depends on the kind of model (a class per image or per pixel, the output's form) is the
:class:`~antialiased.evaluation.task.Task` the loop is given (classification by default).

A protocol is a :class:`Scorer`: it only says how it scores a batch. Several scorers share one
decode of every image: each takes its own view of the batch (the center crop, random crop pairs,
the diagonal crops, ...). Scorers that need several passes (``-es``) get them from the first pass's
decoded images when they fit in memory.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from antialiased.data.transforms import IMAGENET_MEAN, IMAGENET_STD, center_offset, to_float_normalized
from antialiased.errors import ConfigError, DataError
from antialiased.evaluation.task import Task
from antialiased.support.devices import autocast, threads_beside_workers
from antialiased.support.distributed import all_gather_object, all_reduce_sum, get_world_size, is_main_process

__all__ = ["EvalBatch", "Forward", "Scorer", "LoopOptions", "LoopResult", "run_protocols", "EMPTY_MESSAGE"]

log = logging.getLogger(__name__)

EMPTY_MESSAGE = ("no image could be evaluated (empty dataset, or every file was unreadable): check the folder, "
                 "or run with --strict to see why files are refused")


class EvalBatch:
    """One loader batch, unreadable samples removed, as every scorer sees it.

    ``images`` are the decoded images normalized as ToTensor + Normalize do, on the device, in
    ``memory_format`` (channels_last when the model runs so: crops cut from them need no second
    reordering), computed once on first use and shared by all scorers. ``targets`` (a class per
    image, or a (H, W) label map per image: the ``task``'s) are on the device, ``targets_cpu`` and
    ``indices`` (dataset positions, or None) on the CPU. ``size`` counts the samples the loader gave
    (skipped ones included), ``n`` those left to score.
    """

    __slots__ = ("raw", "targets_cpu", "indices", "skipped", "size", "n", "step", "pass_index", "device",
                 "memory_format", "task", "stats", "_images", "_targets")

    def __init__(self, raw: Any, device: torch.device, step: int = 0, pass_index: int = 0,
                 memory_format: torch.memory_format = torch.contiguous_format, task: Task | None = None,
                 stats: tuple[Sequence[float], Sequence[float]] = (IMAGENET_MEAN, IMAGENET_STD)) -> None:
        if not isinstance(raw, (tuple, list)) or len(raw) not in (2, 3):
            raise ConfigError("the loader must yield (images, targets) or (images, targets, indices) batches")
        images, targets = raw[0], torch.as_tensor(raw[1])
        indices = torch.as_tensor(raw[2]) if len(raw) == 3 else None
        self.task, self.stats = (task if task is not None else Task()), stats
        self.size = int(targets.shape[0]) if targets.dim() else 1
        keep = self.task.kept(targets)
        self.skipped: list[int] = []
        if not bool(keep.all()):
            self.skipped = indices[~keep].tolist() if indices is not None else []
            images, targets = images[keep], targets[keep]
            indices = indices[keep] if indices is not None else None
        self.raw, self.targets_cpu, self.indices = images, targets, indices
        self.n = int(targets.shape[0]) if targets.dim() else 1
        self.step, self.pass_index, self.device, self.memory_format = step, pass_index, device, memory_format
        self._images: torch.Tensor | None = None
        self._targets: torch.Tensor | None = None

    @property
    def images(self) -> torch.Tensor:
        if self._images is None:
            images = self.raw.to(self.device, non_blocking=True)
            if images.dtype == torch.uint8:
                images = to_float_normalized(images, *self.stats, memory_format=self.memory_format)
            self._images = images
        return self._images

    @property
    def targets(self) -> torch.Tensor:
        if self._targets is None:
            self._targets = self.targets_cpu.to(self.device, non_blocking=True)
        return self._targets

    def center(self, size: int | None) -> torch.Tensor:
        """The central ``size`` x ``size`` crop of :attr:`images` (all of it for None or the full size), placed
        as torchvision's CenterCrop places it (:func:`~antialiased.data.transforms.center_offset`)."""
        images = self.images
        h, w = images.shape[-2:]
        if size is None or (h == size and w == size):
            return images
        if h < size or w < size:
            raise DataError(f"a {size}x{size} crop needs images of at least that size; the loader gave {h}x{w}")
        top, left = center_offset(h, size), center_offset(w, size)
        return images[..., top:top + size, left:left + size]

    def replay(self, step: int, pass_index: int) -> "EvalBatch":
        """The same batch for a later pass (from the decode cache)."""
        other = object.__new__(EvalBatch)
        for name in EvalBatch.__slots__:
            setattr(other, name, getattr(self, name))
        other.step, other.pass_index, other._targets = step, pass_index, None
        return other


class Forward:
    """The model call every scorer uses: autocast, channels_last, float32 class scores.

    The ``task`` turns the model's output into class scores: the first of a tuple (GoogLeNet's and
    Inception's auxiliary outputs), a dict's ``"out"`` (torchvision's segmentation models).
    """

    def __init__(self, model: nn.Module, amp_dtype: torch.dtype | None = None, channels_last: bool = False,
                 task: Task | None = None) -> None:
        self.model, self.amp_dtype, self.channels_last = model, amp_dtype, channels_last
        self.task = task if task is not None else Task()
        self.num_outputs: int | None = None
        self.samples = 0

    def like(self, model: nn.Module) -> "Forward":
        """A forward of another module (e.g. the unwrapped model) with these settings."""
        return Forward(model, self.amp_dtype, self.channels_last, self.task)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(images.device, self.amp_dtype):
            out = self.model(images)
        out = self.task.outputs(out)
        self.num_outputs = int(out.shape[1])
        self.samples += int(out.shape[0])
        return out.float()


class Scorer:
    """A protocol: how it scores one batch, and how its per-rank sums become its result.

    Subclasses set ``name`` and override :meth:`score` and :meth:`result`; :meth:`sums` lists the
    numbers summed over ranks (so ``result`` receives the global ones); ``passes`` > 1 asks for more
    passes over the data; ``input_size`` is the image side the scorer needs (the loop's caller
    decodes to the largest one); :meth:`units` returns this rank's per-unit outcomes (per image or
    per batch; gathered over ranks by the loop) for intervals over independent units.
    """

    name: str = "protocol"
    passes: int = 1
    input_size: int | None = None

    def prepare(self, model: nn.Module, device: torch.device) -> None:
        """Called once before any image is read: check the model, find its layers (raise the package's errors)."""

    def score(self, batch: EvalBatch, forward: Forward) -> None:
        raise NotImplementedError

    def finish(self, forward: Forward) -> None:
        """Called once after the last pass (e.g. to run forward passes still pending)."""

    def sums(self) -> list[float]:
        return []

    def result(self, sums: list[float]) -> dict[str, Any]:
        raise NotImplementedError

    def postfix(self) -> dict[str, str]:
        """A few running figures for the progress bar (costs a device sync; called every print_freq batches)."""
        return {}

    def units(self) -> dict[str, np.ndarray]:
        return {}


@dataclass
class LoopOptions:
    """How the loop runs: mixed precision, memory format, progress, the multi-pass decode cache, and the
    normalization of uint8 images (``mean``, ``std``; None: ImageNet's)."""

    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    progress: bool = True
    print_freq: int = 10
    cache_bytes: int = 0
    desc: str | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None

    @property
    def stats(self) -> tuple[Sequence[float], Sequence[float]]:
        return (IMAGENET_MEAN if self.mean is None else self.mean, IMAGENET_STD if self.std is None else self.std)


@dataclass
class LoopResult:
    """What :func:`run_protocols` returns: each scorer's result (by name) and the shared counts."""

    results: dict[str, dict[str, Any]]
    count: int
    skipped: int
    skipped_indices: list[int]
    cached: bool
    units: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


class _DecodeCache:
    """The first pass's batches, kept for later passes when they fit in ``budget`` bytes.

    Normalized on the device when the whole data set fits that way (later passes skip the
    conversion), else the decoded uint8 images in the process's own memory (not a worker's segment).
    """

    def __init__(self, budget: int, total_images: int | None) -> None:
        self.budget, self.total = budget, total_images
        self.batches: list[EvalBatch] | None = [] if budget > 0 else None
        self.used = 0
        self.normalized: bool | None = None

    def keep(self, batch: EvalBatch) -> None:
        if self.batches is None:
            return
        if self.normalized is None:  # decide once: normalized floats when all of them fit so
            per_image = batch.raw[0].numel() * 4 if batch.n else 0
            self.normalized = self.total is not None and batch.n > 0 and self.total * per_image <= self.budget
        if self.normalized and batch.n and batch.raw.dtype == torch.uint8:
            kept = batch.images
        else:
            kept = batch.raw.clone()
        self.used += kept.nbytes
        if self.used > self.budget:
            log.info("decoded images exceed the cache budget (%d MiB): decoding every pass", self.budget >> 20)
            self.batches = None
            return
        copy = batch.replay(batch.step, 0)
        if kept is batch.images:
            copy._images = kept
        else:
            copy.raw, copy._images = kept, None
        self.batches.append(copy)


def _total(loader: Any) -> int | None:
    for attr in ("sampler", "dataset"):
        try:
            return len(getattr(loader, attr))
        except (AttributeError, TypeError):
            continue
    return None


def _batches(loader: Iterable, cache: _DecodeCache | None, pass_index: int, device: torch.device,
             memory_format: torch.memory_format, task: Task, opts: LoopOptions) -> Iterator[EvalBatch]:
    if pass_index > 0 and cache is not None and cache.batches is not None:
        for step, batch in enumerate(cache.batches):
            yield batch.replay(step, pass_index)
        return
    for step, raw in enumerate(loader):
        batch = EvalBatch(raw, device, step, pass_index, memory_format, task, opts.stats)
        if pass_index == 0 and cache is not None:
            cache.keep(batch)
        yield batch


@dataclass
class _Counts:
    """The first pass's bookkeeping: images scored, skipped (and which), the largest target seen."""

    scored: int = 0
    skipped: int = 0
    skipped_indices: list[int] = field(default_factory=list)
    max_target: int = -1

    def add(self, batch: EvalBatch) -> None:
        self.scored += batch.n
        self.skipped += batch.size - batch.n
        self.skipped_indices += batch.skipped
        if batch.n:
            self.max_target = max(self.max_target, batch.task.max_label(batch.targets_cpu))

    def check(self, forward: Forward) -> None:
        if forward.num_outputs is not None and self.max_target >= forward.num_outputs:
            raise DataError(f"target class {self.max_target} but the model has only {forward.num_outputs} outputs: "
                            f"the dataset's classes do not match the model's (--class-list gives the model's order)")


def _one_pass(loader, scorers: Sequence[Scorer], forward: Forward, cache: _DecodeCache | None, pass_index: int,
              bar, opts: LoopOptions, device: torch.device, counts: _Counts) -> None:
    active = [s for s in scorers if s.passes > pass_index]
    memory_format = torch.channels_last if opts.channels_last else torch.contiguous_format
    replayed = pass_index > 0 and cache is not None and cache.batches is not None
    # On a CPU, the model's threads leave the loader's decode workers their cores while those run.
    with threads_beside_workers(device, 0 if replayed else getattr(loader, "num_workers", 0)):
        for batch in _batches(loader, cache, pass_index, device, memory_format, forward.task, opts):
            if pass_index == 0:
                counts.add(batch)
            for scorer in active:
                scorer.score(batch, forward)
            counts.check(forward)  # early, before a whole pass is spent on the wrong classes
            bar.update(batch.size)
            if not bar.disable and opts.print_freq and batch.step % opts.print_freq == 0:
                bar.set_postfix({k: v for s in active for k, v in s.postfix().items()}, refresh=False)


def _gather_units(scorers: Sequence[Scorer]) -> dict[str, dict[str, np.ndarray]]:
    units = {s.name: s.units() for s in scorers}
    if get_world_size() == 1:
        return units
    gathered = all_gather_object(units)
    return {name: {k: np.concatenate([g[name][k] for g in gathered]) for k in units[name]} for name in units}


def run_protocols(model: nn.Module, loader: Iterable, device: torch.device | str, scorers: Sequence[Scorer],
                  options: LoopOptions | None = None, task: Task | None = None) -> LoopResult:
    """Run ``model`` over ``loader`` once (plus the passes the scorers ask for), scoring every batch.

    ``loader`` yields ``(images, targets[, indices])``: uint8 images (normalized here, on the
    device, bit for bit as ToTensor + Normalize) or already-normalized floats; targets as the
    ``task`` has them (default: classification's, a class per image). Counts are summed over ranks
    when torch.distributed is initialized.

    Raises:
        DataError: no image could be scored, or targets beyond the model's outputs.

    Example:
        >>> class Count(Scorer):
        ...     name = "count"
        ...     def __init__(self): self.seen = 0
        ...     def score(self, batch, forward): self.seen += len(forward(batch.images))
        ...     def sums(self): return [self.seen]
        ...     def result(self, sums): return {"seen": int(sums[0])}
        >>> data = [(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, -100, 1]))]
        >>> out = run_protocols(nn.Sequential(nn.Flatten(), nn.Linear(192, 2)), data, "cpu", [Count()],
        ...                     LoopOptions(progress=False))
        >>> out.results["count"]
        {'seen': 3, 'count': 3, 'skipped': 1, 'skipped_indices': []}
    """
    device, opts = torch.device(device), options or LoopOptions()
    names = [s.name for s in scorers]
    if not scorers or len(set(names)) != len(names):
        raise ConfigError(f"give one or more protocols, each once; got {names}")
    passes = max(s.passes for s in scorers)
    total = _total(loader)
    cache = _DecodeCache(opts.cache_bytes, total) if passes > 1 else None
    forward, counts = Forward(model, opts.amp_dtype, opts.channels_last, task), _Counts()
    model.eval()
    for scorer in scorers:
        scorer.prepare(model, device)
    bar = tqdm(total=None if total is None else total * passes, desc=opts.desc or " + ".join(names), unit="img",
               disable=not (opts.progress and is_main_process()), dynamic_ncols=True, smoothing=0.1)
    with torch.inference_mode(), bar:
        for pass_index in range(passes):
            _one_pass(loader, scorers, forward, cache, pass_index, bar, opts, device, counts)
        for scorer in scorers:
            scorer.finish(forward)
    counts.check(forward)
    return _reduce(scorers, counts, device, cache is not None and cache.batches is not None)


def _reduce(scorers: Sequence[Scorer], counts: _Counts, device: torch.device, cached: bool) -> LoopResult:
    """Sum every scorer's numbers over ranks in one reduction and build the results."""
    per_scorer = [scorer.sums() for scorer in scorers]
    local = [counts.scored, counts.skipped] + [v for sums in per_scorer for v in sums]
    reduced = all_reduce_sum(local, device)
    count, skipped, rest = int(reduced[0]), int(reduced[1]), reduced[2:]
    if count == 0:
        raise DataError(EMPTY_MESSAGE)
    skipped_indices = counts.skipped_indices
    if get_world_size() > 1:
        skipped_indices = sorted(i for part in all_gather_object(skipped_indices) for i in part)
    results = {}
    for scorer, sums in zip(scorers, per_scorer):
        n = len(sums)
        results[scorer.name] = {**scorer.result(rest[:n]), "count": count, "skipped": skipped,
                                "skipped_indices": list(skipped_indices)}
        rest = rest[n:]
    return LoopResult(results, count, skipped, list(skipped_indices), cached, _gather_units(scorers))
