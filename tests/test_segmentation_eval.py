"""Segmentation evaluation (issue 18 items 3, 4): each figure against a plain loop on a small generated
VOC-layout folder, each shift protocol on an exactly equivariant model (100%) and on one that is not,
the printed lines and result files, and the bad-input rows.

Models are built here (a per-pixel net, a global-colour net, a strided net) and passed to
:func:`antialiased.evaluation.evaluate` as objects.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from antialiased.cli.evaluate import print_report
from antialiased.data import IMAGENET_MEAN, IMAGENET_STD
from antialiased.demo.seg_shapes import SEG_CLASSES, write_seg_shapes
from antialiased.errors import ConfigError, DataError, ModelError
from antialiased.evaluation import (DataSettings, EvalConfig, ModelSource, RunSettings, SegmentationOptions,
                                    ShiftOptions, evaluate)
from antialiased.evaluation.invariance import InvarianceOptions
from antialiased.evaluation.segmentation import miou_figures, segmentation_scores
from tests._evalutil import read_result

C = len(SEG_CLASSES)
SIZE = 40  # --seg-size: the 64-pixel images are resized to 40 (views of 32: the center crop of a multiple of 32)
CROP = 24


class PixelNet(nn.Module):
    """A per-pixel function (1x1 convolutions): exactly equivariant to every shift and crop."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 16, 1), nn.ReLU(), nn.Conv2d(16, C, 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.body(x)
        return {"out": out, "aux": -out}  # torchvision's form; the auxiliary head is not scored


class GlobalNet(nn.Module):
    """The class of the mean colour, everywhere: invariant even to sub-pixel (Fourier) shifts."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.head = nn.Conv2d(3, C, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(2, 3), keepdim=True)).expand(-1, -1, *x.shape[-2:])


class StridedNet(nn.Module):
    """A stride-2 convolution and nearest upsampling: not shift-equivariant (a test that can fail)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.down = nn.Conv2d(3, 12, 3, stride=2, padding=1)
        self.head = nn.Conv2d(12, C, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": F.interpolate(self.head(torch.relu(self.down(x))), size=x.shape[-2:], mode="nearest")}


class Classifier(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)).repeat(1, 2)


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    return write_seg_shapes(tmp_path_factory.mktemp("seg") / "voc", train=0, val=5, size=64, seed=3)


def _config(root, protocols, out_dir=None, **kw) -> EvalConfig:
    settings = {"shift": ShiftOptions(epochs=2), "invariance": InvarianceOptions(grid=3, resamples=300),
                "segmentation": SegmentationOptions(size=SIZE, crop_size=CROP),
                "data": DataSettings(root, batch_size=1, workers=0), **kw}
    return EvalConfig(model=ModelSource("toy"), protocols=tuple(protocols),
                      run=RunSettings(seed=4, progress=False, channels_last=False), out_dir=out_dir, **settings)


def _plain_images(root):
    """The val images and masks as a user of torchvision's reference reads them: PIL, resize, normalize."""
    ids = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    for name in ids:
        image = Image.open(root / "JPEGImages" / f"{name}.png").convert("RGB")
        mask = Image.open(root / "SegmentationClass" / f"{name}.png")
        image = TF.resize(image, SIZE, interpolation=InterpolationMode.BILINEAR)
        mask = TF.resize(mask, SIZE, interpolation=InterpolationMode.NEAREST)
        yield TF.normalize(TF.to_tensor(image), IMAGENET_MEAN, IMAGENET_STD)[None], torch.from_numpy(
            np.array(mask).astype(np.int64))


def _pred(model, x):
    with torch.no_grad():
        out = model(x)
    return (out["out"] if isinstance(out, dict) else out).argmax(1)


def _add(confusion, pred, target):
    keep = target != 255
    np.add.at(confusion, (target[keep].numpy(), pred[keep].numpy()), 1)


def _miou(confusion):
    inter = np.diag(confusion).astype(float)
    union = confusion.sum(0) + confusion.sum(1) - inter
    iou = [100 * i / u for i, u in zip(inter, union) if u > 0]
    return sum(iou) / len(iou), 100 * inter.sum() / confusion.sum()


def test_miou_pixel_accuracy_and_per_class_iou_equal_a_plain_loop(voc, tmp_path, capsys):
    model = StridedNet().eval()
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(SEG_CLASSES))
    report = evaluate(_config(voc, ["accuracy"], tmp_path, data=DataSettings(voc, batch_size=1, workers=0,
                                                                            class_list=names)), model=model)
    confusion = np.zeros((C, C), np.int64)
    for x, target in _plain_images(voc):
        _add(confusion, _pred(model, x)[0], target)
    record = read_result(tmp_path, "segmentation_accuracy")
    assert np.array_equal(np.array(record["metrics"]["confusion_matrix"]), confusion)
    miou, pixel = _miou(confusion)
    assert record["metrics"]["miou"] == pytest.approx(miou) and record["metrics"]["pixel_acc"] == pytest.approx(pixel)
    inter, union = np.diag(confusion), confusion.sum(0) + confusion.sum(1) - np.diag(confusion)
    for index, name in enumerate(SEG_CLASSES):
        value = record["metrics"]["per_class_iou"][name]
        assert (value is None) if union[index] == 0 else value == pytest.approx(100 * inter[index] / union[index])
        ci = record["metrics"]["per_class_iou_ci95"][name]
        assert ci is None or ci[0] <= value <= ci[1]
    low, high = record["metrics"]["miou_ci95"]
    assert low <= record["metrics"]["miou"] <= high and record["classes"] == list(SEG_CLASSES)
    assert record["task"] == "segmentation" and record["settings"]["seg_size"] == SIZE
    assert record["counts"] == {"images": 5, "skipped": 0}
    print_report(report)
    out = capsys.readouterr().out
    assert f" * mIoU {miou:.3f} pixel accuracy {pixel:.3f}" in out and "bootstrap over 5 images: mIoU 95% CI" in out


def test_metric_functions_by_hand():
    # classes 0 and 1 labelled; class 2 only predicted (its IoU is 0), class 3 nowhere (left out of the mean)
    confusion = torch.tensor([[3, 0, 1, 0], [1, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    out = segmentation_scores(confusion)
    assert out["iou"] == [pytest.approx(60.0), pytest.approx(200 / 3), 0.0, None]
    assert out["miou"] == pytest.approx((60 + 200 / 3 + 0) / 3) and out["pixel_acc"] == pytest.approx(500 / 7)
    assert np.isnan(miou_figures(np.zeros((1, 12)))[0, 0])


def test_each_shift_protocol_scores_100_on_an_equivariant_model(voc, tmp_path, capsys):
    protocols = ["shift_consistency", "circular_consistency", "adversarial", "equivariance"]
    report = evaluate(_config(voc, protocols, tmp_path), model=PixelNet())
    print_report(report)
    out = capsys.readouterr().out
    assert "Segmentation consistency 100.000  (95% CI " in out and "over 5 images, 10 pairs" in out
    assert "Circular segmentation consistency 100.000" in out
    adversarial = read_result(tmp_path, "segmentation_adversarial")["metrics"]
    assert out.count("Adversarial mIoU ") == 1 and adversarial["images"] == 5
    equivariance = read_result(tmp_path, "equivariance")["metrics"]
    assert [layer["name"] for layer in equivariance["layers"] if layer["stage"]] == ["(output)"]
    assert equivariance["mean_stage_error"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ConfigError, match="leaves nothing of the 32-pixel view"):
        evaluate(_config(voc, ["fractional_consistency"]), model=GlobalNet())
    fractional = evaluate(_config(voc, ["fractional_consistency"], tmp_path / "f",
                                  segmentation=SegmentationOptions(size=64, crop_size=CROP)), model=GlobalNet())
    line = fractional.runs[0].lines[0]
    assert line.startswith("Fractional segmentation consistency 100.000"), line
    record = read_result(tmp_path / "f", "segmentation_fractional_consistency")
    assert record["metrics"]["fractional_consistency_ci95"][1] == 100.0 and record["settings"]["interior_border"] == 16


def _overlap_share(a, b, oa, ob):
    top, left = max(oa[0], ob[0]), max(oa[1], ob[1])
    bottom, right = min(oa[0], ob[0]) + CROP, min(oa[1], ob[1]) + CROP
    return (a[top - oa[0]:bottom - oa[0], left - oa[1]:right - oa[1]]
            == b[top - ob[0]:bottom - ob[0], left - ob[1]:right - ob[1]]).float().mean().item()


def test_consistency_figures_of_a_strided_model_equal_plain_loops(voc, tmp_path):
    model = StridedNet().eval()
    report = evaluate(_config(voc, ["shift_consistency", "circular_consistency", "adversarial"], tmp_path),
                      model=model)
    images = list(_plain_images(voc))
    crops, rolls = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)  # --seed 4: both protocols
    shares, rolled = [], []
    for _ in range(2):  # --epochs-shift 2
        for x, _ in images:
            h, w = x.shape[-2:]
            offsets = (torch.rand((1, 2, 2), generator=crops) * torch.tensor([h - CROP + 1, w - CROP + 1])).long()
            (a, b) = [_pred(model, x[..., oh:oh + CROP, ow:ow + CROP])[0] for oh, ow in offsets[0].tolist()]
            shares.append(_overlap_share(a, b, *offsets[0].tolist()))
            view = x[..., 4:36, 4:36]  # the 32x32 center view of the 40x40 image
            shifts = torch.randint(32, (1, 2, 2), generator=rolls)[0].tolist()
            preds = [_pred(model, torch.roll(view, s, dims=(2, 3)))[0].roll((-s[0], -s[1]), dims=(0, 1)) for s in shifts]
            rolled.append((preds[0] == preds[1]).float().mean().item())
    assert report["shift_consistency"].result["consistency"] == pytest.approx(100 * np.mean(shares))
    assert report["circular_consistency"].result["consistency"] == pytest.approx(100 * np.mean(rolled))
    assert 0 < np.mean(rolled) < 1  # a strided model is not equivariant: the protocol can tell
    confusion = np.zeros((C, C), np.int64)
    for x, target in images:  # -ea, crop mode, grid 3: the (38 x 38) crops at offsets {0, 1, 2}^2
        scored = []
        for dh in range(3):
            for dw in range(3):
                pred, t = _pred(model, x[..., dh:dh + 38, dw:dw + 38])[0], target[dh:dh + 38, dw:dw + 38]
                scored.append((int(((pred == t) & (t != 255)).sum()), pred, t))
        _, pred, t = min(scored, key=lambda item: item[0])
        _add(confusion, pred, t)
    assert report["adversarial"].result["adversarial_miou"] == pytest.approx(_miou(confusion)[0])
    # sub-pixel shifts and the layers: the strided model is measurably off, where PixelNet/GlobalNet are exact
    wide = evaluate(_config(voc, ["fractional_consistency", "equivariance"], segmentation=SegmentationOptions(
        size=64, crop_size=CROP)), model=model)
    assert 0 < wide["fractional_consistency"].result["consistency"] < 100
    assert wide["equivariance"].result["mean_stage_error"] > 0.01


def test_circular_adversarial_miou_of_an_equivariant_model_is_its_unshifted_miou(voc):
    report = evaluate(_config(voc, ["adversarial"], invariance=InvarianceOptions(grid=4, mode="circular",
                                                                                 resamples=200)), model=PixelNet())
    out = report["adversarial"].result
    assert out["adversarial_miou"] == out["unshifted_miou"] and out["shifts"] == 16


def test_task_comes_from_the_model_and_bad_models_fail_before_any_image(voc, tmp_path, monkeypatch):
    from antialiased.data.segmentation import SegmentationDataset
    read = []

    def load(self, index):
        read.append(index)
        raise AssertionError("an image was read")
    monkeypatch.setattr(SegmentationDataset, "load", load)
    with pytest.raises(ModelError, match="a classifier given --task segmentation"):
        evaluate(_config(voc, ["accuracy"], task="segmentation"), model=Classifier())
    with pytest.raises(ModelError, match="must upsample its output to the input's size"):
        evaluate(_config(voc, ["accuracy"], task="segmentation"), model=nn.Conv2d(3, C, 3, stride=2))
    with pytest.raises(ConfigError, match=r"diagonal \(-ed\) is not defined for segmentation models"):
        evaluate(_config(voc, ["diagonal"]), model=PixelNet())  # the task inferred from the model's output
    imagenet_like = tmp_path / "classes"
    (imagenet_like / "val" / "cat").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(imagenet_like / "val" / "cat" / "a.png")
    with pytest.raises(DataError, match=r"holds class folders \(cat: an image-classification folder\), but a "
                                        r"segmentation model is evaluated on .*Pascal VOC"):
        evaluate(_config(imagenet_like, ["accuracy"]), model=PixelNet())
    assert read == []


def test_a_classifier_name_with_task_segmentation_is_one_line_at_the_command_line(voc, capsys):
    from antialiased.cli import main
    assert main(["eval", "--data", str(voc), "-a", "resnet18", "--task", "segmentation", "-j", "0"]) == 2
    err = capsys.readouterr().err
    assert "is a classification model but --task segmentation was given" in err and "Traceback" not in err


def _pairs_folder(root):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    good = np.zeros((20, 30), np.uint8)
    good[5:15, 5:15] = 2
    for stem in ("a", "b", "c", "d", "f", "g"):
        Image.new("RGB", (30, 20), (40, 90, 200)).save(root / "images" / f"{stem}.png")
    Image.fromarray(good).save(root / "masks" / "a.png")
    Image.fromarray(good[:10]).save(root / "masks" / "b.png")  # another size than its image
    bad = good.copy()
    bad[0, 0] = 9
    Image.fromarray(bad).save(root / "masks" / "c.png")  # label 9 with 6 classes
    Image.fromarray(good).save(root / "masks" / "e.png")  # no image e
    Image.new("RGB", (30, 20)).save(root / "masks" / "f.png")  # colors, not indices
    Image.fromarray(good).save(root / "masks" / "g.jpg")  # lossy
    return root


@pytest.mark.parametrize("name, reason", [
    ("masks/b.png", "the mask is 30x10 but its image"),
    ("masks/c.png", "label 9 is not a class of the model (6 classes: 0-5; 255 is ignored): fix the mask"),
    ("images/d.png", "an image without a mask: no masks/d.png"),
    ("masks/e.png", "a mask without an image: no images/e.*"),
    ("masks/f.png", "an RGB mask (colors, not class indices): save it as a palette (P) or 8-bit grayscale (L) PNG"),
    ("masks/g.jpg", "a JPEG mask (lossy compression changes the labels at every edge): save masks as PNG"),
])
def test_bad_pairs_are_skipped_with_their_file_and_fix_or_stop_with_strict(tmp_path, name, reason):
    root = _pairs_folder(tmp_path / "pairs")
    cfg = _config(root, ["accuracy"], tmp_path / "out", segmentation=SegmentationOptions(size=20, crop_size=16))
    evaluate(cfg, model=PixelNet())
    record = read_result(tmp_path / "out", "segmentation_accuracy")
    assert record["counts"] == {"images": 1, "skipped": 6}
    assert reason in record["skip_reasons"][str(root / name)]
    strict = _config(root, ["accuracy"], data=DataSettings(root, batch_size=1, workers=0, strict=True),
                     segmentation=SegmentationOptions(size=20, crop_size=16))
    with pytest.raises(DataError, match="--strict"):
        evaluate(strict, model=PixelNet())


def test_a_voc_id_without_its_mask_is_skipped_and_named(voc, tmp_path):
    root = tmp_path / "voc"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    for name in ("val_00000", "val_00001"):
        os.symlink(voc / "JPEGImages" / f"{name}.png", root / "JPEGImages" / f"{name}.png")
    os.symlink(voc / "SegmentationClass" / "val_00000.png", root / "SegmentationClass" / "val_00000.png")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("val_00000\nval_00001\nval_00009\n")
    evaluate(_config(root, ["accuracy"], tmp_path / "out"), model=PixelNet())
    reasons = read_result(tmp_path / "out", "segmentation_accuracy")["skip_reasons"]
    assert reasons[str(root / "SegmentationClass" / "val_00001.png")].startswith("no mask for the image")
    assert "listed in val.txt but JPEGImages/ has no image val_00009" in reasons[
        str(root / "JPEGImages" / "val_00009.jpg")]


def test_generated_dataset_is_deterministic_and_voc_shaped(tmp_path):
    a = write_seg_shapes(tmp_path / "a", train=2, val=2, size=32, seed=7)
    b = write_seg_shapes(tmp_path / "b", train=3, val=2, size=32, seed=7)
    for name in ("val_00000", "val_00001"):  # the val stream does not depend on the training set's size
        assert (a / "JPEGImages" / f"{name}.png").read_bytes() == (b / "JPEGImages" / f"{name}.png").read_bytes()
        mask = Image.open(a / "SegmentationClass" / f"{name}.png")
        values = set(np.unique(np.array(mask)).tolist())
        assert mask.mode == "P" and values <= set(range(C)) | {255} and 0 in values and 255 in values
    assert (a / "ImageSets" / "Segmentation" / "train.txt").read_text().split() == ["train_00000", "train_00001"]
    assert json.dumps(sorted(os.listdir(a))) == json.dumps(["ImageSets", "JPEGImages", "SegmentationClass"])
