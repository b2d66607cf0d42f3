"""What ``methods_cifar.py`` and ``finetune_methods.py`` share: their flags, the session (data, device,
recipe, shift settings), building a method's network, one evaluation record and the results table."""
from __future__ import annotations

import argparse
import os
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from _methods_common import (ALL_METHODS, MIB, NOT_AVAILABLE, MethodSpec, RunBudget, activation_bytes, convert,
                             markdown_table, mean_std, parse_methods)
from antialiased.errors import AntialiasedError, ConfigError
from common import machine_info, write_json
from methods_cifar_data import DEFAULT_CACHE, CifarTensors, TrainBatches, load_cifar, normalize, test_batches
from methods_cifar_train import NET_NAME, Recipe, ShiftSettings, build_net, evaluate, whiten_init

__all__ = ["add_cifar_args", "Session", "open_session", "build_model", "same_as", "results_table", "write_outputs",
           "machine_text", "blocked", "guarded_run", "budgeted_run"]

ROOT = Path(__file__).resolve().parents[1]
INPUT_SIZE = (3, 32, 32)
METRICS = (("acc1", "Accuracy"), ("crop_shift", "Crop-shift -es"), ("circular", "Circular -ec"),
           ("fractional", "Fractional -ef"), ("adversarial", "Adversarial -ea"))


def add_cifar_args(p: argparse.ArgumentParser, *, seeds: list[int], epochs: float) -> None:
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cifar10",
                   help="CIFAR-10 as class folders train/<class>/*.jpg and test/<class>/*.jpg")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where the decoded uint8 tensors are kept")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda[:i]")
    p.add_argument("--epochs", type=float, default=epochs, help="training epochs (fractions allowed)")
    p.add_argument("--seeds", type=int, nargs="+", default=seeds, help="one run per seed and method")
    p.add_argument("--methods", nargs="+", default=list(ALL_METHODS), metavar="METHOD[:N]",
                   help="'baseline' or antialias() methods, NAME or NAME:N (N: the filter size; default: "
                        + " ".join(ALL_METHODS) + ")")
    p.add_argument("--budget-seconds", type=float, default=None,
                   help="start no run that would end after this many seconds (runs go seed by seed: a short "
                        "budget gives every method fewer seeds); skipped runs are listed")
    p.add_argument("--max-train-images", type=int, default=0, help="train on this many images (0: all 50,000)")
    p.add_argument("--max-test-images", type=int, default=0, help="evaluate on this many (0: all 10,000)")
    p.add_argument("--width", type=int, default=64, help="channels of the first group (then 4x, 4x)")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--epochs-shift", type=int, default=1, help="shifted pairs per test image, per protocol")
    p.add_argument("--adv-grid", type=int, default=5, help="-ea: every crop offset of a G x G grid (G <= 9)")
    p.add_argument("--circular", choices=("supported", "never"), default="supported",
                   help="'supported': circular=True for the methods that support it (APS, LPS: exact invariance)")
    p.add_argument("--amp", choices=("auto", "bf16", "none"), default="auto",
                   help="bfloat16 autocast (auto: on CUDA only)")
    p.add_argument("--eval-batch", type=int, default=1000, help="test images per evaluation batch")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="decoding processes")
    p.add_argument("--out", type=Path, required=True, help="folder for the Markdown table and the JSON of every run")


@dataclass
class Session:
    """Everything the runs of one invocation share."""

    args: argparse.Namespace
    data: CifarTensors
    device: torch.device
    amp_dtype: torch.dtype | None
    memory_format: torch.memory_format
    recipe: Recipe
    shifts: ShiftSettings
    specs: list[MethodSpec]
    test: list
    first_images: torch.Tensor  # the first training images, normalized, on the device
    whitening: torch.Tensor  # the whitening conv's filters (from the first 5,000 training images)
    machine: dict

    def train_batches(self, seed: int) -> TrainBatches:
        return TrainBatches(self.data, self.device, self.recipe.batch_size, self.recipe.translate, seed,
                            self.memory_format)

    def evaluate(self, model: nn.Module, seed: int) -> dict:
        return evaluate(model, self.test, self.device, self.shifts, seed, amp_dtype=self.amp_dtype,
                        channels_last=self.memory_format == torch.channels_last)

    def activations_MiB(self, model: nn.Module) -> float:
        """Bytes saved for backward by one training batch (the first ``batch_size`` training images)."""
        images = self.first_images[:self.recipe.batch_size].contiguous(memory_format=self.memory_format)
        return activation_bytes(model, images, self.amp_dtype) / MIB


def _check(args: argparse.Namespace) -> None:
    for name in ("batch_size", "width", "epochs_shift", "eval_batch", "workers"):
        if getattr(args, name) < (0 if name == "workers" else 1):
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.epochs <= 0 or args.max_train_images < 0 or args.max_test_images < 0:
        raise ConfigError("--epochs must be > 0 and --max-train-images / --max-test-images >= 0")
    if not 1 <= args.adv_grid <= 9:
        raise ConfigError(f"--adv-grid must be 1..9 (offsets of the 40px padded image), got {args.adv_grid}")
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)


def _device(args: argparse.Namespace) -> tuple[torch.device, torch.dtype | None]:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    amp = args.amp == "bf16" or (args.amp == "auto" and device.type == "cuda")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device, torch.bfloat16 if amp else None


def open_session(args: argparse.Namespace, recipe: Recipe, log=print) -> Session:
    """Check the flags, load (or decode and cache) the data, and set up the device."""
    _check(args)
    specs = parse_methods(args.methods)
    device, amp_dtype = _device(args)
    data = load_cifar(args.data, args.cache_dir, workers=args.workers, log=log)
    data = data.subset(args.max_train_images, args.max_test_images)
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    shifts = ShiftSettings(passes=args.epochs_shift, grid=args.adv_grid)
    test = test_batches(data, device, shifts.pad, args.eval_batch)
    first = normalize(data.train_images[:5000], data)
    net = build_net(4)
    whiten_init(net.whiten, first)  # the same filters for every run: they depend on the data only
    return Session(args, data, device, amp_dtype, memory_format, recipe, shifts, specs, test, first.to(device),
                   net.whiten.weight.detach().clone(), machine_info(device))


def build_model(session: Session, spec: MethodSpec, seed: int) -> nn.Module:
    """The baseline network of ``seed`` (whitened), converted as ``spec`` says, on the session's device."""
    torch.manual_seed(seed)
    net = build_net(session.recipe.width, len(session.data.classes), session.recipe.bn_momentum)
    with torch.no_grad():
        net.whiten.weight.copy_(session.whitening)
    net = convert(net, spec, session.args.circular, INPUT_SIZE)
    return net.to(session.device, memory_format=session.memory_format)


def _same_function(a: nn.Module, b: nn.Module) -> bool:
    """Whether two conversions of the same initial network are the same network: the same layers in
    the same order, and the same outputs (eval mode) on random images."""
    if [type(m).__name__ for m in a.modules()] != [type(m).__name__ for m in b.modules()]:
        return False
    x = torch.rand(2, *INPUT_SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


def same_as(session: Session) -> dict[str, str]:
    """Spec -> an earlier spec whose converted network is the same one (e.g. blur-first on a network
    without strided convs is blurpool): such rows are not run twice."""
    built: list[tuple[str, nn.Module]] = []
    found = {}
    for spec in session.specs:
        if not spec.available or spec.method is None:
            continue
        torch.manual_seed(0)
        try:
            model = convert(build_net(session.recipe.width), spec, session.args.circular, INPUT_SIZE)
        except AntialiasedError:
            continue  # its own run reports the error
        twin = next((text for text, other in built if _same_function(model, other)), None)
        if twin is not None:
            found[spec.text] = twin
        else:
            built.append((spec.text, model))
    return found


def blocked(spec: MethodSpec, twins: dict[str, str], budget: RunBudget) -> str | None:
    """Why a run of ``spec`` does not start (as its table row says), or None."""
    if not spec.available:
        return NOT_AVAILABLE
    if spec.text in twins:
        return f"the same network as `{twins[spec.text]}` here: not run twice"
    return None if budget.fits(spec.text) else "skipped: over --budget-seconds"


def guarded_run(spec: MethodSpec, seed: int, work, log) -> dict:
    """``work()``'s numbers as a run record; a run that fails is recorded as failed (with the reason, the
    traceback on stderr), so one method's error does not cost the other methods' results."""
    try:
        numbers = work()
    except Exception as exc:  # noqa: BLE001  (any error of a method's layers, reported in its row)
        log(traceback.format_exc())
        reason = " ".join(str(exc).split())[:300]
        return {"method": spec.text, "seed": seed, "status": f"failed: {type(exc).__name__}: {reason}"}
    return {"method": spec.text, "seed": seed, "status": "done", **numbers}


def budgeted_run(session: Session, spec: MethodSpec, seed: int, budget: RunBudget, twins: dict[str, str], work,
                 log) -> tuple[dict, bool]:
    """``(record, ran)``: ``work()``'s run record of ``spec`` at ``seed`` (timed in ``budget``, failures recorded,
    with the call that built it), or, where :func:`blocked` says so, a record of why it did not start."""
    reason = blocked(spec, twins, budget)
    if reason is not None:
        return {"method": spec.text, "seed": seed, "status": reason}, False
    with budget.timed(spec.text):
        record = guarded_run(spec, seed, work, log)
    return {**record, "call": spec.call(NET_NAME, session.args.circular)}, True


def _row(spec: MethodSpec, runs: list[dict], extra: list[tuple[str, str]]) -> list[str]:
    done = [r for r in runs if r["method"] == spec.text and r["status"] == "done"]
    cells = [mean_std([r[key] for r in done]) for key, _ in METRICS]
    cells += [mean_std([r[key] for r in done], digits) for key, digits in extra]
    return [f"`{spec.text}`", *cells, str(len(done))]


def results_table(session: Session, runs: list[dict], extra: list[tuple[str, str, int]]) -> str:
    """Mean ± std over seeds per method; methods without a finished run say why."""
    headers = ["Method", *(f"{label} (%)" for _, label in METRICS), *(label for _, label, _ in extra), "Seeds"]
    rows = []
    for spec in session.specs:
        statuses = {r["status"] for r in runs if r["method"] == spec.text}
        if "done" in statuses:
            rows.append(_row(spec, runs, [(key, digits) for key, _, digits in extra]))
        else:
            why = next((r["status"] for r in runs if r["method"] == spec.text), "not run")
            rows.append([f"`{spec.text}`", why, *[""] * (len(headers) - 2)])
    return markdown_table(headers, rows)


def machine_text(info: dict) -> str:
    """The machine in a few words: GPU (CPU) or CPU and threads, and torch's version."""
    where = f"{info['gpu']} ({info['cpu']})" if "gpu" in info else f"{info['cpu']}, {info['torch_threads']} thread(s)"
    return f"{where}, torch {info['torch']}"


def write_outputs(session: Session, name: str, report: str, payload: dict) -> None:
    """``<out>/<name>.md`` and ``<out>/<name>.json`` (atomic; rewritten after every run, so an
    interrupted session keeps what it measured)."""
    from antialiased.support.files import atomic_write_text

    out = session.args.out
    atomic_write_text(out / f"{name}.md", report + "\n")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(session.args).items()}
    write_json(out / f"{name}.json", {"benchmark": name, "machine": session.machine, "settings": settings,
                                      **payload})

