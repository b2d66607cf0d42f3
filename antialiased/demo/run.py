"""The demo run: train a baseline and anti-aliased variants, measure accuracy and shift consistency.

Every variant is the baseline net converted by :func:`antialiased.models.antialias.antialias`
(:mod:`antialiased.demo.variants`), trained from the same initial weights on the same images in
the same order. Training uses :func:`antialiased.training.train_one_epoch`; the measurements are
the library's protocols, scaled to the demo's image size: accuracy on the center crop
(:func:`~antialiased.evaluation.evaluate_accuracy`), crop-shift consistency (two random crops,
``-es``: :func:`~antialiased.evaluation.shift_consistency`) and circular-shift consistency (two
circular shifts of the center crop, ``-ec``: :func:`~antialiased.evaluation.circular_consistency`).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from antialiased.demo.data import CropDataset, DemoData, load_folder, load_generated
from antialiased.demo.nets import NETS, build_net
from antialiased.demo.variants import BASELINE, Variant, build_variant, parse_variants
from antialiased.errors import ConfigError

__all__ = ["DemoConfig", "DemoResult", "run_demo", "train_variant", "total_stride"]


@dataclass
class DemoConfig:
    """Settings of a demo run (the CLI's flags)."""

    out_dir: str = "demo_out"
    seed: int = 0
    epochs: int = 5
    steps: int | None = None  # cap on training iterations per epoch
    filter_sizes: Sequence[int] = (2, 3, 4, 5)  # the paper's recipe (method "blurpool") at these sizes
    methods: Sequence[str] = ()  # further variants, "METHOD[:N]" (e.g. "blur-first:4", "aps", "aps-lpf:3")
    data: str | None = None  # ImageFolder root; None: the generated shapes
    net: str = "democnn"
    width: int = 16
    crop_size: int = 32
    max_shift: int = 8
    train_size: int = 4000
    test_size: int = 1000
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    epochs_shift: int = 5
    device: str = "cpu"
    progress: bool = True
    plot: bool = True

    def variants(self) -> list[Variant]:
        """The baseline, then blurpool at each filter size, then ``methods`` (duplicates once; an item may hold
        several, separated by commas)."""
        chosen = [BASELINE, *(Variant("blurpool", n) for n in self.filter_sizes), *parse_variants(self.methods)]
        return list(dict.fromkeys(chosen))

    def validate(self) -> None:
        checks = [
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.steps is None or self.steps >= 1, f"--steps must be >= 1, got {self.steps}"),
            (all(1 <= n <= 7 for n in self.filter_sizes), f"--filter-sizes must lie in 1..7, got {list(self.filter_sizes)}"),
            (self.net in NETS, f"--net must be one of {sorted(NETS)}, got {self.net!r}"),
            (self.crop_size >= 8, f"--crop-size must be >= 8, got {self.crop_size}"),
            (self.max_shift >= 1, f"--max-shift must be >= 1, got {self.max_shift}"),
            (self.train_size >= 0 and self.test_size >= 0, "--train-size/--test-size must be >= 0"),
            (self.data is not None or (self.train_size > 0 and self.test_size > 0),
             "--train-size/--test-size must be > 0 for the generated data (0 means 'all' only with --data)"),
            (self.batch_size >= 1 and self.width >= 1 and self.epochs_shift >= 1,
             "--batch-size, --width and --epochs-shift must be >= 1"),
            (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        self.variants()  # unknown methods and sizes: a clear error before any data is read

    def describe_protocols(self, stride: int) -> str:
        """What the three measurements are, at this run's sizes, and whether APS is exact here."""
        c, m, size, p = self.crop_size, self.max_shift, self.crop_size + self.max_shift, self.epochs_shift
        exact = (f"{c} is a multiple of the net's total stride {stride}, so APS variants are exactly invariant to "
                 f"circular shifts of it" if c % stride == 0 else
                 f"{c} is NOT a multiple of the net's total stride {stride}: APS variants are not exactly invariant "
                 f"here (use a crop size that is a multiple of {stride})")
        return (f"accuracy: center {c}px crop of the {size}px test images; crop-shift consistency (-es scaled): "
                f"two random {c}px crops of the {size}px image at offsets in {{0..{m - 1}}}^2; circular consistency "
                f"(-ec scaled): two circular shifts in {{0..{m - 1}}}^2 of the {c}px center crop; offsets drawn per "
                f"image, {p} pass(es) over the test images; {exact}")


@dataclass
class DemoResult:
    results_path: Path
    table: str
    plot_path: Path | None
    records: list[dict[str, Any]] = field(default_factory=list)
    total_stride: int = 1


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a device name (e.g. 'cpu', 'cuda', 'cuda:0')") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name!r} asked for CUDA, but no CUDA GPU is available; use --device cpu")
    return device


def _load_data(cfg: DemoConfig) -> DemoData:
    size = cfg.crop_size + cfg.max_shift
    if cfg.data is None:
        return load_generated(train_size=cfg.train_size, test_size=cfg.test_size, image_size=size,
                              crop_size=cfg.crop_size, seed=cfg.seed)
    return load_folder(cfg.data, train_size=cfg.train_size, test_size=cfg.test_size, image_size=size, seed=cfg.seed)


def total_stride(net: str, crop_size: int, width: int = 4) -> int:
    """The baseline net's total subsampling factor at ``crop_size`` (its largest feature-map stride).

    Circular-shift invariance of the APS variants is exact only for inputs whose sides it divides.

    Example:
        >>> total_stride("smallresnet", 28), total_stride("democnn", 32)
        (4, 8)
    """
    from antialiased.evaluation import find_feature_maps

    maps = find_feature_maps(build_net(net, num_classes=2, width=width), crop_size)
    return max(max(m.stride) for m in maps)


def _loaders(cfg: DemoConfig, data: DemoData, gen: torch.Generator) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Training (random crops, flips), center-crop and full-image (for the shift protocols) loaders."""
    mean, std = data.channel_stats()

    def crops(images, labels, mode):
        return CropDataset(images, labels, crop=cfg.crop_size, mode=mode, mean=mean, std=std,
                           return_index=mode == "full")

    train = DataLoader(crops(data.train_images, data.train_labels, "random"), batch_size=cfg.batch_size,
                       shuffle=True, generator=gen, drop_last=len(data.train_labels) > cfg.batch_size)
    center = DataLoader(crops(data.test_images, data.test_labels, "center"), batch_size=256)
    full = DataLoader(crops(data.test_images, data.test_labels, "full"), batch_size=256)
    return train, center, full


def _train(model: nn.Module, cfg: DemoConfig, loader: DataLoader, device: torch.device, bar, name: str, *,
           criterion: nn.Module | None = None, rules: Any = None) -> dict:
    """SGD with Nesterov momentum, cosine-decayed per epoch (``cfg``: lr, momentum, weight_decay, epochs,
    steps); ``criterion`` (default cross-entropy) and ``rules`` (what a batch holds) for other tasks."""
    from antialiased.training import train_one_epoch
    from antialiased.training.method_rules import apply_epoch_schedules, parameter_groups

    # the learned methods' layers train as their authors' do (e.g. LPS's scorer without weight decay,
    # its Gumbel temperature annealed per epoch), as in `antialiased train`; other nets: one group, as before
    groups = parameter_groups(model, lr=cfg.lr, weight_decay=cfg.weight_decay)
    optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                nesterov=True)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    stats: dict[str, Any] = {}
    for epoch in range(cfg.epochs):
        for group, base in zip(optimizer.param_groups, base_lrs):  # cosine decay over the epochs
            group["lr"] = base * 0.5 * (1 + math.cos(math.pi * epoch / cfg.epochs))
        apply_epoch_schedules(model, epoch)
        stats = train_one_epoch(model, criterion or nn.CrossEntropyLoss(), optimizer, loader, device, epoch,
                                max_iters=cfg.steps, print_freq=10**9, progress=False, rules=rules)
        if bar is not None:
            bar.set_postfix_str(f"{name} epoch {epoch + 1}/{cfg.epochs} loss {stats['loss']:.3f}")
            bar.update(1)
    return stats


def _measure(model: nn.Module, cfg: DemoConfig, center: DataLoader, full: DataLoader, device) -> dict[str, Any]:
    """Accuracy, crop-shift (-es) and circular (-ec) consistency; shift offsets drawn per image and pass."""
    from antialiased.evaluation import circular_consistency, evaluate_accuracy, shift_consistency
    from antialiased.evaluation.bootstrap import record_interval_methods

    shifts = dict(crop_size=cfg.crop_size, max_shift=cfg.max_shift, epochs=cfg.epochs_shift, seed=cfg.seed,
                  progress=False)
    acc = evaluate_accuracy(model, center, device, progress=False)
    crop = shift_consistency(model, full, device, independent=True, **shifts)
    circ = circular_consistency(model, full, device, **shifts)
    return record_interval_methods({  # each interval's method next to it, as in eval's result files
        "acc1": float(acc["acc1"]), "consistency": float(crop["consistency"]),
        "consistency_ci95": crop["ci95"], "pairs": int(crop["pairs"]),
        "circular_consistency": float(circ["consistency"]),
        "circular_consistency_ci95": circ["consistency_ci95"],
        "circular_pairs": int(circ["pairs"]),
    })


def train_variant(cfg: DemoConfig, data: DemoData, variant: Variant, device: torch.device,
                  bar=None) -> dict[str, Any]:
    """Build ``variant``, train it from scratch and evaluate it; returns its result record (schema entry)."""
    torch.manual_seed(cfg.seed)  # every variant: the same initial weights, crops and batch order
    train, center, full = _loaders(cfg, data, torch.Generator().manual_seed(cfg.seed))
    model, built = build_variant(cfg.net, variant, num_classes=len(data.classes), width=cfg.width,
                                 input_size=(3, cfg.crop_size, cfg.crop_size))
    model = model.to(device)
    name = variant.model_name(cfg.net)
    start = time.perf_counter()
    stats = _train(model, cfg, train, device, bar, name)
    train_time = time.perf_counter() - start
    metrics = _measure(model, cfg, center, full, device)
    if bar is not None:
        bar.set_postfix_str(f"{name} acc {metrics['acc1']:.1f} cons {metrics['consistency']:.1f} "
                            f"circ {metrics['circular_consistency']:.1f}")
        bar.update(1)
    metrics.update(train_loss=float(stats.get("loss", float("nan"))), train_acc1=float(stats.get("acc1", float("nan"))),
                   train_time_s=round(train_time, 2), params=sum(p.numel() for p in model.parameters()))
    return {"schema": "antialiased.result/1", "model": name, "arch": cfg.net,
            "filter_size": None if variant.method is None else variant.filter_size, "method": variant.method,
            "label": variant.label, "built": built, "metrics": metrics}


def _write_outputs(cfg: DemoConfig, data: DemoData, device: torch.device, records: list[dict[str, Any]],
                   stride: int) -> DemoResult:
    from antialiased.demo.report import methods_table, plot_methods, summarize_variants
    from antialiased.evaluation.results import make_result, write_result

    settings = {k: v for k, v in asdict(cfg).items() if k not in ("out_dir", "progress", "plot", "device", "seed")}
    settings.update(filter_sizes=list(cfg.filter_sizes), methods=list(cfg.methods),
                    variants=[v.spec for v in cfg.variants()], image_size=data.image_size, classes=data.classes,
                    total_stride=stride, shift_offsets="drawn per image and pass")
    top = make_result(model=cfg.net, arch=cfg.net, filter_size=None, weights="demo", protocol="demo",
                      metrics={}, dataset=data.source, seed=cfg.seed, device=str(device),
                      counts={"images": len(data.train_labels) + len(data.test_labels),
                              "train": len(data.train_labels), "test": len(data.test_labels),
                              "skipped": data.skipped},
                      skipped_files=[], settings=settings)
    top["results"] = records
    out = Path(cfg.out_dir)
    path = write_result(top, out)
    rows = summarize_variants(records)
    table = methods_table(rows)
    (out / f"demo_{cfg.net}_seed{cfg.seed}.md").write_text(table + "\n")
    plot = None
    if cfg.plot:
        source = "generated shapes" if cfg.data is None else Path(cfg.data).name
        plot = plot_methods(rows, out / f"demo_{cfg.net}_seed{cfg.seed}.png",
                            title=f"{cfg.net} on {source} (seed {cfg.seed})")
    return DemoResult(path, table, plot, records, stride)


def run_demo(cfg: DemoConfig) -> DemoResult:
    """Train and evaluate every variant of ``cfg``; write the results JSON, the table and the plot."""
    from tqdm.auto import tqdm

    cfg.validate()
    device = _device(cfg.device)
    variants = cfg.variants()
    for variant in variants:  # a variant that cannot be built fails now, not after hours of training
        build_variant(cfg.net, variant, num_classes=2, width=2, input_size=(3, cfg.crop_size, cfg.crop_size))
    stride = total_stride(cfg.net, cfg.crop_size)
    data = _load_data(cfg)
    records = []
    with tqdm(total=len(variants) * (cfg.epochs + 1), desc="demo", unit="step", disable=not cfg.progress,
              dynamic_ncols=True) as bar:
        for variant in variants:
            records.append(train_variant(cfg, data, variant, device, bar))
    return _write_outputs(cfg, data, device, records, stride)
