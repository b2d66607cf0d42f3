"""Where ConvNeXt-T's FFT-pooling cost goes (issue 19, deliver 5): the patch stem or the pooling.

``blurpool`` keeps ConvNeXt's 4x4 stride-4 patch stem strided (as the paper keeps stems); ``flc`` and
``asap`` convert every subsampling, so the stem's conv runs at stride 1 over the whole image and the
FFT pool follows. This times, in interleaved rounds, inference of the whole network and of its stem
alone for the baseline, ``blurpool:3``, ``flc`` and ``asap`` (random weights, batch 4, 224 px), and
prints the whole network's time and the rest-of-network time (whole minus stem), each against
blurpool's:

    .venv/bin/python benchmarks/fft_stem_share.py --threads 2 --repeats 3
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402

from antialiased import antialias  # noqa: E402
from common import interleaved, machine_info, median  # noqa: E402

METHODS = {"baseline": {}, "blurpool:3": {"method": "blurpool", "filter_size": 3},
           "flc": {"method": "flc"}, "asap": {"method": "asap"}}


def build(options: dict) -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.convnext_tiny(weights=None)
    return (antialias(model, **options) if options else model).eval()


def timed(module: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode():
            module(x)
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, default=224)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    x = torch.randn(args.batch, 3, args.size, args.size)
    models = {name: build(options) for name, options in METHODS.items()}
    steps = {}
    for name, model in models.items():
        steps[name] = timed(model, x)
        steps[f"{name} stem"] = timed(model.features[0], x)
    times = {k: median(v) for k, v in interleaved(steps, args.repeats, 1, torch.device("cpu"), "cpu").items()}
    print("machine:", ", ".join(f"{k}={v}" for k, v in machine_info(torch.device("cpu")).items()))
    blur, blur_rest = times["blurpool:3"], times["blurpool:3"] - times["blurpool:3 stem"]
    print("| method | whole ms | x blurpool | stem ms | rest (whole - stem), x blurpool's rest |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in models:
        whole, stem = times[name], times[f"{name} stem"]
        print(f"| `{name}` | {whole * 1e3:.0f} | {whole / blur:.2f}x | {stem * 1e3:.0f} | {(whole - stem) / blur_rest:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
