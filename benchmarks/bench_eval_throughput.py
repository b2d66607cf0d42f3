#!/usr/bin/env python
"""End-to-end evaluation throughput (decode -> preprocess -> model), ours vs a plain torchvision pipeline.

For ``-e`` (accuracy), ``-es`` (shift consistency, the paper's protocol) and ``e+es`` (both in one
command) on real full-size JPEGs (../shared/data/imagenet-sample), the same model and the same
offsets on every side:

- plain: torchvision ImageFolder + Resize/CenterCrop/ToTensor/Normalize in DataLoader workers, every
  pass (and every protocol) decodes again, the two crops in two forward passes under
  ``torch.no_grad`` (the paper's script);
- ours: ``antialiased.evaluation`` as ``main.py`` runs it: uint8 crops from the workers (straight to
  224 for ``-e`` alone, 256 otherwise), moved and normalized on the device, one loop for all
  protocols (one decode of each image), later ``-es`` passes from the decoded cache, both crops in
  one channels_last forward pass under ``torch.inference_mode``;
- prev (``--previous REV``): the evaluation code of git revision REV (default: before the one-loop
  rewrite), run the way its ``main.py`` ran it: 256 decode, a centre-crop view for ``-e``, one loop
  per protocol;
- ours+draft (``--with-draft``): ours with JPEG draft-mode decoding, an opt-in approximation.

Runs are interleaved (one of each per repeat, order rotated); medians and ratios are printed, plus
whether the predictions equal the plain pipeline's pair for pair. Example:

    python benchmarks/bench_eval_throughput.py --model tiny --images 48 --repeats 5
    python benchmarks/bench_eval_throughput.py --model resnet18_lpf4 --images 16 --repeats 5 --protocols e
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from common import imagenet_sample_folder  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torchvision import datasets  # noqa: E402
from torchvision import transforms as T  # noqa: E402

import antialiased  # noqa: E402
from antialiased.data import IMAGENET_MEAN, IMAGENET_STD, ImageFolderDataset, uint8_transform  # noqa: E402
from antialiased.evaluation import (AccuracyScorer, LoopOptions, ShiftConsistencyScorer, evaluate_accuracy,  # noqa: E402
                                    run_protocols, shift_consistency)

PREVIOUS = "e49de28"  # the last commit before evaluation became one loop (issue 9)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "imagenet-sample"),
                   help="flat folder of <wnid>_<name>.JPEG files (default: ../shared/data/imagenet-sample)")
    p.add_argument("--images", type=int, default=48, help="first N images, in name order (default: 48)")
    p.add_argument("--model", default="resnet18_lpf4",
                   help="any antialiased.create_model name (random weights), or 'tiny': a small CNN standing in "
                        "for a fast accelerator, where the input pipeline sets the pace (default: resnet18_lpf4)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("-b", "--batch-size", type=int, default=8, help="batch size, the seed's -es uses 8 (default: 8)")
    p.add_argument("-j", "--workers", type=int, default=2, help="DataLoader workers on every side (default: 2)")
    p.add_argument("--epochs-shift", type=int, default=5, help="-es passes (default: 5, the paper's)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved repeats; medians are reported (default: 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds of every variant first (default: 1)")
    p.add_argument("--contiguous", action="store_true",
                   help="also time ours with the model and inputs in the contiguous format (--no-channels-last)")
    p.add_argument("--protocols", nargs="+", default=["e", "es"], choices=["e", "es", "e+es"])
    p.add_argument("--previous", default=PREVIOUS, metavar="REV|DIR",
                   help=f"also time the evaluation code of git revision REV (default {PREVIOUS}), or of a folder "
                        "holding its antialiased/evaluation/{_common,accuracy,shift}.py (machines without the git "
                        "history); 'none' skips it")
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


def load_previous(rev: str) -> ModuleType | None:
    """accuracy.py, shift.py and _common.py of ``rev``'s antialiased/evaluation, as a package of their own."""
    if rev == "none":
        return None
    folder = Path(tempfile.mkdtemp(prefix="bench_prev_eval_")) / "prev_evaluation"
    folder.mkdir()
    for name in ("_common", "accuracy", "shift"):
        if Path(rev).is_dir():
            text = (Path(rev) / f"{name}.py").read_text()
        else:
            text = subprocess.run(["git", "show", f"{rev}:antialiased/evaluation/{name}.py"], cwd=ROOT, check=True,
                                  capture_output=True, text=True).stdout
        (folder / f"{name}.py").write_text(text.replace("antialiased.evaluation.", "prev_evaluation."))
    (folder / "__init__.py").write_text("")
    sys.path.insert(0, str(folder.parent))
    package = importlib.import_module("prev_evaluation")
    for name in ("accuracy", "shift"):
        setattr(package, name, importlib.import_module(f"prev_evaluation.{name}"))
    return package


def _loader(ds, a) -> DataLoader:
    return DataLoader(ds, batch_size=a.batch_size, num_workers=a.workers, pin_memory=a.device.startswith("cuda"))


def _plain_loader(root: Path, size: int, a) -> DataLoader:
    tf = T.Compose([T.Resize(256), T.CenterCrop(size), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return _loader(datasets.ImageFolder(str(root), tf), a)


def _our_loader(root: Path, a, size: int = 256, draft: bool = False) -> DataLoader:
    ds = ImageFolderDataset(root, transform=uint8_transform(256, size), return_index=True,
                            draft=256 if draft else None)
    return _loader(ds, a)


def plain_e(model, root, a) -> torch.Tensor:
    preds = []
    with torch.no_grad():
        for x, _ in _plain_loader(root, 224, a):
            preds.append(model(x.to(a.device, non_blocking=True)).argmax(1))
    return torch.cat(preds).cpu()


def plain_es(model, root, a) -> torch.Tensor:
    gen, labels = torch.Generator().manual_seed(a.seed), []
    with torch.no_grad():
        for _ in range(a.epochs_shift):
            for x, _ in _plain_loader(root, 256, a):
                x = x.to(a.device, non_blocking=True)
                (h0, w0), (h1, w1) = torch.randint(32, (2, 2), generator=gen).tolist()
                y0 = model(x[:, :, h0:h0 + 224, w0:w0 + 224]).argmax(1)
                y1 = model(x[:, :, h1:h1 + 224, w1:w1 + 224]).argmax(1)
                labels.append(torch.stack([y0, y1], 1))
    return torch.cat(labels).cpu()


def ours_e(model_cl, root, a, draft=False, channels_last=True) -> torch.Tensor:
    return evaluate_accuracy(model_cl, _our_loader(root, a, 224, draft), a.device, channels_last=channels_last,
                             progress=False, return_predictions=True)["predictions"]


def ours_es(model_cl, root, a, draft=False, channels_last=True) -> torch.Tensor:
    return shift_consistency(model_cl, _our_loader(root, a, 256, draft), a.device, epochs=a.epochs_shift,
                             seed=a.seed, channels_last=channels_last, progress=False, return_labels=True,
                             min_forward=256 if a.device.startswith("cuda") else 0)["labels"]


def ours_both(model_cl, root, a, draft=False) -> torch.Tensor:
    acc = AccuracyScorer(224, keep_predictions=True)
    shift = ShiftConsistencyScorer(224, 32, a.epochs_shift, seed=a.seed, keep_labels=True,
                                   min_forward=256 if a.device.startswith("cuda") else 0)
    out = run_protocols(model_cl, _our_loader(root, a, 256, draft), a.device, [acc, shift],
                        LoopOptions(channels_last=True, progress=False, cache_bytes=4 << 30)).results
    return torch.cat([out["accuracy"]["predictions"], out["shift_consistency"]["labels"].flatten()])


class _CenterCropView:
    """The previous runner's -e input: the central 224 crop of the 256 loader."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader, self.dataset = loader, loader.dataset

    def __iter__(self):
        for images, *rest in self.loader:
            yield (images[..., 16:240, 16:240], *rest)


def prev_e(prev, model_cl, root, a) -> torch.Tensor:
    return prev.accuracy.evaluate_accuracy(model_cl, _CenterCropView(_our_loader(root, a)), a.device,
                                           channels_last=True, progress=False, return_predictions=True)["predictions"]


def prev_es(prev, model_cl, root, a) -> torch.Tensor:
    return prev.shift.shift_consistency(model_cl, _our_loader(root, a), a.device, epochs=a.epochs_shift, seed=a.seed,
                                        channels_last=True, progress=False, return_labels=True,
                                        min_forward=256 if a.device.startswith("cuda") else 0)["labels"]


def variants(model, model_cl, root, a, prev) -> dict[str, dict]:
    table = {
        "e": {"plain": lambda: plain_e(model, root, a), "ours": lambda: ours_e(model_cl, root, a)},
        "es": {"plain": lambda: plain_es(model, root, a), "ours": lambda: ours_es(model_cl, root, a)},
        "e+es": {"plain": lambda: torch.cat([plain_e(model, root, a), plain_es(model, root, a).flatten()]),
                 "ours": lambda: ours_both(model_cl, root, a)},
    }
    if prev is not None:
        table["e"]["prev"] = lambda: prev_e(prev, model_cl, root, a)
        table["es"]["prev"] = lambda: prev_es(prev, model_cl, root, a)
        table["e+es"]["prev"] = lambda: torch.cat([prev_e(prev, model_cl, root, a),
                                                   prev_es(prev, model_cl, root, a).flatten()])
    if a.contiguous:
        table["e"]["ours-contig"] = lambda: ours_e(model, root, a, channels_last=False)
        table["es"]["ours-contig"] = lambda: ours_es(model, root, a, channels_last=False)
    if a.with_draft:
        table["e"]["ours+draft"] = lambda: ours_e(model_cl, root, a, draft=True)
        table["es"]["ours+draft"] = lambda: ours_es(model_cl, root, a, draft=True)
        table["e+es"]["ours+draft"] = lambda: ours_both(model_cl, root, a, draft=True)
    return table


def machine(device: str) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name() if device.startswith("cuda") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "torch": torch.__version__,
            "python": platform.python_version(), "threads": torch.get_num_threads(), "loadavg_start": os.getloadavg()}


def models(a) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    model = build(a.model).eval()
    if a.head_std > 0:
        head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
        torch.nn.init.normal_(head.weight, std=a.head_std)
    model_cl = build(a.model).eval()
    model_cl.load_state_dict(model.state_dict())
    return model.to(a.device), model_cl.to(a.device).to(memory_format=torch.channels_last)


def time_protocol(table: dict, repeats: int, warmup: int) -> tuple[dict, dict]:
    """Each variant once per repeat, the order rotated every repeat; times and last outputs."""
    names = list(table)
    times, outputs = {name: [] for name in names}, {}
    for _ in range(warmup):  # file cache, lazy initialization, allocator: not what is compared
        for name in names:
            table[name]()
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            outputs[name] = table[name]()
            times[name].append(time.perf_counter() - t0)
    return times, outputs


def summarize(proto: str, times: dict, outputs: dict, units: int) -> dict:
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = {}
    for name in times:
        out, ref = outputs[name], outputs["plain"]
        same = out.shape == ref.shape and bool((out == ref).all())
        agree = float((out == ref).float().mean()) * 100 if out.shape == ref.shape else 0.0
        rows[name] = {"median_s": med[name], "images_per_s": units / med[name], "speedup": med["plain"] / med[name],
                      "identical_predictions": same, "predictions_equal_pct": agree, "runs_s": times[name],
                      "distinct_predictions": int(out.unique().numel())}
    print(f"\n-{proto}: images/s counts each image once per pass ({units} per run)")
    print(f"{'pipeline':<12} {'median s':>9} {'images/s':>9} {'speedup':>8} {'same preds':>11} {'classes':>8}")
    for name, r in rows.items():
        print(f"{name:<12} {r['median_s']:>9.2f} {r['images_per_s']:>9.2f} {r['speedup']:>7.2f}x "
              f"{r['predictions_equal_pct']:>10.2f}% {r['distinct_predictions']:>8}")
    return rows


def main(argv=None) -> int:
    a = get_args_parser().parse_args(argv)
    torch.set_num_threads(a.threads)
    root = imagenet_sample_folder(Path(a.data), a.images, "val")
    model, model_cl = models(a)
    table = variants(model, model_cl, root, a, load_previous(a.previous))
    info = machine(a.device)
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['gpu'] or 'no GPU used'}, torch {info['torch']}, "
          f"{a.threads} threads, load average at start {info['loadavg_start'][0]:.2f}")
    print(f"model {a.model} (random weights) on {a.device}, {a.images} images, -b {a.batch_size}, -j {a.workers}, "
          f"--epochs-shift {a.epochs_shift}, {a.repeats} interleaved repeats after {a.warmup} warm-up round(s)")
    results = {"machine": info, "args": vars(a), "protocols": {}}
    for proto in a.protocols:
        times, outputs = time_protocol(table[proto], a.repeats, a.warmup)
        units = a.images * {"e": 1, "es": a.epochs_shift, "e+es": 1 + a.epochs_shift}[proto]
        results["protocols"][proto] = summarize(proto, times, outputs, units)
    results["machine"]["loadavg_end"] = os.getloadavg()
    print(f"\nload average at end {results['machine']['loadavg_end'][0]:.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
