"""Evaluation library: results equal independent torchvision computations; consistency behaves."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision import transforms as T

from antialiased.data import IMAGENET_MEAN, IMAGENET_STD, ImageFolderDataset, uint8_transform
from antialiased.evaluation import diagonal_stability, ensemble_accuracy, evaluate_accuracy, shift_consistency
from antialiased.evaluation._common import wilson_interval
from tests._evalutil import PixelPoolNet, TinyNet, make_val_folder, sample_files

N_IMAGES = 16


@pytest.fixture(scope="module")
def val_root(tmp_path_factory, imagenet_sample_dir):
    root = tmp_path_factory.mktemp("imagenet")
    make_val_folder(root, sample_files(imagenet_sample_dir, N_IMAGES))
    return root / "val"


@pytest.fixture(scope="module")
def decoded(val_root):
    """The 256x256 uint8 center crops of the folder, decoded once for the module."""
    ds = ImageFolderDataset(val_root, transform=uint8_transform(256), return_index=True)
    images, targets, indices = next(iter(DataLoader(ds, batch_size=len(ds))))
    return images, targets, indices


def _batches(decoded, batch_size=4):
    images, targets, indices = decoded
    return [(images[i:i + batch_size], targets[i:i + batch_size], indices[i:i + batch_size])
            for i in range(0, len(targets), batch_size)]


def _torchvision_loader(val_root, size, batch_size=4):
    tf = T.Compose([T.Resize(256), T.CenterCrop(size), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return DataLoader(datasets.ImageFolder(str(val_root), tf), batch_size=batch_size)


def test_accuracy_equals_independent_computation(val_root, decoded):
    model = TinyNet(num_classes=N_IMAGES).eval()
    ours = evaluate_accuracy(model, [(x[..., 16:240, 16:240], t) for x, t, _ in _batches(decoded)], "cpu",
                             channels_last=True, progress=False)
    logits = torch.cat([model(x) for x, _ in _torchvision_loader(val_root, 224)]).detach()
    targets = torch.arange(N_IMAGES)  # one image per class folder, in sorted order
    top5 = logits.topk(5, dim=1).indices
    assert ours["count"] == N_IMAGES and ours["skipped"] == 0
    assert ours["acc1"] == pytest.approx(100 * (logits.argmax(1) == targets).float().mean().item())
    assert ours["acc5"] == pytest.approx(100 * (top5 == targets[:, None]).any(1).float().mean().item())
    assert 0 < ours["acc5"] < 100  # the check can fail: the model is neither always right nor always wrong


def test_shift_consistency_matches_plain_pipeline_for_same_offsets(val_root, decoded):
    model = TinyNet(num_classes=N_IMAGES).eval()
    ours = shift_consistency(model, _batches(decoded), "cpu", epochs=2, seed=123, channels_last=True,
                             progress=False)
    # Independent: torchvision ImageFolder + PIL, the same offsets (same generator), one crop per forward.
    gen = torch.Generator().manual_seed(123)
    agree = pairs = 0
    with torch.no_grad():
        for _ in range(2):
            for x, _ in _torchvision_loader(val_root, 256):
                (h0, w0), (h1, w1) = torch.randint(32, (2, 2), generator=gen).tolist()
                a = model(x[..., h0:h0 + 224, w0:w0 + 224]).argmax(1)
                b = model(x[..., h1:h1 + 224, w1:w1 + 224]).argmax(1)
                agree, pairs = agree + int((a == b).sum()), pairs + len(a)
    assert (ours["agree"], ours["pairs"]) == (agree, pairs) == (ours["agree"], 2 * N_IMAGES)
    assert ours["consistency"] == pytest.approx(100 * agree / pairs)
    assert ours["consistency"] < 100  # a strided CNN is not shift-invariant
    low, high = ours["ci95"]
    assert low <= ours["consistency"] <= high


def test_shift_consistency_seed_reproducible_and_cache_invisible(decoded):
    model = TinyNet(num_classes=N_IMAGES).eval()
    kw = dict(epochs=3, progress=False, independent=True)
    first = shift_consistency(model, _batches(decoded), "cpu", seed=7, **kw)
    again = shift_consistency(model, _batches(decoded), "cpu", seed=7, cache_bytes=0, **kw)
    assert first["cached"] and not again["cached"]
    assert (first["agree"], first["pairs"]) == (again["agree"], again["pairs"])
    unseeded = shift_consistency(model, _batches(decoded), "cpu", seed=None, epochs=1, progress=False)
    assert isinstance(unseeded["seed"], int)  # recorded, so the run can be repeated


def _periodic_images(n, period=32, size=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    tile = torch.randint(0, 256, (n, 3, period, period), generator=g, dtype=torch.uint8)
    return tile.repeat(1, 1, size // period, size // period)


def test_shift_invariant_model_scores_100_and_a_plain_one_does_not():
    images = _periodic_images(12)
    data = [(images[i:i + 4], torch.arange(4)) for i in range(0, 12, 4)]
    invariant = shift_consistency(PixelPoolNet(4).eval(), data, "cpu", epochs=3, seed=0, progress=False,
                                  independent=True)
    assert invariant["consistency"] == 100.0 and invariant["pairs"] == 36
    torch.manual_seed(0)
    position_dependent = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 224 * 224, 4)).eval()
    plain = shift_consistency(position_dependent, data, "cpu", epochs=3, seed=0, progress=False)
    assert plain["consistency"] < 100.0


def test_any_crop_size_and_shift():
    images = torch.rand(6, 3, 40, 40)
    out = shift_consistency(PixelPoolNet(3).eval(), [(images, torch.tensor([0, 1, 2, 0, 1, 2]))], "cpu",
                            crop_size=32, max_shift=8, epochs=2, seed=1, progress=False)
    assert out["pairs"] == 12
    with pytest.raises(ValueError, match="needs images of at least"):
        shift_consistency(PixelPoolNet(3).eval(), [(images, torch.zeros(6, dtype=torch.long))], "cpu",
                          crop_size=36, max_shift=8, progress=False)


def test_diagonal_arrays_match_direct_computation(decoded):
    model = TinyNet(num_classes=N_IMAGES).eval()
    batches = _batches(decoded)[:2]
    out = diagonal_stability(model, batches, "cpu", forward_batch=16, progress=False)
    arrays = out["arrays"]
    assert arrays["true_prob"].shape == (8, 33) and list(arrays["shifts"]) == list(range(33))
    x, t, _ = batches[1]
    from antialiased.data import to_float_normalized
    with torch.no_grad():
        p = model(to_float_normalized(x[..., 7:231, 7:231])).softmax(1)
    np.testing.assert_allclose(arrays["true_prob"][4:, 7], p[torch.arange(4), t].numpy(), rtol=1e-4, atol=1e-6)
    assert (arrays["pred"][4:, 7] == p.argmax(1).numpy()).all()
    assert (arrays["best_other_prob"] <= 1).all() and (arrays["correct"] == (arrays["pred"] == np.repeat(
        np.concatenate([b[1].numpy() for b in batches])[:, None], 33, axis=1))).all()
    assert out["mean_true_prob"] == pytest.approx(100 * arrays["true_prob"].mean(), rel=1e-5)


def test_ensemble_center_crop_alone_equals_accuracy(decoded):
    model = TinyNet(num_classes=N_IMAGES).eval()
    batches = _batches(decoded)
    center = evaluate_accuracy(model, [(x[..., 16:240, 16:240], t) for x, t, _ in batches], "cpu", progress=False)
    single = ensemble_accuracy(model, batches, "cpu", crops=1, center_first=True, progress=False)
    assert (single["acc1"], single["acc5"]) == (center["acc1"], center["acc5"])
    many = ensemble_accuracy(model, batches, "cpu", crops=4, softmax=True, seed=0, progress=False)
    assert many["count"] == N_IMAGES


def test_wilson_interval():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(40.38, abs=0.01) and high == pytest.approx(59.62, abs=0.01)
    assert wilson_interval(10, 10)[1] == 100.0


def test_normalized_cache_from_a_dataloader_changes_nothing(val_root):
    ds = ImageFolderDataset(val_root, transform=uint8_transform(256), return_index=True)
    loader = DataLoader(ds, batch_size=4)
    model = TinyNet(num_classes=N_IMAGES).eval()
    kw = dict(epochs=3, seed=11, progress=False, return_labels=True)
    cached = shift_consistency(model, loader, "cpu", **kw)
    uncached = shift_consistency(model, loader, "cpu", cache_bytes=0, **kw)
    assert cached["cached"] and not uncached["cached"]
    assert torch.equal(cached["labels"], uncached["labels"]) and cached["labels"].shape == (3 * N_IMAGES, 2)


def test_grouped_forward_passes_keep_each_batch_offsets(decoded):
    model = TinyNet(num_classes=N_IMAGES).eval()
    kw = dict(epochs=2, seed=4, progress=False, return_labels=True)
    single = shift_consistency(model, _batches(decoded), "cpu", **kw)
    grouped = shift_consistency(model, _batches(decoded), "cpu", min_forward=20, **kw)
    assert torch.equal(single["labels"], grouped["labels"]) and single["agree"] == grouped["agree"]
