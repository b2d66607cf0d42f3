"""Report tables: the paper's Pareto marks from its own numbers, merging, CSV, plots, CLI."""
from __future__ import annotations

import csv
import json
import re

import pytest

from antialiased.cli.report import main as report_main
from antialiased.evaluation.results import make_result as _make_result, write_result
from antialiased.reporting import load_results, markdown_table, pareto_front, summarize

LABEL_TO_SIZE = {"Baseline": None, "Rect-2": 2, "Tri-3": 3, "Tri-4": 4, "Bin-5": 5}
# Tables of the seed whose value marks follow the stated rule everywhere. In the others the
# hand-made marks are inconsistent: ResNet18 and MobileNet-v2 leave a dominated row's values
# unitalicized, DenseNet121 italicizes only one value of a dominated row, ResNet34 leaves the best
# consistency (Tri-4, 89.53) unbolded. Their row-name (Pareto) marks are all reproduced.
CONSISTENT = ["AlexNet", "VGG16", "VGG16bn", "ResNet50", "ResNet101"]


def make_result(**kw):
    base = dict(dataset="test", seed=None, device="cpu", counts={}, skipped_files=[], settings={})
    return _make_result(**{**base, **kw})


def save_result(result, path):
    (path.parent / path.stem).mkdir()
    return write_result(result, path.parent / path.stem)


def _seed_tables(shared_dir):
    text = (shared_dir / "seed" / "README_IMAGENET.md").read_text()
    tables = {}
    for block in re.split(r"\n(?=\*\*[^*\n]+\[\(plot\)\])", text)[1:]:
        name = re.match(r"\*\*([^*\[]+?) \[", block).group(1)
        rows = re.findall(r"^\|(.+?)\|(.+?)\|(.+?)\| *$", block, flags=re.M)[2:]
        tables[name] = [tuple(c.strip() for c in row) for row in rows]
    return tables


def _records(name, rows):
    out = []
    for label, acc, cons in rows:
        size = LABEL_TO_SIZE[label.strip("*")]
        out.append(make_result(model=name if size is None else f"{name}_lpf{size}", arch=name, filter_size=size,
                               weights="published", protocol="accuracy",
                               metrics={"acc1": float(acc.strip("*")), "consistency": float(cons.strip("*"))}))
    return out


def test_seed_tables_parsed(shared_dir):
    tables = _seed_tables(shared_dir)
    assert len(tables) == 9 and all(len(rows) == 5 for rows in tables.values())
    assert tables["ResNet50"][3] == ("**Tri-4**", "**77.23**", "91.29")


@pytest.mark.parametrize("name", CONSISTENT)
def test_reproduces_seed_marks_exactly(shared_dir, name):
    rows = _seed_tables(shared_dir)[name]
    ours = markdown_table(summarize(_records(name, rows))[name]).splitlines()[2:]
    assert ours == [f"| {a} | {b} | {c} |" for a, b, c in rows]


def test_reproduces_seed_pareto_names_everywhere(shared_dir):
    for name, rows in _seed_tables(shared_dir).items():
        variants = summarize(_records(name, rows))[name]
        assert [v.pareto for v in variants] == [r[0].startswith("**") for r in rows], name


def test_pareto_front_rules():
    assert pareto_front([(1, 1), (1, 1)]) == [True, True]  # equal points do not dominate each other
    assert pareto_front([(1, 2), (1, 1)]) == [True, False]  # equal in one, worse in the other
    assert pareto_front([(2, 1), (1, 2), (0, 0)]) == [True, True, False]


def test_merges_files_and_seeds(tmp_path):
    # accuracy from one file, consistency from another, two seeds of a demo file
    save_result(make_result(model="resnet18_lpf4", arch="resnet18", filter_size=4, weights="x",
                            protocol="accuracy", metrics={"acc1": 71.0}), tmp_path / "a.json")
    save_result(make_result(model="resnet18_lpf4", arch="resnet18", filter_size=4, weights="x",
                            protocol="shift_consistency", metrics={"consistency": 88.0}), tmp_path / "b.json")
    for seed, (acc, cons) in enumerate([(69.0, 85.0), (70.0, 86.0)]):
        top = make_result(model="demo", arch="demo", filter_size=None, weights="demo", protocol="demo",
                          metrics={}, seed=seed)
        top["results"] = [{"model": "resnet18", "arch": "resnet18", "filter_size": None,
                           "metrics": {"acc1": acc, "consistency": cons}}]
        save_result(top, tmp_path / f"seed{seed}.json")
    records = load_results([tmp_path])
    assert all(r["schema"] == "antialiased.result/1" for r in records)
    rows = summarize(records)["resnet18"]
    assert [v.label for v in rows] == ["Baseline", "Tri-4"]
    base, lpf = rows
    assert base.acc.n == 2 and base.acc.mean == pytest.approx(69.5) and base.acc.std == pytest.approx(0.7071, abs=1e-3)
    assert (lpf.acc.mean, lpf.cons.mean, lpf.pareto, base.pareto) == (71.0, 88.0, True, False)
    table = markdown_table(rows)
    assert "| *Baseline* | *69.50 ± 0.71* | *85.50 ± 0.71* |" in table
    assert "| **Tri-4** | **71.00** | **88.00** |" in table


def test_missing_metric_is_unranked():
    rows = summarize([
        {"arch": "n", "model": "n", "metrics": {"acc1": 50.0}},
        {"arch": "n", "model": "n_lpf7", "filter_size": 7, "metrics": {"acc1": 40.0, "consistency": 90.0}},
    ])["n"]
    assert rows[0].pareto is None and rows[1].label == "LPF-7"
    assert markdown_table(rows).splitlines()[2] == "| Baseline | **50.00** | – |"


def test_cli_writes_markdown_csv_plots(tmp_path, shared_dir, capsys):
    tables = _seed_tables(shared_dir)
    top = make_result(model="seed", arch="seed", filter_size=None, weights="published", protocol="accuracy", metrics={})
    top["results"] = _records("resnet50", tables["ResNet50"]) + _records("alexnet", tables["AlexNet"])
    paper = save_result(top, tmp_path / "paper")
    out = tmp_path / "rep"
    assert report_main([str(paper), "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "**ResNet50**" in printed and "**AlexNet**" in printed
    assert "| **Tri-4** | **77.23** | 91.29 |" in printed
    assert (out / "report.md").read_text() == printed
    with (out / "report.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10
    r50 = [r for r in rows if r["arch"] == "resnet50"]
    assert [r["pareto"] for r in r50] == ["0", "0", "0", "1", "1"]
    assert float(r50[4]["consistency"]) == pytest.approx(91.31)
    for png in ("resnet50.png", "alexnet.png", "overview.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bad_input(tmp_path, capsys):
    assert report_main([str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text(json.dumps({"model": "x"}))
    assert report_main([str(tmp_path / "bad.json"), "--out-dir", str(tmp_path)]) == 2
    assert "not an antialiased result" in capsys.readouterr().err
