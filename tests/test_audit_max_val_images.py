"""``antialiased audit --max-val-images N``: N images evenly spaced in the folder's order, as ``eval`` takes them."""
from __future__ import annotations

import json

import pytest
import torch

import antialiased
from antialiased.cli import main as antialiased_main
from tests._evalutil import make_val_folder, sample_files

pytestmark = pytest.mark.usefixtures("one_thread")

N, CHOSEN = 5, 3
SMALL = ["--crop-size", "64", "--max-shift", "8", "-j", "0", "--no-progress", "--no-plots", "-b", "2", "--seed", "3",
         "--cache-mb", "0", "--epochs-shift", "2", "--protocols", "e", "es"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, imagenet_sample_dir):
    return make_val_folder(tmp_path_factory.mktemp("ilsvrc"), sample_files(imagenet_sample_dir, N, step=211))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("w") / "resnet18_lpf2.pth"
    torch.save({"state_dict": antialiased.create_model("resnet18_lpf2", num_classes=N).state_dict()}, path)
    return path


def test_audit_reads_and_records_only_the_evenly_spaced_images(data_root, weights, tmp_path, items_read):
    read = items_read  # -j 0: every item is read in this process
    out = tmp_path / "audit"
    assert antialiased_main(["audit", "-a", f"resnet18_lpf2={weights}", "--data", str(data_root), "--out-dir",
                             str(out), "--max-val-images", str(CHOSEN), *SMALL]) == 0
    expected = [k * N // CHOSEN for k in range(CHOSEN)]  # independently: the k-th of 3 at floor(k * 5 / 3)
    assert expected == [0, 1, 3]
    assert read == expected * 2  # -e with -es's first pass, then -es's second pass (--cache-mb 0 decodes again)
    report = json.loads((out / "report.json").read_text())
    settings = report["settings"]
    assert (settings["max_val_images"], settings["selected_images"], settings["folder_images"]) == (CHOSEN, CHOSEN, N)
    assert report["models"][0]["images"] == CHOSEN
    assert [r["counts"]["images"] for r in report["results"]] == [CHOSEN, CHOSEN]
    assert report["results"][1]["metrics"]["pairs"] == 2 * CHOSEN
    assert f"{CHOSEN} of the folder's {N} images, --max-val-images {CHOSEN}, evenly spaced" in \
        (out / "report.md").read_text()


def test_audit_without_it_records_every_image(data_root, weights, tmp_path):
    out = tmp_path / "audit"
    assert antialiased_main(["audit", "-a", f"resnet18_lpf2={weights}", "--data", str(data_root), "--out-dir",
                             str(out), *SMALL]) == 0
    report = json.loads((out / "report.json").read_text())
    settings = report["settings"]
    assert (settings["max_val_images"], settings["selected_images"], settings["folder_images"]) == (None, N, N)
    assert "evenly spaced" not in (out / "report.md").read_text()


def test_audit_refuses_max_val_images_below_one(data_root, weights, tmp_path, capsys):
    assert antialiased_main(["audit", "-a", f"resnet18_lpf2={weights}", "--data", str(data_root), "--out-dir",
                             str(tmp_path), "--max-val-images", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == ("antialiased audit: error: --max-val-images must be at least 1, got 0 (leave it out for all "
                      "images)"), err
