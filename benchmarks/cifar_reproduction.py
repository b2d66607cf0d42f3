"""Small-scale reproduction on real data: baseline vs anti-aliased (lpf2-5) nets on CIFAR-10, on a CPU.

Trains a small ResNet (``smallresnet``: stem + three basic-block stages, strides 1/2/2) from scratch
for each variant and seed on a random subset of CIFAR-10, then measures accuracy (centre 28px crop
of the 32px test image) and shift consistency (two random 28px crops of the 32px image: the
paper's ``-es`` protocol, 224-of-256, scaled to CIFAR). Prints the paper-style table with the mean
± standard deviation over seeds, and writes the per-seed result JSON files, the table and a plot.

    .venv/bin/python benchmarks/cifar_reproduction.py --seeds 0 1 2 --epochs 4 --train-size 10000

Runs through :func:`antialiased.demo.run_demo`; the defaults fit in ~15-20 minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"),
                   help="CIFAR-10 as an ImageFolder (train/ and test/ class folders)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--train-size", type=int, default=8000, help="random training subset (0: all 50000)")
    p.add_argument("--test-size", type=int, default=2000, help="random test subset (0: all 10000)")
    p.add_argument("--net", default="smallresnet")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--filter-sizes", type=int, nargs="+", default=[2, 3, 4, 5])
    p.add_argument("--crop-size", type=int, default=28)
    p.add_argument("--max-shift", type=int, default=4)
    p.add_argument("--epochs-shift", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out-dir", default="cifar_reproduction")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from antialiased.demo import DemoConfig, run_demo
    from antialiased.reporting import load_results, markdown_table, plot_network, summarize

    torch.set_num_threads(args.threads)
    out = Path(args.out_dir)
    paths, start = [], time.perf_counter()
    for seed in args.seeds:
        cfg = DemoConfig(out_dir=str(out), seed=seed, epochs=args.epochs, filter_sizes=tuple(args.filter_sizes),
                         data=args.data, net=args.net, width=args.width, crop_size=args.crop_size,
                         max_shift=args.max_shift, train_size=args.train_size, test_size=args.test_size,
                         batch_size=args.batch_size, lr=args.lr, epochs_shift=args.epochs_shift,
                         progress=not args.no_progress, plot=False)
        result = run_demo(cfg)
        paths.append(result.results_path)
        print(f"seed {seed} ({time.perf_counter() - start:.0f}s so far)\n{result.table}\n", flush=True)
    rows = summarize(load_results(paths))[args.net]
    table = markdown_table(rows)
    wall = time.perf_counter() - start
    header = (f"{args.net} (width {args.width}) on CIFAR-10: {args.train_size or 50000} training images, "
              f"{args.test_size or 10000} test images, {args.epochs} epochs, seeds {args.seeds}; "
              f"mean ± std over seeds; {wall / 60:.1f} min on {torch.get_num_threads()} CPU thread(s)")
    print(f"{header}\n\n{table}")
    (out / "cifar_reproduction.md").write_text(f"{header}\n\n{table}\n")
    plot_network(rows, out / "cifar_reproduction.png", title=f"{args.net} on CIFAR-10 ({len(args.seeds)} seeds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
