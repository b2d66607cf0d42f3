"""bench-runtime: interleaved timing, the paper's metrics beside the times, table, JSON and plot."""
from __future__ import annotations

import itertools
import json

import pytest
import torch
from torch import nn

from antialiased.cli.runtime import main as runtime_main
from antialiased.runtime import published_metrics, time_forward


class _Recorder(nn.Module):
    def __init__(self, name, log):
        super().__init__()
        self.name, self.log = name, log

    def forward(self, x):
        self.log.append(self.name)
        return x


def test_time_forward_interleaves_and_warms_up():
    log = []
    models = {n: _Recorder(n, log) for n in "abc"}
    ticks = itertools.count()
    times = time_forward(models, torch.zeros(1), repeats=2, warmup=1, clock=lambda: float(next(ticks)))
    # rounds rotate the order: abc, bca, cab (the first is warm-up and untimed)
    assert "".join(log) == "abcbcacab"
    assert {k: len(v) for k, v in times.items()} == {"a": 2, "b": 2, "c": 2}
    assert all(t == 1.0 for v in times.values() for t in v)  # one clock tick per timed call
    with pytest.raises(ValueError, match="repeats"):
        time_forward(models, torch.zeros(1), repeats=0)


def test_published_metrics_from_the_registry():
    assert published_metrics("resnet50", 4) == {"acc1": 77.23, "consistency": 91.29}  # from-scratch Tri-4
    assert published_metrics("resnet50", None) == {"acc1": 76.16, "consistency": 89.20}
    assert published_metrics("nonet", 4) is None


def test_tiny_benchmark_table_json_plot(tmp_path, capsys):
    out = tmp_path / "rt"
    rc = runtime_main(["--archs", "resnet18", "--filter-sizes", "2", "5", "-b", "2", "--image-size", "64",
                       "--repeats", "1", "--warmup", "0", "--device", "cpu", "--threads", "2",
                       "--out-dir", str(out), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| resnet18 | Baseline |" in printed and "| resnet18 | Bin-5 |" in printed
    data = json.loads((out / "runtime.json").read_text())
    rows = data["rows"]
    assert [r["model"] for r in rows] == ["resnet18", "resnet18_lpf2", "resnet18_lpf5"]
    assert all(r["median_ms"] > 0 and len(r["times_ms"]) == 1 for r in rows)
    assert rows[2]["acc1"] == 71.38 and rows[0]["consistency"] == 85.11
    assert data["settings"]["batch_size"] == 2 and data["settings"]["image_size"] == 64
    assert (out / "runtime.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "runtime.md").read_text().count("| resnet18 |") == 3


def test_bad_arguments(tmp_path, capsys):
    assert runtime_main(["--archs", "resnet5000", "--out-dir", str(tmp_path)]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert runtime_main(["--archs", "resnet18", "--repeats", "0", "--out-dir", str(tmp_path)]) == 2
    assert "--repeats" in capsys.readouterr().err


def test_every_name_the_registry_builds_is_timed(tmp_path, capsys):
    """timm/ names (absent from list_models()'s default list) and converted torchvision names are accepted."""
    pytest.importorskip("timm", reason="timm is an optional dependency (pip install timm)")
    out = tmp_path / "rt"
    rc = runtime_main(["--archs", "timm/mobilenetv3_small_050", "mobilenet_v3_small", "--filter-sizes", "2",
                       "-b", "1", "--image-size", "64", "--repeats", "1", "--warmup", "0", "--device", "cpu",
                       "--out-dir", str(out), "--no-progress", "--no-plot"])
    assert rc == 0, capsys.readouterr().err
    rows = json.loads((out / "runtime.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["timm/mobilenetv3_small_050", "timm/mobilenetv3_small_050_lpf2",
                                          "mobilenet_v3_small", "mobilenet_v3_small_lpf2"]
    assert all(r["median_ms"] > 0 for r in rows) and rows[0]["acc1"] is None  # no paper figures for these


def test_names_are_checked_before_any_timing(tmp_path, capsys, monkeypatch):
    import antialiased.cli.runtime

    monkeypatch.setattr(antialiased.cli.runtime, "benchmark_runtime", lambda *a, **k: pytest.fail("must not time"))
    argv = ["--archs", "resnet5000", "vit_b_16", "resnet18_lpf2", "resnet18", "--filter-sizes", "2", "8",
            "--out-dir", str(tmp_path / "rt")]
    assert runtime_main(argv) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0].startswith("antialiased bench-runtime: error: cannot time every model asked for")
    assert lines[1].startswith("  unknown model 'resnet5000'. Closest names: resnet50")
    assert "resnet5000_lpf" not in err  # an unknown baseline is named once, not once per variant
    assert "'vit_b_16_lpf2' cannot be made: vit_b_16 is a vision transformer" in err
    assert "--archs takes baseline names: 'resnet18_lpf2' is anti-aliased; give 'resnet18'" in err
    assert "filter size 8 in 'resnet18_lpf8' is out of range" in err
    assert not (tmp_path / "rt").exists()


def test_timm_names_without_timm_say_how_to_install_it(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    assert runtime_main(["--archs", "timm/resnet18", "--out-dir", str(tmp_path)]) == 2
    assert "timm/ model names need timm, an optional dependency: pip install timm" in capsys.readouterr().err
