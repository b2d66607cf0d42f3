"""antialiased.data: transforms identical to torchvision's, layout errors, skipping corrupt files."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import pil_loader

from antialiased.data import (IMAGENET_MEAN, IMAGENET_STD, SKIPPED_TARGET, CorruptImageError, DatasetLayoutError,
                              ImageFolderDataset, eval_transform, find_split, to_float_normalized, train_transform,
                              uint8_transform)
from tests._evalutil import make_val_folder, sample_files


def test_uint8_path_is_bitwise_torchvision(imagenet_sample_dir):
    reference = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    for path in sample_files(imagenet_sample_dir, 6, step=151):
        img = Image.open(path).convert("RGB")
        expected = reference(img)
        assert torch.equal(eval_transform()(img), expected)
        big = uint8_transform(256)(img)
        assert big.shape == (3, 256, 256) and big.dtype == torch.uint8
        # the central 224 of the 256 center crop is the 224 center crop
        assert torch.equal(to_float_normalized(big[:, 16:240, 16:240]), expected)


def test_train_transform_shapes():
    img = Image.new("RGB", (300, 200), (10, 200, 30))
    assert train_transform(crop=96)(img).shape == (3, 96, 96)
    assert train_transform(crop=96, augment=False)(img).shape == (3, 96, 96)


def test_find_split_accepts_root_or_split(tmp_path):
    (tmp_path / "val" / "n01440764").mkdir(parents=True)
    assert find_split(tmp_path, "val") == tmp_path / "val"
    assert find_split(tmp_path / "val", "val") == tmp_path / "val"


def test_find_split_errors_show_layout(tmp_path):
    with pytest.raises(DatasetLayoutError, match="does not exist") as err:
        find_split(tmp_path / "nope", "val")
    assert "val/<class>/" in str(err.value)
    (tmp_path / "val").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(DatasetLayoutError, match="flat") as err:
        find_split(tmp_path, "val")
    assert "prepare-imagenet" in str(err.value)


def _corrupt_folder(root: Path, sample_dir: Path) -> Path:
    make_val_folder(root, sample_files(sample_dir, 3))
    cls = sorted((root / "val").iterdir())[0]
    good = next(cls.iterdir())
    (cls / "truncated.JPEG").write_bytes(Path(os.path.realpath(good)).read_bytes()[:2000])
    (cls / "text.JPEG").write_text("this is not a JPEG")
    (cls / "notes.txt").write_text("not an image either")
    return root / "val"


def test_corrupt_files_are_skipped_and_counted(tmp_path, imagenet_sample_dir):
    val = _corrupt_folder(tmp_path, imagenet_sample_dir)
    ds = ImageFolderDataset(val, transform=uint8_transform(64), placeholder_size=(64, 64))
    assert len(ds) == 5 and len(ds.skipped) == 1  # notes.txt at construction
    targets = [ds[i][1] for i in range(len(ds))]
    assert targets.count(SKIPPED_TARGET) == 2
    assert sorted(Path(p).name for p in ds.skipped) == ["notes.txt", "text.JPEG", "truncated.JPEG"]
    assert all(ds[i][0].shape == (3, 64, 64) for i in range(len(ds)))


def test_strict_raises_naming_the_file(tmp_path, imagenet_sample_dir):
    val = _corrupt_folder(tmp_path, imagenet_sample_dir)
    with pytest.raises(CorruptImageError, match="notes.txt"):
        ImageFolderDataset(val, strict=True)
    (next(val.iterdir()) / "notes.txt").unlink()
    ds = ImageFolderDataset(val, strict=True)
    with pytest.raises(CorruptImageError, match=r"text\.JPEG|truncated\.JPEG"):
        for i in range(len(ds)):
            ds[i]


def test_fixed_class_list_maps_subset_to_model_indices(tmp_path, imagenet_sample_dir):
    files = sample_files(imagenet_sample_dir, 4, step=250)
    make_val_folder(tmp_path, files)
    all_wnids = sorted(p.name.split("_")[0] for p in imagenet_sample_dir.glob("*.JPEG"))
    ds = ImageFolderDataset(tmp_path / "val", classes=all_wnids, return_index=True)
    assert len(ds.classes) == 1000
    for i, (path, target) in enumerate(ds.samples):
        assert all_wnids[target] == Path(path).parent.name
        assert ds[i][2] == i
    with pytest.raises(DatasetLayoutError, match="missing from the class list"):
        ImageFolderDataset(tmp_path / "val", classes=all_wnids[:10])


def _two_classes_of_four(root: Path, sample_dir: Path) -> Path:
    """``root/val/{a,b}/`` with four real photos each (links into the shared sample)."""
    for cls, files in zip("ab", (sample_files(sample_dir, 4, step=101), sample_files(sample_dir, 4, step=211))):
        (root / "val" / cls).mkdir(parents=True)
        for f in files:
            os.symlink(f, root / "val" / cls / f.name)
    return root / "val"


def test_folder_symlink_loop_counts_each_image_once(tmp_path, imagenet_sample_dir):
    """`ln -s . val/a/loop` made 8 images count as 168 (os.walk followed the loop 40 levels deep)."""
    val = _two_classes_of_four(tmp_path, imagenet_sample_dir)
    os.symlink(".", val / "a" / "loop")
    ds = ImageFolderDataset(val)
    assert len(ds) == 8 and [t for _, t in ds.samples].count(0) == 4
    assert ds.skipped == [str(val / "a" / "loop")]
    assert ds.skip_reasons[str(val / "a" / "loop")].startswith("symbolic-link loop")
    with pytest.raises(CorruptImageError, match=r"loop: symbolic-link loop .*run without --strict to skip"):
        ImageFolderDataset(val, strict=True)


def test_linked_class_folders_and_subfolders_are_followed_in_torchvision_order(tmp_path, imagenet_sample_dir):
    """Class folders on another disk (links) and nested folders: same samples, same order as torchvision."""
    elsewhere = _two_classes_of_four(tmp_path / "disk2", imagenet_sample_dir)
    (tmp_path / "data").mkdir()
    os.symlink(elsewhere / "a", tmp_path / "data" / "a")
    os.symlink(elsewhere / "b", tmp_path / "data" / "b")
    (elsewhere / "a" / "nested" / "deeper").mkdir(parents=True)
    for i, photo in enumerate(sorted(imagenet_sample_dir.glob("*.JPEG"))[500:503]):  # not in a or b
        os.symlink(photo, elsewhere / "a" / ("nested" if i else "nested/deeper") / f"x{i}.JPEG")
    ours = ImageFolderDataset(tmp_path / "data")
    assert ours.samples == ImageFolder(str(tmp_path / "data")).samples and len(ours) == 11
    assert ours.skipped == []


def test_real_photos_decode_as_torchvisions_loader(tmp_path, imagenet_sample_dir):
    val = _two_classes_of_four(tmp_path, imagenet_sample_dir)
    ds = ImageFolderDataset(val)
    for i, (path, _) in enumerate(ds.samples):
        assert np.array_equal(np.asarray(ds[i][0]), np.asarray(pil_loader(path)))


def test_class_folder_links_back_to_the_dataset_are_no_classes(tmp_path, imagenet_sample_dir):
    val = _two_classes_of_four(tmp_path, imagenet_sample_dir)
    os.symlink(".", val / "loop")
    os.symlink("..", val / "up")
    ds = ImageFolderDataset(val)
    assert ds.classes == ["a", "b"] and len(ds) == 8
    assert sorted(ds.skip_reasons) == [str(val / "loop"), str(val / "up")]
    assert all(r.startswith("symbolic-link loop") for r in ds.skip_reasons.values())
