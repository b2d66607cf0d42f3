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
