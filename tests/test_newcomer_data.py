"""Issue 17 (a newcomer's first hour), the data side: the layouts people have (``val/`` or ``test/``,
``--val-split``), a cap on validation images, worker counts that fit the machine, and data
messages that say what is actually wrong."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from antialiased.data import DatasetLayoutError, ImageFolderDataset, eval_transform, find_split, find_val_split
from antialiased.data import loaders
from antialiased.data.loaders import default_workers
from antialiased.errors import DataError
from test_training_fixtures import load, register_tiny_models, tiny_args, train_cli, train_fails
from tests._evalutil import read_result, sample_files

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = ("airplane", "cat", "ship")


def _link_split(cifar10_dir: Path, dest: Path, split: str, per_class: int, source: str, skip: int = 0) -> None:
    for cls in CLASSES:
        (dest / split / cls).mkdir(parents=True, exist_ok=True)
        for image in sorted((cifar10_dir / source / cls).iterdir())[skip:skip + per_class]:
            os.symlink(image, dest / split / cls / image.name)


@pytest.fixture(scope="module")
def cifar_layout(cifar10_dir: Path, tmp_path_factory) -> Path:
    """CIFAR-10's usual layout, small: ``train/`` (8 per class) and ``test/`` (4 per class), no ``val/``."""
    root = tmp_path_factory.mktemp("cifar_layout")
    _link_split(cifar10_dir, root, "train", 8, "train")
    _link_split(cifar10_dir, root, "test", 4, "test")
    return root


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------------- layouts
def test_training_validates_on_test_when_there_is_no_val_folder(cifar_layout, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_cli(*tiny_args(cifar_layout, out, "-ep", "1", "-b", "8")) == 0
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if "validat" in line and "test" in line]
    assert len(lines) == 1 and str(cifar_layout / "test") in lines[0], printed
    record = _records(out)[-1]
    # the keys stay val_acc1/val_acc5 whichever folder; the folder is a field of its own
    assert record["val_split"] == "test" and record["val_images"] == 12
    assert {"val_acc1", "val_acc5"} <= set(record) and not any(k.startswith("test_") for k in record)
    assert load(out / "checkpoint.pth.tar")["val_split"] == "test"


def test_val_split_chooses_the_folder_in_training_and_evaluation(cifar10_dir, tmp_path):
    root = tmp_path / "data"
    _link_split(cifar10_dir, root, "train", 8, "train")
    _link_split(cifar10_dir, root, "val", 2, "test")
    _link_split(cifar10_dir, root, "holdout", 3, "test", skip=10)
    out = tmp_path / "run"
    assert train_cli(*tiny_args(root, out, "-ep", "1", "-b", "8")) == 0
    assert (_records(out)[-1]["val_split"], _records(out)[-1]["val_images"]) == ("val", 6)  # val/ first
    out2 = tmp_path / "run2"
    assert train_cli(*tiny_args(root, out2, "-ep", "1", "-b", "8", "--val-split", "holdout")) == 0
    assert (_records(out2)[-1]["val_split"], _records(out2)[-1]["val_images"]) == ("holdout", 9)
    # evaluation takes the same flag (the checkpoint records the classes, which match)
    results = tmp_path / "results"
    assert train_cli("--data", str(root), "-a", "aa_tinynet_lpf2", "--resume", str(out2 / "checkpoint.pth.tar"),
                     "-e", "-j", "0", "--val-split", "holdout", "--out-dir", str(results)) == 0
    result = read_result(results, "accuracy")
    assert result["counts"]["images"] == 9 and result["dataset"] == str((root / "holdout").resolve())
    err = train_fails(DatasetLayoutError, "--val-split", *tiny_args(root, tmp_path / "run3", "--val-split", "nope"))
    assert "holdout" in str(err) and "val" in str(err)  # names the folders that are there


def test_evaluation_accepts_a_test_folder(cifar_layout, tmp_path, caplog):
    register_tiny_models()
    with caplog.at_level("INFO"):
        assert train_cli("--data", str(cifar_layout), "-a", "aa_tinynet_lpf2", "--crop-size", "32", "-e", "-j", "0",
                         "--out-dir", str(tmp_path)) == 0
    result = read_result(tmp_path, "accuracy")
    assert result["counts"]["images"] == 12 and result["dataset"] == str((cifar_layout / "test").resolve())
    assert any(str(cifar_layout / "test") in r.getMessage() for r in caplog.records)


def test_audit_takes_val_split():
    from antialiased.cli.audit import audit_config, get_args_parser

    args = get_args_parser().parse_args(["-a", "resnet18", "--data", "d", "--val-split", "holdout"])
    assert audit_config(args).data.val_split == "holdout"


def test_find_val_split_prefers_val_then_test(tmp_path):
    (tmp_path / "test" / "a").mkdir(parents=True)
    assert find_val_split(tmp_path) == tmp_path / "test"
    (tmp_path / "val" / "a").mkdir(parents=True)
    assert find_val_split(tmp_path) == tmp_path / "val"
    assert find_val_split(tmp_path, "test") == tmp_path / "test"
    assert find_val_split(tmp_path / "test") == tmp_path / "test"  # the split folder itself


# ----------------------------------------------------------------------------------- messages
def _flat(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        Image.new("RGB", (8, 8)).save(folder / name)
    return folder


def test_an_empty_val_folder_says_it_is_empty(tmp_path):
    (tmp_path / "val").mkdir()
    with pytest.raises(DatasetLayoutError) as err:
        find_val_split(tmp_path)
    message = str(err.value)
    assert "is empty" in message and "val/<class>/" in message
    assert "found only files" not in message and "prepare-imagenet" not in message
    (tmp_path / "test" / "cat").mkdir(parents=True)  # a usable test/ beside it: named as the way out
    with pytest.raises(DatasetLayoutError, match=r"is empty.*--val-split test"):
        find_val_split(tmp_path)


def test_a_file_given_as_data_says_it_is_a_file(tmp_path):
    archive = tmp_path / "cifar10.tar.gz"
    archive.write_bytes(b"\x1f\x8b not really")
    for find in (lambda p: find_split(p, "train"), find_val_split, ImageFolderDataset):
        with pytest.raises(DatasetLayoutError) as err:
            find(archive)
        message = str(err.value)
        assert "is a file, not a folder" in message and "does not exist" not in message
        assert "extract" in message  # an archive: unpack it first


def test_prepare_imagenet_hint_only_for_imagenets_flat_val_folder(tmp_path):
    _flat(tmp_path / "imagenet" / "val", ["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000002.JPEG"])
    with pytest.raises(DatasetLayoutError) as err:
        find_val_split(tmp_path / "imagenet")
    assert "prepare-imagenet" in str(err.value) and "flat" in str(err.value)
    # flat photos that are not ImageNet's validation set: class folders, no prepare-imagenet
    _flat(tmp_path / "photos" / "val", ["cat1.jpg", "dog1.jpg"])
    with pytest.raises(DatasetLayoutError) as err:
        find_val_split(tmp_path / "photos")
    assert "prepare-imagenet" not in str(err.value) and "2 image files" in str(err.value)
    # no validation folder at all (only train/): which folders exist and the flag to choose one
    (tmp_path / "only" / "train" / "a").mkdir(parents=True)
    (tmp_path / "only" / "valid" / "a").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError) as err:
        find_val_split(tmp_path / "only")
    message = str(err.value)
    assert "prepare-imagenet" not in message and "--val-split valid" in message and "test" in message


def _wnid_folder(root: Path, files: list[Path]) -> list[str]:
    wnids = []
    for f in files:
        wnid = f.name.split("_")[0]
        (root / "val" / wnid).mkdir(parents=True, exist_ok=True)
        os.symlink(f, root / "val" / wnid / f.name)
        wnids.append(wnid)
    return sorted(wnids)


@pytest.fixture(scope="module")
def fifty_classes(imagenet_sample_dir, tmp_path_factory) -> tuple[Path, list[str], Path]:
    """50 ImageNet class folders (one photo each) and an ImageNet-sized (1000-output) weights file."""
    from tests._evalutil import TinyNet

    root = tmp_path_factory.mktemp("fifty")
    wnids = _wnid_folder(root / "data", sample_files(imagenet_sample_dir, 50, step=19))
    weights = root / "tiny1000.pth"
    torch.save(TinyNet(1000).state_dict(), weights)
    return root / "data", wnids, weights


def _eval_fails(data: Path, weights: Path, class_list: Path | None, out: Path) -> str:
    from antialiased.models import list_archs, register_model
    from tests._evalutil import TinyNet

    if "aa_tiny1000" not in list_archs():
        register_model("aa_tiny1000")(lambda num_classes=1000, **kw: TinyNet(num_classes))  # as aa_tiny1000_lpfN
    extra = ["--class-list", str(class_list)] if class_list else []
    with pytest.raises(DataError) as err:
        train_cli("--data", str(data), "-a", "aa_tiny1000_lpf2", "--weights", str(weights), "-e", "-j", "0",
                  "--out-dir", str(out), *extra, raw=True)
    return str(err.value)


def test_a_fifty_line_class_list_gets_its_own_advice(fifty_classes, tmp_path):
    data, wnids, weights = fifty_classes
    without = _eval_fails(data, weights, None, tmp_path / "a")
    listing = tmp_path / "classes.txt"
    listing.write_text("\n".join(wnids) + "\n")
    with_list = _eval_fails(data, weights, listing, tmp_path / "b")
    assert with_list != without
    assert "--class-list" in with_list and "50" in with_list and "1000" in with_list
    assert "pass --class-list FILE" not in with_list  # the advice for no list
    assert "every output" in with_list or "all 1000" in with_list


def test_a_class_list_missing_folders_names_them(fifty_classes, tmp_path):
    data, wnids, _ = fifty_classes
    listing = tmp_path / "classes.txt"
    listing.write_text("\n".join(wnids[3:] + ["n99999999"]) + "\n")
    with pytest.raises(DatasetLayoutError) as err:
        ImageFolderDataset(data / "val", classes=[line for line in listing.read_text().splitlines()])
    message = str(err.value)
    assert all(w in message for w in wnids[:3])  # the folders the list lacks, by name
    assert "add" in message


def test_a_class_list_of_labels_instead_of_folder_names(fifty_classes, tmp_path):
    data, wnids, _ = fifty_classes
    labels = [f"label {i}" for i in range(50)]  # e.g. 'tench', 'goldfish': human names, not folder names
    with pytest.raises(DatasetLayoutError) as err:
        ImageFolderDataset(data / "val", classes=labels)
    message = str(err.value)
    assert "none of" in message and wnids[0] in message and "'label 0'" in message


# ------------------------------------------------------------------------- quick tries: workers
def test_workers_default_to_the_cpus_available(monkeypatch):
    from antialiased.cli.paper import get_args_parser
    from antialiased.cli.train import config_from_args
    from antialiased.evaluation import DataSettings

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert default_workers() == 2
    args = get_args_parser().parse_args(["--data", "d", "--out-dir", "o"])
    assert config_from_args(args).data.workers == 2 and DataSettings("d").workers == 2
    args = get_args_parser().parse_args(["--data", "d", "--out-dir", "o", "-j", "4"])
    assert config_from_args(args).data.workers == 4  # the paper's -j 4, honored
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert default_workers() == 4  # never more than the paper's 4 by default


def test_more_workers_than_cpus_warn_once_in_our_words(cifar_layout, tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(loaders, "_announced", set())  # said once per process: forget earlier tests' line
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert train_cli(*tiny_args(cifar_layout, tmp_path / "run", "-ep", "1", "-b", "8"), "-j", "2") == 0
    # recorded, or printed by the command line as one line each
    messages = [str(w.message) for w in caught] + capfd.readouterr().err.splitlines()
    assert not [m for m in messages if "This DataLoader will create" in m], messages
    ours = [m for m in messages if "-j/--workers 2" in m]
    assert len(ours) == 1 and "1 CPU" in ours[0], messages


def test_evaluation_with_more_workers_than_cpus_warns_once_in_our_words(cifar_layout, tmp_path, monkeypatch, capfd):
    register_tiny_models()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(loaders, "_announced", set())  # said once per process: forget earlier tests' line
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert train_cli("--data", str(cifar_layout), "-a", "aa_tinynet_lpf2", "--crop-size", "32", "-e", "-j", "2",
                         "--out-dir", str(tmp_path)) == 0
    messages = [str(w.message) for w in caught] + capfd.readouterr().err.splitlines()
    assert not [m for m in messages if "This DataLoader will create" in m], messages
    assert len([m for m in messages if "-j/--workers 2" in m]) == 1, messages


# --------------------------------------------------------------- quick tries: validation images
def test_max_val_images_validates_on_an_evenly_spaced_subset(cifar_layout, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_cli(*tiny_args(cifar_layout, out, "-ep", "1", "-b", "8", "--max-val-images", "5")) == 0
    assert "5 of the 12" in capsys.readouterr().out
    record = _records(out)[-1]
    assert record["val_images"] == 5
    # independently: the same weights on images 0, 2, 4, 7, 9 (i * 12 // 5) of test/, in ImageFolder order
    from antialiased.models import create_model

    model = create_model("aa_tinynet_lpf2", weights=str(out / "checkpoint.pth.tar")).eval()
    dataset = ImageFolderDataset(cifar_layout / "test", eval_transform(resize=37, crop=32))
    picked = [i * 12 // 5 for i in range(5)]
    assert picked == [0, 2, 4, 7, 9]
    with torch.no_grad():
        images = torch.stack([dataset[i][0] for i in picked])
        targets = torch.tensor([dataset[i][1] for i in picked])
        acc1 = (model(images).argmax(1) == targets).float().mean().item() * 100
    assert record["val_acc1"] == pytest.approx(acc1)


def test_max_val_images_must_be_positive(cifar_layout, tmp_path):
    from antialiased.errors import ConfigError

    train_fails(ConfigError, "--max-val-images", *tiny_args(cifar_layout, tmp_path / "r", "--max-val-images", "0"))
