"""Anti-aliasing methods side by side on CIFAR-10: accuracy, crop-shift and circular-shift consistency.

For each seed, trains a small ResNet (``smallresnet``: 3x3 stem + one basic block per stage,
strides 1/2/2, total stride 4) from scratch on the CPU as a baseline and as each variant built by
``antialias()`` from that baseline: blurpool (the paper's recipe) at filter sizes 2-5, blur-first
(composer's placement) at 4, APS and APS-LPF at 3 (both with circular=True). All variants of a seed
share the training subset, the initial weights (the conversion adds no parameters), the batch
order and crops, the epochs and the SGD + cosine schedule. Then it measures accuracy (center 28px
crop of the 32px test image), crop-shift consistency (two random 28px crops of the 32px image:
the ``-es`` protocol, 224-of-256, scaled to CIFAR) and circular consistency (two circular shifts
of the 28px center crop: the ``-ec`` protocol scaled the same way; 28 is a multiple of the net's
total stride 4, so APS is exactly invariant there). Prints the table (mean ± std over seeds), and
writes the per-seed result JSON files, the table as markdown and a plot into --out-dir.

    .venv/bin/python benchmarks/cifar_reproduction.py --out-dir /tmp/cifar_methods

The defaults (24 trainings: 3 seeds x 8 variants) took 37 CPU-minutes on one thread (58 min wall on a
shared 2-core machine at load average 3-5). Seeds can also run as separate processes into one --out-dir,
then ``--from-results DIR`` builds the table from their result files.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_METHODS = ["blur-first:4", "aps", "aps-lpf:3"]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"),
                   help="CIFAR-10 as an ImageFolder (train/ and test/ class folders)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="one full run per seed: data subset, initial weights, crops and shift draws")
    p.add_argument("--filter-sizes", type=int, nargs="*", default=[2, 3, 4, 5],
                   help="filter sizes of the paper's recipe (method blurpool)")
    p.add_argument("--methods", nargs="*", default=DEFAULT_METHODS, metavar="METHOD[:N]",
                   help="further variants (antialias() method, optional filter size; APS methods circular=True)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--train-size", type=int, default=5000, help="random training subset per seed (0: all 50000)")
    p.add_argument("--test-size", type=int, default=2000, help="random test subset per seed (0: all 10000)")
    p.add_argument("--net", default="smallresnet")
    p.add_argument("--width", type=int, default=16, help="channels of the first stage (then 2x, 4x)")
    p.add_argument("--crop-size", type=int, default=28, help="network input: center crop / random crops")
    p.add_argument("--max-shift", type=int, default=4, help="image = crop + max-shift; shifts in {0..max-shift-1}")
    p.add_argument("--epochs-shift", type=int, default=2, help="passes over the test images per shift protocol")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05, help="SGD (momentum 0.9, Nesterov), cosine-decayed")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out-dir", default="cifar_methods")
    p.add_argument("--from-results", nargs="+", metavar="PATH",
                   help="train nothing: build the table and plot from the per-seed result files (or folders) of "
                        "earlier runs of this script, e.g. seeds run as separate processes into one --out-dir")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    return p


# the DemoConfig fields that define a run's budget (spelled out in the command and read back from result files)
SETTINGS = ("filter_sizes", "methods", "epochs", "train_size", "test_size", "net", "width", "crop_size", "max_shift",
            "epochs_shift", "batch_size", "lr")


def command_line(cfg, seeds: list[int], threads: int) -> str:
    """The full command with every setting spelled out (what reproduces the run)."""
    flags = [f"--seeds {' '.join(map(str, seeds))}"]
    for name in SETTINGS:
        value = getattr(cfg, name)
        text = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        flags.append(f"--{name.replace('_', '-')} {text}".rstrip())
    return (".venv/bin/python benchmarks/cifar_reproduction.py " + " ".join(flags)
            + f" --threads {threads} --out-dir {cfg.out_dir}")


def _config(args: argparse.Namespace, seed: int):
    from antialiased.demo import DemoConfig

    return DemoConfig(out_dir=args.out_dir, seed=seed, data=args.data, progress=not args.no_progress, plot=False,
                      **{name: getattr(args, name) for name in SETTINGS})


def _report(cfg, seeds: list[int], records: list, stride: int, timing: str, threads: int) -> str:
    from antialiased.demo import describe_builds, methods_table, summarize_variants

    budget = (f"{cfg.net} (width {cfg.width}) on CIFAR-10: {cfg.train_size or 50000} training and "
              f"{cfg.test_size or 10000} test images (random subsets, one per seed), {cfg.epochs} epoch(s), batch "
              f"{cfg.batch_size}, SGD lr {cfg.lr} cosine; seeds {seeds}; mean ± std over seeds")
    return "\n\n".join([
        f"Command: `{command_line(cfg, seeds, threads)}`", budget + ".", cfg.describe_protocols(stride) + ".",
        methods_table(summarize_variants(records)),
        "How each variant was built (the baseline, converted by antialias()):\n\n"
        + "\n".join(f"- {line}" for line in describe_builds(records)),
        f"Time: {timing}.",
    ])


def _summaries(records: list) -> str:
    """Every variant's full antialias() summary (each site changed and left alone), for the markdown file."""
    seen: dict[str, str] = {}
    for r in records:
        seen.setdefault(r["label"], r["built"].get("summary_text", r["built"]["call"]))
    return "Conversion summaries:\n\n" + "\n\n".join(f"{label}:\n\n```\n{text}\n```" for label, text in seen.items())


def _train_all(args: argparse.Namespace) -> tuple:
    """Run every seed (each writes its result file); returns (config, records, total stride, timing text)."""
    from antialiased.demo import run_demo

    loads, start, cpu = [os.getloadavg()[0]], time.perf_counter(), time.process_time()
    records, cfg, stride = [], None, 1
    for seed in args.seeds:
        cfg = _config(args, seed)
        result = run_demo(cfg)
        records += result.records
        stride = result.total_stride
        print(f"seed {seed} ({time.perf_counter() - start:.0f}s so far): {result.results_path}\n"
              f"{result.table}\n", flush=True)
    loads.append(os.getloadavg()[0])
    timing = (f"{(time.perf_counter() - start) / 60:.1f} min wall, {(time.process_time() - cpu) / 60:.1f} CPU-min, "
              f"{torch.get_num_threads()} torch thread(s), load average {loads[0]:.1f} at the start, "
              f"{loads[1]:.1f} at the end ({os.cpu_count()} CPUs)")
    return cfg, records, stride, timing


def _load(paths: list[str], net: str) -> tuple:
    """The records of earlier runs' result files (``--from-results``), and their settings."""
    from antialiased.demo import DemoConfig
    from antialiased.errors import DataError
    from antialiased.reporting import load_results

    records = [r for r in load_results(paths) if r.get("protocol") == "demo" and r.get("arch") == net]
    if not records:
        raise DataError(f"no demo results of {net!r} in {paths}; pass the --out-dir of a run of this script")
    settings = records[0]["settings"]
    differ = sorted(k for k in SETTINGS if k != "net" and any(r["settings"].get(k) != settings.get(k) for r in records))
    if differ:
        raise DataError(f"the result files were made with different settings ({', '.join(differ)}); "
                        f"pass the files of one configuration")
    cfg = DemoConfig(out_dir=str(Path(records[0]["source"]).parent), seed=records[0]["seed"],
                     **{k: settings[k] for k in SETTINGS if k in settings})
    train = sum(r["metrics"].get("train_time_s", 0.0) for r in records)
    timing = f"from {len({r['source'] for r in records})} result file(s); {train / 60:.1f} min of training wall time"
    return cfg, records, int(settings.get("total_stride", 1)), timing


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from antialiased.demo import plot_methods, summarize_variants
    from antialiased.errors import AntialiasedError
    from antialiased.support.files import atomic_write_text

    if args.threads < 1:
        print("cifar_reproduction: --threads must be >= 1", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    # reading result files also fails with the reporting layer's plain OSError / ValueError (named files)
    expected = (AntialiasedError, OSError, ValueError) if args.from_results else AntialiasedError
    try:
        cfg, records, stride, timing = _load(args.from_results, args.net) if args.from_results else _train_all(args)
    except expected as exc:
        print(f"cifar_reproduction: {exc}", file=sys.stderr)
        return 2
    seeds = sorted({int(r["seed"]) for r in records}) if args.from_results else args.seeds
    report = _report(cfg, seeds, records, stride, timing, args.threads)
    print(report)
    out = Path(args.out_dir)
    atomic_write_text(out / "cifar_methods.md", report + "\n\n" + _summaries(records) + "\n")
    if not args.no_plot:
        plot_methods(summarize_variants(records), out / "cifar_methods.png",
                     title=f"{cfg.net} on CIFAR-10, mean ± std over {len(seeds)} seed(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
