"""Diagonal stability (the paper's ``-ed``): predictions along the crops at offsets (k, k)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from antialiased.evaluation._common import (all_reduce_sum, check_num_classes, forward, iter_batches,
                                            loader_total, prepare_input, progress_bar)

__all__ = ["diagonal_stability", "save_diagonal_arrays", "plot_diagonal"]


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
        ``correct5``, ``pred``; and ``shifts`` and ``indices`` (dataset positions, or -1).

    Example:
        >>> model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 5))
        >>> flat = torch.ones(2, 3, 10, 10)  # uniform images: every shifted crop is the same
        >>> out = diagonal_stability(model, [(flat, torch.tensor([1, 3]))], "cpu",
        ...                          crop_size=8, max_shift=2, progress=False)
        >>> out["arrays"]["true_prob"].shape, out["stable"]
        ((2, 3), 100.0)
    """
    device = torch.device(device)
    model.eval()
    shifts = list(range(max_shift + 1))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("true_prob", "best_other_prob", "correct",
                                                          "correct5", "pred", "indices")}
    skipped, skipped_indices = 0, []
    c = crop_size
    bar = progress_bar(loader_total(loader), "Diagonal", progress)
    with torch.inference_mode(), bar:
        for step, batch in enumerate(iter_batches(loader)):
            skipped += batch.n_skipped
            skipped_indices += batch.skipped
            n = int(batch.targets.numel())
            if n:
                if min(batch.images.shape[-2:]) < c + max_shift:
                    raise ValueError(f"diagonal stability needs images of {c + max_shift}x{c + max_shift}; "
                                     f"the loader gave {tuple(batch.images.shape[-2:])}")
                images = prepare_input(batch.images, device, False)
                targets = batch.targets.to(device)
                if save is not None:
                    save(images, batch.indices)
                per_pass = max(1, forward_batch // n)
                probs = []
                for start in range(0, len(shifts), per_pass):
                    ks = shifts[start:start + per_pass]
                    crops = torch.cat([images[..., k:k + c, k:k + c] for k in ks])
                    if channels_last:
                        crops = crops.contiguous(memory_format=torch.channels_last)
                    logits = forward(model, crops, amp_dtype)
                    check_num_classes(logits, targets)
                    probs.append(logits.softmax(dim=1).view(len(ks), n, -1))
                p = torch.cat(probs).transpose(0, 1)  # (n, shifts, classes)
                idx = targets.view(n, 1, 1).expand(n, len(shifts), 1)
                true_prob = p.gather(2, idx).squeeze(2)
                others = p.scatter(2, idx, -1.0)
                top5 = p.topk(min(5, p.shape[2]), dim=2).indices
                parts["true_prob"].append(true_prob.cpu().numpy())
                parts["best_other_prob"].append(others.max(dim=2).values.cpu().numpy())
                parts["pred"].append(p.argmax(dim=2).cpu().numpy())
                parts["correct"].append((parts["pred"][-1] == batch.targets.view(n, 1).numpy()))
                parts["correct5"].append(top5.eq(idx).any(dim=2).cpu().numpy())
                parts["indices"].append(batch.indices.numpy() if batch.indices is not None else np.full(n, -1))
            bar.update(batch.size)
            if print_freq and step % print_freq == 0 and parts["correct"]:
                bar.set_postfix(acc1=f"{100 * np.concatenate(parts['correct']).mean():.2f}")
    if not parts["pred"]:
        raise ValueError("no image could be evaluated (empty dataset, or every file was unreadable)")
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    arrays["shifts"] = np.asarray(shifts)
    pred = arrays["pred"]
    flips = (pred[:, 1:] != pred[:, :-1]).sum(axis=1)
    n_img = pred.shape[0]
    sums = all_reduce_sum([arrays["true_prob"].sum(), arrays["correct"].sum(), arrays["correct5"].sum(),
                           (flips == 0).sum(), flips.sum(), n_img, skipped], device)
    total_img, n_crops = sums[5], sums[5] * len(shifts)
    return {"mean_true_prob": 100 * sums[0] / n_crops, "acc1": 100 * sums[1] / n_crops,
            "acc5": 100 * sums[2] / n_crops, "stable": 100 * sums[3] / total_img,
            "flips_per_image": sums[4] / total_img, "count": int(total_img), "skipped": int(sums[6]),
            "skipped_indices": skipped_indices, "arrays": arrays}


def save_diagonal_arrays(arrays: dict[str, np.ndarray], out_dir: str | os.PathLike, prefix: str) -> list[Path]:
    """Write each array as ``<out_dir>/<prefix>_<name>.npy``; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, value in arrays.items():
        path = out_dir / f"{prefix}_{name}.npy"
        tmp = path.with_suffix(".npy.tmp")
        with open(tmp, "wb") as f:
            np.save(f, value)
        os.replace(tmp, path)
        paths.append(path)
    return paths


def plot_diagonal(arrays: dict[str, np.ndarray], path: str | os.PathLike, title: str = "",
                  examples: int = 8) -> Path:
    """PNG plot of the true-class probability against the diagonal shift: mean, quartiles, examples."""
    from antialiased._plotting import pyplot, save_figure

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
