"""Per-class IoU intervals record their method (``per_class_iou_ci95_method``), like every other interval."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from antialiased.demo.seg_shapes import SEG_CLASSES, write_seg_shapes
from antialiased.evaluation import DataSettings, EvalConfig, ModelSource, RunSettings, SegmentationOptions, evaluate
from antialiased.evaluation.bootstrap import IntervalBounds
from antialiased.evaluation.invariance import InvarianceOptions
from antialiased.evaluation.segmentation import miou_intervals
from tests._evalutil import read_result


def _counts(per_image: list[list[tuple[int, int, int]]]) -> np.ndarray:
    """(images, 3, classes) from per image and class (right, predicted, labelled) pixel counts."""
    return np.array([np.array(image, dtype=float).T for image in per_image])


def test_per_class_intervals_know_their_method():
    # class 2 is neither labelled nor predicted anywhere: no IoU, no interval, no method
    counts = _counts([[(3, 4, 5), (1, 2, 1), (0, 0, 0)], [(2, 2, 3), (0, 1, 1), (0, 0, 0)],
                      [(4, 5, 4), (2, 2, 3), (0, 0, 0)]])
    found = miou_intervals(counts, resamples=200, seed=0)
    first, second, absent = found["iou"]
    assert isinstance(first, IntervalBounds) and (first.method, second.method) == ("bootstrap", "bootstrap")
    assert absent is None and found["miou"].method == "bootstrap"
    pooled = 100 * 9 / (11 + 12 - 9)  # class 0 over all images: right / (predicted + labelled - right)
    assert first[0] <= pooled <= first[1]
    one = miou_intervals(counts[:1], resamples=200, seed=0)  # one image: no interval can be drawn
    assert one["iou"][0].method == "none" and np.isnan(one["iou"][0]).all() and one["miou"].method == "none"


class _PixelNet(nn.Module):
    def __init__(self, classes: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Conv2d(3, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_result_file_records_the_per_class_method(tmp_path):
    root = write_seg_shapes(tmp_path / "voc", train=0, val=3, size=48, seed=5)
    config = EvalConfig(model=ModelSource("toy"), protocols=("accuracy",), out_dir=str(tmp_path / "out"),
                        data=DataSettings(root, batch_size=1, workers=0), task="segmentation",
                        segmentation=SegmentationOptions(size=32, crop_size=32),
                        invariance=InvarianceOptions(resamples=200),
                        run=RunSettings(seed=1, progress=False, channels_last=False))
    evaluate(config, model=_PixelNet(len(SEG_CLASSES)).eval())
    metrics = read_result(tmp_path / "out", "segmentation_accuracy")["metrics"]
    intervals, methods = metrics["per_class_iou_ci95"], metrics["per_class_iou_ci95_method"]
    assert set(methods) == set(intervals) == set(metrics["per_class_iou"])
    for name, ci in intervals.items():  # a class with an IoU has a bootstrap interval over the 3 images
        assert (methods[name], ci) == (None, None) if metrics["per_class_iou"][name] is None else \
            methods[name] == "bootstrap" and len(ci) == 2
    assert any(m == "bootstrap" for m in methods.values()) and metrics["miou_ci95_method"] == "bootstrap"
