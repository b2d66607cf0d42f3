"""Training memory and step time of anti-aliased models against torchvision's baseline and the peers.

Memory is measured exactly, not sampled: the bytes of the tensors autograd saves for backward during
one training-mode forward pass (``torch.autograd.graph.saved_tensors_hooks``; each storage counted
once, whatever views of it are saved). Target: ours_lpfN at most ours_lpf1 + 3% of the baseline.

Gradients: the published model's parameters and buffers are loaded into ours (same state-dict
layout); one forward/backward of the same images (2 of the batch, float64) must give the same
gradients for every parameter (max relative error reported, relative to the parameter's largest
gradient but at least 1e-6 of the model's; "equal" means <= 1e-9).

Step time: forward + backward + SGD step, round-robin over the contenders, medians of repeats.

``--previous REV`` (default: the commit before the layer's kernels were split) adds the same
anti-aliased model with that version's blur layers: its saved bytes, its gradients (which must
be equal) and its step time, with ``vs_previous`` / ``step_vs_previous`` ratios.

Examples:
    python benchmarks/bench_memory.py                                  # resnet50, batch 8
    python benchmarks/bench_memory.py --archs resnet18 resnet50 densenet121 mobilenet_v2 vgg16 \\
        --json results/bench_memory.json
"""
from __future__ import annotations

import argparse
import copy
import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from common import (  # noqa: E402
    run_per_arch,
    _load,
    add_common_args,
    contenders,
    interleaved,
    load_previous_layers,
    median,
    print_table,
)

MIB = 2**20


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    parser.add_argument("--no-time", action="store_true", help="only memory and gradients, no step timing")
    parser.set_defaults(repeats=3)
    return parser


def saved_bytes(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(bytes, tensors): distinct storages autograd saves for one training-mode forward pass."""
    storages: dict[tuple, int] = {}
    count = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal count
        count += 1
        storage = t.untyped_storage()
        storages[(t.device, storage.data_ptr())] = storage.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    del out
    return sum(storages.values()), count


def gradient_check(published: nn.Module, ours: nn.Module, x: torch.Tensor) -> dict:
    """Load the published model's state into ours, run one batch through both, compare gradients.

    In float64: in float32, batch norm in training mode amplifies summation-order noise to ~1e-2
    relative differences in early layers' gradients (also between two equivalent float32 runs),
    which would hide a real difference; in float64 equal networks agree to ~1e-13.
    """
    published = copy.deepcopy(published).double()
    ours = copy.deepcopy(ours).double()
    ours.load_state_dict(published.state_dict(), strict=True)
    x = x[:2].double()
    target = torch.arange(x.shape[0], device=x.device) % 1000
    grads = []
    for model in (published, ours):
        model.train()
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)  # the same dropout masks (MobileNetV2, VGG) in both models
        nn.functional.cross_entropy(model(x), target).backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    grads[0] = _in_our_names(grads[0], published, ours)
    worst, worst_name = 0.0, ""
    # Some gradients are zero up to rounding (e.g. a linear layer's bias right before batch norm):
    # measure those against the model's overall gradient scale instead of their own.
    floor = 1e-6 * max(g.abs().max().item() for g in grads[0].values())
    for name, g_pub in grads[0].items():
        g_ours = grads[1][name]
        scale = max(g_pub.abs().max().item(), floor) or 1.0
        err = (g_ours - g_pub).abs().max().item() / scale
        if err > worst:
            worst, worst_name = err, name
    return {"max_rel_error": worst, "worst_param": worst_name, "params": len(grads[0]),
            "equal": worst <= 1e-9}


def _in_our_names(grads: dict[str, torch.Tensor], published: nn.Module, ours: nn.Module) -> dict[str, torch.Tensor]:
    """The published model's gradients under our parameter names: loaded, as its weights are, through our
    model's key remapping (the published layout's keys differ from torchvision's)."""
    carrier = copy.deepcopy(ours)
    state = published.state_dict()
    state.update(grads)
    carrier.load_state_dict(state, strict=True)
    return {n: p.detach().clone() for n, p in carrier.named_parameters()}


def _train_step(model: nn.Module, x: torch.Tensor):
    target = torch.arange(x.shape[0], device=x.device) % 1000
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), target).backward()
        optimizer.step()

    return step


def _memory_rows(arch: str, args: argparse.Namespace, memory: dict[str, tuple[int, int]]) -> list[dict]:
    base = memory["baseline"][0]
    lpf1 = memory["ours_lpf1"][0]
    previous = memory.get(f"previous_lpf{args.filter_size}", (None,))[0]
    rows = []
    for label, (nbytes, count) in memory.items():
        row = {"arch": arch, "batch": args.batch, "model": label, "saved_MiB": round(nbytes / MIB, 1),
               "saved_tensors": count, "vs_baseline": round(nbytes / base, 3),
               "vs_previous": round(nbytes / previous, 3) if previous else ""}
        if label == f"ours_lpf{args.filter_size}":
            limit = lpf1 + 0.03 * base
            row["target_MiB"] = f"<= {limit / MIB:.1f}"
            row["met"] = "yes" if nbytes <= limit else "NO"
        rows.append(row)
    return rows


def _gradient_columns(rows: list[dict], models: dict[str, nn.Module], x: torch.Tensor, filter_size: int) -> None:
    """Our gradients against the published model's and the previous version's (same weights)."""
    ours = f"ours_lpf{filter_size}"
    for column, label in (("grads_vs_published", f"published_lpf{filter_size}"),
                          ("grads_vs_previous", f"previous_lpf{filter_size}")):
        if label in models:
            check = gradient_check(models[label], models[ours], x)
            for row in rows:
                if row["model"] == ours:
                    row[column] = f"max rel err {check['max_rel_error']:.1e} ({'equal' if check['equal'] else 'DIFFERENT'})"


def _step_columns(rows: list[dict], models: dict[str, nn.Module], x: torch.Tensor, args: argparse.Namespace,
                  device: torch.device) -> None:
    steps = {label: _train_step(model, x) for label, model in models.items()}
    times = interleaved(steps, args.repeats, args.warmup, device, args.clock)
    base_t = median(times["baseline"])
    previous = f"previous_lpf{args.filter_size}"
    for row in rows:
        t = median(times[row["model"]])
        row["step_ms"] = round(1e3 * t, 1)
        row["step_ratio"] = round(t / base_t, 3)
        row["step_vs_previous"] = round(t / median(times[previous]), 3) if previous in times else ""


def bench_arch(arch: str, args: argparse.Namespace, device: torch.device) -> tuple[list[dict], list[str]]:
    found, notes = contenders(arch, args.filter_size, peers=not args.no_peers,
                              previous=load_previous_layers(args.previous))
    torch.manual_seed(0)
    models = {c.label: c.build().to(device) for c in found}
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    rows = _memory_rows(arch, args, {label: saved_bytes(model, x) for label, model in models.items()})
    _gradient_columns(rows, models, x, args.filter_size)
    if not args.no_time:
        _step_columns(rows, models, x, args, device)
    print_table(rows, ["arch", "batch", "model", "saved_MiB", "saved_tensors", "vs_baseline", "vs_previous",
                       "target_MiB", "met", "grads_vs_published", "grads_vs_previous", "step_ms", "step_ratio",
                       "step_vs_previous"])
    print(f"load average now: {_load()}\n", flush=True)
    del models
    gc.collect()
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.batch < 1:
        raise SystemExit(f"--batch must be >= 1, got {args.batch}")
    return run_per_arch("training_memory", args, bench_arch)


if __name__ == "__main__":
    raise SystemExit(main())
