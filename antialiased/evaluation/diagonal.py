"""Diagonal stability (the paper's ``-ed``): predictions along the crops at offsets (k, k)."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from antialiased._plotting import pyplot, save_figure
from antialiased.errors import DataError
from antialiased.evaluation.loop import EvalBatch, Forward, LoopOptions, Scorer, run_protocols
from antialiased.support.files import atomic_write_bytes

__all__ = ["DiagonalScorer", "diagonal_stability", "save_diagonal_arrays", "plot_diagonal"]

_ARRAYS = ("true_prob", "best_other_prob", "correct", "correct5", "pred", "indices")


class DiagonalScorer(Scorer):
    """Class probabilities of the ``max_shift + 1`` crops at offsets (k, k) of every image.

    Per-unit outcomes (:meth:`units`): the per-image arrays of :func:`diagonal_stability`.
    """

    name = "diagonal"

    def __init__(self, crop_size: int = 224, max_shift: int = 32, *, forward_batch: int = 64,
                 save: Callable | None = None) -> None:
        self.crop_size, self.max_shift, self.forward_batch, self.save = crop_size, max_shift, forward_batch, save
        self.input_size = crop_size + max_shift
        self.shifts = list(range(max_shift + 1))
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in _ARRAYS}

    def _probabilities(self, images: torch.Tensor, n: int, forward: Forward) -> torch.Tensor:
        """(n, shifts, classes) softmax outputs, several shifts per forward pass."""
        c, per_pass, probs = self.crop_size, max(1, self.forward_batch // n), []
        for start in range(0, len(self.shifts), per_pass):
            ks = self.shifts[start:start + per_pass]
            crops = torch.cat([images[..., k:k + c, k:k + c] for k in ks])
            probs.append(forward(crops).softmax(dim=1).view(len(ks), n, -1))
        return torch.cat(probs).transpose(0, 1)

    def score(self, batch: EvalBatch, forward: Forward) -> None:
        n = batch.n
        if not n:
            return
        if min(batch.images.shape[-2:]) < self.input_size:
            raise DataError(f"diagonal stability needs images of {self.input_size}x{self.input_size}; the loader "
                            f"gave {tuple(batch.images.shape[-2:])}")
        if self.save is not None:
            self.save(batch.images, batch.indices)
        p = self._probabilities(batch.images, n, forward)
        idx = batch.targets.view(n, 1, 1).expand(n, len(self.shifts), 1)
        top5 = p.topk(min(5, p.shape[2]), dim=2).indices
        pred = p.argmax(dim=2).cpu().numpy()
        self.parts["true_prob"].append(p.gather(2, idx).squeeze(2).cpu().numpy())
        self.parts["best_other_prob"].append(p.scatter(2, idx, -1.0).max(dim=2).values.cpu().numpy())
        self.parts["pred"].append(pred)
        self.parts["correct"].append(pred == batch.targets_cpu.view(n, 1).numpy())
        self.parts["correct5"].append(top5.eq(idx).any(dim=2).cpu().numpy())
        self.parts["indices"].append(batch.indices.numpy() if batch.indices is not None else np.full(n, -1))

    def units(self) -> dict[str, np.ndarray]:
        width = len(self.shifts)
        empty = {"indices": np.zeros(0, dtype=np.int64), "pred": np.zeros((0, width), dtype=np.int64)}
        arrays = {k: np.concatenate(v) if v else empty.get(k, np.zeros((0, width))) for k, v in self.parts.items()}
        return {**arrays, "shifts": np.asarray(self.shifts)}

    def sums(self) -> list[float]:
        a = self.units()
        flips = (a["pred"][:, 1:] != a["pred"][:, :-1]).sum(axis=1)
        return [a["true_prob"].sum(), a["correct"].sum(), a["correct5"].sum(), (flips == 0).sum(), flips.sum(),
                a["pred"].shape[0]]

    def result(self, sums: list[float]) -> dict[str, Any]:
        true_prob, correct, correct5, stable, flips, images = sums
        crops = images * len(self.shifts)
        return {"mean_true_prob": 100 * true_prob / crops, "acc1": 100 * correct / crops,
                "acc5": 100 * correct5 / crops, "stable": 100 * stable / images, "flips_per_image": flips / images,
                "arrays": self.units()}

    def postfix(self) -> dict[str, str]:
        return {"acc1": f"{100 * np.concatenate(self.parts['correct']).mean():.2f}"} if self.parts["correct"] else {}


def diagonal_stability(model: nn.Module, loader: Iterable, device: torch.device | str, *, crop_size: int = 224,
                       max_shift: int = 32, progress: bool = True, amp_dtype: torch.dtype | None = None,
                       channels_last: bool = False, forward_batch: int = 64, print_freq: int = 10,
                       save: Callable | None = None) -> dict:
    """Classify the ``max_shift + 1`` crops at offsets (k, k), k = 0..max_shift, of every image.

    ``loader`` yields images of at least ``crop_size + max_shift`` pixels (Resize(256) +
    CenterCrop(256) for the paper's 33 crops). Several shifts share a forward pass of about
    ``forward_batch`` crops.

    Returns:
        metrics ``{'mean_true_prob', 'acc1', 'acc5', 'stable', 'flips_per_image', 'count', 'skipped',
        'skipped_indices'}`` (percentages except the counts) and ``'arrays'``: per-image numpy arrays of
        shape (N, max_shift + 1): ``true_prob``, ``best_other_prob``, ``correct`` (top-1),
        ``correct5``, ``pred``; and ``shifts`` and ``indices`` (dataset positions, or -1). Under
        torch.distributed the metrics cover all ranks, the arrays this rank's images.

    Example:
        >>> model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 5))
        >>> flat = torch.ones(2, 3, 10, 10)  # uniform images: every shifted crop is the same
        >>> out = diagonal_stability(model, [(flat, torch.tensor([1, 3]))], "cpu",
        ...                          crop_size=8, max_shift=2, progress=False)
        >>> out["arrays"]["true_prob"].shape, out["stable"]
        ((2, 3), 100.0)
    """
    scorer = DiagonalScorer(crop_size, max_shift, forward_batch=forward_batch, save=save)
    options = LoopOptions(amp_dtype=amp_dtype, channels_last=channels_last, progress=progress,
                          print_freq=print_freq, desc="Diagonal")
    return run_protocols(model, loader, device, [scorer], options).results[scorer.name]


def save_diagonal_arrays(arrays: dict[str, np.ndarray], out_dir: str | os.PathLike, prefix: str) -> list[Path]:
    """Write each array as ``<out_dir>/<prefix>_<name>.npy`` (atomically); returns the paths."""
    paths = []
    for name, value in arrays.items():
        buffer = io.BytesIO()
        np.save(buffer, value)
        paths.append(atomic_write_bytes(Path(out_dir) / f"{prefix}_{name}.npy", buffer.getvalue()))
    return paths


def plot_diagonal(arrays: dict[str, np.ndarray], path: str | os.PathLike, title: str = "",
                  examples: int = 8) -> Path:
    """PNG plot of the true-class probability against the diagonal shift: mean, quartiles, examples."""
    plt = pyplot()
    shifts, prob = arrays["shifts"], 100 * arrays["true_prob"]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for row in prob[:examples]:
        ax.plot(shifts, row, color="0.7", linewidth=0.8)
    lo, hi = np.percentile(prob, [25, 75], axis=0)
    ax.fill_between(shifts, lo, hi, alpha=0.25, label="25-75th percentile")
    ax.plot(shifts, prob.mean(axis=0), linewidth=2, label=f"mean over {prob.shape[0]} images")
    ax.set_xlabel("diagonal shift k (crop at offset (k, k))")
    ax.set_ylabel("probability of the true class (%)")
    ax.set_xlim(shifts[0], shifts[-1])
    ax.set_ylim(0, 100)
    ax.set_title(title or "Diagonal stability")
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)
