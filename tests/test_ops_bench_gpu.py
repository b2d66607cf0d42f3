"""benchmarks/bench_gpu.py in its tiniest mode (CPU, 32x32, batch 2): the command runs, times what
it was asked to, and reports real measurements (no timing values are asserted)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"


def _run(tmp_path: Path, *flags: str, timeout: float = 900) -> tuple[str, dict]:
    out = tmp_path / "bench_gpu.json"
    done = subprocess.run([sys.executable, str(BENCH), "--device", "cpu", "--quick", "--repeats", "1",
                           "--work-dir", str(tmp_path / "work"), "--json", str(out), *flags],
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, json.loads(out.read_text())


def test_help():
    done = subprocess.run([sys.executable, str(BENCH), "--help"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "--budget-seconds" in done.stdout and "--quick" in done.stdout


def test_tiniest_run_times_the_models_it_was_given(tmp_path):
    stdout, result = _run(tmp_path, "--models", "tv50", "lpf4", "--compile", "--no-e2e")
    rows = {r["key"]: r for r in result["models"]}
    assert set(rows) == {"tv50", "lpf4"} and result["rounds"] == 1
    for row in rows.values():
        assert row["train img/s"] > 0 and row["infer img/s"] > 0 and row["saved MiB"] > 0
        assert "train-compiled img/s" not in row  # --compile with no model: none compiled
    assert rows["tv50"]["train overhead"] == 0.0  # the group's baseline
    expected = rows["tv50"]["infer img/s"] / rows["lpf4"]["infer img/s"] - 1.0
    assert rows["lpf4"]["infer overhead"] == pytest.approx(expected)
    paper = next(t for t in result["targets"] if t["target"].startswith("paper recipe"))
    assert paper["value"] == pytest.approx(expected) and paper["met"] == (expected <= 0.13)
    assert "| ours resnet50_lpf4 (paper) | ResNet-50 |" in stdout and "CPU only" in stdout


@pytest.mark.slow  # a compile and three end-to-end subprocesses: minutes on a busy 2-core machine
def test_tiniest_run_with_compile_and_end_to_end(tmp_path):
    stdout, result = _run(tmp_path, "--models", "lpf4", "--compile", "lpf4", "--budget-seconds", "1500",
                          timeout=1800)
    (row,) = result["models"]
    assert row["train-compiled img/s"] > 0 and row["compile s"] >= 0
    runs = {r["run"]: r for r in result["end_to_end"]}
    train = runs["train resnet50_lpf4, ImageNet-sized"]
    assert train["error"] is None and train["images/s"] > 0 and 0 <= train["data wait share"]
    assert runs["train resnet18_lpf4, CIFAR-10"]["images/s"] > 0
    protocols = [r for name, r in runs.items() if name.startswith("protocol")]
    assert {r["run"] for r in protocols} >= {"protocol e", "protocol es", "protocol ec"}, runs
    assert "End to end:" in stdout
