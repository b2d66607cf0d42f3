"""Consistency under synthetic shifts: do two shifted copies of an image's center crop get the same top-1?

:class:`ShiftPairScorer` holds what circular (``-ec``) and fractional (``-ef``) consistency share:
per image and pass, two shifts are drawn (so images are the independent units), both shifted copies
are made on the device from the one decoded crop, and the copies of one or more batches go through
the model in one forward pass. Subclasses say how shifts are drawn and applied.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from antialiased.errors import ConfigError
from antialiased.evaluation._common import new_generator
from antialiased.evaluation.bootstrap import RESAMPLES, Interval, bootstrap_interval, record_interval_methods
from antialiased.evaluation.loop import EvalBatch, Forward, LoopOptions, Scorer, run_protocols
from antialiased.evaluation.probe import check_classifier, top1
from antialiased.support.distributed import get_rank, get_world_size

__all__ = ["ShiftPairScorer", "UnitIds", "run_scorer", "saving"]


class UnitIds:
    """A stable id per image across passes: its dataset position, else its order in the first pass.

    Under a distributed launch without dataset positions, ids interleave ranks so they stay unique.
    """

    def __init__(self) -> None:
        self.by_step: dict[int, np.ndarray] = {}
        self.next = 0

    def __call__(self, batch: EvalBatch) -> np.ndarray:
        if batch.indices is not None:
            return batch.indices.numpy().astype(np.int64)
        if batch.step not in self.by_step:
            local = np.arange(self.next, self.next + batch.n, dtype=np.int64)
            self.next += batch.n
            self.by_step[batch.step] = local * get_world_size() + get_rank()
        return self.by_step[batch.step]


def saving(make_copies: Callable[[list[tuple[int, int]]], torch.Tensor], save: Callable | None,
           batch: EvalBatch) -> Callable[[list[tuple[int, int]]], torch.Tensor]:
    """``make_copies`` that also hands each offset's copies to ``save`` (``--evaluate-save``), tagged
    ``<dh>_<dw>``, in the first pass; ``make_copies`` itself without a saver."""
    if save is None or batch.pass_index:
        return make_copies

    def make(offsets: list[tuple[int, int]]) -> torch.Tensor:
        copies = make_copies(offsets)
        for k, (dh, dw) in enumerate(offsets):
            save(copies[k * batch.n:(k + 1) * batch.n], batch.indices, f"{dh}_{dw}")
        return copies
    return make


class ShiftPairScorer(Scorer):
    """Top-1 agreement of two shifted copies of the ``crop_size`` center crop, shifts drawn per image and pass.

    Subclasses set ``name``, ``label`` and implement :meth:`draw` and :meth:`shift`. Per-unit
    outcomes (:meth:`units`): per pair ``agree``, ``correct`` (copies with the true top-1: 0, 1 or
    2), ``unit`` (the image), ``index`` (dataset position or -1) and ``pass``.
    """

    label = "shift"

    def __init__(self, crop_size: int = 224, epochs: int = 5, *, seed: int | None = None, min_forward: int = 0,
                 save: Callable | None = None) -> None:
        if epochs < 1 or crop_size < 1:
            raise ConfigError(f"--epochs-shift and --crop-size must be >= 1, got {epochs} and {crop_size}")
        self.crop_size, self.passes, self.input_size = crop_size, epochs, crop_size
        self.generator, self.seed = new_generator(seed)
        self.min_forward, self.save = min_forward, save
        self.ids = UnitIds()
        self.pending: list[tuple[torch.Tensor, EvalBatch, np.ndarray]] = []
        self.pending_samples = 0
        self.agree: torch.Tensor | None = None  # running count on the device: no sync per batch
        self.outcomes: list[tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray, int]] = []

    def draw(self, count: int) -> torch.Tensor:
        """(count, 2, 2) shifts: per image, the (dh, dw) of its two copies."""
        raise NotImplementedError

    def shift(self, images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        """Each image shifted by its own (dh, dw)."""
        raise NotImplementedError

    def score(self, batch: EvalBatch, forward: Forward) -> None:
        # Draw for every sample the loader gave, readable or not: shifts do not depend on skipped files.
        shifts = self.draw(batch.size)[:batch.n].to(batch.device)
        if not batch.n:
            return
        crop = batch.center(self.crop_size)
        copies = self.shift(torch.cat([crop, crop]), torch.cat([shifts[:, 0], shifts[:, 1]]))
        if self.save is not None and batch.pass_index == 0:
            self.save(copies[:batch.n], batch.indices, "a")
            self.save(copies[batch.n:], batch.indices, "b")
        self.pending.append((copies, batch, self.ids(batch)))
        self.pending_samples += copies.shape[0]
        if self.pending_samples >= self.min_forward:
            self.finish(forward)

    def finish(self, forward: Forward) -> None:
        """Run the pending copies (several batches' worth when ``min_forward`` asks for it)."""
        if not self.pending:
            return
        copies = torch.cat([c for c, _, _ in self.pending]) if len(self.pending) > 1 else self.pending[0][0]
        labels = top1(forward(copies))
        start = 0
        for chunk, batch, ids in self.pending:
            n = chunk.shape[0] // 2
            a, b = labels[start:start + n], labels[start + n:start + 2 * n]
            same = a == b
            correct = (a == batch.targets).int() + (b == batch.targets).int()
            self.agree = same.sum() if self.agree is None else self.agree + same.sum()
            index = batch.indices.numpy() if batch.indices is not None else np.full(n, -1)
            self.outcomes.append((same, correct, ids, index, batch.pass_index))
            start += 2 * n
        self.pending, self.pending_samples = [], 0

    def _pairs(self) -> int:
        return sum(int(same.numel()) for same, *_ in self.outcomes)

    def sums(self) -> list[float]:
        correct = sum(int(c.sum()) for _, c, *_ in self.outcomes)
        return [int(self.agree) if self.agree is not None else 0, correct, self._pairs()]

    def result(self, sums: list[float]) -> dict[str, Any]:
        agree, correct, pairs = sums
        nan = float("nan")
        return {"consistency": 100.0 * agree / pairs if pairs else nan,
                "shifted_acc1": 50.0 * correct / pairs if pairs else nan,
                "pairs": int(pairs), "agree": int(agree), "seed": self.seed}

    def postfix(self) -> dict[str, str]:
        pairs = self._pairs()
        return {"consistency": f"{100 * int(self.agree) / pairs:.2f}"} if pairs and self.agree is not None else {}

    def units(self) -> dict[str, np.ndarray]:
        if not self.outcomes:
            return {k: np.zeros(0, dtype=np.int64) for k in ("agree", "correct", "unit", "index", "pass")}
        sizes = [len(ids) for _, _, ids, _, _ in self.outcomes]
        return {"agree": torch.cat([s for s, *_ in self.outcomes]).cpu().numpy(),
                "correct": torch.cat([c for _, c, *_ in self.outcomes]).cpu().numpy(),
                "unit": np.concatenate([ids for _, _, ids, _, _ in self.outcomes]),
                "index": np.concatenate([index for *_, index, _ in self.outcomes]),
                "pass": np.repeat([p for *_, p in self.outcomes], sizes)}

    @staticmethod
    def intervals(units: dict[str, np.ndarray], *, resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Interval]:
        """95% intervals of the consistency and of the shifted copies' Acc@1, resampling images."""
        return {"consistency": bootstrap_interval(units["agree"], units["unit"], resamples=resamples, seed=seed),
                "shifted_acc1": bootstrap_interval(units["correct"] / 2, units["unit"], resamples=resamples,
                                                   seed=seed)}


def run_scorer(model: nn.Module, loader: Iterable, device: torch.device | str, scorer: Scorer,
               options: LoopOptions, *, resamples: int = RESAMPLES, seed: int | None = None,
               extra: Callable[..., dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run one scorer over ``loader`` and add its intervals: ``<figure>_ci95`` for each figure it has one for,
    and the method that made each (``<figure>_ci95_method``: bootstrap, wilson or none).

    The bootstrap is seeded with ``seed`` (0 when None), so equal inputs give equal intervals.
    ``extra(out, units, resamples=, seed=)`` returns more fields, computed from the result so far
    and the per-unit outcomes (all ranks').
    """
    check_classifier(model, getattr(scorer, "crop_size", None) or 224, device)  # before any image is read
    loop = run_protocols(model, loader, device, [scorer], options)
    out = dict(loop.results[scorer.name])
    intervals = getattr(scorer, "intervals", None)
    if intervals is not None:
        for figure, interval in intervals(loop.units[scorer.name], resamples=resamples, seed=seed or 0).items():
            out[f"{figure}_ci95"] = interval.as_list()
            out.setdefault("units", interval.units)
    if extra is not None:
        out.update(extra(out, loop.units[scorer.name], resamples=resamples, seed=seed or 0))
    return record_interval_methods({**out, "cached": loop.cached})  # <figure>_ci95_method, as result files
