"""The demo run: train a baseline and anti-aliased variants, measure accuracy and shift consistency.

Training uses :func:`antialiased.training.train_one_epoch`; accuracy and consistency use
:func:`antialiased.evaluation.evaluate_accuracy` and :func:`antialiased.evaluation.shift_consistency`.
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

__all__ = ["DemoConfig", "DemoResult", "run_demo", "train_variant"]


@dataclass
class DemoConfig:
    """Settings of a demo run (the CLI's flags)."""

    out_dir: str = "demo_out"
    seed: int = 0
    epochs: int = 5
    steps: int | None = None  # cap on training iterations per epoch
    filter_sizes: Sequence[int] = (2, 3, 4, 5)
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
                raise ValueError(message)


@dataclass
class DemoResult:
    results_path: Path
    table: str
    plot_path: Path | None
    records: list[dict[str, Any]] = field(default_factory=list)


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a device name (e.g. 'cpu', 'cuda', 'cuda:0')") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name!r} asked for CUDA, but no CUDA GPU is available; use --device cpu")
    return device


def _model_name(net: str, filter_size: int | None) -> str:
    return net if filter_size is None else f"{net}_lpf{filter_size}"


def _load_data(cfg: DemoConfig) -> DemoData:
    size = cfg.crop_size + cfg.max_shift
    if cfg.data is None:
        return load_generated(train_size=cfg.train_size, test_size=cfg.test_size, image_size=size,
                              crop_size=cfg.crop_size, seed=cfg.seed)
    return load_folder(cfg.data, train_size=cfg.train_size, test_size=cfg.test_size, image_size=size, seed=cfg.seed)


def train_variant(cfg: DemoConfig, data: DemoData, filter_size: int | None, device: torch.device,
                  bar=None) -> dict[str, Any]:
    """Train one variant from scratch and evaluate it; returns its result record (schema entry)."""
    from antialiased.evaluation import evaluate_accuracy, shift_consistency
    from antialiased.training import train_one_epoch

    mean, std = data.channel_stats()
    torch.manual_seed(cfg.seed)  # every variant sees the same initialization stream and batch order
    gen = torch.Generator().manual_seed(cfg.seed)
    train_loader = DataLoader(CropDataset(data.train_images, data.train_labels, crop=cfg.crop_size, mode="random",
                                          mean=mean, std=std), batch_size=cfg.batch_size, shuffle=True,
                              generator=gen, drop_last=len(data.train_labels) > cfg.batch_size)
    center = DataLoader(CropDataset(data.test_images, data.test_labels, crop=cfg.crop_size, mode="center",
                                    mean=mean, std=std), batch_size=256)
    full = DataLoader(CropDataset(data.test_images, data.test_labels, crop=cfg.crop_size, mode="full",
                                  mean=mean, std=std), batch_size=256)
    model = build_net(cfg.net, num_classes=len(data.classes), filter_size=filter_size, width=cfg.width).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay, nesterov=True)
    name = _model_name(cfg.net, filter_size)
    start = time.perf_counter()
    stats: dict[str, Any] = {}
    for epoch in range(cfg.epochs):
        for group in optimizer.param_groups:  # cosine decay over the epochs
            group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * epoch / cfg.epochs))
        stats = train_one_epoch(model, criterion, optimizer, train_loader, device, epoch, max_iters=cfg.steps,
                                print_freq=10**9, progress=False)
        if bar is not None:
            bar.set_postfix_str(f"{name} epoch {epoch + 1}/{cfg.epochs} loss {stats['loss']:.3f}")
            bar.update(1)
    train_time = time.perf_counter() - start
    acc = evaluate_accuracy(model, center, device, progress=False)
    cons = shift_consistency(model, full, device, crop_size=cfg.crop_size, max_shift=cfg.max_shift,
                             epochs=cfg.epochs_shift, seed=cfg.seed, progress=False)
    if bar is not None:
        bar.set_postfix_str(f"{name} acc {acc['acc1']:.1f} cons {cons['consistency']:.1f}")
        bar.update(1)
    return {
        "schema": "antialiased.result/1", "model": name, "arch": cfg.net, "filter_size": filter_size,
        "metrics": {
            "acc1": float(acc["acc1"]), "consistency": float(cons["consistency"]),
            "consistency_ci95": [float(v) for v in cons["ci95"]], "pairs": int(cons["pairs"]),
            "train_loss": float(stats.get("loss", float("nan"))), "train_acc1": float(stats.get("acc1", float("nan"))),
            "train_time_s": round(train_time, 2),
            "params": sum(p.numel() for p in model.parameters()),
        },
    }


def run_demo(cfg: DemoConfig) -> DemoResult:
    """Train and evaluate the baseline and each filter size; write the results JSON, table and plot."""
    from tqdm.auto import tqdm

    from antialiased.evaluation.results import make_result, write_result
    from antialiased.reporting import markdown_table, plot_network, summarize

    cfg.validate()
    device = _device(cfg.device)
    data = _load_data(cfg)
    variants: list[int | None] = [None, *dict.fromkeys(cfg.filter_sizes)]
    records = []
    with tqdm(total=len(variants) * (cfg.epochs + 1), desc="demo", unit="step", disable=not cfg.progress,
              dynamic_ncols=True) as bar:
        for filter_size in variants:
            records.append(train_variant(cfg, data, filter_size, device, bar))
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("out_dir", "progress", "plot", "device", "seed")}
    settings.update(filter_sizes=list(cfg.filter_sizes), image_size=data.image_size, classes=data.classes)
    top = make_result(model=cfg.net, arch=cfg.net, filter_size=None, weights="demo", protocol="demo",
                      metrics={}, dataset=data.source, seed=cfg.seed, device=str(device),
                      counts={"images": len(data.train_labels) + len(data.test_labels),
                              "train": len(data.train_labels), "test": len(data.test_labels),
                              "skipped": data.skipped},
                      skipped_files=[], settings=settings)
    top["results"] = records
    out = Path(cfg.out_dir)
    path = write_result(top, out)
    rows = summarize(records)[cfg.net]
    table = markdown_table(rows)
    (out / f"demo_{cfg.net}_seed{cfg.seed}.md").write_text(table + "\n")
    plot = None
    if cfg.plot:
        plot = plot_network(rows, out / f"demo_{cfg.net}_seed{cfg.seed}.png",
                            title=f"{cfg.net} on {'generated shapes' if cfg.data is None else Path(cfg.data).name} "
                                  f"(seed {cfg.seed})")
    return DemoResult(path, table, plot, records)
