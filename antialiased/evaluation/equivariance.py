"""Per-layer shift equivariance (``-eq``): how far each feature map is from shifting with the input.

For a feature map f at cumulative stride s (input pixels per map pixel), the input crop x is rolled
by (k s, k s) for k = 1, 2, 3 and the map of the shifted input is compared with the map of x rolled
by (k, k): ``||f(T x) - T' f(x)|| / ||f(x)||`` (L2 norms over the whole map of one image). 0 is
exact equivariance (a circularly padded, stride-1 convolution stack; an APS network at multiples
of its strides); aliasing subsampling and zero padding move it away from 0. The maps measured are
the end of every subsampling stage (:func:`~antialiased.evaluation.feature_maps.find_feature_maps`)
and any modules named with ``--layers``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from antialiased._plotting import pyplot, save_figure
from antialiased.evaluation.bootstrap import RESAMPLES, IntervalBounds, bootstrap_columns, interval_methods
from antialiased.evaluation.feature_maps import FeatureMap, find_feature_maps, select_layers, spatial_output
from antialiased.evaluation.loop import EvalBatch, Forward, LoopOptions, Scorer
from antialiased.evaluation.pairs import UnitIds, run_scorer, saving
from antialiased.evaluation.probe import unwrap_model
from antialiased.evaluation.shifts import rolled_copies

__all__ = ["EquivarianceScorer", "layer_equivariance", "layer_profile", "plot_equivariance", "MULTIPLES"]

MULTIPLES = (1, 2, 3)  # input shifts (k s, k s) of a map at stride s


class EquivarianceScorer(Scorer):
    """Equivariance errors of the stage maps (and ``layers``) of the ``crop_size`` center crop.

    The model's layers are found on the first batch, or earlier by :meth:`prepare` (which also
    refuses unknown ``layers`` before any work). Forward passes hold the crop and about
    ``forward_batch`` shifted copies (0: one shift per pass); hooks compare the maps as they are
    made, so no feature map is kept. Per-unit outcomes (:meth:`units`): ``errors`` of shape
    (images, layers, 3), ``unit``, ``index``.
    """

    name = "equivariance"

    def __init__(self, crop_size: int = 224, layers: Sequence[str] = (), *, forward_batch: int = 0,
                 save: Callable | None = None) -> None:
        self.crop_size, self.input_size, self.names = crop_size, crop_size, tuple(layers)
        self.forward_batch, self.save = forward_batch, save
        self.maps: list[FeatureMap] | None = None
        self.prepared_for: int | None = None
        self.shifts: list[tuple[int, int]] = []
        self.ids = UnitIds()
        self.parts: dict[str, list[np.ndarray]] = {"errors": [], "unit": [], "index": []}

    def prepare(self, model: nn.Module, device: torch.device | str) -> None:
        """Find the feature maps to measure (raises ModelError/ConfigError for models or names that cannot work)."""
        model = unwrap_model(model)
        if self.maps is not None and self.prepared_for == id(model):
            return
        self.prepared_for = id(model)
        self.maps = select_layers(find_feature_maps(model, self.crop_size, device), self.names, model)
        self.shifts = sorted({(k * m.stride[0], k * m.stride[1]) for m in self.maps for k in MULTIPLES})

    def _hook(self, index: int, chunk: list[tuple[int, int]], n: int, errors: torch.Tensor):
        """A forward hook writing the errors of map ``index`` for the shifts of ``chunk`` into ``errors``."""
        stride = self.maps[index].stride

        def measure(module: nn.Module, args: Any, output: Any) -> None:
            out = spatial_output(output).float()
            ref = out[:n]
            norm = ref.flatten(1).norm(dim=1).clamp_min(1e-30)
            for j, (th, tw) in enumerate(chunk):
                k = th // stride[0]
                if (th, tw) != (k * stride[0], k * stride[1]) or k not in MULTIPLES:
                    continue
                expected = torch.roll(ref, (k, k), dims=(2, 3))
                errors[:, index, k - 1] = (out[n * (j + 1):n * (j + 2)] - expected).flatten(1).norm(dim=1) / norm
        return measure

    def score(self, batch: EvalBatch, forward: Forward) -> None:
        if not batch.n:
            return
        if self.maps is None:
            self.prepare(forward.model, batch.device)
        n, crop = batch.n, batch.center(self.crop_size)
        model = unwrap_model(forward.model)  # hooks must see the calls (not a compiled or replicated copy)
        modules = dict(model.named_modules())
        run = forward.like(model)
        errors = torch.zeros(n, len(self.maps), len(MULTIPLES), device=crop.device)
        per_pass = max(1, self.forward_batch // n - 1)
        for start in range(0, len(self.shifts), per_pass):
            chunk = self.shifts[start:start + per_pass]
            copies = torch.cat([crop, saving(lambda c: rolled_copies(crop, c), self.save, batch)(chunk)])
            handles = [modules[m.name].register_forward_hook(self._hook(i, chunk, n, errors))
                       for i, m in enumerate(self.maps)]
            try:
                run(copies)
            finally:
                for handle in handles:
                    handle.remove()
        forward.samples += run.samples
        self.parts["errors"].append(errors.cpu().numpy())
        self.parts["unit"].append(self.ids(batch))
        self.parts["index"].append(batch.indices.numpy() if batch.indices is not None else np.full(n, -1))

    def units(self) -> dict[str, np.ndarray]:
        width = len(self.maps or ())
        if not self.parts["errors"]:
            return {"errors": np.zeros((0, width, len(MULTIPLES))), "unit": np.zeros(0, dtype=np.int64),
                    "index": np.zeros(0, dtype=np.int64)}
        return {k: np.concatenate(v) for k, v in self.parts.items()}

    def sums(self) -> list[float]:
        errors = self.units()["errors"]
        return [*errors.sum(axis=0).reshape(-1).tolist(), len(errors)]

    def result(self, sums: list[float]) -> dict[str, Any]:
        *totals, images = sums
        per = np.asarray(totals, dtype=float).reshape(len(self.maps or ()), len(MULTIPLES)) / max(images, 1)
        layers = [{**m.record(), "error": float(row.mean()), "per_shift": row.tolist(),
                   "shifts": [[k * m.stride[0], k * m.stride[1]] for k in MULTIPLES]}
                  for m, row in zip(self.maps or (), per)]
        stages = [layer["error"] for layer in layers if layer["stage"]]
        return {"layers": layers, "mean_stage_error": float(np.mean(stages)) if stages else float("nan"),
                "images": int(images)}


def layer_profile(result: dict[str, Any], units: dict[str, np.ndarray], *, resamples: int = RESAMPLES,
                  seed: int = 0) -> list[dict[str, Any]]:
    """The result's layers with ``error_ci95``: 95% bootstrap intervals over images of each layer's mean error."""
    errors = units["errors"].mean(axis=2) if len(units["errors"]) else np.zeros((0, len(result["layers"])))
    _, low, high, _ = bootstrap_columns(errors, units["unit"], resamples=resamples, seed=seed)
    methods = interval_methods(errors, units["unit"])
    return [{**layer, "error_ci95": IntervalBounds([lo, hi], method)}
            for layer, lo, hi, method in zip(result["layers"], low, high, methods)]


def layer_equivariance(model: nn.Module, loader: Iterable, device: torch.device | str, *, crop_size: int = 224,
                       layers: Sequence[str] = (), forward_batch: int = 0, seed: int | None = None,
                       progress: bool = True, amp_dtype: torch.dtype | None = None, channels_last: bool = False,
                       print_freq: int = 10, resamples: int = RESAMPLES) -> dict:
    """Per-layer equivariance errors ``||f(T x) - T' f(x)|| / ||f(x)||`` of the center crop, averaged over
    the shifts (s, s), (2s, 2s), (3s, 3s) of each map's stride s and over images.

    Layers are checked before any image is read: ``layers`` that are not modules with a spatial
    map raise ConfigError (listing the valid names); a model without spatial maps ModelError.

    Returns:
        ``{'layers': [{'name', 'depth', 'stride', 'shape', 'stage', 'error', 'error_ci95',
        'per_shift', 'shifts'}, ...], 'mean_stage_error', 'images', 'count', 'skipped', ...}``.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular"), nn.ReLU(),
        ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> out = layer_equivariance(net, [(torch.rand(2, 3, 16, 16), torch.tensor([0, 1]))], "cpu",
        ...                          crop_size=16, progress=False)
        >>> [(layer["name"], layer["stride"], round(layer["error"], 5)) for layer in out["layers"]]
        [('1', [1, 1], 0.0)]
    """
    scorer = EquivarianceScorer(crop_size, layers, forward_batch=forward_batch)
    options = LoopOptions(amp_dtype=amp_dtype, channels_last=channels_last, progress=progress,
                          print_freq=print_freq, desc="Equivariance")
    return run_scorer(model, loader, device, scorer, options, resamples=resamples, seed=seed,
                      extra=lambda out, units, **kw: {"layers": layer_profile(out, units, **kw)})


def plot_equivariance(profiles: dict[str, Sequence[dict[str, Any]]], path: str | os.PathLike,
                      title: str = "Per-layer shift equivariance") -> Path:
    """PNG plot of each model's layer errors against depth (stages as dots, other layers as small marks)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for i, (label, layers) in enumerate(profiles.items()):
        x = np.arange(len(layers))
        y = np.array([layer["error"] for layer in layers])
        ci = np.array([layer.get("error_ci95", [v, v]) for layer, v in zip(layers, y)]).reshape(-1, 2).T
        ax.errorbar(x, y, yerr=np.abs(ci - y), fmt="-o", ms=4, capsize=3, color=f"C{i % 10}", label=label)
    names = {tuple(layer["name"] for layer in layers) for layers in profiles.values()}
    if len(names) == 1:  # one architecture: name the maps; else the maps are numbered by depth
        labels = next(iter(names))
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
    ax.set_xlabel("feature map (by depth)")
    ax.set_ylabel("||f(Tx) - T'f(x)|| / ||f(x)||")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
