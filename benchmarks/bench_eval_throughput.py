#!/usr/bin/env python
"""End-to-end evaluation throughput (decode -> preprocess -> model), ours vs a plain torchvision pipeline.

For ``-e`` (accuracy) and ``-es`` (shift consistency, the paper's protocol) on real full-size JPEGs
(../shared/data/imagenet-sample), the same model and the same offsets on both sides:

- plain: torchvision ImageFolder + Resize/CenterCrop/ToTensor/Normalize in DataLoader workers, every
  pass decodes again, the two crops in two forward passes under ``torch.no_grad`` (the paper's script);
- ours: antialiased.evaluation (uint8 crops from the workers, normalized in batches, decoded once and
  cached across passes, both crops in one channels_last forward pass under ``torch.inference_mode``);
- ours+draft (``--with-draft``): also JPEG draft-mode decoding, an opt-in approximation; its effect
  on predictions and consistency is reported.

Runs are interleaved (plain, ours, ... per repeat); medians and ratios are printed, plus whether the
predictions agree pair for pair. Example:

    python benchmarks/bench_eval_throughput.py --model resnet18_lpf4 --images 48 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from common import imagenet_sample_folder  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torchvision import datasets  # noqa: E402
from torchvision import transforms as T  # noqa: E402

import antialiased  # noqa: E402
from antialiased.data import IMAGENET_MEAN, IMAGENET_STD, ImageFolderDataset, uint8_transform  # noqa: E402
from antialiased.evaluation import evaluate_accuracy, shift_consistency  # noqa: E402
from antialiased.evaluation.runner import CenterCropView  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "imagenet-sample"),
                   help="flat folder of <wnid>_<name>.JPEG files (default: ../shared/data/imagenet-sample)")
    p.add_argument("--images", type=int, default=48, help="first N images, in name order (default: 48)")
    p.add_argument("--model", default="resnet18_lpf4",
                   help="any antialiased.create_model name (random weights), or 'tiny': a small CNN standing in "
                        "for a fast accelerator, where the input pipeline dominates (default: resnet18_lpf4)")
    p.add_argument("-b", "--batch-size", type=int, default=8, help="batch size, the seed's -es uses 8 (default: 8)")
    p.add_argument("-j", "--workers", type=int, default=2, help="DataLoader workers on both sides (default: 2)")
    p.add_argument("--epochs-shift", type=int, default=5, help="-es passes (default: 5, the paper's)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats; medians are reported (default: 3)")
    p.add_argument("--protocols", nargs="+", default=["e", "es"], choices=["e", "es"])
    p.add_argument("--with-draft", action="store_true", help="also time ours with JPEG draft-mode decoding")
    p.add_argument("--head-std", type=float, default=1.0,
                   help="re-draw the last Linear layer's weights from N(0, std) so that random-weight predictions "
                        "vary between images and crops (a meaningful 'same predictions' check); 0 keeps the init")
    p.add_argument("--seed", type=int, default=0, help="offset seed, the same on every side (default: 0)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    return p


class Tiny(torch.nn.Module):
    """A cheap stand-in for a model on a fast accelerator: the pipeline, not the model, sets the pace."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 7, stride=4), torch.nn.ReLU(),
                                            torch.nn.Conv2d(16, 32, 3, stride=2), torch.nn.ReLU(),
                                            torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
        self.fc = torch.nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def build(name: str) -> torch.nn.Module:
    return Tiny() if name == "tiny" else antialiased.create_model(name)


def _plain_loader(root: Path, size: int, a) -> DataLoader:
    tf = T.Compose([T.Resize(256), T.CenterCrop(size), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return DataLoader(datasets.ImageFolder(str(root), tf), batch_size=a.batch_size, num_workers=a.workers)


def _our_loader(root: Path, a, draft: bool) -> DataLoader:
    ds = ImageFolderDataset(root, transform=uint8_transform(256), return_index=True, draft=256 if draft else None)
    return DataLoader(ds, batch_size=a.batch_size, num_workers=a.workers)


def plain_e(model, root, a) -> torch.Tensor:
    preds = []
    with torch.no_grad():
        for x, _ in _plain_loader(root, 224, a):
            preds.append(model(x).argmax(1))
    return torch.cat(preds)


def plain_es(model, root, a) -> torch.Tensor:
    gen, labels = torch.Generator().manual_seed(a.seed), []
    with torch.no_grad():
        for _ in range(a.epochs_shift):
            for x, _ in _plain_loader(root, 256, a):
                (h0, w0), (h1, w1) = torch.randint(32, (2, 2), generator=gen).tolist()
                y0 = model(x[:, :, h0:h0 + 224, w0:w0 + 224]).argmax(1)
                y1 = model(x[:, :, h1:h1 + 224, w1:w1 + 224]).argmax(1)
                labels.append(torch.stack([y0, y1], 1))
    return torch.cat(labels)


def ours_e(model_cl, root, a, draft=False) -> torch.Tensor:
    loader = CenterCropView(_our_loader(root, a, draft), 224, 32)
    return evaluate_accuracy(model_cl, loader, "cpu", channels_last=True, progress=False,
                             return_predictions=True)["predictions"]


def ours_es(model_cl, root, a, draft=False) -> torch.Tensor:
    return shift_consistency(model_cl, _our_loader(root, a, draft), "cpu", epochs=a.epochs_shift, seed=a.seed,
                             channels_last=True, progress=False, return_labels=True)["labels"]


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "loadavg_start": os.getloadavg()}


def main(argv=None) -> int:
    a = get_args_parser().parse_args(argv)
    torch.set_num_threads(a.threads)
    root = imagenet_sample_folder(Path(a.data), a.images, "val")
    torch.manual_seed(0)
    model = build(a.model).eval()
    if a.head_std > 0:
        head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
        torch.nn.init.normal_(head.weight, std=a.head_std)
    model_cl = build(a.model).eval()
    model_cl.load_state_dict(model.state_dict())
    model_cl = model_cl.to(memory_format=torch.channels_last)
    variants = {"e": {"plain": lambda: plain_e(model, root, a), "ours": lambda: ours_e(model_cl, root, a)},
                "es": {"plain": lambda: plain_es(model, root, a), "ours": lambda: ours_es(model_cl, root, a)}}
    if a.with_draft:
        variants["e"]["ours+draft"] = lambda: ours_e(model_cl, root, a, draft=True)
        variants["es"]["ours+draft"] = lambda: ours_es(model_cl, root, a, draft=True)
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, {a.threads} threads, "
          f"load average at start {info['loadavg_start'][0]:.2f}")
    print(f"model {a.model} (random weights), {a.images} images, -b {a.batch_size}, -j {a.workers}, "
          f"--epochs-shift {a.epochs_shift}, {a.repeats} interleaved repeats")
    results = {"machine": info, "args": vars(a), "protocols": {}}
    for proto in a.protocols:
        times = {name: [] for name in variants[proto]}
        outputs = {}
        units = a.images * (a.epochs_shift if proto == "es" else 1)
        for _ in range(a.repeats):
            for name, fn in variants[proto].items():
                t0 = time.perf_counter()
                outputs[name] = fn()
                times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows = {}
        for name in variants[proto]:
            same = outputs[name].shape == outputs["plain"].shape and bool((outputs[name] == outputs["plain"]).all())
            agree = float((outputs[name] == outputs["plain"]).float().mean()) * 100
            row = {"median_s": med[name], "images_per_s": units / med[name], "speedup": med["plain"] / med[name],
                   "identical_predictions": same, "predictions_equal_pct": agree, "runs_s": times[name]}
            row["distinct_predictions"] = int(outputs[name].unique().numel())
            if proto == "es":
                row["consistency"] = float((outputs[name][:, 0] == outputs[name][:, 1]).float().mean()) * 100
            rows[name] = row
        results["protocols"][proto] = rows
        print(f"\n-{proto}: images/s counts each image once per pass ({units} per run)")
        print(f"{'pipeline':<12} {'median s':>9} {'images/s':>9} {'speedup':>8} {'same preds':>11} {'classes':>8}"
              + ("  consistency" if proto == "es" else ""))
        for name, r in rows.items():
            print(f"{name:<12} {r['median_s']:>9.2f} {r['images_per_s']:>9.2f} {r['speedup']:>7.2f}x "
                  f"{r['predictions_equal_pct']:>10.2f}% {r['distinct_predictions']:>8}" + (f"  {r['consistency']:.2f}" if proto == "es" else ""))
    results["machine"]["loadavg_end"] = os.getloadavg()
    print(f"\nload average at end {results['machine']['loadavg_end'][0]:.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
