#!/usr/bin/env python
"""Where each shift-invariance protocol's CPU time goes: decoding, the model, and the loop itself.

``bench_protocols.py`` times each protocol against the bare forward pass; on a CPU the decode
workers share the cores with the model, so what a protocol costs beyond the forward pass is
plain CPU work. This script runs each protocol with the loading in the main process
(``num_workers=0``) under ``cProfile`` with the process's CPU clock and splits the time into:

- ``decode``: the dataset's ``__getitem__`` (file read, JPEG decode, resize, crop, to uint8);
- ``model``: the model's forward passes (the bare work the protocol exists to do);
- ``loop``: everything else the protocol does (normalization, shifted copies, collation,
  scoring, bookkeeping).

CPU time is what a busy machine shares out, so these shares hardly move with its load. The
``best ratio`` column is ``model / (model + decode + loop)``: the protocol's throughput against the
bare forward pass when decoding and the loop run on the cores the model uses (a CPU-only run), the
ceiling the 0.90 target is measured against. With an accelerator, decoding runs on otherwise idle
host cores and only ``loop`` (if on the host critical path) competes.

    python benchmarks/profile_protocols.py --model resnet18 --images 16 --protocols e es ec
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from bench_protocols import PROTOCOLS, Counted, build_model, scorers  # noqa: E402
from common import imagenet_sample_folder, print_table, write_json  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from antialiased.data import ImageFolderDataset, uint8_transform  # noqa: E402
from antialiased.evaluation import LoopOptions, run_protocols  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "imagenet-sample"),
                   help="flat folder of <wnid>_<name>.JPEG files (default: ../shared/data/imagenet-sample)")
    p.add_argument("--images", type=int, default=16, help="first N images (default: 16)")
    p.add_argument("--model", default="resnet18", help="a model name (random weights) or 'tiny' (default: resnet18)")
    p.add_argument("--forward-batch", type=int, default=64, help="samples per forward pass (default: 64)")
    p.add_argument("-b", "--batch-size", type=int, default=8, help="loader batch, images (default: 8)")
    p.add_argument("--epochs-shift", type=int, default=5, help="passes of -es/-ec/-ef (default: 5)")
    p.add_argument("--shift-grid", type=int, default=8, help="-ea grid (default: 8)")
    p.add_argument("--max-shift", type=int, default=32, help="(default: 32)")
    p.add_argument("--crop-size", type=int, default=224, help="(default: 224)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--protocols", nargs="+", default=["e", "es", "ec"], choices=[p for p in PROTOCOLS if p != "all"])
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    return p


def _cumulative(stats: pstats.Stats, predicate) -> float:
    """The largest cumulative time of the functions ``predicate`` accepts (the outermost call)."""
    return max((v[3] for k, v in stats.stats.items() if predicate(k)), default=0.0)


def profile(name: str, model: Counted, folder: Path, args: argparse.Namespace) -> dict:
    found = scorers(name, args)
    decode = max(s.input_size or args.crop_size for s in found)
    dataset = ImageFolderDataset(folder, transform=uint8_transform(args.crop_size + args.max_shift, decode),
                                 return_index=True)
    loader = DataLoader(dataset, batch_size=args.forward_batch if name == "e" else args.batch_size, num_workers=0)
    for scorer in found:
        if hasattr(scorer, "prepare"):
            scorer.prepare(model, torch.device("cpu"))
    before = model.samples
    profiler = cProfile.Profile(timer=time.process_time)
    profiler.enable()
    run_protocols(model, loader, torch.device("cpu"), found,
                  LoopOptions(channels_last=True, progress=False, cache_bytes=4 << 30))
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = _cumulative(stats, lambda k: k[2] == "run_protocols")
    decode_s = _cumulative(stats, lambda k: k[2] == "__getitem__" and "folder" in k[0])
    counted = str(HERE / "bench_protocols.py")
    model_s = _cumulative(stats, lambda k: k[2] == "forward" and k[0] == counted)
    loop_s = max(0.0, total - decode_s - model_s)
    samples = model.samples - before
    per = 1e3 / max(samples, 1)
    return {"protocol": name, "forward samples": samples, "decode ms/sample": f"{decode_s * per:.2f}",
            "model ms/sample": f"{model_s * per:.2f}", "loop ms/sample": f"{loop_s * per:.2f}",
            "decode share": f"{decode_s / total:.2f}", "loop share": f"{loop_s / total:.2f}",
            "best ratio": f"{model_s / total:.2f}"}


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = imagenet_sample_folder(Path(args.data), args.images, "val")
    model = Counted(build_model(args.model).eval().to(memory_format=torch.channels_last))
    profile(args.protocols[0], model, folder, args)  # warm-up: allocator, kernels, caches
    rows = [profile(name, model, folder, args) for name in args.protocols]
    print(f"model {args.model}, {args.images} images, forward batch {args.forward_batch}, loader batch "
          f"{args.batch_size}, {args.threads} torch thread(s), loading in the main process; CPU time (cProfile)")
    print_table(rows, list(rows[0]))
    if args.json:
        write_json(Path(args.json), {"args": vars(args), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
