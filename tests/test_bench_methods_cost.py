"""benchmarks/bench_methods_cost.py (issue 19, deliver 5) in quick mode: every column filled, ratios to the
baseline, the per-layer accounting of saved tensors. No timing assertions."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import torchvision

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_methods_cost  # noqa: E402
from _methods_common import ISSUE_19_METHODS, NOT_AVAILABLE  # noqa: E402
from antialiased.models.antialias import METHODS  # noqa: E402


def _rows(text: str) -> dict[str, list[str]]:
    lines = text[text.index("| Method | Inference ms"):].splitlines()
    rows = {}
    for line in lines[2:]:
        if not line.startswith("| "):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_quick_run_on_resnet18(tmp_path, capsys, one_thread):
    missing = [m for m in ISSUE_19_METHODS if m not in METHODS][:1]
    args = ["--quick", "--archs", "resnet18", "--device", "cpu", "--out", str(tmp_path),
            "--methods", "baseline", "blurpool:3", "aps", *missing]
    assert bench_methods_cost.main(args) == 0
    out = capsys.readouterr().out
    assert "Machine: " in out and f"torch {torch.__version__}" in out
    rows = _rows(out)
    assert list(rows) == ["baseline", "blurpool:3", "aps", *missing]
    assert rows["baseline"][1] == rows["baseline"][4] == rows["baseline"][7] == "1.00x"
    for m in missing:
        assert rows[m][0] == NOT_AVAILABLE
    result = json.loads((tmp_path / "methods_cost.json").read_text())["results"][0]
    methods = result["methods"]
    # blurpool computes ResNet-18's strided convs and max pool at stride 1: more activations are saved
    assert methods["blurpool:3"]["saved_MiB"] > methods["baseline"]["saved_MiB"] > 0
    assert float(rows["blurpool:3"][7].rstrip("x")) == pytest.approx(
        methods["blurpool:3"]["saved_MiB"] / methods["baseline"]["saved_MiB"], abs=0.006)
    assert methods["baseline"]["inserted_layers"] == 0 and methods["aps"]["inserted_layers"] > 0
    for m in ("baseline", "blurpool:3", "aps"):
        assert len(methods[m]["inference_s"]) == len(methods[m]["train_step_s"]) == 2  # quick: 2 rounds


def test_saved_total_agrees_with_bench_memory(one_thread):
    """The total against benchmarks/bench_memory.py's count (which keeps the parameters autograd saves)."""
    from bench_memory import saved_bytes

    model = torchvision.models.resnet18(num_classes=10)
    x = torch.rand(2, 3, 64, 64)
    mine, _ = bench_methods_cost._saved(model, x)
    theirs, _ = saved_bytes(model, x)
    own = sum(t.untyped_storage().nbytes() for t in (*model.parameters(), *model.buffers()))
    assert 0 < theirs - mine <= own  # the difference: the parameters and buffers autograd keeps


def test_refuses_methods_without_baseline(tmp_path, capsys):
    assert bench_methods_cost.main(["--quick", "--archs", "resnet18", "--out", str(tmp_path),
                                    "--methods", "blurpool:3"]) == 2
    assert "must include 'baseline'" in capsys.readouterr().err


def test_refuses_unknown_architecture(tmp_path, capsys):
    assert bench_methods_cost.main(["--quick", "--archs", "resnet5000", "--out", str(tmp_path),
                                    "--methods", "baseline"]) == 2
    assert "not a torchvision classification model" in capsys.readouterr().err


def test_a_failing_method_gets_its_row(tmp_path, capsys, monkeypatch, one_thread):
    real = bench_methods_cost.build

    def build(arch, spec, size, device):
        if spec.text == "aps":
            raise RuntimeError("no phase here")
        return real(arch, spec, size, device)

    monkeypatch.setattr(bench_methods_cost, "build", build)
    assert bench_methods_cost.main(["--quick", "--archs", "resnet18", "--device", "cpu", "--repeats", "1",
                                    "--out", str(tmp_path), "--methods", "baseline", "aps"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows["aps"][0] == "failed: RuntimeError: no phase here" and rows["baseline"][1] == "1.00x"
    result = json.loads((tmp_path / "methods_cost.json").read_text())["results"][0]
    assert len(result["methods"]["baseline"]["inference_s"]) == 1  # --repeats 1 counts beside --quick
