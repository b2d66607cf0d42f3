"""The segmentation demo: a small U-Net as a baseline and anti-aliased, on generated shapes; mIoU and shift consistency.

Every variant is the baseline U-Net converted by :func:`antialiased.models.antialias.antialias`
(:mod:`antialiased.demo.seg_variants`): BlurPool on the subsamplings only, BlurPool on the
subsamplings and a stride-1 blur after every upsampling, APS with polyphase upsampling and circular
padding. All start from the same initial weights and see the same crops in the same order.
Training is the classification demo's loop (:func:`antialiased.training.train_one_epoch`, SGD with
Nesterov momentum, cosine-decayed) with the segmentation loss (per-pixel cross-entropy, outlines
labelled 255 left out). The measurements are the package's own segmentation protocols, the ones
``antialiased eval --task segmentation`` runs (:data:`antialiased.evaluation.PROTOCOLS`): ``-e``
mIoU of the whole test images, ``-es`` segmentation consistency (two random crops, agreement over
their overlap) and ``-ec`` circular segmentation consistency (two circular shifts, agreement after
rolling back), each with a bootstrap interval over images.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from antialiased.demo.run import DemoResult, _device, _train
from antialiased.demo.seg_data import SegCropDataset, SegDemoData, prepare_seg_data
from antialiased.demo.seg_nets import SEG_NETS, SegUNet
from antialiased.demo.seg_variants import SegVariant, build_seg_variant, default_seg_variants, parse_seg_variant
from antialiased.errors import ConfigError

__all__ = ["SEG_COLUMNS", "SEG_PROTOCOLS", "SegDemoConfig", "measure_segmentation", "train_seg_variant",
           "run_seg_demo", "seg_data_for", "write_seg_outputs"]

# metric key of the result records -> column title (the first: the plot's x axis)
SEG_COLUMNS = {"miou": "mIoU", "consistency": "Segmentation consistency",
               "circular_consistency": "Circular segmentation consistency"}
# the protocols measured (-e, -es, -ec of antialiased eval), by their registered names
SEG_PROTOCOLS = ("segmentation_accuracy", "segmentation_consistency", "segmentation_circular_consistency")


@dataclass
class SegDemoConfig:
    """Settings of a segmentation demo run (the CLI's flags with ``--task segmentation``)."""

    out_dir: str = "demo_out"
    seed: int = 0  # initial weights, crops and batch order, shift offsets
    data_seed: int = 0  # the generated images (the same data for every seed)
    # shapes per image (min, max): more than the generator's default 2-4, so that a quarter of the labelled
    # pixels are objects rather than a tenth; measured: a small U-Net then tells the classes apart within a
    # few thousand training crops (with 2-4 it labels every object the commonest class for that long)
    shapes: tuple[int, int] = (6, 10)
    epochs: int = 12
    steps: int | None = None  # cap on training iterations per epoch
    filter_sizes: Sequence[int] = (3,)  # blurpool at these sizes, down only and down + up
    methods: Sequence[str] = ()  # further variants, "METHOD[:N][/down]"
    net: str = "unet"
    width: int = 8
    crop_size: int = 64  # the training crops and -es's crops; images are crop_size + max_shift
    max_shift: int = 8  # -es's largest crop offset and -ec's shifts in {0..max_shift-1}^2
    train_size: int = 400
    test_size: int = 60
    batch_size: int = 8
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    epochs_shift: int = 1
    device: str = "cpu"
    progress: bool = True
    plot: bool = True

    @property
    def image_size(self) -> int:
        return self.crop_size + self.max_shift

    def variants(self) -> list[SegVariant]:
        """The baseline, blurpool down only and down + up at each filter size, APS circular, then ``methods``."""
        chosen = [*default_seg_variants(tuple(self.filter_sizes)), *map(parse_seg_variant, self.methods)]
        return list(dict.fromkeys(chosen))

    def validate(self) -> None:
        stride = SegUNet.total_stride
        checks = [
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.steps is None or self.steps >= 1, f"--steps must be >= 1, got {self.steps}"),
            (all(1 <= n <= 7 for n in self.filter_sizes),
             f"--filter-sizes must lie in 1..7, got {list(self.filter_sizes)}"),
            (self.net in SEG_NETS, f"--net must be one of {sorted(SEG_NETS)} for segmentation, got {self.net!r}"),
            (self.crop_size >= stride and self.crop_size % stride == 0 and self.max_shift % stride == 0
             and self.max_shift >= stride,
             f"--crop-size and --max-shift must be positive multiples of the U-Net's total stride {stride} (its "
             f"skip connections need sides divisible by {stride}), got {self.crop_size} and {self.max_shift}"),
            (self.train_size > 0 and self.test_size > 0, "--train-size/--test-size must be > 0"),
            (self.batch_size >= 1 and self.width >= 1 and self.epochs_shift >= 1,
             "--batch-size, --width and --epochs-shift must be >= 1"),
            (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (1 <= self.shapes[0] <= self.shapes[1], f"shapes per image must be 1 <= min <= max, got {self.shapes}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        self.variants()  # unknown methods and sizes: a clear error before any data is written

    def describe_protocols(self) -> str:
        """What the three measurements are, at this run's sizes."""
        s, c, m, p = self.image_size, self.crop_size, self.max_shift, self.epochs_shift
        return (f"mIoU (-e): the whole {s}px test images; segmentation consistency (-es): two random {c}px crops of "
                f"the {s}px image at offsets in {{0..{m}}}^2, agreement of the predicted labels over their overlap; "
                f"circular segmentation consistency (-ec): two circular shifts in {{0..{m - 1}}}^2 of the {s}px "
                f"image, predictions rolled back, agreement over all pixels ({s} is a multiple of the U-Net's total "
                f"stride {SegUNet.total_stride}, so APS with circular padding is exactly equivariant); offsets drawn "
                f"per image, {p} pass(es) over the test images")


def seg_data_for(cfg: SegDemoConfig, folder: str | Path | None = None) -> SegDemoData:
    """The generated dataset of ``cfg`` written into ``folder`` (default: ``<out_dir>/seg_shapes``) and read back."""
    where = Path(folder) if folder is not None else Path(cfg.out_dir) / "seg_shapes"
    return prepare_seg_data(where, train_size=cfg.train_size, test_size=cfg.test_size, image_size=cfg.image_size,
                            seed=cfg.data_seed, shapes=tuple(cfg.shapes))


def _eval_config(cfg: SegDemoConfig, data: SegDemoData, name: str) -> Any:
    from antialiased.evaluation import DataSettings, EvalConfig, ModelSource, RunSettings, ShiftOptions
    from antialiased.evaluation.segmentation_settings import SegmentationOptions

    mean, std = data.channel_stats()
    settings = DataSettings(data.folder, batch_size=1, workers=0, crop_size=cfg.crop_size, max_shift=cfg.max_shift,
                            class_list=data.class_list, val_split="val", mean=tuple(mean), std=tuple(std))
    segmentation = SegmentationOptions(size=data.image_size, crop_size=cfg.crop_size, multiple=SegUNet.total_stride)
    config = EvalConfig(model=ModelSource(name), data=settings, protocols=SEG_PROTOCOLS, task="segmentation",
                        run=RunSettings(seed=cfg.seed, progress=False, channels_last=False), out_dir=None,
                        shift=ShiftOptions(epochs=cfg.epochs_shift), cache_mb=256, segmentation=segmentation)
    for part in (config.data, config.shift, config.segmentation):  # the model is an object: no name to check
        part.validate()
    return config


def measure_segmentation(model: nn.Module, cfg: SegDemoConfig, data: SegDemoData, device: torch.device,
                         name: str = "model") -> dict[str, Any]:
    """``-e``, ``-es`` and ``-ec`` of ``model`` on the test split, by the registered protocols in one loop
    (what :func:`antialiased.evaluation.evaluate` runs, on this model object and ``device``); returns the
    protocols' result-file metrics merged, and their printed ``lines``."""
    from antialiased.evaluation import PROTOCOLS, LoopOptions, ProtocolContext, run_protocols
    from antialiased.evaluation.tasks import get_task

    config, task = _eval_config(cfg, data, name), get_task("segmentation")
    ctx = ProtocolContext(config, device, None, name, write_files=False, task=task.name)
    scorers = [PROTOCOLS[protocol].build(ctx) for protocol in SEG_PROTOCOLS]
    opened = task.open_data(config, scorers)
    task.fit_model(model, opened, config, device)
    ctx.classes = opened.classes
    options = LoopOptions(progress=False, channels_last=False, cache_bytes=config.cache_mb << 20,
                          mean=config.data.mean, std=config.data.std)
    loop = run_protocols(model, DataLoader(opened.dataset, batch_size=1), device, scorers, options, task)
    ctx.units, ctx.cached = loop.units, loop.cached
    metrics: dict[str, Any] = {"lines": []}
    for protocol in SEG_PROTOCOLS:
        shown = PROTOCOLS[protocol].report(loop.results[protocol], ctx)
        metrics.update(shown.metrics)
        metrics["lines"] += shown.lines
    metrics["skipped"] = loop.skipped
    return metrics


def _loader(cfg: SegDemoConfig, data: SegDemoData) -> DataLoader:
    mean, std = data.channel_stats()
    crops = SegCropDataset(data.train_images, data.train_masks, crop=cfg.crop_size, mean=mean, std=std)
    return DataLoader(crops, batch_size=cfg.batch_size, shuffle=True, generator=torch.Generator().manual_seed(cfg.seed),
                      drop_last=len(crops) > cfg.batch_size)


def train_seg_variant(cfg: SegDemoConfig, data: SegDemoData, variant: SegVariant, device: torch.device,
                      bar: Any = None) -> dict[str, Any]:
    """Build ``variant``, train it from scratch and measure it; returns its result record (schema entry)."""
    from antialiased.training.batch_rules import SEGMENTATION_BATCHES
    from antialiased.training.segmentation import SegmentationLoss

    torch.manual_seed(cfg.seed)  # every variant: the same initial weights
    size = (3, cfg.crop_size, cfg.crop_size)
    model, built = build_seg_variant(cfg.net, variant, num_classes=len(data.classes), width=cfg.width, input_size=size)
    model = model.to(device)
    torch.manual_seed(cfg.seed)  # ... and the same crops and flips, whatever the conversion drew
    name = variant.model_name(cfg.net)
    start = time.perf_counter()
    stats = _train(model, cfg, _loader(cfg, data), device, bar, name, criterion=SegmentationLoss(),
                   rules=SEGMENTATION_BATCHES)
    train_time = time.perf_counter() - start
    metrics = measure_segmentation(model, cfg, data, device, name)
    if bar is not None:
        bar.set_postfix_str(f"{name} mIoU {metrics['miou']:.1f} cons {metrics['consistency']:.1f} "
                            f"circ {metrics['circular_consistency']:.1f}")
        bar.update(1)
    lines = metrics.pop("lines")
    metrics.update(train_loss=float(stats.get("loss", float("nan"))),
                   train_pixel_acc=float(stats.get("acc1", float("nan"))), train_time_s=round(train_time, 2),
                   params=sum(p.numel() for p in model.parameters()))
    return {"schema": "antialiased.result/1", "model": name, "arch": cfg.net, "task": "segmentation",
            "filter_size": None if variant.method is None else variant.filter_size, "method": variant.method,
            "upsample": variant.upsample, "label": variant.label, "seed": cfg.seed, "built": built,
            "metrics": metrics, "lines": lines}


def write_seg_outputs(cfg: SegDemoConfig, data: SegDemoData, device: torch.device, records: list[dict[str, Any]],
                      *, stem: str) -> DemoResult:
    """The results JSON (every record), ``<stem>.md`` (the table: mean ± std over the records of a variant)
    and ``<stem>.png`` (the plot) in ``cfg.out_dir``."""
    from antialiased.demo.report import methods_table, plot_methods, summarize_variants
    from antialiased.evaluation.results import make_result, write_result

    settings = {k: v for k, v in asdict(cfg).items() if k not in ("out_dir", "progress", "plot", "device", "seed")}
    settings.update(filter_sizes=list(cfg.filter_sizes), methods=list(cfg.methods), image_size=data.image_size,
                    variants=[v.spec for v in cfg.variants()], classes=data.classes, protocols=list(SEG_PROTOCOLS),
                    total_stride=SegUNet.total_stride, shift_offsets="drawn per image and pass")
    seeds = sorted({int(r["seed"]) for r in records})
    top = make_result(model=cfg.net, arch=cfg.net, filter_size=None, weights="demo", protocol="demo",
                      metrics={}, dataset=str(data.folder.resolve()), seed=seeds[0] if len(seeds) == 1 else None,
                      device=str(device), counts={"images": len(data.train_images) + data.test_count,
                                                  "train": len(data.train_images), "test": data.test_count},
                      skipped_files=[], settings=settings, task="segmentation")
    top["results"], top["seeds"] = records, seeds
    out = Path(cfg.out_dir)
    path = write_result(top, out)
    rows = summarize_variants(records, SEG_COLUMNS)
    table = methods_table(rows, columns=SEG_COLUMNS)
    (out / f"{stem}.md").write_text(table + "\n")
    plot = None
    if cfg.plot:
        plot = plot_methods(rows, out / f"{stem}.png", title=f"{cfg.net} on generated shapes (seeds {seeds})",
                            columns=SEG_COLUMNS)
    return DemoResult(path, table, plot, records, SegUNet.total_stride)


def run_seg_demo(cfg: SegDemoConfig, data: SegDemoData | None = None) -> DemoResult:
    """Train and measure every variant of ``cfg`` (on ``data``, default: written into ``<out_dir>/seg_shapes``);
    write the results JSON, the table and the plot."""
    from tqdm.auto import tqdm

    cfg.validate()
    device = _device(cfg.device)
    variants = cfg.variants()
    size = (3, cfg.crop_size, cfg.crop_size)
    for variant in variants:  # a variant that cannot be built fails now, before any data is written
        build_seg_variant(cfg.net, variant, num_classes=2, width=2, input_size=size)
    data = data if data is not None else seg_data_for(cfg)
    records = []
    with tqdm(total=len(variants) * (cfg.epochs + 1), desc="demo", unit="step", disable=not cfg.progress,
              dynamic_ncols=True) as bar:
        for variant in variants:
            records.append(train_seg_variant(cfg, data, variant, device, bar))
    return write_seg_outputs(cfg, data, device, records, stem=f"demo_seg_{cfg.net}_seed{cfg.seed}")
