"""Shift-invariance protocols (issue 11): each figure against an independent computation.

- exactly circular-invariant models (circular-padded stride-1 convolutions + global pooling; an APS
  ResNet) score 100% circular consistency, the same accuracy under every circular shift, ~0
  equivariance error;
- a model whose output depends on one pixel's position scores what a hand computation says;
- on real photos, every figure equals a plain loop (torchvision pipeline, torch.roll, numpy FFT);
- bootstrap intervals: reproducible, wider than pair-level ones for clustered outcomes, ~95% coverage;
- bad input fails before any work with the package's errors.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision import transforms as T

from antialiased.data import IMAGENET_MEAN, IMAGENET_STD, ImageFolderDataset, uint8_transform
from antialiased.errors import ConfigError, ModelError
from antialiased.evaluation.adversarial import adversarial_accuracy
from antialiased.evaluation.bootstrap import bootstrap_columns, bootstrap_interval
from antialiased.evaluation._common import wilson_interval
from antialiased.evaluation.circular import circular_consistency
from antialiased.evaluation.distance import consistency_by_distance
from antialiased.evaluation.equivariance import layer_equivariance
from antialiased.evaluation.feature_maps import find_feature_maps
from antialiased.evaluation.fractional import fractional_consistency
from antialiased.evaluation.probe import check_classifier
from antialiased.evaluation.shifts import fourier_shift, roll_images
from tests._evalutil import TinyNet, make_val_folder, sample_files

N_IMAGES = 8
QUIET = dict(progress=False)


class CircularNet(nn.Module):
    """Circular-padded stride-1 convolutions and global average pooling: invariant to circular shifts."""

    def __init__(self, num_classes: int = N_IMAGES) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, padding_mode="circular"), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, padding=1, padding_mode="circular"), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class LinearNet(nn.Module):
    """A linear classifier of the raw pixels: its top-1 changes under small shifts (a test that can fail)."""

    def __init__(self, num_classes: int = N_IMAGES, size: int = 224) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3 * size * size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class RowParityNet(nn.Module):
    """Class 0 or 1: the parity of the row of the brightest pixel (summed over channels)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.sum(dim=1).flatten(1).argmax(dim=1)
        return nn.functional.one_hot((flat // x.shape[-1]) % 2, 2).float()


@pytest.fixture(scope="module")
def val_root(tmp_path_factory, imagenet_sample_dir):
    root = tmp_path_factory.mktemp("imagenet")
    make_val_folder(root, sample_files(imagenet_sample_dir, N_IMAGES))
    return root / "val"


@pytest.fixture(scope="module")
def batches(val_root):
    """The 256x256 uint8 center crops, in batches of 4 (images, targets, indices)."""
    ds = ImageFolderDataset(val_root, transform=uint8_transform(256), return_index=True)
    return [tuple(part) for part in DataLoader(ds, batch_size=4)]


@pytest.fixture(scope="module")
def plain(val_root):
    """The same images through torchvision's own pipeline (ImageFolder, PIL, ToTensor, Normalize)."""
    tf = T.Compose([T.Resize(256), T.CenterCrop(256), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return list(DataLoader(datasets.ImageFolder(str(val_root), tf), batch_size=4))


def _top1(model, x):
    with torch.no_grad():
        return int(model(x.unsqueeze(0)).argmax(1))


# ---- shifted copies ------------------------------------------------------------------------------


def test_roll_and_fourier_shift_equal_independent_computations():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 12, 10, generator=g, dtype=torch.float64)
    shifts = torch.randint(-15, 15, (5, 2), generator=g)
    rolled = roll_images(x, shifts)
    for image, out, (dh, dw) in zip(x, rolled, shifts.tolist()):
        assert torch.equal(out, torch.roll(image, (dh, dw), dims=(1, 2)))
    assert torch.allclose(fourier_shift(x, shifts.double()), rolled, atol=1e-10)
    frac = torch.rand(5, 2, generator=g, dtype=torch.float64)
    ky, kx = np.fft.fftfreq(12)[:, None], np.fft.fftfreq(10)[None, :]
    for image, out, (dh, dw) in zip(x.numpy(), fourier_shift(x, frac), frac.tolist()):
        expected = np.fft.ifft2(np.fft.fft2(image) * np.exp(-2j * np.pi * (ky * dh + kx * dw))).real
        np.testing.assert_allclose(out.numpy(), expected, atol=1e-10)
    assert fourier_shift(x.float(), frac).dtype == torch.float32


# ---- exactly invariant models --------------------------------------------------------------------


def test_circularly_invariant_model_scores_100_and_zero_error(batches):
    model = CircularNet().eval()
    ec = circular_consistency(model, batches, "cpu", epochs=2, seed=0, **QUIET)
    assert ec["consistency"] == 100.0 and ec["pairs"] == 2 * N_IMAGES
    # every image consistent: not a zero-width interval, but the Wilson interval over the 8 images
    assert ec["consistency_ci95"] == pytest.approx(list(wilson_interval(N_IMAGES, N_IMAGES)))
    assert ec["consistency_ci95"][0] < 75
    ea = adversarial_accuracy(model, batches, "cpu", grid=2, mode="circular", **QUIET)
    assert ea["grid_consistency"] == 100.0
    assert ea["adversarial_acc1"] == ea["center_acc1"] == ea["grid_acc1"] == ec["shifted_acc1"]
    eq = layer_equivariance(model, batches[:1], "cpu", **QUIET)
    assert [layer["name"] for layer in eq["layers"]] == ["features"]
    assert eq["layers"][0]["error"] < 1e-5 and eq["mean_stage_error"] < 1e-5


def test_aps_resnet_is_invariant_and_equivariant_at_every_stage(batches):
    torchvision = pytest.importorskip("torchvision")
    from antialiased.models.antialias import antialias

    torch.manual_seed(0)
    model = antialias(torchvision.models.resnet18(num_classes=N_IMAGES), method="aps", circular=True).eval()
    two = [tuple(part[:2] for part in batches[0])]
    kw = dict(crop_size=64, forward_batch=64, **QUIET)  # sides divisible by the network's stride (32)
    ec = circular_consistency(model, two, "cpu", max_shift=32, epochs=2, seed=1, progress=False, crop_size=64)
    ea = adversarial_accuracy(model, two, "cpu", grid=2, mode="circular", **kw)
    assert ec["consistency"] == 100.0 and ea["grid_consistency"] == 100.0
    assert ea["adversarial_acc1"] == ea["center_acc1"] == ec["shifted_acc1"]
    eq = layer_equivariance(model, two, "cpu", **kw)
    strides = [layer["stride"][0] for layer in eq["layers"]]
    assert strides == sorted(strides) and strides[-1] == 32 and len(strides) >= 5
    assert max(layer["error"] for layer in eq["layers"]) < 1e-4
    one = [tuple(part[:1] for part in batches[0])]
    baseline = layer_equivariance(torchvision.models.resnet18(num_classes=N_IMAGES).eval(), one, "cpu", **kw)
    assert baseline["mean_stage_error"] > 0.05  # zero padding and strided subsampling are not equivariant


# ---- a model whose output depends on one pixel's position: hand computations -----------------------


def _bright_pixels(positions, size):
    """Float images (already 'normalized') that are 0 except one pixel of 1 per image."""
    x = torch.zeros(len(positions), 3, size, size)
    for i, (r, c) in enumerate(positions):
        x[i, :, r, c] = 1.0
    return x


def test_row_parity_model_scores_the_hand_computed_figures():
    positions = [(10, 11), (13, 12), (14, 20), (17, 9)]  # rows 10, 13, 14, 17 in the 32 crop of a 40 image
    data = [(_bright_pixels(positions, 40), torch.tensor([1, 0, 1, 0]))]  # wrong class for the center crop
    model = RowParityNet()
    # the center crop starts at row 4: parity of (row - 4) is the true class -> the targets above are all wrong
    ea = adversarial_accuracy(model, data, "cpu", crop_size=32, max_shift=8, grid=1, **QUIET)
    assert (ea["center_acc1"], ea["adversarial_acc1"], ea["grid_consistency"]) == (0.0, 0.0, 100.0)
    right = [(data[0][0], 1 - data[0][1])]
    for mode in ("crop", "circular"):  # a grid of 2 holds an odd row shift: every label flips once
        ea = adversarial_accuracy(model, right, "cpu", crop_size=32, max_shift=8, grid=2, mode=mode, **QUIET)
        assert (ea["center_acc1"], ea["adversarial_acc1"], ea["grid_consistency"], ea["grid_acc1"]) == \
            (100.0, 0.0, 0.0, 50.0)
    # consistency by distance: a horizontal shift keeps the row, a vertical one by d flips it when d is odd
    by_d = consistency_by_distance(model, right, "cpu", crop_size=32, max_shift=8, **QUIET)
    assert by_d["horizontal"] == [100.0] * 8
    assert by_d["vertical"] == [0.0 if d % 2 else 100.0 for d in range(1, 9)]
    assert by_d["consistency"] == [50.0 if d % 2 else 100.0 for d in range(1, 9)]


def test_row_parity_consistency_follows_the_drawn_shifts():
    positions = [(3, 5), (8, 8), (12, 2), (6, 14), (1, 1), (9, 10)]
    data = [(_bright_pixels(positions[:3], 16), torch.zeros(3, dtype=torch.long)),
            (_bright_pixels(positions[3:], 16), torch.zeros(3, dtype=torch.long))]
    ec = circular_consistency(RowParityNet(), data, "cpu", crop_size=16, max_shift=5, epochs=3, seed=42, **QUIET)
    ef = fractional_consistency(RowParityNet(), data, "cpu", crop_size=16, epochs=3, seed=42, **QUIET)
    # by hand: circular pairs agree iff their row shifts have the same parity; sub-pixel ones iff both
    # row shifts are on the same side of half a pixel (the sinc peak moves to the next row past 0.5)
    g_int, g_frac = torch.Generator().manual_seed(42), torch.Generator().manual_seed(42)
    agree_int = agree_frac = 0
    for _ in range(3):
        for images, _ in data:
            dh = torch.randint(5, (len(images), 2, 2), generator=g_int)[:, :, 0]
            agree_int += int(((dh[:, 0] - dh[:, 1]) % 2 == 0).sum())
            fh = torch.rand((len(images), 2, 2), generator=g_frac)[:, :, 0]
            agree_frac += int(((fh[:, 0] > 0.5) == (fh[:, 1] > 0.5)).sum())
    assert (ec["agree"], ec["pairs"]) == (agree_int, 18) and 0 < agree_int < 18
    assert (ef["agree"], ef["pairs"]) == (agree_frac, 18) and 0 < agree_frac < 18


def test_equivariance_of_a_zero_padded_conv_is_the_hand_computed_ratio():
    conv = nn.Conv2d(3, 1, 3, padding=1, bias=False)
    nn.init.ones_(conv.weight)
    model = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 2)).eval()
    # a pixel on the top edge: its 3x3 box loses the padded row, which a shift brings back (3 of 9 values):
    # ||f(Tx) - T'f(x)|| / ||f(x)|| = sqrt(3) / sqrt(6) at every shift; an interior pixel: 0
    data = [(_bright_pixels([(0, 6), (6, 6)], 16), torch.tensor([0, 1]))]
    out = layer_equivariance(model, data, "cpu", crop_size=16, **QUIET)
    layer = out["layers"][0]
    assert layer["name"] == "0" and layer["stride"] == [1, 1]
    assert layer["per_shift"] == pytest.approx([math.sqrt(0.5) / 2] * 3, abs=1e-6)
    assert layer["error"] == pytest.approx(math.sqrt(0.5) / 2, abs=1e-6)
    assert layer["error_ci95"][0] <= layer["error"] <= layer["error_ci95"][1]


# ---- real photos: each figure equals a plain loop --------------------------------------------------


def test_circular_consistency_equals_plain_loop(batches, plain):
    model = LinearNet().eval()
    ours = circular_consistency(model, batches, "cpu", epochs=2, seed=5, channels_last=True, **QUIET)
    g, agree, correct = torch.Generator().manual_seed(5), 0, 0
    for _ in range(2):
        for x, t in plain:
            shifts = torch.randint(32, (len(t), 2, 2), generator=g)
            for image, target, pair in zip(x[..., 16:240, 16:240], t, shifts.tolist()):
                a, b = (_top1(model, torch.roll(image, tuple(s), dims=(1, 2))) for s in pair)
                agree, correct = agree + (a == b), correct + (a == target) + (b == target)
    assert (ours["agree"], ours["pairs"]) == (agree, 2 * N_IMAGES)
    assert ours["shifted_acc1"] == pytest.approx(50 * correct / N_IMAGES / 2)
    assert ours["consistency"] < 100 and ours["units"] == N_IMAGES


def test_fractional_consistency_equals_plain_loop(batches, plain):
    model = LinearNet().eval()
    ours = fractional_consistency(model, batches, "cpu", epochs=2, seed=3, **QUIET)
    g, agree = torch.Generator().manual_seed(3), 0
    ky, kx = np.fft.fftfreq(224)[:, None], np.fft.fftfreq(224)[None, :]
    for x, t in plain + plain:
        shifts = torch.rand((len(t), 2, 2), generator=g).double()
        for image, pair in zip(x[..., 16:240, 16:240].double().numpy(), shifts.tolist()):
            spectrum = np.fft.fft2(image)
            a, b = (_top1(model, torch.from_numpy(np.fft.ifft2(spectrum * np.exp(-2j * np.pi * (ky * dh + kx * dw)))
                                                  .real).float()) for dh, dw in pair)
            agree += a == b
    assert (ours["agree"], ours["pairs"]) == (agree, 2 * N_IMAGES) and ours["consistency"] < 100


@pytest.mark.parametrize("mode", ["crop", "circular"])
def test_adversarial_accuracy_equals_plain_loop(batches, plain, mode):
    model = TinyNet(N_IMAGES).eval()
    ours = adversarial_accuracy(model, batches, "cpu", grid=2, mode=mode, forward_batch=10, **QUIET)
    all_right = same = center_right = 0
    for x, t in plain:
        for image, target in zip(x, t.tolist()):
            center = image[:, 16:240, 16:240]
            copies = [image[:, dh:dh + 224, dw:dw + 224] if mode == "crop" else torch.roll(center, (dh, dw), (1, 2))
                      for dh in range(2) for dw in range(2)]
            labels = [_top1(model, c) for c in copies]
            all_right += all(label == target for label in labels)
            same += len(set(labels)) == 1
            center_right += _top1(model, center) == target
    assert ours["adversarial_acc1"] == pytest.approx(100 * all_right / N_IMAGES)
    assert ours["grid_consistency"] == pytest.approx(100 * same / N_IMAGES)
    assert ours["center_acc1"] == pytest.approx(100 * center_right / N_IMAGES)


def test_equivariance_and_distance_equal_plain_loops(batches, plain):
    model = TinyNet(N_IMAGES).eval()
    eq = layer_equivariance(model, batches, "cpu", forward_batch=30, **QUIET)
    assert [(layer["name"], layer["stride"]) for layer in eq["layers"]] == [("features.1", [4, 4]),
                                                                            ("features.3", [8, 8])]
    with torch.no_grad():
        for layer, depth in zip(eq["layers"], (2, 4)):
            f, errors = model.features[:depth], []
            for x, _ in plain:
                center = x[..., 16:240, 16:240]
                ref = f(center)
                for k in (1, 2, 3):
                    s = k * layer["stride"][0]
                    diff = f(torch.roll(center, (s, s), (2, 3))) - torch.roll(ref, (k, k), (2, 3))
                    errors.append((diff.flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)).numpy())
            assert layer["error"] == pytest.approx(float(np.mean(errors)), rel=1e-4)
    by_d = consistency_by_distance(model, batches, "cpu", max_shift=6, forward_batch=16, **QUIET)
    agree = np.zeros((2, 6))
    for x, _ in plain:
        for image in x:
            base = _top1(model, image[:, :224, :224])
            for d in range(1, 7):
                agree[0, d - 1] += _top1(model, image[:, :224, d:d + 224]) == base
                agree[1, d - 1] += _top1(model, image[:, d:d + 224, :224]) == base
    np.testing.assert_allclose(by_d["horizontal"], 100 * agree[0] / N_IMAGES)
    np.testing.assert_allclose(by_d["vertical"], 100 * agree[1] / N_IMAGES)


# ---- intervals -------------------------------------------------------------------------------------


def test_bootstrap_equals_a_plain_resampling_loop():
    rng = np.random.default_rng(0)
    values, groups = rng.random(60) < 0.7, np.repeat(np.arange(20), 3)
    ours = bootstrap_interval(values, groups, resamples=500, seed=9)
    sums, counts = np.bincount(groups, values), np.bincount(groups)
    draw, stats = np.random.default_rng(9), []
    for _ in range(500):
        picks = draw.integers(0, 20, size=20)
        stats.append(100 * sums[picks].sum() / counts[picks].sum())
    assert (ours.low, ours.high) == pytest.approx(tuple(np.percentile(stats, [2.5, 97.5])))
    assert ours.value == pytest.approx(100 * values.mean()) and ours.units == 20
    assert bootstrap_interval(values, groups, resamples=500, seed=9) == ours  # seeded


def test_clustered_outcomes_get_wider_intervals_with_right_coverage():
    rng = np.random.default_rng(1)
    # each image is either stable under shifts (all 5 pairs agree) or not (none): pairs are not independent
    per_image = rng.random(200) < 0.8
    values, groups = np.repeat(per_image, 5), np.repeat(np.arange(200), 5)
    by_pair, by_image = bootstrap_interval(values, seed=0), bootstrap_interval(values, groups, seed=0)
    ratio = (by_image.high - by_image.low) / (by_pair.high - by_pair.low)
    assert 1.8 < ratio < 2.7  # about sqrt(5): five copies of one outcome carry one outcome's information
    covered = 0
    for trial in range(100):
        sample = np.repeat(rng.random(100) < 0.8, 5)
        low, high = bootstrap_interval(sample, np.repeat(np.arange(100), 5), resamples=400, seed=trial).as_list()
        covered += low <= 80.0 <= high
    assert 85 <= covered <= 100
    value, low, high, units = bootstrap_columns(np.zeros((0, 3)))
    assert units == 0 and np.isnan(value).all()
    one = bootstrap_interval([1, 1, 0], groups=[7, 7, 7])  # one unit: no interval, said so
    assert one.value == pytest.approx(200 / 3) and math.isnan(one.low) and one.text() == "95% CI n/a (1 image)"
    zeros = bootstrap_interval(np.zeros(10), scale=1.0, proportion=False)  # an exact figure (e.g. error 0)
    assert (zeros.low, zeros.high) == (0.0, 0.0)


# ---- bad input -------------------------------------------------------------------------------------


def test_bad_input_is_refused_before_any_work():
    data = [(torch.rand(2, 3, 40, 40), torch.tensor([0, 1]))]
    with pytest.raises(ConfigError, match="--shift-grid 10 in crop mode.*margin of 8"):
        adversarial_accuracy(CircularNet(2), data, "cpu", crop_size=32, max_shift=8, grid=10, **QUIET)
    with pytest.raises(ConfigError, match="--shift-mode must be one of crop, circular"):
        adversarial_accuracy(CircularNet(2), data, "cpu", crop_size=32, max_shift=8, mode="reflect", **QUIET)
    with pytest.raises(ConfigError, match=r"'featurs.0' is not a module.*did you mean features.0.*Valid names: "):
        layer_equivariance(CircularNet(2), data, "cpu", crop_size=32, layers=["featurs.0"], **QUIET)
    with pytest.raises(ConfigError, match="'head' is a module without a spatial feature map"):
        layer_equivariance(CircularNet(2), data, "cpu", crop_size=32, layers=["head"], **QUIET)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 2))
    with pytest.raises(ModelError, match="no module whose output is a spatial"):
        layer_equivariance(mlp, data, "cpu", crop_size=32, **QUIET)
    with pytest.raises(ModelError, match="not \\(N, classes\\) logits"):
        check_classifier(nn.Conv2d(3, 4, 3), 32)
    net = CircularNet(2)
    names = [m.name for m in find_feature_maps(net, 32)]
    assert names == ["features.0", "features.1", "features.2", "features.3", "features"]


def test_function_calls_record_each_intervals_method():
    # the result-file convention (<figure>_ci95_method) in what the function-style calls return too, so a
    # report of their figures says how each interval was made. Uniform images: every shift agrees, so the
    # consistencies are 100% in every image and get the Wilson interval; a per-layer error is a mean, a bootstrap.
    from antialiased.evaluation.shift import shift_consistency

    pool = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular"), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 4))
    torch.manual_seed(0)
    data = [(torch.ones(6, 3, 16, 16) * torch.rand(6, 3, 1, 1), torch.arange(6) % 4, torch.arange(6))]
    common = dict(crop_size=12, progress=False, seed=1)
    outs = {"es": shift_consistency(pool, data, "cpu", max_shift=4, epochs=2, independent=True, **common),
            "ec": circular_consistency(pool, data, "cpu", max_shift=4, epochs=2, **common),
            "ef": fractional_consistency(pool, data, "cpu", epochs=2, **common),
            "ea": adversarial_accuracy(pool, data, "cpu", max_shift=4, grid=2, **common),
            "ed": consistency_by_distance(pool, data, "cpu", max_shift=3, **common),
            "eq": layer_equivariance(pool, data, "cpu", crop_size=12, progress=False, seed=1)}
    for name, out in outs.items():
        keys = [k for k in out if k == "ci95" or k.endswith("_ci95")]
        assert keys or name == "eq", name
        for key in keys:
            assert out[f"{key}_method"] == out[key].method in ("bootstrap", "wilson"), (name, key)
    assert outs["es"]["consistency"] == 100.0 and outs["es"]["ci95_method"] == "wilson"
    one_batch = shift_consistency(pool, [data[0][:2]], "cpu", max_shift=4, epochs=2, **common)  # one unit: none
    assert one_batch["ci95_unit"] == "batch" and one_batch["ci95_method"] == "none"
    for name in ("ec", "ef"):
        assert outs[name]["consistency"] == 100.0 and outs[name]["consistency_ci95_method"] == "wilson"
    assert outs["ed"]["curve_ci95_method"] == ["wilson"] * 3
    assert [layer["error_ci95_method"] for layer in outs["eq"]["layers"]] == ["bootstrap"] * len(outs["eq"]["layers"])
