"""Shared helpers for the benchmark scripts: the contenders, interleaved timing, machine info, output.

The peers (the published ``antialiased_cnns`` and ``timm``) are benchmark-only; install them with
``pip install -r benchmarks/requirements.txt``. A missing peer is reported and skipped, never faked.
"""
from __future__ import annotations

import argparse
import atexit
import functools
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
try:  # the project itself, installed or run from a checkout
    import antialiased  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT))

import torch
from torch import nn

from antialiased.models import create_model

__all__ = [
    "ARCHS",
    "PREVIOUS",
    "Contender",
    "contenders",
    "add_previous_arg",
    "load_previous_layers",
    "swap_blur_layers",
    "machine_info",
    "add_common_args",
    "setup_torch",
    "interleaved",
    "median",
    "write_json",
    "print_table",
]

ARCHS = ("resnet18", "resnet50", "densenet121", "mobilenet_v2", "vgg16")

# timm's anti-aliased ResNets (BlurPool after strided convs). 'd' variants have a deep stem, so
# they are a different network: only exact architecture matches are compared.
TIMM_BLUR = {"resnet18": "resnetblur18", "resnet50": "resnetblur50"}


@dataclass
class Contender:
    """One model to time: ``label`` in tables, ``build()`` returns a fresh nn.Module."""

    label: str
    build: Callable[[], nn.Module]


def _published(arch: str, filter_size: int) -> Callable[[], nn.Module] | None:
    try:
        module = importlib.import_module("antialiased_cnns")
    except ImportError:
        return None
    return lambda: getattr(module, arch)(pretrained=False, filter_size=filter_size)


def _timm(arch: str) -> Callable[[], nn.Module] | None:
    if arch not in TIMM_BLUR:
        return None
    try:
        timm = importlib.import_module("timm")
    except ImportError:
        return None
    return lambda: timm.create_model(TIMM_BLUR[arch], pretrained=False)


def contenders(
    arch: str, filter_size: int = 4, peers: bool = True, previous: ModuleType | None = None
) -> tuple[list[Contender], list[str]]:
    """The baseline first, then ours (filter size N and 1), the same model with the previous
    version's blur layers (``previous``, see :func:`load_previous_layers`), then the installed peers.

    Returns the contenders and a list of notes about skipped peers.
    """
    found = [
        Contender("baseline", lambda: create_model(arch)),
        Contender(f"ours_lpf{filter_size}", lambda: create_model(f"{arch}_lpf{filter_size}")),
        Contender("ours_lpf1", lambda: create_model(f"{arch}_lpf1")),
    ]
    if previous is not None:
        found.append(Contender(f"previous_lpf{filter_size}",
                               lambda: swap_blur_layers(create_model(f"{arch}_lpf{filter_size}"), previous)))
    notes = []
    if peers:
        published = _published(arch, filter_size)
        if published is None:
            notes.append("published antialiased_cnns not installed (pip install -r benchmarks/requirements.txt)")
        else:
            found.append(Contender(f"published_lpf{filter_size}", published))
        timm_build = _timm(arch)
        if timm_build is not None:
            found.append(Contender(f"timm_{TIMM_BLUR[arch]}", timm_build))
        elif arch in TIMM_BLUR:
            notes.append("timm not installed")
    return found, notes


# The last commit before the layers became registered operators with a compiled CPU kernel (issue 20);
# 61b5b39 was the one before the layer became a package (issue 9).
PREVIOUS = "151f05a"


def add_previous_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--previous", default=PREVIOUS, metavar="REV|PATH",
        help=f"also time the blur layers of git revision REV (default {PREVIOUS}, the version before the "
             "layers became operators with a compiled CPU kernel), side by side with the current ones; or a folder "
             "written by "
             "'python benchmarks/common.py export-previous REV DIR' (for machines without the git "
             "history); 'none' skips it")


def _previous_files(rev: str) -> dict[str, str]:
    """``antialiased/errors.py`` and the layer module(s) at ``rev``, as {relative path: text}."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout

    try:
        names = git("ls-tree", "-r", "--name-only", rev, "--", "antialiased/layers.py", "antialiased/layers",
                    "antialiased/errors.py").split()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"--previous {rev}: cannot read it from git ({exc}); pass a folder made by "
                         f"'python benchmarks/common.py export-previous {rev} DIR', or --previous none") from None
    names = [n for n in names if n.endswith(".py")]
    if not any(n.startswith("antialiased/layers") for n in names):
        raise SystemExit(f"--previous {rev}: that revision has no antialiased/layers.py or antialiased/layers/")
    return {n[len("antialiased/"):]: git("show", f"{rev}:{n}") for n in names}


def export_previous(rev: str, folder: Path) -> Path:
    """Write the layer module(s) of ``rev`` (and the errors module they import) into ``folder``."""
    folder = Path(folder)
    for name, text in _previous_files(rev).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    (folder / "__init__.py").write_text(f'"""antialiased\'s layer modules as of {rev}."""\n')
    return folder


@functools.lru_cache(maxsize=None)
def load_previous_layers(spec: str) -> ModuleType | None:
    """The blur-layer module of git revision ``spec`` (or of a folder made by :func:`export_previous`),
    imported as a package of its own beside the current one; None for 'none'."""
    if spec.lower() in ("", "none"):
        return None
    folder = Path(spec)
    if not (folder / "__init__.py").is_file():
        scratch = tempfile.mkdtemp(prefix="bench_previous_")
        atexit.register(shutil.rmtree, scratch, True)
        folder = export_previous(spec, Path(scratch) / "src")
    # A fresh package name per load: its relative imports (..errors) resolve inside it.
    package = f"_previous_{abs(hash((str(folder.resolve()), time.time_ns())))}"
    parent = Path(tempfile.mkdtemp(prefix="bench_previous_pkg_"))
    atexit.register(shutil.rmtree, parent, True)
    shutil.copytree(folder, parent / package)
    sys.path.insert(0, str(parent))
    try:
        return importlib.import_module(f"{package}.layers")
    finally:
        sys.path.remove(str(parent))


def swap_blur_layers(model: nn.Module, previous: ModuleType) -> nn.Module:
    """Replace every current BlurPool/BlurPool1D/BlurPool3D of ``model`` by the previous version's
    layer with the same configuration and filter (same device and dtype); returns the model."""
    from antialiased.layers import BlurPool, BlurPool1D, BlurPool3D

    current = (BlurPool, BlurPool1D, BlurPool3D)
    for name, module in list(model.named_modules()):
        if type(module) not in current:
            continue
        old = getattr(previous, type(module).__name__)(
            module.channels, pad_type=module.pad_type, filt_size=module.filt_size, stride=module.stride,
            pad_off=module.pad_off,
        ).to(device=module.filt.device, dtype=module.filt.dtype)
        old.filt.copy_(module.filt)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, old)
    return model


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict:
    info = {
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "load_average_start": _load(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archs", nargs="+", default=["resnet50"], choices=ARCHS, metavar="ARCH",
                        help=f"architectures (choices: {', '.join(ARCHS)}; default: resnet50)")
    parser.add_argument("--filter-size", type=int, default=4, help="blur filter size of the anti-aliased models (default 4)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds; each round runs every contender once (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or this process's CPU time (robust on a shared machine with --threads 1)")
    parser.add_argument("--device", default="cpu", help="'cpu' or 'cuda[:i]' (default cpu)")
    parser.add_argument("--no-peers", action="store_true", help="skip the published implementation and timm")
    add_previous_arg(parser)
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")


def setup_torch(args: argparse.Namespace) -> torch.device:
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be >= 1, got {args.repeats}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was requested but torch sees no CUDA device; use --device cpu")
    torch.manual_seed(0)
    return device


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def interleaved(
    steps: dict[str, Callable[[], object]], repeats: int, warmup: int, device: torch.device, clock: str = "wall"
) -> dict[str, list[float]]:
    """Seconds per call of each step, run round-robin (rotating the order each round) so that
    machine load drifts hit every contender alike.

    ``clock="cpu"`` counts this process's CPU time instead of wall time: on a machine shared with
    other jobs it leaves out the time spent waiting for a core (use it with one thread; with more,
    idle threads spinning at barriers count too). GPU runs always use wall time."""
    now = CLOCKS["wall" if device.type == "cuda" else clock]
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(warmup + repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize(device)
            start = now()
            steps[name]()
            synchronize(device)
            if round_ >= warmup:
                times[name].append(now() - start)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def write_json(path: Path, payload: dict) -> None:
    """Atomic write: a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(w) for c, w in zip(columns, widths)))


def print_machine(info: dict) -> None:
    text = ", ".join(f"{k}={v}" for k, v in info.items())
    print(f"machine: {text}")


def run_per_arch(name: str, args: argparse.Namespace, bench_arch: Callable) -> int:
    """The shared ``main`` body: machine header, ``bench_arch(arch, args, device)`` per architecture
    (returning ``(rows, notes)``), and the JSON file with machine, settings, rows and notes."""
    device = setup_torch(args)
    info = machine_info(device)
    print_machine(info)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    print(f"settings: {settings}\n", flush=True)
    all_rows, all_notes = [], {}
    for arch in args.archs:
        rows, notes = bench_arch(arch, args, device)
        all_rows += rows
        if notes:
            all_notes[arch] = notes
            print(f"{arch}: " + "; ".join(notes))
    info["load_average_end"] = _load()
    if args.json:
        write_json(args.json, {"benchmark": name, "machine": info, "settings": settings,
                               "results": all_rows, "notes": all_notes})
        print(f"wrote {args.json}")
    return 0


def imagenet_sample_folder(src: Path, n: int, split: str) -> Path:
    """A temporary ``<split>/<wnid>/<file>`` folder of symlinks to the first ``n`` flat
    ``<wnid>_<name>.JPEG`` files of ``src`` (the layout of ../shared/data/imagenet-sample)."""
    files = sorted(src.glob("*.JPEG"))[:n]
    if len(files) < n:
        raise SystemExit(f"{src} holds {len(files)} JPEG files, fewer than --images {n}")
    root = Path(tempfile.mkdtemp(prefix=f"bench_{split}_")) / split
    for f in files:
        wnid = f.name.split("_")[0]
        (root / wnid).mkdir(parents=True, exist_ok=True)
        os.symlink(f.resolve(), root / wnid / f.name)
    return root


if __name__ == "__main__":  # python benchmarks/common.py export-previous REV DIR
    if len(sys.argv) != 4 or sys.argv[1] != "export-previous":
        raise SystemExit("usage: python benchmarks/common.py export-previous REV DIR")
    print(export_previous(sys.argv[2], Path(sys.argv[3])))
