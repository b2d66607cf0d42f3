"""ONNX Runtime vs PyTorch CPU inference of deployed models, side by side in one run.

Each model is exported with ``antialiased.export`` (ONNX, dynamic batch, the default opset) into a
temporary folder and verified against PyTorch (the max |diff| is reported). Then, per batch size,
PyTorch (eval, ``inference_mode``) and an onnxruntime CPU session of every model run round-robin on
the same input (the order rotates each round, so load drifts hit all alike). The table shows
medians, images/s, and onnxruntime's time as a ratio of PyTorch's (< 1: onnxruntime is faster).
Both runtimes use the same number of threads (``--threads``, default torch's choice).

Weights (``--init``): ``calibrated`` (default) takes torchvision's random initialization and sets
the batch-norm statistics from two batches of random inputs, so that activations and logits have
realistic magnitudes (a freshly initialized MobileNet-v2 in eval mode shrinks its activations to
~1e-9, where denormal floats can distort CPU timings); ``pretrained`` loads the published or
torchvision weights (network or cache needed); ``random`` leaves the initialization as it is.

Examples:
    python benchmarks/bench_onnx.py                         # resnet50, resnet50_lpf4, mobilenet_v2_lpf4; batch 1, 16
    python benchmarks/bench_onnx.py --threads 1 --clock cpu --repeats 20 --json results/bench_onnx.json
    python benchmarks/bench_onnx.py --models resnet18_lpf4 --batches 2 --size 64 --repeats 1 --warmup 0   # smoke test
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from common import (  # noqa: E402
    CLOCKS,
    _load,
    interleaved,
    machine_info,
    median,
    print_machine,
    print_table,
    setup_torch,
    write_json,
)

from antialiased.export import VerifySettings, export_model, onnx_session  # noqa: E402
from antialiased.models import create_model  # noqa: E402

DEFAULT_MODELS = ("resnet50", "resnet50_lpf4", "mobilenet_v2_lpf4")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), metavar="NAME",
                        help=f"model names (default: {' '.join(DEFAULT_MODELS)})")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16], help="batch sizes (default 1 16)")
    parser.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: antialiased export's default)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds; each runs every contender once (5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of both runtimes (torch.set_num_threads and onnxruntime's intra-op pool)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or this process's CPU time (robust on a shared machine with --threads 1)")
    parser.add_argument("--init", choices=["calibrated", "random", "pretrained"], default="calibrated",
                        help="weights: random init with batch-norm statistics set on random inputs (default), "
                             "plain random init, or the pretrained weights")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    return parser


def calibrate_batchnorm(model: torch.nn.Module, size: int) -> torch.nn.Module:
    """Set every batch norm's running statistics to those of two random batches (cumulative average)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    generator = torch.Generator().manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(2 if norms else 0):
            model(torch.randn(8, 3, size, size, generator=generator))
    return model.eval()


def build(name: str, init: str, size: int) -> torch.nn.Module:
    model = create_model(name, pretrained=init == "pretrained")
    return calibrate_batchnorm(model, size) if init == "calibrated" else model.eval()


def export_all(names: list[str], args: argparse.Namespace, folder: Path) -> dict[str, tuple]:
    """name -> (PyTorch model, onnxruntime session, max |diff| of the verification)."""
    found, size, opset = {}, args.size, args.opset
    for name in names:
        model = build(name, args.init, size)
        result = export_model(model, folder / f"{name}.onnx", name=name, opset=opset, input_size=size,
                              verify=VerifySettings(num_images=2, random_batches=(1,)))
        print(f"{name}: ONNX opset {result.opset}, {result.size_bytes / 2**20:.1f} MiB, verified: max |diff| "
              f"{result.verification.max_abs_diff:.1e}, top-1 {'/'.join(map(str, result.verification.top1))}",
              flush=True)
        found[name] = (model, onnx_session(result.path), result.verification.max_abs_diff)
    return found


def _steps(found: dict[str, tuple], x: torch.Tensor) -> dict:
    feed = x.numpy()
    steps = {}
    for name, (model, session, _) in found.items():
        def pytorch(model=model) -> None:
            with torch.inference_mode():
                model(x)

        def onnxruntime(session=session) -> None:
            session.run(None, {"input": feed})

        steps[f"{name}/pytorch"], steps[f"{name}/onnxruntime"] = pytorch, onnxruntime
    return steps


def bench_batch(found: dict[str, tuple], batch: int, args: argparse.Namespace) -> list[dict]:
    x = torch.randn(batch, 3, args.size, args.size)
    times = interleaved(_steps(found, x), args.repeats, args.warmup, torch.device("cpu"), args.clock)
    rows = []
    for name, (_, _, diff) in found.items():
        pt, ort = median(times[f"{name}/pytorch"]), median(times[f"{name}/onnxruntime"])
        rows.append({
            "model": name, "batch": batch,
            "pytorch_ms": round(1e3 * pt, 1), "onnxruntime_ms": round(1e3 * ort, 1),
            "pytorch_img_s": round(batch / pt, 1), "onnxruntime_img_s": round(batch / ort, 1),
            "ort_over_pytorch": round(ort / pt, 3), "speedup": f"{pt / ort:.2f}x",
            "spread_ms": f"{1e3 * (max(times[f'{name}/pytorch']) - min(times[f'{name}/pytorch'])):.1f} / "
                         f"{1e3 * (max(times[f'{name}/onnxruntime']) - min(times[f'{name}/onnxruntime'])):.1f}",
            "max_abs_diff": f"{diff:.1e}",
        })
    print_table(rows, ["model", "batch", "pytorch_ms", "onnxruntime_ms", "ort_over_pytorch", "speedup",
                       "pytorch_img_s", "onnxruntime_img_s", "spread_ms", "max_abs_diff"])
    print(f"load average now: {_load()}\n", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    args.device = "cpu"
    setup_torch(args)
    if min(args.batches) < 1 or args.size < 1:
        raise SystemExit("--batches and --size must be >= 1")
    import onnxruntime

    info = machine_info(torch.device("cpu"))
    info["onnxruntime"] = f"{onnxruntime.__version__} (CPUExecutionProvider, {torch.get_num_threads()} intra-op threads)"
    print_machine(info)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    print(f"settings: {settings}\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_onnx_") as folder:
        found = export_all(args.models, args, Path(folder))
        print()
        rows = [row for batch in args.batches for row in bench_batch(found, batch, args)]
    info["load_average_end"] = _load()
    if args.json:
        write_json(args.json, {"benchmark": "onnx", "machine": info, "settings": settings, "results": rows})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
