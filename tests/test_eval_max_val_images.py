"""``--max-val-images N`` in evaluation: N images evenly spaced in the folder's order (training's selection)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from antialiased.cli import main as antialiased_main
from antialiased.data import validation_sampler
from test_training_fixtures import register_tiny_models
from tests._evalutil import read_result

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES, PER_CLASS = ("airplane", "cat", "ship"), 4


@pytest.fixture(scope="module")
def small_cifar(cifar10_dir: Path, tmp_path_factory) -> Path:
    """``test/`` with 4 CIFAR-10 test images of each of 3 classes (12, in ImageFolder order)."""
    root = tmp_path_factory.mktemp("small_cifar")
    for cls in CLASSES:
        (root / "test" / cls).mkdir(parents=True)
        for image in sorted((cifar10_dir / "test" / cls).iterdir())[:PER_CLASS]:
            os.symlink(image, root / "test" / cls / image.name)
    return root


def test_eval_reads_and_counts_only_the_evenly_spaced_images(small_cifar, tmp_path, items_read, caplog):
    register_tiny_models()
    read = items_read  # -j 0: every item is read in this process
    caplog.set_level("INFO", logger="antialiased.eval")
    argv = ["eval", "--data", str(small_cifar), "-a", "aa_tinynet_lpf2", "--crop-size", "32", "--max-shift", "5",
            "-e", "-es", "--epochs-shift", "2", "--cache-mb", "0", "--max-val-images", "5", "-b", "2", "-j", "0",
            "--seed", "0", "--no-progress", "--out-dir", str(tmp_path)]
    with pytest.warns(UserWarning, match="no weights given"):
        assert antialiased_main(argv) == 0
    total = len(CLASSES) * PER_CLASS
    expected = []  # independently: the k-th of 5 is at floor(k * 12 / 5)
    for k in range(5):
        expected.append((k * total) // 5)
    assert expected == [0, 2, 4, 7, 9]
    assert read == expected * 2  # -es's second pass decodes again (--cache-mb 0): the same images, in order
    accuracy, shift = read_result(tmp_path, "accuracy"), read_result(tmp_path, "shift_consistency")
    assert accuracy["counts"]["images"] == 5 and shift["counts"]["images"] == 5
    assert shift["metrics"]["pairs"] == 2 * 5
    for result in (accuracy, shift):
        settings = result["settings"]
        assert (settings["max_val_images"], settings["selected_images"], settings["folder_images"]) == (5, 5, total)
    assert any(f"{small_cifar / 'test'}: 5 of 12 images" in r.getMessage() for r in caplog.records), caplog.text


def test_eval_without_max_val_images_records_all_of_them(small_cifar, tmp_path):
    register_tiny_models()
    argv = ["eval", "--data", str(small_cifar), "-a", "aa_tinynet_lpf2", "--crop-size", "32", "--max-shift", "5",
            "-b", "6", "-j", "0", "--no-progress", "--out-dir", str(tmp_path)]
    with pytest.warns(UserWarning, match="no weights given"):
        assert antialiased_main(argv) == 0
    settings = read_result(tmp_path, "accuracy")["settings"]
    assert (settings["max_val_images"], settings["selected_images"], settings["folder_images"]) == (None, 12, 12)


def test_eval_refuses_max_val_images_below_one(small_cifar, tmp_path, capsys):
    argv = ["eval", "--data", str(small_cifar), "-a", "resnet18_lpf2", "--max-val-images", "0", "--out-dir",
            str(tmp_path)]
    assert antialiased_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == ("antialiased eval: error: --max-val-images must be at least 1, got 0 (leave it out for all "
                      "images)"), err


@pytest.mark.parametrize("size,count,world", [(12, 5, 2), (10, 7, 3), (9, None, 2), (4, 9, 3)])
def test_validation_shards_cover_the_selection_once(size, count, world):
    shards = [list(validation_sampler(size, count, rank=r, world_size=world)) for r in range(world)]
    merged = sorted(i for shard in shards for i in shard)
    every = range(size) if count is None or count >= size else [k * size // count for k in range(count)]
    assert merged == list(every)  # each chosen image on exactly one rank
