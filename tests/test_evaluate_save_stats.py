"""``--evaluate-save`` undoes the normalization the evaluation used (``--mean/--std``), not always ImageNet's."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from antialiased.cli import main as antialiased_main
from antialiased.evaluation.saving import ImageSaver
from tests._evalutil import make_val_folder, sample_files

N = 3


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, imagenet_sample_dir):
    return make_val_folder(tmp_path_factory.mktemp("ilsvrc"), sample_files(imagenet_sample_dir, N, step=173))


def test_saved_images_are_the_pixels_fed_under_other_normalization(data_root, tmp_path):
    out = tmp_path / "out"
    argv = ["eval", "-a", "resnet18", "--data", str(data_root), "-e", "--evaluate-save", "--out-dir", str(out),
            "--crop-size", "32", "--max-shift", "8", "--mean", "0.2", "0.7", "0.1", "--std", "0.5", "0.1", "0.3",
            "-j", "0", "-b", "4", "--no-progress"]
    assert antialiased_main(argv) == 0
    files = sorted((data_root / "val").glob("*/*.JPEG"))
    saved = sorted((out / "images" / "accuracy").glob("*.png"))
    assert len(saved) == N
    for i, path in enumerate(files):  # dataset order: sorted class folders, sorted files
        with Image.open(path) as im:  # independent: PIL resize 40 + center 32
            expected = np.asarray(T.CenterCrop(32)(T.Resize(40)(im.convert("RGB"))), dtype=np.int16)
        got = np.asarray(Image.open(out / "images" / "accuracy" / f"{i:06d}.png").convert("RGB"), dtype=np.int16)
        assert got.shape == expected.shape and np.abs(got - expected).max() <= 1


def test_saver_inverts_the_given_statistics(tmp_path):
    pixels = torch.randint(0, 256, (2, 3, 5, 4), dtype=torch.uint8)
    mean, std = (0.5, 0.1, 0.9), (0.2, 0.3, 0.05)
    x = pixels.float() / 255
    normalized = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    ImageSaver(tmp_path / "f", mean, std)(normalized, torch.tensor([4, 7]))
    ImageSaver(tmp_path / "u", mean, std)(pixels, None)  # uint8: saved as they are
    for name, k in (("f/000004.png", 0), ("f/000007.png", 1), ("u/000000.png", 0), ("u/000001.png", 1)):
        got = np.asarray(Image.open(tmp_path / name)).transpose(2, 0, 1)
        assert np.array_equal(got, pixels[k].numpy()), name
