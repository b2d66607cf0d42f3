"""Speed and memory of every anti-aliasing method against the baseline and blurpool (issue 19, deliver 5).

For each architecture (torchvision's ResNet-50 and ConvNeXt-T by default; any torchvision
classifier name) and method (``antialias(model, method=..., filter_size=...)``; the baseline is the
unconverted model; methods this version does not register are listed as such):

- inference time (eval mode, ``torch.inference_mode``) and training step time (forward, cross
  entropy, backward, SGD step), each timed in interleaved rounds (A B C A B C ..., the order
  rotating every round) so that load drifts hit every method alike; medians, and ratios to the
  baseline and to blurpool (the first ``blurpool`` method listed);
- the activations saved for backward in one training-mode forward pass
  (``torch.autograd.graph.saved_tensors_hooks``; each storage once, parameters left out), in total
  and per inserted layer: the largest tensor it saves beside its input, relative to its input's
  size, and how many tensors at least input-sized it keeps (its input included). Target: the
  adaptive and LPS layers never keep more than one (tensors held by activation checkpointing,
  LPS's recomputed scorer, are the checkpoint's inputs and not seen by these hooks);
- on CUDA, the peak memory a training step allocates above what is resident.

Targets (issue 19): FFT methods (``flc``, ``asap``) within 2x of blurpool's time. Prints the machine
(CPU model, torch version, threads, GPU), Markdown tables, and writes them with a JSON into --out.

    .venv/bin/python benchmarks/bench_methods_cost.py --device cuda --batch 64 --out results/methods_cost_gpu
    .venv/bin/python benchmarks/bench_methods_cost.py --device cpu --threads 2 --clock cpu --batch 8 \\
        --out results/methods_cost_cpu
    .venv/bin/python benchmarks/bench_methods_cost.py --quick --archs resnet18 --out /tmp/cost   # seconds
"""
from __future__ import annotations

import argparse
import gc
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402

from _methods_common import (ALL_METHODS, MIB, NOT_AVAILABLE, MethodSpec, SavedActivations, convert,  # noqa: E402
                             markdown_table, parse_methods)
from antialiased.errors import AntialiasedError, ConfigError  # noqa: E402
from common import CLOCKS, interleaved, machine_info, median, print_machine, setup_torch, write_json  # noqa: E402
from antialiased.support.files import atomic_write_text  # noqa: E402

#: Methods whose layers must keep at most one input-sized tensor for backward (issue 19's target).
ONE_INPUT_TARGET = ("adaptive", "lps", "lps-lpf")
#: Methods whose time must stay within 2x of blurpool's (issue 19's target).
FFT_TARGET = ("flc", "asap")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--archs", nargs="+", default=["resnet50", "convnext_tiny"], help="torchvision classifiers")
    p.add_argument("--methods", nargs="+", default=list(ALL_METHODS), metavar="METHOD[:N]")
    p.add_argument("--batch", type=int, default=16, help="images per step (default 16)")
    p.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="wall time or this process's CPU time")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="defaults for a test run: 64px, batch 2, 2 rounds, no warmup (flags given still count)")
    p.add_argument("--out", type=Path, required=True, help="folder for the Markdown tables and the JSON")
    return p


def build(arch: str, spec: MethodSpec, size: int, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    return convert(torchvision.models.get_model(arch, weights=None), spec, "never", (3, size, size)).to(device)


def _train_step(model: nn.Module, x: torch.Tensor):
    target = torch.arange(x.shape[0], device=x.device) % 1000
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), target).backward()
        optimizer.step()
    return step


def _infer(model: nn.Module, x: torch.Tensor):
    def step() -> None:
        model.eval()
        with torch.inference_mode():
            model(x)
    return step


def _saved(model: nn.Module, x: torch.Tensor) -> tuple[int, dict[str, dict]]:
    model.train()
    with SavedActivations(model) as saved:
        out = model(x)
    del out
    return saved.total_bytes, saved.per_layer()


def _step_peak_MiB(step, device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    resident = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - resident) / MIB


def _prepare(arch: str, spec: MethodSpec, args: argparse.Namespace, device: torch.device, x: torch.Tensor) -> dict:
    """The converted model, its training step (run once: its peak memory), its saved activations."""
    model = build(arch, spec, args.size, device)
    total, layers = _saved(model, x)
    step = _train_step(model, x)
    return {"model": model, "train": step, "peak": _step_peak_MiB(step, device), "saved": total, "layers": layers}


def _failed(exc: Exception) -> str:
    traceback.print_exc(file=sys.stderr)
    return f"failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def measure_arch(arch: str, specs: list[MethodSpec], args: argparse.Namespace, device: torch.device) -> dict:
    """Times, saved activations and per-layer detail of every available method on ``arch``."""
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    ready, result = {}, {"arch": arch, "methods": {}}
    for spec in specs:
        if not spec.available:
            result["methods"][spec.text] = {"status": NOT_AVAILABLE}
            continue
        try:
            ready[spec.text] = _prepare(arch, spec, args, device, x)
        except Exception as exc:  # noqa: BLE001  (one method's error is its row's, not the whole table's)
            result["methods"][spec.text] = {"status": _failed(exc)}
    infer = interleaved({k: _infer(r["model"], x) for k, r in ready.items()}, args.repeats, args.warmup, device,
                        args.clock)
    train = interleaved({k: r["train"] for k, r in ready.items()}, args.repeats, args.warmup, device, args.clock)
    for label, r in ready.items():
        result["methods"][label] = {
            "status": "done", "inference_s": infer[label], "train_step_s": train[label],
            "inference_median_s": median(infer[label]), "train_step_median_s": median(train[label]),
            "saved_MiB": r["saved"] / MIB, "step_peak_MiB": r["peak"], "layers": r["layers"],
            "inserted_layers": len(r["layers"])}
    result["methods"] = {s.text: result["methods"][s.text] for s in specs}  # in the order asked
    del ready
    gc.collect()
    return result


def _ratio(value: float, reference: float | None) -> str:
    return f"{value / reference:.2f}x" if reference else "-"


def _targets(spec: MethodSpec, m: dict, blur: dict | None) -> str:
    notes = []
    if spec.method in ONE_INPUT_TARGET:
        worst = max((layer["input_sized_kept"] for layer in m["layers"].values()), default=0)
        notes.append(f"<= 1 input-sized per layer: {'met' if worst <= 1 else f'NOT met ({worst})'}")
    if spec.method in FFT_TARGET and blur is not None:
        slow = max(m["inference_median_s"] / blur["inference_median_s"],
                   m["train_step_median_s"] / blur["train_step_median_s"])
        notes.append(f"<= 2x blurpool: {'met' if slow <= 2 else 'NOT met'} ({slow:.2f}x)")
    return "; ".join(notes)


def _summary_row(spec: MethodSpec, m: dict, base: dict, blur: dict | None) -> list[str]:
    layers = m["layers"].values()
    worst_kept = max((layer["input_sized_kept"] for layer in layers), default=0)
    largest = max((layer["largest_other_vs_input"] for layer in layers), default=0.0)
    inf, step = m["inference_median_s"], m["train_step_median_s"]
    return [f"`{spec.text}`", f"{1e3 * inf:.1f}", _ratio(inf, base["inference_median_s"]),
            _ratio(inf, blur and blur["inference_median_s"]), f"{1e3 * step:.1f}",
            _ratio(step, base["train_step_median_s"]), _ratio(step, blur and blur["train_step_median_s"]),
            f"{m['saved_MiB']:.1f}", _ratio(m["saved_MiB"], base["saved_MiB"]),
            "-" if m["step_peak_MiB"] is None else f"{m['step_peak_MiB']:.0f}", str(m["inserted_layers"]),
            str(worst_kept) if m["inserted_layers"] else "-", f"{largest:.2f}" if m["inserted_layers"] else "-",
            _targets(spec, m, blur)]


HEADERS = ["Method", "Inference ms", "x baseline", "x blurpool", "Train step ms", "x baseline", "x blurpool",
           "Saved for backward MiB", "x baseline", "Step peak MiB (CUDA)", "Inserted layers",
           "Max input-sized tensors kept / layer", "Largest other saved / input", "Targets"]


def arch_table(result: dict, specs: list[MethodSpec]) -> str:
    methods = result["methods"]
    base = methods["baseline"]
    if base["status"] != "done":
        raise ConfigError(f"the baseline {result['arch']} could not be measured ({base['status']})")
    blur_spec = next((s for s in specs if s.method == "blurpool" and methods[s.text]["status"] == "done"), None)
    blur = methods[blur_spec.text] if blur_spec else None
    rows = [_summary_row(s, methods[s.text], base, blur) if methods[s.text]["status"] == "done"
            else [f"`{s.text}`", methods[s.text]["status"], *[""] * (len(HEADERS) - 2)] for s in specs]
    return markdown_table(HEADERS, rows)


def layer_table(result: dict) -> str:
    """Per inserted layer of each method: its input, what it saves, and how that compares."""
    rows = [[f"`{label}`", f"`{path}`", f"{d['input_MiB']:.2f}", f"{d['saved_MiB']:.2f}",
             "yes" if d["keeps_input"] else "no", f"{d['largest_other_vs_input']:.2f}", str(d["input_sized_kept"])]
            for label, m in result["methods"].items() if m["status"] == "done"
            for path, d in m["layers"].items()]
    return markdown_table(["Method", "Layer", "Input MiB", "Saved MiB", "Keeps its input",
                           "Largest other / input", "Input-sized kept"], rows)


def _check(args: argparse.Namespace) -> None:
    if args.batch < 1 or args.size < 32 or args.warmup < 0:
        raise ConfigError("--batch must be >= 1, --size >= 32 and --warmup >= 0")
    known = set(torchvision.models.list_models(torchvision.models))
    for arch in args.archs:
        if arch not in known:
            raise ConfigError(f"--archs {arch!r}: not a torchvision classification model (e.g. resnet50, convnext_tiny)")


def main(argv: list[str] | None = None) -> int:
    parser = get_args_parser()
    if parser.parse_known_args(argv)[0].quick:
        parser.set_defaults(size=64, batch=2, repeats=2, warmup=0)
    args = parser.parse_args(argv)
    try:
        _check(args)
        specs = parse_methods(args.methods)
        if not any(s.method is None for s in specs):
            raise ConfigError("--methods must include 'baseline': the ratios are to it")
        device = setup_torch(args)
        info = machine_info(device)
        print_machine(info)
        results = [measure_arch(arch, specs, args, device) for arch in args.archs]
        texts = [f"## {r['arch']}, batch {args.batch}, {args.size}px, {device}\n\n{arch_table(r, specs)}\n\n"
                 f"Per inserted layer (one training-mode forward pass):\n\n{layer_table(r)}" for r in results]
    except AntialiasedError as exc:
        print(f"bench_methods_cost: {exc}", file=sys.stderr)
        return 2
    where = f"{info['gpu']} ({info['cpu']}, {info['cpu_cores']} cores)" if "gpu" in info else \
        f"{info['cpu']}, {info['cpu_cores']} cores"
    header = (f"Machine: {where}, torch "
              f"{info['torch']}, {info['torch_threads']} thread(s), {args.clock} clock; medians of {args.repeats} "
              f"interleaved round(s).")
    text = "\n\n".join([header, *texts])
    print(text)
    atomic_write_text(args.out / "methods_cost.md", text + "\n")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_json(args.out / "methods_cost.json", {"benchmark": "methods_cost", "machine": info,
                                                "settings": settings, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
