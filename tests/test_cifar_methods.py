"""benchmarks/cifar_reproduction.py, the methods comparison on CIFAR-10: a fast run of the whole path."""
from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cifar_reproduction.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("cifar_reproduction", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table_rows(text: str) -> dict[str, list[str]]:
    """Label -> cells of the markdown table that follows the header 'Accuracy | Crop-shift ...'."""
    rows = {}
    for line in text.split("| | Accuracy | Crop-shift consistency | Circular consistency |")[-1].splitlines()[2:]:
        if not line.startswith("| "):
            break
        cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def _mean_std(cell: str) -> tuple[float, float]:
    mean, std = re.fullmatch(r"([\d.]+) ± ([\d.]+)", cell).groups()
    return float(mean), float(std)


def test_two_variants_two_seeds_end_to_end(script, tmp_path, capsys, cifar10_dir, one_thread):
    # one_thread restores the thread count the script sets
    assert script.main(["--data", str(cifar10_dir), "--seeds", "0", "1", "--filter-sizes", "--methods", "aps",
                        "--epochs", "1", "--train-size", "96", "--test-size", "48", "--width", "4",
                        "--epochs-shift", "1", "--out-dir", str(tmp_path), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    rows = _table_rows(printed)
    assert list(rows) == ["Baseline", "APS"]
    for cells in rows.values():
        for mean, std in map(_mean_std, cells):
            assert math.isfinite(mean) and 0 <= mean <= 100 and math.isfinite(std)
    assert _mean_std(rows["APS"][2]) == (100.0, 0.0)  # circular padding + APS at 28 = 7 x the stride 4
    assert "antialias(smallresnet(), method='aps', circular=True)" in printed
    assert "--seeds 0 1" in printed and "--train-size 96" in printed
    # per-seed result files (the project's schema) whose metrics the table reduces
    files = sorted(tmp_path.glob("results_*.json"))
    data = [json.loads(f.read_text()) for f in files]
    assert sorted(d["seed"] for d in data) == [0, 1] and all(d["schema"] == "antialiased.result/1" for d in data)
    accs = [r["metrics"]["acc1"] for d in data for r in d["results"] if r["method"] is None]
    mean, std = _mean_std(rows["Baseline"][0])
    assert mean == pytest.approx(sum(accs) / 2, abs=0.006)
    assert std == pytest.approx(abs(accs[0] - accs[1]) / math.sqrt(2), abs=0.006)
    assert (tmp_path / "cifar_methods.png").read_bytes()[:4] == b"\x89PNG"
    assert "Conversion summaries" in (tmp_path / "cifar_methods.md").read_text()

    # --from-results rebuilds the same table from the files, training nothing
    assert script.main(["--from-results", str(tmp_path), "--out-dir", str(tmp_path / "again"), "--no-plot"]) == 0
    assert _table_rows(capsys.readouterr().out) == rows


def test_bad_input_is_one_line(script, tmp_path, capsys):
    assert script.main(["--methods", "aps:2", "--out-dir", str(tmp_path)]) == 2
    assert "applies no blur filter" in capsys.readouterr().err
    assert script.main(["--from-results", str(tmp_path / "none"), "--out-dir", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
