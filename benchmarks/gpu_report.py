"""The Markdown report of ``bench_gpu.py``: the machine (card, driver, torch, CUDA, cuDNN), the model
table, the targets, and the end-to-end table."""
from __future__ import annotations

import argparse
import subprocess

import torch

__all__ = ["device_header", "markdown_table"]


def _driver() -> str | None:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def device_header(device: torch.device) -> dict:
    """The card, its driver and memory, and the CUDA and cuDNN versions torch uses (CUDA only)."""
    if device.type != "cuda":
        return {"gpu": None, "driver": None}
    props = torch.cuda.get_device_properties(device)
    return {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / (1 << 30), 1), "driver": _driver(),
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}


def _num(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:+.1f}%"


def _models(rows: list[dict]) -> list[str]:
    lines = ["| model | group | train img/s | train overhead | compiled train img/s | compiled overhead | "
             "inference img/s | inference overhead | train peak MiB | inference peak MiB | saved MiB | compile s |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['group']}{' (baseline)' if r['baseline'] else ''} | "
            f"{_num(r.get('train img/s'), '.1f')} | {_pct(r.get('train overhead'))} | "
            f"{_num(r.get('train-compiled img/s'), '.1f')} | {_pct(r.get('train-compiled overhead'))} | "
            f"{_num(r.get('infer img/s'), '.1f')} | {_pct(r.get('infer overhead'))} | "
            f"{_num(r.get('train peak MiB'), '.0f')} | {_num(r.get('infer peak MiB'), '.0f')} | "
            f"{_num(r.get('saved MiB'), '.0f')} | {_num(r.get('compile s'), '.0f')} |")
    return lines


def _targets(targets: list[dict]) -> list[str]:
    lines = ["| target | measured | met |", "| --- | ---: | :---: |"]
    for t in targets:
        value = t["value"]
        shown = "" if value is None else (_pct(value) if "overhead" in t["target"] else f"{value:.3f}x")
        met = "not measured" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {shown} | {met} |")
    return lines


def _e2e(rows: list[dict]) -> list[str]:
    lines = ["| run | images/s | samples/s | vs bare forward | data wait share | vs model-only | limited by | s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for r in rows:
        lines.append(f"| {r['run']} | {_num(r.get('images/s'), '.1f')} | {_num(r.get('samples/s'), '.1f')} | "
                     f"{_num(r.get('vs bare forward'), '.2f')} | {_pct(r.get('data wait share'))[1:]} | "
                     f"{_num(r.get('vs model-only'), '.2f')} | {r.get('limited by', '')} | "
                     f"{_num(r.get('seconds'), '.0f')} |")
    return lines


def markdown_table(info: dict, args: argparse.Namespace, rows: list[dict], targets: list[dict], e2e: list[dict],
                   rounds: int, notes: list[str], seconds: float) -> str:
    card = info.get("gpu") or f"CPU only ({info['cpu']})"
    head = [f"**{card}**, driver {info.get('driver') or 'n/a'}, torch {torch.__version__}, CUDA {info.get('cuda') or 'n/a'}, "
            f"cuDNN {info.get('cudnn') or 'n/a'}; host {info['cpu']} ({info['cpu_cores']} cores); "
            f"train batch {args.batch}, inference batch {args.infer_batch}, {args.size}x{args.size}, bf16 autocast, "
            f"channels_last, compile backend {args.compile_backend}; {rounds} interleaved rounds of {args.steps} "
            f"steps, medians; {seconds:.0f} s in all.", "",
            "Overheads: time per image over the group's baseline (the same mode). Peak MiB: a step's peak over "
            "the resident weights (CUDA). Saved MiB: what autograd keeps for backward (weights excluded).", ""]
    lines = head + _models(rows) + ["", "Targets:", ""] + _targets(targets)
    if e2e:
        lines += ["", "End to end:", ""] + _e2e(e2e)
    if notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in notes]
    return "\n".join(lines)
