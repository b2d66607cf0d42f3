"""antialiased.data.jpeg: the faster training-image path gives torchvision's exact tensors (same
seed per item), on real photos (grayscale ones included), and falls back to the PIL path with the
same results and skip reasons for what it does not take (CMYK, other formats, broken files,
other transforms, draft decoding); ``antialiased train``'s loader, which uses it, gives the same
batches as the PIL path it replaced."""
from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets
from torchvision import transforms as T

from antialiased.data import ImageFolderDataset, train_transform
from antialiased.data.jpeg import FusedTrainTransform, JpegFolderDataset, decode_rgb, jpeg_size

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")]


@pytest.fixture(scope="module")
def photos(imagenet_sample_dir, tmp_path_factory):
    """60 photos in two class folders: the 23 grayscale ones of the sample and 37 colour ones."""
    files = sorted(imagenet_sample_dir.glob("*.JPEG"))
    gray = [f for f in files if Image.open(f).mode == "L"]
    chosen = gray + [f for f in files if f not in gray][:60 - len(gray)]
    root = tmp_path_factory.mktemp("photos")
    for i, f in enumerate(chosen):
        (root / f"c{i % 2}").mkdir(exist_ok=True)
        shutil.copy(f, root / f"c{i % 2}" / f.name)
    return root


def _items(ds, n: int) -> list[torch.Tensor]:
    out = []
    for i in range(n):
        torch.manual_seed(i)
        out.append(ds[i][0])
    return out


def test_identical_to_torchvision_on_real_photos(photos):
    reference = datasets.ImageFolder(str(photos), train_transform())
    fast = JpegFolderDataset(photos, train_transform())
    assert fast._fast and isinstance(fast.transform, FusedTrainTransform)
    for i, (a, b) in enumerate(zip(_items(reference, len(reference)), _items(fast, len(fast)))):
        assert torch.equal(a, b), reference.samples[i][0]


def test_decoded_pixels_and_sizes_equal_pil(photos):
    for path in sorted(photos.rglob("*.JPEG"))[:30]:
        with Image.open(path) as image:
            expected = np.asarray(image.convert("RGB"))
            size = image.size
        decoded = decode_rgb(str(path))
        assert decoded is not None and np.array_equal(decoded.permute(1, 2, 0).numpy(), expected)
        assert jpeg_size(path.read_bytes())[:2] == size


def _jpeg(path, mode: str) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)).convert(mode).save(
        path, "JPEG", quality=90)


def test_what_it_does_not_take_goes_the_pil_way(tmp_path):
    (tmp_path / "a").mkdir()
    _jpeg(tmp_path / "a" / "cmyk.jpg", "CMYK")  # PIL converts CMYK itself
    Image.new("RGB", (30, 20), (10, 200, 30)).save(tmp_path / "a" / "plain.png")
    (tmp_path / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)
    assert decode_rgb(str(tmp_path / "a" / "cmyk.jpg")) is None
    assert decode_rgb(str(tmp_path / "a" / "plain.png")) is None
    assert decode_rgb(str(tmp_path / "a" / "broken.jpg")) is None
    reference = ImageFolderDataset(tmp_path, train_transform(crop=16), return_index=True)
    fast = JpegFolderDataset(tmp_path, train_transform(crop=16), return_index=True)
    for a, b in zip(_items(reference, len(reference)), _items(fast, len(fast))):
        assert torch.equal(a, b)
    assert [fast[i][1] for i in range(len(fast))] == [reference[i][1] for i in range(len(reference))]
    assert fast.skip_report() == reference.skip_report()  # the broken file: the same reason


def test_pixel_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48)).save(buffer, "JPEG")
    (tmp_path / "big.jpg").write_bytes(buffer.getvalue())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert decode_rgb(str(tmp_path / "big.jpg")) is None  # the PIL path refuses it with its reason


def test_other_transforms_and_draft_use_the_usual_path(photos):
    plain = T.Compose([T.Resize(32), T.CenterCrop(32), T.ToTensor()])
    assert JpegFolderDataset(photos, plain).transform is plain
    assert not JpegFolderDataset(photos, plain)._fast
    drafted = JpegFolderDataset(photos, train_transform(), draft=256)
    assert not drafted._fast
    assert FusedTrainTransform.from_compose(T.Compose([T.RandomResizedCrop(8), T.ToTensor()])) is None


def _mode(path: str) -> str:
    with Image.open(path) as image:
        return image.mode


@pytest.fixture(scope="module")
def run_root(photos, tmp_path_factory):
    """A training run's folder: the photos as train/, two of them per class as val/."""
    root = tmp_path_factory.mktemp("run")
    shutil.copytree(photos, root / "train")
    for folder in sorted((root / "train").iterdir()):
        (root / "val" / folder.name).mkdir(parents=True)
        for f in sorted(folder.iterdir())[:2]:
            shutil.copy(f, root / "val" / folder.name / f.name)
    return root


def _train_batches(root, workers: int) -> tuple[list[tuple[torch.Tensor, ...]], object]:
    """Epoch 1's batches of ``antialiased train``'s loader (seed 11), and its dataset."""
    from antialiased.training.config import DataConfig
    from antialiased.training.data import load_data

    cfg = DataConfig(root, crop_size=48, batch_size=8, workers=workers)
    data = load_data(cfg, distributed=False, generator=torch.Generator().manual_seed(3), pin_memory=False, seed=11)
    data.train_sampler.set_epoch(1)
    return [tuple(batch) for batch in data.train_loader], data.train_loader.dataset


def test_training_batches_identical_to_the_pil_path(run_root, monkeypatch):
    """antialiased train's loader (sampler, per-item seeds, workers) gives the PIL path's batches,
    grayscale photos included, while its JPEGs are decoded by decode_jpeg."""
    import antialiased.data.jpeg as jpeg_module
    import antialiased.training.data as training_data

    decoded = []
    counting = lambda path: decoded.append(path) or decode_rgb(path)  # noqa: E731
    with monkeypatch.context() as patch:
        patch.setattr(jpeg_module, "decode_rgb", counting)
        fast, dataset = _train_batches(run_root, workers=0)
    assert len(decoded) == len(dataset) - len(dataset) % 8  # every item of the epoch's full batches, by decode_jpeg
    with monkeypatch.context() as patch:  # the loader as it was: ImageFolderDataset, PIL decoding
        patch.setattr(training_data, "JpegFolderDataset", ImageFolderDataset)
        before, _ = _train_batches(run_root, workers=0)
    with_workers, _ = _train_batches(run_root, workers=2)
    assert len(fast) == len(before) == len(with_workers) == 60 // 8
    for new, old, parallel in zip(fast, before, with_workers):
        for a, b, c in zip(new, old, parallel):  # images, targets, dataset indices
            assert torch.equal(a, b) and torch.equal(a, c)
    gray = {i for i, (path, _) in enumerate(dataset.samples) if _mode(path) == "L"}
    assert gray & {int(i) for batch in fast for i in batch[2]}  # grayscale photos were in the batches
