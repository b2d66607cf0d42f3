"""The segmentation demo: the U-Net and its variants, the measurements against a plain loop, a tiny end-to-end run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from antialiased.cli.demo import main as demo_main
from antialiased.demo.seg_nets import SegUNet, build_seg_net
from antialiased.demo.seg_run import SegDemoConfig, measure_segmentation, seg_data_for, train_seg_variant
from antialiased.demo.seg_shapes import SEG_CLASSES
from antialiased.demo.seg_variants import build_seg_variant, default_seg_variants, parse_seg_variant
from antialiased.errors import ConfigError
from antialiased.layers import BlurPool

SPECS = ("baseline", "blurpool:3/down", "blurpool:3", "aps")
LABELS = ("Baseline", "Tri-3, down only", "Tri-3, down + up", "APS, circular, polyphase up")
HEADER = "| | mIoU | Segmentation consistency | Circular segmentation consistency |"


def _variant(spec: str, net: str = "unet", seed: int = 0):
    torch.manual_seed(seed)
    return build_seg_variant(net, parse_seg_variant(spec), num_classes=len(SEG_CLASSES), width=4,
                             input_size=(3, 32, 32))


def _row(printed: str, label: str) -> list[str]:
    line = next(line for line in printed.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip().strip("*") for cell in line.strip("|").split("|")][1:]


@pytest.mark.parametrize("net", ["unet", "unet-bilinear"])
def test_variants_share_the_baseline_weights_and_convert_what_they_say(net, one_thread):
    models = {spec: _variant(spec, net) for spec in SPECS}
    base = models["baseline"][0].state_dict()
    for spec, (model, built) in models.items():  # the same initial weights: the conversions add no parameters
        assert model.state_dict().keys() == base.keys()
        assert all(torch.equal(base[key], value) for key, value in model.state_dict().items()), spec
    blurs = {spec: [m for m in model.modules() if isinstance(m, BlurPool)] for spec, (model, _) in models.items()}
    assert not blurs["baseline"] and not blurs["aps"]
    assert [b.stride for b in blurs["blurpool:3/down"]] == [2, 2, 2]  # the three max-pools only
    assert sorted(b.stride for b in blurs["blurpool:3"]) == [1, 1, 1, 2, 2, 2]  # + a blur after each upsampling
    left = [site["path"] for site in models["blurpool:3/down"][1]["antialias_summary"]["left_alone"]]
    assert left == ["up3", "up2", "up1"]
    assert models["blurpool:3/down"][1]["call"].endswith("filter_size=3, upsample=False)")
    assert models["aps"][1]["circular"] and "circular=True" in models["aps"][1]["call"]


def test_aps_unet_is_exactly_equivariant_to_circular_shifts_and_the_baseline_is_not(one_thread):
    x = torch.randn(2, 3, 40, 40)  # 40: a multiple of the total stride 8, not of 16
    gaps = {}
    for spec in ("baseline", "aps"):
        model = _variant(spec)[0].eval()
        with torch.no_grad():
            y = model(x)
            gaps[spec] = max((model(torch.roll(x, s, (2, 3))) - torch.roll(y, s, (2, 3))).abs().max().item()
                             for s in [(1, 0), (3, 5), (7, 7), (13, 27)])
    assert gaps["aps"] < 1e-5 < 1e-3 < gaps["baseline"]


def test_unet_shapes_and_names():
    assert SegUNet(num_classes=3, width=4)(torch.rand(1, 3, 24, 32)).shape == (1, 3, 24, 32)
    assert isinstance(build_seg_net("unet-bilinear", num_classes=2).up3, nn.Upsample)
    with pytest.raises(ConfigError, match="unknown segmentation demo network 'resnet'"):
        build_seg_net("resnet", num_classes=2)
    assert [v.spec for v in default_seg_variants([2, 4])] == ["baseline", "blurpool:2/down", "blurpool:2",
                                                              "blurpool:4/down", "blurpool:4", "aps"]
    with pytest.raises(ConfigError, match="applies no blur filter"):
        _variant("aps:3")
    with pytest.raises(ConfigError, match="does not apply"):
        parse_seg_variant("baseline/down")


def _plain_miou(model: nn.Module, folder, mean, std, classes: int) -> float:
    """-e by hand: every val image whole, one confusion matrix over pixels not labelled 255, IoU over classes seen."""
    confusion = np.zeros((classes, classes), dtype=np.int64)
    model.eval()
    for name in (folder / "ImageSets/Segmentation/val.txt").read_text().split():
        image = np.asarray(Image.open(folder / "JPEGImages" / f"{name}.png").convert("RGB"), dtype=np.float32) / 255
        mask = np.asarray(Image.open(folder / "SegmentationClass" / f"{name}.png")).astype(np.int64)
        x = torch.from_numpy(image).permute(2, 0, 1)
        x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
        with torch.no_grad():
            pred = model(x[None])[0].argmax(0).numpy()
        keep = mask != 255
        confusion += np.bincount(mask[keep] * classes + pred[keep], minlength=classes ** 2).reshape(classes, classes)
    inter = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - inter
    return float(100 * np.mean(inter[union > 0] / union[union > 0]))


def _calibrated(model: nn.Module, data) -> nn.Module:
    """Batch-norm statistics of the training images (unit-scale features), then eval mode."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average: this batch's statistics exactly
    mean, std = data.channel_stats()
    with torch.no_grad():
        model.train()(((data.train_images.float() / 255 - torch.tensor(mean).view(3, 1, 1))
                       / torch.tensor(std).view(3, 1, 1))[..., :32, :32])
    return model.eval()


def test_measurements_are_the_protocols_and_match_a_plain_loop(tmp_path, one_thread):
    cfg = SegDemoConfig(out_dir=str(tmp_path), crop_size=32, max_shift=8, train_size=4, test_size=6, width=4,
                        epochs_shift=2, progress=False, plot=False)
    data = seg_data_for(cfg)
    assert sorted(p.name for p in data.folder.iterdir()) == ["ImageSets", "JPEGImages", "SegmentationClass",
                                                             "classes.txt"]
    mean, std = data.channel_stats()
    found = {}
    for spec in ("baseline", "aps"):
        model = _calibrated(_variant(spec)[0], data)  # random weights: predictions that vary from pixel to pixel
        metrics = measure_segmentation(model, cfg, data, torch.device("cpu"), spec)
        assert metrics["miou"] == pytest.approx(_plain_miou(model, data.folder, mean, std, len(SEG_CLASSES)), abs=1e-9)
        assert set(metrics["per_class_iou"]) == set(SEG_CLASSES) and metrics["pairs"] == 2 * cfg.test_size
        assert metrics["lines"][0].startswith(" * mIoU ")
        assert any(line.startswith("Circular segmentation consistency ") for line in metrics["lines"])
        found[spec] = metrics
    assert found["aps"]["circular_consistency"] == 100.0 > found["baseline"]["circular_consistency"]
    low, high = found["baseline"]["consistency_ci95"]
    assert low <= found["baseline"]["consistency"] <= high <= 100


def test_training_is_deterministic(tmp_path, one_thread):
    cfg = SegDemoConfig(out_dir=str(tmp_path), epochs=1, crop_size=32, max_shift=8, train_size=8, test_size=2,
                        width=4, batch_size=4, progress=False, plot=False)
    data = seg_data_for(cfg)
    runs = [train_seg_variant(cfg, data, parse_seg_variant(spec), torch.device("cpu")) for spec in ("blurpool:3",) * 2]
    timeless = [{k: v for k, v in run["metrics"].items() if k != "train_time_s"} for run in runs]
    assert timeless[0] == timeless[1] and timeless[0]["train_loss"] > 0
    assert runs[0]["model"] == "unet_lpf3" and runs[0]["upsample"] and runs[0]["seed"] == 0
    assert 0 < runs[0]["metrics"]["train_loss"] < 10


def test_tiny_segmentation_demo_end_to_end(tmp_path, capsys, one_thread):
    out = tmp_path / "demo"
    argv = ["--task", "segmentation", "--epochs", "1", "--train-size", "8", "--test-size", "3", "--width", "4",
            "--crop-size", "32", "--max-shift", "8", "-b", "4", "--no-plot", "--no-progress", "--out-dir", str(out)]
    assert demo_main(argv) == 0
    printed = capsys.readouterr().out
    assert HEADER in printed
    rows = {label: _row(printed, label) for label in LABELS}
    assert all(len(cells) == 3 for cells in rows.values())
    assert all(0 <= float(cell) <= 100 for cells in rows.values() for cell in cells)
    assert rows["APS, circular, polyphase up"][2] == "100.00"  # exactly equivariant: every pixel agrees
    assert "antialias(unet(), method='blurpool', filter_size=3, upsample=False)" in printed
    assert "40 is a multiple of the U-Net's total stride 8" in printed
    data = json.loads(next(out.glob("results_*.json")).read_text())
    assert data["task"] == "segmentation" and data["seeds"] == [0]
    assert [(r["method"], r["upsample"]) for r in data["results"]] == [(None, True), ("blurpool", False),
                                                                       ("blurpool", True), ("aps", True)]
    assert (out / "demo_seg_unet_seed0.md").read_text().startswith(HEADER)
    assert (out / "seg_shapes" / "ImageSets" / "Segmentation" / "val.txt").read_text().split() == \
        ["val_00000", "val_00001", "val_00002"]


def test_segmentation_demo_flag_errors(tmp_path, capsys):
    common = ["--task", "segmentation", "--no-progress", "--out-dir", str(tmp_path)]
    assert demo_main([*common, "--data", str(tmp_path)]) == 2
    assert "--data does not apply to --task segmentation" in capsys.readouterr().err
    assert demo_main([*common, "--crop-size", "30"]) == 2
    assert "multiples of the U-Net's total stride 8" in capsys.readouterr().err
    assert demo_main([*common, "--net", "democnn"]) == 2
    assert "--net must be one of ['unet', 'unet-bilinear'] for segmentation" in capsys.readouterr().err
    assert demo_main(["--net", "unet", "--no-progress", "--out-dir", str(tmp_path)]) == 2
    assert "--net must be one of" in capsys.readouterr().err
    assert demo_main([*common, "--methods", "aps/up"]) == 2
    assert "unknown anti-aliasing method" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # every error before any data is written
