"""benchmarks/seg_evidence.py (issue 18, deliver 6): the whole path at the tiniest budget, and the budget's skips."""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import seg_evidence  # noqa: E402

TINY = ["--images", "8", "--val-images", "3", "--epochs", "1", "--size", "40", "--width", "4", "-b", "4",
        "--threads", "1", "--epochs-shift", "1"]
LABELS = ["Baseline", "Tri-3, down only", "Tri-3, down + up", "APS, circular, polyphase up"]


def _cells(text: str, label: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip().strip("*") for cell in line.strip("|").split("|")][1:]


def test_two_seeds_table_is_the_mean_and_std_of_the_runs(tmp_path, capsys, one_thread):
    out = tmp_path / "ev"
    assert seg_evidence.main([*TINY, "--seeds", "0", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    saved = json.loads((out / "seg_evidence.json").read_text())
    assert saved["command"].startswith("python benchmarks/seg_evidence.py --images 8")
    assert {"cpu", "cpu_cores", "torch_threads", "torch", "load_average_start"} <= set(saved["machine"])
    runs = saved["runs"]
    assert [(r["seed"], r["label"]) for r in runs] == [(s, label) for s in (0, 1) for label in LABELS]
    for label in LABELS:  # each cell: mean ± sample std over the two seeds, from the runs' own figures
        values = [[r["metrics"][k] for r in runs if r["label"] == label]
                  for k in ("miou", "consistency", "circular_consistency")]
        expected = [f"{statistics.fmean(v):.2f} ± {statistics.stdev(v):.2f}" for v in values]
        assert _cells(printed, label) == expected
    assert _cells(printed, LABELS[3])[2] == "100.00 ± 0.00"  # APS, circular: exactly equivariant
    assert all(r["metrics"]["pairs"] == 3 for r in runs)
    text = (out / "seg_evidence.md").read_text()
    assert text in printed and "Budget: --budget-seconds 900" in text and "Machine: " in text
    assert (out / "seg_evidence.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "seg_shapes" / "classes.txt").is_file()


def test_budget_skips_runs_and_says_so(tmp_path, capsys, one_thread):
    out = tmp_path / "ev"
    # writing the data alone takes longer than the budget: no run may start
    assert seg_evidence.main([*TINY, "--seeds", "0", "--budget-seconds", "0.001", "--out", str(out)]) == 0
    runs = json.loads((out / "seg_evidence.json").read_text())["runs"]
    assert [r["status"] for r in runs] == ["skipped: over --budget-seconds"] * 4
    printed = capsys.readouterr().out
    assert "(no run finished)" in printed and "Not run (over --budget-seconds): baseline (seed 0), " \
        "blurpool:3/down (seed 0), blurpool:3 (seed 0), aps (seed 0)." in printed
    assert not (out / "seg_evidence.png").exists()


def test_bad_settings_end_in_one_line(tmp_path, capsys):
    assert seg_evidence.main(["--size", "44", "--out", str(tmp_path / "ev")]) == 2
    assert "multiples of the U-Net's total stride 8" in capsys.readouterr().err
    assert not (tmp_path / "ev").exists()
