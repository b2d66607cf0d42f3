#!/usr/bin/env python
"""Load-independent cost of the blur layers: instructions and cache misses under valgrind's callgrind.

On a machine shared with other jobs, wall and CPU times of memory-bound kernels move by tens of
percent between runs; instruction counts and simulated cache misses do not. This script re-runs
itself under ``valgrind --tool=callgrind --cache-sim=yes`` (one thread) and counts, for each
contender, one pass over the 7 blur inputs of ResNet-50 (batch ``--batch``, 224x224 network input),
between two ``CALLGRIND_DUMP_STATS`` client requests (a two-line C marker compiled here):

- ``x.sum()``: reading every input once, the floor of any blur (issue 20's reference);
- ``ours``: the layer as it runs (the operator's CPU kernel: ``_native`` where it applies);
- ``ours, separable kernel``: the same operator with the ATen-op kernel (``_separable``);
- ``previous``: the layer of git revision ``--previous`` (default: the commit before the
  operator), loaded beside ours;
- ``published``: ``antialiased_cnns.BlurPool`` (pad + conv2d) when installed.

``--backward`` counts forward + the input's gradient (``torch.autograd.grad`` with a fixed output
gradient). Columns: ``Ir`` (instructions, millions), ``D1 miss`` and ``LL miss`` (data reads and
writes missing the simulated caches, millions: a 32 KiB first level and a 32 MiB last level; LL
misses approximate DRAM traffic in 64-byte lines), and each contender's instructions over ``x.sum()``'s. Valgrind
does not emulate AVX-512, so torch runs its AVX2 kernels and ours is built with
``-O3 -mavx2 -mfma`` (``ANTIALIASED_KERNEL_CFLAGS``); expect minutes of run time.

    python benchmarks/blur_instructions.py                       # NCHW, forward
    python benchmarks/blur_instructions.py --channels-last --backward
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MARKER = "#include <valgrind/callgrind.h>\nvoid bench_dump(void) { CALLGRIND_DUMP_STATS; }\n"
EVENTS = ("Ir", "D1mr", "D1mw", "DLmr", "DLmw")
# The commit before the layers became registered operators (the eager dispatch of four branches).
PREVIOUS = "151f05a"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=16, help="batch of each blur input (default 16)")
    p.add_argument("--channels-last", action="store_true", help="NHWC inputs")
    p.add_argument("--backward", action="store_true", help="forward + the input's gradient")
    p.add_argument("--previous", default=PREVIOUS, help=f"git revision of the previous layer, or 'none' (default {PREVIOUS})")
    p.add_argument("--json", type=Path, default=None, help="also write the counts to this JSON file")
    p.add_argument("--keep", type=Path, default=None,
                   help="keep callgrind's files here (cg.out.N: N-1 = the N-1-th contender) for callgrind_annotate")
    p.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)  # the run under valgrind
    return p


def _marker(folder: Path) -> Path:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("a C compiler is needed for the callgrind marker (set CC)")
    (folder / "marker.c").write_text(MARKER)
    done = subprocess.run([cc, "-O1", "-fPIC", "-shared", "-o", str(folder / "marker.so"), str(folder / "marker.c")],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"cannot build the callgrind marker (valgrind's headers, valgrind/callgrind.h, missing?): "
                         f"{done.stderr.strip().splitlines()[-1:]}")
    return folder / "marker.so"


def _counts(path: Path) -> dict[str, int]:
    events, totals = [], []
    for line in path.read_text().splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("totals:") or line.startswith("summary:"):
            totals = [int(v) for v in line.split()[1:]]
    return dict(zip(events, totals + [0] * (len(events) - len(totals))))  # callgrind omits trailing zeros


def parent(args: argparse.Namespace) -> int:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    work = Path(tempfile.mkdtemp(prefix="blur_instructions_"))
    marker = _marker(work)
    env = dict(os.environ, OMP_NUM_THREADS="1", ANTIALIASED_KERNEL_CFLAGS="-O3 -mavx2 -mfma",
               ANTIALIASED_KERNEL_DIR=str(work / "kernels"), BENCH_MARKER=str(marker))
    flags = [f"--batch={args.batch}", f"--previous={args.previous}"] + ["--channels-last"] * args.channels_last \
        + ["--backward"] * args.backward
    # The host's caches as a 2-level model: a 32 KiB 8-way L1 and a 32 MiB 16-way last level (an EPYC's L3).
    command = ["valgrind", "--tool=callgrind", "--cache-sim=yes", "--D1=32768,8,64", "--I1=32768,8,64",
               "--LL=33554432,16,64", f"--callgrind-out-file={work / 'cg.out'}", sys.executable,
               str(Path(__file__).resolve()), "--child", str(work / "labels.json"), *flags]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        own = [line for line in done.stderr.splitlines() if not line.startswith("==")]
        raise SystemExit(f"the run under valgrind failed (exit status {done.returncode}): " + "\n".join(own[-15:]))
    labels = json.loads((work / "labels.json").read_text())
    rows = _rows(labels, [_counts(work / f"cg.out.{i + 2}") for i in range(len(labels))])
    _print(rows, args)
    if args.json:
        from common import write_json
        write_json(args.json, {"benchmark": "blur_instructions", "settings": {k: str(v) for k, v in vars(args).items()},
                               "rows": rows})
    if args.keep:
        shutil.copytree(work, args.keep, dirs_exist_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _rows(labels: list[str], counts: list[dict[str, int]]) -> list[dict]:
    floor = counts[labels.index("x.sum()")]["Ir"]
    rows = []
    for label, c in zip(labels, counts):
        rows.append({"contender": label, "Ir_M": c["Ir"] / 1e6, "D1_miss_M": (c["D1mr"] + c["D1mw"]) / 1e6,
                     "LL_miss_M": (c["DLmr"] + c["DLmw"]) / 1e6, "Ir_vs_sum": c["Ir"] / floor})
    return rows


def _print(rows: list[dict], args: argparse.Namespace) -> None:
    layout = "NHWC" if args.channels_last else "NCHW"
    what = "forward + backward" if args.backward else "forward"
    print(f"callgrind, 1 thread, AVX2: the 7 blur layers of ResNet-50, batch {args.batch}, {layout}, {what}")
    print("| contender | Ir (M) | D1 misses (M) | LL misses (M) | Ir / x.sum() |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['contender']} | {r['Ir_M']:.1f} | {r['D1_miss_M']:.2f} | {r['LL_miss_M']:.2f} | {r['Ir_vs_sum']:.2f} |")


def _contenders(args: argparse.Namespace, channels: list[int]) -> dict:
    import torch

    from antialiased.layers import BlurPool, _ops, _separable
    from common import load_previous_layers

    found = {"ours": [BlurPool(c) for c in channels]}

    def separable(layers):
        def run(i, x):
            saved = _ops.KERNELS["cpu"]
            _ops.KERNELS["cpu"] = _separable
            try:
                return layers[i](x)
            finally:
                _ops.KERNELS["cpu"] = saved
        return run

    calls = {"ours": lambda i, x: found["ours"][i](x), "ours, separable kernel": separable(found["ours"])}
    previous = load_previous_layers(args.previous)
    if previous is not None:
        found["previous"] = [previous.BlurPool(c) for c in channels]
        calls[f"previous ({args.previous})"] = lambda i, x: found["previous"][i](x)
    try:
        import antialiased_cnns
        found["published"] = [antialiased_cnns.BlurPool(c) for c in channels]
        calls["published"] = lambda i, x: found["published"][i](x)
    except ImportError:
        print("published antialiased_cnns not installed: skipped", file=sys.stderr)
    return calls


def child(args: argparse.Namespace) -> int:
    import ctypes

    import torch

    from bench_blur import RESNET50_BLUR_INPUTS

    torch.set_num_threads(1)
    marker = ctypes.CDLL(os.environ["BENCH_MARKER"])
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    inputs = [torch.randn(args.batch, c, s, s).contiguous(memory_format=fmt).requires_grad_(args.backward)
              for c, s in RESNET50_BLUR_INPUTS]
    calls = {"x.sum()": lambda i, x: x.sum(), **_contenders(args, [c for c, _ in RESNET50_BLUR_INPUTS])}
    with torch.no_grad():  # one fixed output gradient per input, made before anything is counted
        grads = [torch.randn_like(calls["ours"](i, x)) for i, x in enumerate(inputs)]

    def one_pass(label: str) -> None:
        for i, x in enumerate(inputs):
            if not args.backward or label == "x.sum()":
                with torch.no_grad():
                    calls[label](i, x)
                continue
            torch.autograd.grad(calls[label](i, x), x, grads[i])

    for label in calls:  # warm-up: kernels built, tables and caches filled
        one_pass(label)
    marker.bench_dump()  # cg.out.1: start-up and warm-up
    for label in calls:
        one_pass(label)
        marker.bench_dump()  # cg.out.2, 3, ...: one per contender
    args.child.write_text(json.dumps(list(calls)))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    return child(args) if args.child else parent(args)


if __name__ == "__main__":
    raise SystemExit(main())
