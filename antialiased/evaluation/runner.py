"""``python main.py ... -e/-es/-ed`` and ``antialiased eval``: a thin layer over the evaluation library."""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from antialiased.data import (CorruptImageError, DatasetLayoutError, ImageFolderDataset, find_split,
                              uint8_transform)
from antialiased.evaluation.accuracy import evaluate_accuracy
from antialiased.evaluation.diagonal import diagonal_stability, plot_diagonal, save_diagonal_arrays
from antialiased.evaluation.ensemble import ensemble_accuracy
from antialiased.evaluation.model_setup import (amp_dtype_from_flag, build_model, init_distributed,
                                                select_device, wrap_for_devices)
from antialiased.evaluation.results import make_result, write_result
from antialiased.evaluation.saving import ImageSaver
from antialiased.evaluation.shift import shift_consistency
from antialiased.evaluation._common import is_main_process

__all__ = ["run", "Context", "CenterCropView"]

log = logging.getLogger("antialiased.eval")


@dataclass
class Context:
    """What every protocol needs: the model, data, device and flags."""

    args: argparse.Namespace
    model: nn.Module
    dataset: ImageFolderDataset
    loader: DataLoader
    device: torch.device
    common: dict[str, Any]
    out_dir: Path

    def saver(self, protocol: str) -> Callable | None:
        return ImageSaver(self.out_dir / "images" / protocol) if self.args.evaluate_save else None


def _accuracy(ctx: Context) -> tuple[str, dict, dict]:
    a = ctx.args
    if a.ens:
        out = ensemble_accuracy(ctx.model, ctx.loader, ctx.device, crops=a.ens, softmax=a.ens_sm,
                                center_first=a.ens_cf, crop_size=a.crop_size, max_shift=a.max_shift, seed=a.seed,
                                save=ctx.saver("ensemble"), **ctx.common)
        settings = {"crops": a.ens, "softmax": a.ens_sm, "center_first": a.ens_cf, "offset_seed": out["seed"]}
        protocol = "ensemble"
    else:
        out = evaluate_accuracy(ctx.model, _center_crops(ctx.loader, a), ctx.device, save=ctx.saver("accuracy"),
                                **ctx.common)
        settings, protocol = {}, "accuracy"
    print(f" * Acc@1 {out['acc1']:.3f} Acc@5 {out['acc5']:.3f}")
    return protocol, {"acc1": out["acc1"], "acc5": out["acc5"]}, {**out, "settings": settings}


class CenterCropView:
    """A view of the (crop + max_shift)-pixel loader that yields the central crop: the ``-e`` input."""

    def __init__(self, loader: DataLoader, crop: int, max_shift: int) -> None:
        self.loader, self.dataset, self.offset, self.crop = loader, loader.dataset, max_shift // 2, crop

    def __iter__(self):
        o, c = self.offset, self.crop
        for images, *rest in self.loader:
            yield (images[..., o:o + c, o:o + c], *rest)

    def __len__(self) -> int:
        return len(self.loader)


def _center_crops(loader: DataLoader, a: argparse.Namespace):
    # Resize(256) -> CenterCrop(256) -> central 224 equals Resize(256) -> CenterCrop(224) pixel for pixel
    # when max_shift is even (both centerings round the same way).
    if a.max_shift % 2:
        raise ValueError(f"--max-shift must be even for -e (the center crop), got {a.max_shift}")
    return CenterCropView(loader, a.crop_size, a.max_shift)


def _forward_batch(a: argparse.Namespace, device: torch.device) -> int:
    if a.forward_batch is not None:
        return a.forward_batch
    return 256 if device.type == "cuda" else 0  # a GPU idles on the paper's 16 crops (-b 8) per pass


def _consistency(ctx: Context) -> tuple[str, dict, dict]:
    a = ctx.args
    out = shift_consistency(ctx.model, ctx.loader, ctx.device, crop_size=a.crop_size, max_shift=a.max_shift,
                            epochs=a.epochs_shift, seed=a.seed, independent=a.independent_offsets,
                            cache_bytes=a.cache_mb << 20, save=ctx.saver("shift"),
                            min_forward=_forward_batch(a, ctx.device), **ctx.common)
    low, high = out["ci95"]
    print(f"Consistency {out['consistency']:.3f}  (95% CI {low:.3f}-{high:.3f}, {out['pairs']} pairs, "
          f"offset seed {out['seed']})")
    metrics = {"consistency": out["consistency"], "consistency_ci95": [low, high], "pairs": out["pairs"]}
    settings = {"epochs_shift": a.epochs_shift, "independent": a.independent_offsets, "offset_seed": out["seed"],
                "decode_cache": out["cached"], "forward_batch": _forward_batch(a, ctx.device)}
    return "shift_consistency", metrics, {**out, "settings": settings}


def _diagonal(ctx: Context) -> tuple[str, dict, dict]:
    a = ctx.args
    out = diagonal_stability(ctx.model, ctx.loader, ctx.device, crop_size=a.crop_size, max_shift=a.max_shift,
                             save=ctx.saver("diagonal"), **ctx.common)
    print(f"Diagonal: mean true-class probability {out['mean_true_prob']:.3f}, Acc@1 {out['acc1']:.3f}, "
          f"Acc@5 {out['acc5']:.3f}, same label at all {a.max_shift + 1} shifts {out['stable']:.3f}% "
          f"({out['count']} images)")
    files = {}
    if is_main_process():
        prefix = f"diagonal_{a.arch}"
        paths = save_diagonal_arrays(out["arrays"], ctx.out_dir, prefix)
        plot = plot_diagonal(out["arrays"], ctx.out_dir / f"{prefix}.png", title=f"{a.arch}: diagonal stability")
        files = {"arrays": [str(p) for p in paths], "plot": str(plot)}
        print(f"Per-image arrays and plot written to {ctx.out_dir} ({plot.name})")
    metrics = {k: out[k] for k in ("mean_true_prob", "acc1", "acc5", "stable", "flips_per_image")}
    return "diagonal", metrics, {**out, "settings": {"shifts": a.max_shift + 1, "files": files}}


# flag attribute -> protocol runner, in the order they run
PROTOCOLS: list[tuple[str, Callable[[Context], tuple[str, dict, dict]]]] = [
    ("evaluate", _accuracy),
    ("evaluate_shift", _consistency),
    ("evaluate_diagonal", _diagonal),
]


def _read_class_list(path: str | None) -> list[str] | None:
    if path is None:
        return None
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--class-list {path!r} not found (a text file, one class folder name per line)")
    names = [line.strip() for line in file.read_text().splitlines() if line.strip()]
    if len(set(names)) != len(names):
        raise ValueError(f"--class-list {path!r} repeats class names")
    return names


def _make_loader(dataset, args: argparse.Namespace, device: torch.device, distributed: bool) -> DataLoader:
    if distributed:  # each rank takes every world_size-th image; no padding, so no image counts twice
        dist = torch.distributed
        dataset = Subset(dataset, range(dist.get_rank(), len(dataset), dist.get_world_size()))
    return DataLoader(dataset, batch_size=args.batch_size, shuffle=False, num_workers=args.workers,
                      pin_memory=device.type == "cuda", persistent_workers=False)


def _check_classes(model: nn.Module, n_classes: int, crop: int, device: torch.device, where: str) -> None:
    with torch.inference_mode():
        outputs = model(torch.zeros(1, 3, crop, crop, device=device))
    outputs = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
    if outputs.shape[1] != n_classes:
        raise ValueError(f"the dataset {where!r} has {n_classes} classes but the model outputs {outputs.shape[1]} "
                         f"logits. ImageNet models need all 1000 <wnid> folders of the validation set; for a "
                         f"subset, pass --class-list FILE with the model's classes in output order.")


def _validate(args: argparse.Namespace) -> None:
    checks = [(args.batch_size < 1, f"-b/--batch-size must be >= 1, got {args.batch_size}"),
              (args.workers < 0, f"-j/--workers must be >= 0, got {args.workers}"),
              (args.epochs_shift < 1, f"--epochs-shift must be >= 1, got {args.epochs_shift}"),
              (args.ens < 0, f"-ens must be >= 0, got {args.ens}"),
              (args.ens > 0 and not args.evaluate, "-ens E averages crops for the accuracy; add -e"),
              ((args.ens_sm or args.ens_cf) and not args.ens, "-ens_sm and -ens_cf need -ens E"),
              (args.crop_size < 1 or args.max_shift < 1, "--crop-size and --max-shift must be positive"),
              (args.cache_mb < 0, "--cache-mb must be >= 0"),
              (args.forward_batch is not None and args.forward_batch < 0, "--forward-batch must be >= 0")]
    for failed, message in checks:
        if failed:
            raise ValueError(message)


def _skipped_files(dataset: ImageFolderDataset, indices: list[int]) -> list[str]:
    found = set(dataset.skipped) | {dataset.samples[i][0] for i in indices}
    return sorted(found)


def _evaluate(args: argparse.Namespace) -> int:
    _validate(args)
    if args.save_weights:  # the paper's script exports weights and evaluates in one call
        from antialiased.training.checkpoint import export_weights_from_args

        export_weights_from_args(args)
    distributed = init_distributed(args)
    device = select_device(args.gpu, distributed)
    if args.seed is not None:
        torch.manual_seed(args.seed)
    val_dir = find_split(args.data, "val")
    classes = _read_class_list(args.class_list)
    size = args.crop_size + args.max_shift
    dataset = ImageFolderDataset(val_dir, transform=uint8_transform(size), strict=args.strict, classes=classes,
                                 return_index=True, draft=size if args.fast_decode else None,
                                 placeholder_size=(size, size))
    model, weights_label = build_model(args, len(dataset.classes))
    channels_last = not args.no_channels_last
    model = wrap_for_devices(model, device, gpu=args.gpu, distributed=distributed, channels_last=channels_last,
                             compile_model=args.compile)
    _check_classes(model, len(dataset.classes), args.crop_size, device, str(val_dir))
    loader = _make_loader(dataset, args, device, distributed)
    out_dir = Path(args.out_dir or "results")
    common = {"amp_dtype": amp_dtype_from_flag(args.amp, device), "channels_last": channels_last,
              "progress": not args.no_progress, "print_freq": args.print_freq}
    ctx = Context(args, model, dataset, loader, device, common, out_dir)
    import antialiased

    arch, filter_size = antialiased.parse_model_name(args.arch)
    log.info("evaluating %s (%s) on %s: %d images, %d classes, device %s", args.arch, weights_label, val_dir,
             len(dataset), len(dataset.classes), device)
    for flag, protocol_fn in PROTOCOLS:
        if not getattr(args, flag):
            continue
        protocol, metrics, out = protocol_fn(ctx)
        skipped = _skipped_files(dataset, out["skipped_indices"])
        if skipped:
            print(f"Skipped {len(skipped)} unreadable or non-image file(s), e.g. {skipped[0]} "
                  f"(--strict makes this an error)")
        if not is_main_process():
            continue
        settings = {"batch_size": args.batch_size, "crop_size": args.crop_size, "max_shift": args.max_shift,
                    "resize": size, "workers": args.workers, "fast_decode": args.fast_decode,
                    "channels_last": channels_last, "amp": args.amp, "class_list": args.class_list,
                    **out["settings"]}
        result = make_result(model=args.arch, arch=arch, filter_size=filter_size, weights=weights_label,
                             protocol=protocol, dataset=str(Path(val_dir).resolve()), seed=args.seed,
                             device=str(device), metrics=metrics,
                             counts={"images": out["count"], "skipped": len(skipped)}, skipped_files=skipped,
                             settings=settings)
        print(f"Results written to {write_result(result, out_dir)}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the protocols the flags ask for (-e, -es, -ed; -ens with -e); returns the exit status."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return _evaluate(args)
    except (DatasetLayoutError, CorruptImageError, FileNotFoundError, ValueError) as err:
        message = str(err)
        if message.startswith("Caught "):  # re-raised from a DataLoader worker: keep the original message
            message = message.strip().splitlines()[-1].split(": ", 1)[-1]
        print(f"error: {message}", file=sys.stderr)
        return 2
