"""The protocols per pixel: mIoU (``-e``) and the shift protocols of segmentation models (``-es -ec -ef -ea``).

Every scorer takes the resized image (its shorter side ``--seg-size``) and its mask as the
segmentation task's loader gives them, and compares predicted labels pixel by pixel:

- ``-e``: the whole image, one confusion matrix over the dataset (labels 255 left out): mIoU,
  pixel accuracy, per-class IoU.
- ``-es``: two random ``crop_size`` crops per image and pass (offsets drawn per image where the
  crop fits): the share of the pixels of their overlap whose labels agree (mASSC, as in LPS and DDAC).
- ``-ec``: the center crop of the largest multiple of ``multiple`` pixels in each dimension, rolled
  by two shifts from {0..max_shift-1}^2; the predictions rolled back agree on which share of pixels.
- ``-ef``: the same view shifted by two sub-pixel amounts (Fourier phase ramp); predictions compared
  pixel for pixel over the interior (``border`` pixels off each edge, where the shift wraps around).
- ``-ea``: every shift of a G x G grid (crops at the offsets, or circular shifts of the view); per
  image the shift with the fewest correct pixels; one confusion matrix over those predictions.

Consistency figures are means over (image, pass) pairs of the agreeing share of pixels; their
intervals resample images.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from antialiased.errors import ConfigError, DataError
from antialiased.evaluation._common import new_generator
from antialiased.evaluation.adversarial import SHIFT_MODES
from antialiased.evaluation.loop import EvalBatch, Forward, Scorer
from antialiased.evaluation.pairs import UnitIds
from antialiased.evaluation.segmentation import (PROBE_SIZE, SegmentationTask, class_counts, confusion_matrix,
                                                 miou_figures, segmentation_scores)
from antialiased.evaluation.shifts import fourier_shift, grid_offsets, roll_images

__all__ = ["SegmentationAccuracyScorer", "SegmentationConsistencyScorer", "SegmentationPairScorer",
           "CircularSegmentationScorer", "FractionalSegmentationScorer", "AdversarialSegmentationScorer",
           "center_view"]


def center_view(images: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """The central crop of the largest multiple of ``multiple`` pixels in each dimension, and its (top, left).

    Example:
        >>> view, corner = center_view(torch.zeros(1, 3, 70, 100), 32)
        >>> tuple(view.shape[-2:]), corner
        ((64, 96), (3, 2))
    """
    h, w = images.shape[-2:]
    vh, vw = h // multiple * multiple, w // multiple * multiple
    if not vh or not vw:
        raise DataError(f"an image of {h}x{w} pixels has no {multiple}x{multiple} view: raise --seg-size")
    top, left = (h - vh) // 2, (w - vw) // 2
    return images[..., top:top + vh, left:left + vw], (top, left)


def _indices(batch: EvalBatch) -> np.ndarray:
    return batch.indices.numpy() if batch.indices is not None else np.full(batch.n, -1)


class _Classes:
    """The model's class count, read once from a probe (so every rank's sums have one length)."""

    def __init__(self) -> None:
        self.count: int | None = None

    def prepare(self, model: torch.nn.Module, device: torch.device | str) -> None:
        if self.count is None:
            self.count = SegmentationTask().probe(model, PROBE_SIZE, device)


class SegmentationAccuracyScorer(Scorer):
    """``-e`` for segmentation: every whole image, one confusion matrix (see :func:`confusion_matrix`).

    Per-unit outcomes (:meth:`units`): ``counts`` (images, 3, classes) of :func:`class_counts`,
    ``unit`` and ``index`` per image.
    """

    name = "segmentation_accuracy"

    def __init__(self, *, save: Callable | None = None) -> None:
        self.save, self.classes, self.ids = save, _Classes(), UnitIds()
        self.confusion: torch.Tensor | None = None
        self.parts: dict[str, list[np.ndarray]] = {"counts": [], "unit": [], "index": []}

    def prepare(self, model: torch.nn.Module, device: torch.device | str) -> None:
        self.classes.prepare(model, device)

    def score(self, batch: EvalBatch, forward: Forward) -> None:
        if not batch.n:
            return
        pred = forward.task.predict(forward(batch.images))
        if self.save is not None:
            self.save(batch.images, batch.indices)
        counts = []
        for p, t in zip(pred, batch.targets):
            matrix = confusion_matrix(p, t, self.classes.count)
            self.confusion = matrix if self.confusion is None else self.confusion + matrix
            counts.append(class_counts(matrix))
        self.parts["counts"].append(torch.stack(counts).cpu().numpy())
        self.parts["unit"].append(self.ids(batch))
        self.parts["index"].append(_indices(batch))

    def units(self) -> dict[str, np.ndarray]:
        width = (3, self.classes.count or 0)
        return {k: np.concatenate(v) if v else np.zeros((0, *width) if k == "counts" else 0, dtype=np.int64)
                for k, v in self.parts.items()}

    def sums(self) -> list[float]:
        size = (self.classes.count or 0) ** 2
        confusion = self.confusion.reshape(-1).tolist() if self.confusion is not None else [0] * size
        return [*confusion, len(self.units()["unit"])]

    def result(self, sums: list[float]) -> dict[str, Any]:
        *flat, images = sums
        c = self.classes.count or 0
        confusion = np.asarray(flat, dtype=np.int64).reshape(c, c)
        return {**segmentation_scores(confusion), "confusion_matrix": confusion.tolist(), "images": int(images),
                "classes": c}

    def postfix(self) -> dict[str, str]:
        if self.confusion is None:
            return {}
        return {"mIoU": f"{segmentation_scores(self.confusion.cpu())['miou']:.2f}"}


class _Agreement(Scorer):
    """What the consistency scorers share: the shares of agreeing pixels per pair, pending forward passes.

    Copies of one size are gathered over batches until a pass holds ``min_forward`` of them (a
    copy of another size first runs what is pending).
    """

    def __init__(self, epochs: int, seed: int | None, min_forward: int, save: Callable | None) -> None:
        if epochs < 1:
            raise ConfigError(f"--epochs-shift must be >= 1, got {epochs}")
        self.passes, self.min_forward, self.save = epochs, min_forward, save
        self.generator, self.seed = new_generator(seed)
        self.ids = UnitIds()
        self.pending: list[tuple[torch.Tensor, Any, EvalBatch]] = []
        self.outcomes: list[tuple[torch.Tensor, np.ndarray, np.ndarray, int]] = []

    def agree(self, labels: torch.Tensor, meta: Any, batch: EvalBatch) -> torch.Tensor:
        """(n,) shares of agreeing pixels of the n pairs of one batch, from their 2n predicted label maps."""
        raise NotImplementedError

    def queue(self, copies: torch.Tensor, meta: Any, batch: EvalBatch, forward: Forward) -> None:
        if self.save is not None and batch.pass_index == 0:
            self.save(copies[:batch.n], batch.indices, "a")
            self.save(copies[batch.n:], batch.indices, "b")
        if self.pending and self.pending[0][0].shape[-2:] != copies.shape[-2:]:
            self.finish(forward)
        self.pending.append((copies, meta, batch))
        if sum(c.shape[0] for c, _, _ in self.pending) >= self.min_forward:
            self.finish(forward)

    def finish(self, forward: Forward) -> None:
        if not self.pending:
            return
        copies = torch.cat([c for c, _, _ in self.pending]) if len(self.pending) > 1 else self.pending[0][0]
        labels = forward.task.predict(forward(copies))
        start = 0
        for chunk, meta, batch in self.pending:
            shares = self.agree(labels[start:start + chunk.shape[0]], meta, batch)
            self.outcomes.append((shares.float(), self.ids(batch), _indices(batch), batch.pass_index))
            start += chunk.shape[0]
        self.pending = []

    def units(self) -> dict[str, np.ndarray]:
        if not self.outcomes:
            return {"agree": np.zeros(0), **{k: np.zeros(0, dtype=np.int64) for k in ("unit", "index", "pass")}}
        sizes = [len(ids) for _, ids, _, _ in self.outcomes]
        return {"agree": torch.cat([s for s, *_ in self.outcomes]).cpu().numpy().astype(float),
                "unit": np.concatenate([ids for _, ids, _, _ in self.outcomes]),
                "index": np.concatenate([index for _, _, index, _ in self.outcomes]),
                "pass": np.repeat([p for *_, p in self.outcomes], sizes)}

    def sums(self) -> list[float]:
        agree = self.units()["agree"]
        return [float(agree.sum()), len(agree)]

    def result(self, sums: list[float]) -> dict[str, Any]:
        total, pairs = sums
        return {"consistency": 100.0 * total / pairs if pairs else float("nan"), "pairs": int(pairs),
                "seed": self.seed}

    def postfix(self) -> dict[str, str]:
        done = [s for s, *_ in self.outcomes]
        return {"consistency": f"{100 * float(torch.cat(done).mean()):.2f}"} if done else {}


class SegmentationConsistencyScorer(_Agreement):
    """``-es`` for segmentation: two random ``crop_size`` crops per image and pass, labels compared over
    their overlap (the mean share of agreeing pixels: mASSC). Offsets are drawn per image, uniformly
    over the positions where the crop fits (from uniform numbers drawn for every loader sample, so
    they do not depend on image sizes or on which files were readable)."""

    name = "segmentation_consistency"

    def __init__(self, crop_size: int = 480, epochs: int = 5, *, seed: int | None = None, min_forward: int = 0,
                 save: Callable | None = None) -> None:
        if crop_size < 1:
            raise ConfigError(f"--crop-size must be >= 1, got {crop_size}")
        super().__init__(epochs, seed, min_forward, save)
        self.crop_size = crop_size

    def score(self, batch: EvalBatch, forward: Forward) -> None:
        uniform = torch.rand((batch.size, 2, 2), generator=self.generator)[:batch.n]  # per image: (a, b) x (h, w)
        if not batch.n:
            return
        h, w, c = *batch.images.shape[-2:], self.crop_size
        if h < c or w < c:
            raise DataError(f"-es crops of {c}x{c} need images of at least that size; the resized image is {h}x{w}: "
                            f"lower --crop-size or raise --seg-size")
        offsets = (uniform * torch.tensor([h - c + 1, w - c + 1])).long()  # (n, 2, 2) offsets (h, w) of a and b
        crops = torch.cat([torch.stack([image[:, oh:oh + c, ow:ow + c]
                                        for image, (oh, ow) in zip(batch.images, offsets[:, k].tolist())])
                           for k in (0, 1)])
        self.queue(crops, offsets.tolist(), batch, forward)

    def agree(self, labels: torch.Tensor, meta: Any, batch: EvalBatch) -> torch.Tensor:
        n, c, shares = batch.n, self.crop_size, []
        for i, ((ah, aw), (bh, bw)) in enumerate(meta):
            top, left = max(ah, bh), max(aw, bw)
            bottom, right = min(ah, bh) + c, min(aw, bw) + c
            a = labels[i, top - ah:bottom - ah, left - aw:right - aw]
            b = labels[n + i, top - bh:bottom - bh, left - bw:right - bw]
            shares.append(batch.task.same(a, b).float().mean())
        return torch.stack(shares)


class SegmentationPairScorer(_Agreement):
    """Two shifted copies of each image's view (the center crop of the largest multiple of ``multiple``
    pixels), shifts drawn per image and pass; predictions brought back (:meth:`unshift`) and compared
    pixel for pixel, ``border`` pixels off each edge left out. Subclasses draw and apply the shifts."""

    label = "shift"

    def __init__(self, multiple: int = 32, epochs: int = 5, *, seed: int | None = None, min_forward: int = 0,
                 save: Callable | None = None, border: int = 0) -> None:
        super().__init__(epochs, seed, min_forward, save)
        self.multiple, self.border = multiple, border

    def draw(self, count: int) -> torch.Tensor:
        raise NotImplementedError

    def shift(self, images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def unshift(self, labels: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        return labels

    def score(self, batch: EvalBatch, forward: Forward) -> None:
        shifts = self.draw(batch.size)[:batch.n]  # drawn for unreadable samples too: same shifts either way
        if not batch.n:
            return
        view, _ = center_view(batch.images, self.multiple)
        both = torch.cat([shifts[:, 0], shifts[:, 1]]).to(view.device)
        self.queue(self.shift(torch.cat([view, view]), both), both, batch, forward)

    def agree(self, labels: torch.Tensor, meta: Any, batch: EvalBatch) -> torch.Tensor:
        aligned = self.unshift(labels, meta)
        n, e = batch.n, self.border
        a, b = aligned[:n], aligned[n:]
        if e:
            a, b = a[:, e:-e, e:-e], b[:, e:-e, e:-e]
        return batch.task.same(a, b).flatten(1).float().mean(dim=1)


class CircularSegmentationScorer(SegmentationPairScorer):
    """``-ec`` for segmentation: circular shifts from {0..max_shift-1}^2, agreement after rolling back, all pixels."""

    name = "segmentation_circular_consistency"
    label = "Circular"

    def __init__(self, max_shift: int = 32, multiple: int = 32, epochs: int = 5, **kw: Any) -> None:
        if max_shift < 1:
            raise ConfigError(f"--max-shift must be >= 1, got {max_shift}")
        super().__init__(multiple, epochs, **kw)
        self.max_shift = max_shift

    def draw(self, count: int) -> torch.Tensor:
        return torch.randint(self.max_shift, (count, 2, 2), generator=self.generator)

    def shift(self, images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        return roll_images(images, shifts)

    def unshift(self, labels: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        return roll_images(labels.unsqueeze(1), -shifts)[:, 0]


class FractionalSegmentationScorer(SegmentationPairScorer):
    """``-ef`` for segmentation: sub-pixel shifts from [0, 1)^2 (Fourier phase ramp); predictions compared
    pixel for pixel over the interior (``border`` pixels off each edge)."""

    name = "segmentation_fractional_consistency"
    label = "Fractional"

    def __init__(self, multiple: int = 32, epochs: int = 5, *, border: int = 16, **kw: Any) -> None:
        super().__init__(multiple, epochs, border=border, **kw)

    def draw(self, count: int) -> torch.Tensor:
        return torch.rand((count, 2, 2), generator=self.generator)

    def shift(self, images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        return fourier_shift(images, shifts)


class AdversarialSegmentationScorer(Scorer):
    """``-ea`` for segmentation: per image, the shift of a ``grid`` x ``grid`` grid with the fewest correct
    pixels; the confusion matrix of those predictions gives the adversarial mIoU.

    ``crop`` mode: the crops of (H - G + 1) x (W - G + 1) pixels at the offsets (dh, dw), scored
    against the same crops of the mask; ``circular`` mode: the view (center crop of the largest
    multiple of ``multiple``) rolled by (dh, dw), predictions rolled back and scored against the
    view's mask. Also kept: the counts of shift (0, 0), the unshifted reference. Per-unit outcomes:
    ``worst`` and ``zero`` (images, 3, classes) class counts, ``shift`` (the worst one), ``unit``, ``index``.
    """

    name = "segmentation_adversarial"

    def __init__(self, grid: int = 8, mode: str = "crop", multiple: int = 32, *, forward_batch: int = 0,
                 save: Callable | None = None) -> None:
        if mode not in SHIFT_MODES or grid < 1:
            raise ConfigError(f"-ea needs --shift-grid >= 1 and --shift-mode in {', '.join(SHIFT_MODES)}, got "
                              f"{grid} and {mode!r}")
        self.grid, self.mode, self.multiple = grid, mode, multiple
        self.forward_batch, self.save = forward_batch, save
        self.offsets = grid_offsets(grid)
        self.classes, self.ids = _Classes(), UnitIds()
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in ("worst", "zero", "shift", "unit", "index")}

    def prepare(self, model: torch.nn.Module, device: torch.device | str) -> None:
        self.classes.prepare(model, device)

    def _copies(self, images: torch.Tensor, offsets: list[tuple[int, int]]) -> torch.Tensor:
        if self.mode == "circular":
            shifts = torch.tensor(offsets, device=images.device).repeat_interleave(images.shape[0], dim=0)
            return roll_images(images.repeat(len(offsets), 1, 1, 1), shifts)
        h, w = images.shape[-2] - self.grid + 1, images.shape[-1] - self.grid + 1
        return torch.cat([images[..., dh:dh + h, dw:dw + w] for dh, dw in offsets])

    def _aligned(self, labels: torch.Tensor, targets: torch.Tensor, offsets: list[tuple[int, int]], n: int):
        """Per offset: the predicted labels (n, h, w) and the mask they are scored against."""
        for k, (dh, dw) in enumerate(offsets):
            pred = labels[k * n:(k + 1) * n]
            if self.mode == "circular":
                back = torch.tensor([[-dh, -dw]], device=pred.device).expand(n, 2)
                yield (dh, dw), roll_images(pred.unsqueeze(1), back)[:, 0], targets
            else:
                yield (dh, dw), pred, targets[:, dh:dh + pred.shape[-2], dw:dw + pred.shape[-1]]

    def _views(self, batch: EvalBatch) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mode == "circular":
            view, (top, left) = center_view(batch.images, self.multiple)
            return view, batch.targets[:, top:top + view.shape[-2], left:left + view.shape[-1]]
        if min(batch.images.shape[-2:]) <= self.grid:
            raise DataError(f"-ea in crop mode with --shift-grid {self.grid} needs images larger than "
                            f"{self.grid} pixels; the resized image is {tuple(batch.images.shape[-2:])}")
        return batch.images, batch.targets

    def score(self, batch: EvalBatch, forward: Forward) -> None:
        if not batch.n:
            return
        images, targets = self._views(batch)
        n, c = batch.n, self.classes.count
        worst = [None] * n  # per image: (correct pixels, shift, class counts)
        zero: list[torch.Tensor] = []
        per_pass = max(1, self.forward_batch // n)
        for start in range(0, len(self.offsets), per_pass):
            chunk = self.offsets[start:start + per_pass]
            copies = self._copies(images, chunk)
            if self.save is not None and batch.pass_index == 0:
                for k, (dh, dw) in enumerate(chunk):
                    self.save(copies[k * n:(k + 1) * n], batch.indices, f"{dh}_{dw}")
            labels = forward.task.predict(forward(copies))
            for shift, pred, target in self._aligned(labels, targets, chunk, n):
                for i in range(n):
                    counts = class_counts(confusion_matrix(pred[i], target[i], c))
                    right = int(counts[0].sum())
                    if shift == (0, 0):
                        zero.append(counts)
                    if worst[i] is None or right < worst[i][0]:
                        worst[i] = (right, shift, counts)
        self.parts["worst"].append(torch.stack([w[2] for w in worst]).cpu().numpy())
        self.parts["zero"].append(torch.stack(zero).cpu().numpy())
        self.parts["shift"].append(np.array([w[1] for w in worst]).reshape(n, 2))
        self.parts["unit"].append(self.ids(batch))
        self.parts["index"].append(_indices(batch))

    def units(self) -> dict[str, np.ndarray]:
        c = self.classes.count or 0
        empty = {"worst": np.zeros((0, 3, c)), "zero": np.zeros((0, 3, c)), "shift": np.zeros((0, 2), dtype=np.int64),
                 "unit": np.zeros(0, dtype=np.int64), "index": np.zeros(0, dtype=np.int64)}
        return {k: np.concatenate(v) if v else empty[k] for k, v in self.parts.items()}

    def sums(self) -> list[float]:
        u = self.units()
        return [*u["worst"].sum(axis=0).reshape(-1).tolist(), *u["zero"].sum(axis=0).reshape(-1).tolist(),
                len(u["unit"])] if len(u["unit"]) else [0.0] * (6 * (self.classes.count or 0)) + [0]

    def result(self, sums: list[float]) -> dict[str, Any]:
        *flat, images = sums
        worst, zero = np.split(np.asarray(flat, dtype=float), 2)
        figures = miou_figures(np.stack([worst, zero]))
        return {"adversarial_miou": float(figures[0, 0]), "adversarial_pixel_acc": float(figures[0, 1]),
                "unshifted_miou": float(figures[1, 0]), "unshifted_pixel_acc": float(figures[1, 1]),
                "images": int(images), "grid": self.grid, "mode": self.mode, "shifts": len(self.offsets)}
