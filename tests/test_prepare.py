"""antialiased prepare-imagenet: fake ILSVRC2012 val files sorted into wnid folders, idempotently."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from antialiased.cli.prepare import main
from antialiased.data.prepare import (labels_from_ground_truth, labels_from_solution_csv, prepare_val_folder,
                                      read_synsets, val_file_name)
from tests._evalutil import sample_files


@pytest.fixture()
def fake_val(tmp_path, imagenet_sample_dir):
    """12 real photos renamed ILSVRC2012_val_XXXXXXXX.JPEG, a synsets table and a ground-truth file."""
    files = sample_files(imagenet_sample_dir, 12, step=83)
    wnids = sorted({f.name.split("_")[0] for f in files})
    synsets = tmp_path / "synsets.txt"
    # ids in an order unrelated to sorted wnids, as in the devkit
    order = list(reversed(wnids))
    synsets.write_text("".join(f"{w} some words\n" for w in order))
    val = tmp_path / "val"
    val.mkdir()
    truth = []
    for i, f in enumerate(files, start=1):
        (val / val_file_name(i)).write_bytes(f.read_bytes())
        truth.append(order.index(f.name.split("_")[0]) + 1)
    gt = tmp_path / "ILSVRC2012_validation_ground_truth.txt"
    gt.write_text("\n".join(map(str, truth)) + "\n")
    expected = {val_file_name(i): f.name.split("_")[0] for i, f in enumerate(files, start=1)}
    return val, gt, synsets, expected


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_ground_truth_sorting_is_idempotent(fake_val, capsys):
    val, gt, synsets, expected = fake_val
    before = sorted(_tree(val).values())
    argv = ["--val-dir", str(val), "--ground-truth", str(gt), "--synsets", str(synsets), "--expect", "12"]
    assert main(argv + ["--dry-run"]) == 0
    assert "would move 12" in capsys.readouterr().out
    assert all(p.parent == val for p in val.rglob("*.JPEG"))  # dry run moved nothing
    assert main(argv) == 0
    assert "verified: all 12" in capsys.readouterr().out
    tree = _tree(val)
    assert {Path(k).name: Path(k).parent.name for k in tree} == expected
    assert sorted(tree.values()) == before  # same bytes: moved, nothing lost or altered
    assert main(argv) == 0
    assert "moved 0 image(s), 12 already in place" in capsys.readouterr().out
    assert _tree(val) == tree


def test_solution_csv(fake_val, tmp_path):
    val, _, _, expected = fake_val
    csv = tmp_path / "LOC_val_solution.csv"
    csv.write_text("ImageId,PredictionString\n" + "".join(
        f"{name[:-5]},{wnid} 10 20 200 220 {wnid} 1 2 3 4\n" for name, wnid in expected.items()))
    assert labels_from_solution_csv(csv) == expected
    report = prepare_val_folder(val, labels_from_solution_csv(csv), expected=12)
    assert report.ok and report.moved == 12


def test_never_overwrites_and_reports_problems(fake_val):
    val, gt, synsets, expected = fake_val
    labels = labels_from_ground_truth(gt, read_synsets(synsets))
    first = sorted(labels)[0]
    (val / labels[first]).mkdir()
    (val / labels[first] / first).write_bytes(b"a different file")
    os.unlink(val / sorted(labels)[1])
    (val / "unrelated.txt").write_text("keep me")
    report = prepare_val_folder(val, labels)
    assert report.conflicts == [str(val / first)] and report.missing == [sorted(labels)[1]]
    assert report.moved == 10 and not report.ok
    assert (val / first).exists() and (val / labels[first] / first).read_bytes() == b"a different file"
    assert report.left_in_folder == ["unrelated.txt"]


def test_bad_inputs_give_clear_errors(fake_val, tmp_path, capsys):
    val, gt, synsets, _ = fake_val
    assert main(["--val-dir", str(val), "--ground-truth", str(gt), "--synsets", str(synsets)]) == 2
    assert "lists 12 images, expected 50000" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--val-dir", str(val), "--ground-truth", str(gt)])
    assert "--devkit DIR (SciPy) or --synsets FILE" in capsys.readouterr().err
    assert main(["--val-dir", str(tmp_path / "missing"), "--ground-truth", str(gt), "--synsets", str(synsets),
                 "--expect", "0"]) == 2
    assert "does not exist" in capsys.readouterr().err
