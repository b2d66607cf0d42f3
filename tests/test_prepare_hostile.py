"""prepare-imagenet against hostile or broken label files and folders: nothing outside --val-dir is
touched, nothing moves when any row is rejected, and each rejected ImageId is named."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from antialiased.cli.prepare import main
from antialiased.data.prepare import (LabelFileError, labels_from_solution_csv, prepare_val_folder,
                                      val_file_name)
from antialiased.errors import DataError, MissingFileError

WNIDS = ["n01440764", "n01443537", "n01484850"]


@pytest.fixture()
def world(tmp_path):
    """``tmp/val`` with 6 flat images; ``tmp/victim.JPEG`` and ``tmp/outside/`` must never change."""
    val = tmp_path / "val"
    val.mkdir()
    labels = {}
    for i in range(1, 7):
        (val / val_file_name(i)).write_bytes(f"image {i}".encode())
        labels[val_file_name(i)] = WNIDS[i % 3]
    (tmp_path / "victim.JPEG").write_bytes(b"precious bytes, not to be moved")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "photo.JPEG").write_bytes(b"outside photo")
    return tmp_path, val, labels


def _snapshot(root: Path) -> dict[str, bytes | str]:
    """Every path under ``root`` with its bytes (files) or link target (links)."""
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = f"-> {os.readlink(path)}" if path.is_symlink() else (path.read_bytes() if path.is_file() else "/")
    return out


def _csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("ImageId,PredictionString\n" + "".join(f"{i},{w} 1 2 3 4\n" for i, w in rows))
    return path


def _rows(labels: dict[str, str]) -> list[tuple[str, str]]:
    return [(name[: -len(".JPEG")], wnid) for name, wnid in sorted(labels.items())]


@pytest.mark.parametrize("image_id", ["../victim", "../../victim", "./../victim", "sub/../../victim",
                                      "..\\victim", "/etc/passwd", "..", ".hidden", "ILSVRC2012_val_1\x00x"])
def test_image_id_that_is_not_a_plain_name_is_rejected_and_nothing_moves(world, image_id, capsys):
    tmp, val, labels = world
    csv = _csv(tmp / "LOC_val_solution.csv", _rows(labels) + [(image_id, WNIDS[0])])
    before = _snapshot(tmp)
    with pytest.raises(LabelFileError) as err:
        labels_from_solution_csv(csv)
    assert repr(image_id + ".JPEG") in str(err.value) and "nothing was moved" in str(err.value)
    assert main(["--val-dir", str(val), "--solution", str(csv), "--expect", "0"]) == 2
    message = capsys.readouterr().err
    assert repr(image_id + ".JPEG") in message and "line 8" in message
    with pytest.raises(LabelFileError, match="not a plain file name"):  # the library refuses it too
        prepare_val_folder(val, {**labels, image_id + ".JPEG": WNIDS[0]})
    assert _snapshot(tmp) == before  # byte for byte: the victim outside, and every image still flat


def test_duplicated_image_id_is_rejected_not_relabelled(world, capsys):
    tmp, val, labels = world
    first = sorted(labels)[0][: -len(".JPEG")]
    csv = _csv(tmp / "LOC_val_solution.csv", _rows(labels) + [(first, WNIDS[2]), (first, WNIDS[1])])
    before = _snapshot(tmp)
    assert main(["--val-dir", str(val), "--solution", str(csv), "--expect", "0"]) == 2
    message = capsys.readouterr().err
    assert f"{first}.JPEG" in message and "lines 2, 8, 9" in message and "duplicate" in message
    assert _snapshot(tmp) == before


def test_unsafe_class_folder_names_are_rejected(world):
    tmp, val, labels = world
    before = _snapshot(tmp)
    for wnid in ["../outside", "..", "n01440764/../../outside", "", "/tmp", "n0\x00"]:
        with pytest.raises(LabelFileError, match="not a safe folder name") as err:
            prepare_val_folder(val, {**labels, val_file_name(1): wnid})
        assert repr(wnid) in str(err.value)
    assert _snapshot(tmp) == before
    csv = _csv(tmp / "bad_wnid.csv", [("ILSVRC2012_val_00000001", "../outside")])
    with pytest.raises(LabelFileError, match="not a WordNet id"):
        labels_from_solution_csv(csv)


def test_links_leading_out_of_the_folder_are_rejected(world):
    tmp, val, labels = world
    os.unlink(val / val_file_name(1))
    os.symlink(tmp / "outside" / "photo.JPEG", val / val_file_name(1))  # an image that lives outside
    os.symlink(tmp / "outside", val / WNIDS[2])  # a class folder that lives outside
    before = _snapshot(tmp)
    with pytest.raises(LabelFileError) as err:
        prepare_val_folder(val, labels)
    message = str(err.value)
    assert f"{val_file_name(1)!r}" in message and "outside --val-dir" in message
    assert f"{WNIDS[2]!r}" in message
    assert _snapshot(tmp) == before


def test_relative_link_that_would_change_meaning_is_rejected(world):
    tmp, val, labels = world
    os.unlink(val / val_file_name(2))
    os.symlink(val_file_name(3), val / val_file_name(2))  # fine here, dangling once moved into <wnid>/
    before = _snapshot(tmp)
    with pytest.raises(LabelFileError, match="relative symbolic link"):
        prepare_val_folder(val, labels)
    assert _snapshot(tmp) == before
    os.unlink(val / val_file_name(2))
    os.symlink(val / val_file_name(3), val / val_file_name(2))  # an absolute link inside is moved as a link
    report = prepare_val_folder(val, labels)
    assert report.ok and report.moved == 6
    assert os.readlink(val / labels[val_file_name(2)] / val_file_name(2)) == str(val / val_file_name(3))
    assert (tmp / "victim.JPEG").read_bytes() == b"precious bytes, not to be moved"


def test_folders_and_files_in_the_way_are_rejected(world):
    tmp, val, labels = world
    (val / WNIDS[0]).write_bytes(b"a file where the class folder goes")
    os.unlink(val / val_file_name(2))
    (val / val_file_name(2)).mkdir()  # a folder named like a labelled image
    before = _snapshot(tmp)
    with pytest.raises(LabelFileError) as err:
        prepare_val_folder(val, labels)
    assert "is not a folder" in str(err.value) and "is a folder, not an image file" in str(err.value)
    assert _snapshot(tmp) == before


def test_many_rejections_name_the_first_ten_then_count(world):
    tmp, val, labels = world
    csv = _csv(tmp / "LOC_val_solution.csv", _rows(labels) + [(f"../x{i}", WNIDS[0]) for i in range(25)])
    before = _snapshot(tmp)
    with pytest.raises(LabelFileError) as err:
        labels_from_solution_csv(csv)
    message = str(err.value)
    assert "25 row(s)" in message and "'../x9.JPEG'" in message and "'../x10.JPEG'" not in message
    assert "and 15 more" in message and len(err.value.rejected) == 25
    assert _snapshot(tmp) == before


def test_errors_are_the_packages_own(tmp_path):
    (tmp_path / "val").mkdir()
    unreadable = tmp_path / "LOC_val_solution.csv"
    unreadable.write_bytes(b"ImageId,PredictionString\n\xff\xfe\x00garbage,n01440764\n")
    with pytest.raises(DataError, match="LOC_val_solution.csv"):
        labels_from_solution_csv(unreadable)
    with pytest.raises(MissingFileError, match="does not exist"):
        prepare_val_folder(tmp_path / "missing", {})
    with pytest.raises(FileNotFoundError, match="not found"):  # MissingFileError: also a FileNotFoundError
        labels_from_solution_csv(tmp_path / "nope.csv")
