"""The protocol registry (issue 18 item 7): one registration gives a protocol's flag and help, its task, the
audit's protocol list, short names and metric rows, and the report's table columns; the flags, lines and
names of before stay; a segmentation run's records make a report table of mIoU and consistency."""
from __future__ import annotations

import argparse

import pytest
import torch
from torch import nn

from antialiased.cli.eval_args import _PROTOCOL_FLAGS, add_eval_args, protocols_from_args
from antialiased.demo.seg_shapes import SEG_CLASSES, write_seg_shapes
from antialiased.errors import ConfigError, ModelError
from antialiased.evaluation import (PROTOCOLS, DataSettings, EvalConfig, ModelSource, RunSettings, SegmentationOptions,
                                    ShiftOptions, evaluate)
from antialiased.evaluation.audit import AUDIT_PROTOCOLS, PROTOCOL_ALIASES, audit_task, resolve_protocols
from antialiased.evaluation.invariance import InvarianceOptions
from antialiased.evaluation.protocol import Flag, Protocol, register
from antialiased.evaluation.protocols import resolve_protocols as for_task
from antialiased.evaluation.protocols import table_values
from antialiased.reporting import markdown_report, plot_network, summarize
from antialiased.reporting.audit import FIGURES, invariance_markdown


def test_the_flags_and_names_of_before_come_from_the_registry():
    assert _PROTOCOL_FLAGS == (("evaluate", "accuracy"), ("evaluate_shift", "shift_consistency"),
                               ("evaluate_diagonal", "diagonal"), ("evaluate_circular", "circular_consistency"),
                               ("evaluate_fractional", "fractional_consistency"), ("evaluate_adversarial", "adversarial"),
                               ("evaluate_equivariance", "equivariance"))
    assert AUDIT_PROTOCOLS == ("accuracy", "shift_consistency", "diagonal", "circular_consistency",
                               "fractional_consistency", "adversarial", "equivariance", "shift_distance")
    assert PROTOCOL_ALIASES == {"e": "accuracy", "es": "shift_consistency", "shift": "shift_consistency",
                                "ed": "diagonal", "ec": "circular_consistency", "circular": "circular_consistency",
                                "ef": "fractional_consistency", "fractional": "fractional_consistency",
                                "ea": "adversarial", "eq": "equivariance", "distance": "shift_distance"}
    ids = {f"{f.protocol}.{f.key}": f.label for f in FIGURES}
    assert ids["accuracy.acc1"] == "Acc@1, center crop (-e)" and ids["circular_consistency.circular_consistency"] == \
        "Circular consistency (-ec)" and ids["segmentation_accuracy.miou"] == "mIoU, whole image (-e)"
    parser = argparse.ArgumentParser()
    add_eval_args(parser)
    args = parser.parse_args(["-e", "-es", "-ea", "--task", "segmentation", "--seg-size", "300"])
    assert protocols_from_args(args) == ("accuracy", "shift_consistency", "adversarial")
    assert args.task == "segmentation" and args.seg_size == 300
    helps = {a.dest: a.help for a in parser._actions}
    assert helps["evaluate_shift"].startswith("shift consistency: how often two random 224 crops")
    assert "segmentation: the share of pixels of the overlap" in helps["evaluate_shift"]


def test_a_flag_runs_its_task_registration():
    assert for_task(["accuracy", "shift_consistency", "equivariance"], "segmentation") == (
        "segmentation_accuracy", "segmentation_consistency", "equivariance")
    assert for_task(["segmentation_consistency"], "classification") == ("shift_consistency",)
    assert resolve_protocols(None, "segmentation") == (
        "segmentation_accuracy", "segmentation_consistency", "segmentation_circular_consistency",
        "segmentation_fractional_consistency", "segmentation_adversarial", "equivariance")
    with pytest.raises(ConfigError, match="shift_distance is not defined for segmentation models"):
        resolve_protocols(["distance"], "segmentation")
    with pytest.raises(ConfigError, match="unknown protocol"):
        for_task(["bogus"], "classification")
    with pytest.raises(ModelError, match="resnet18 is a classification model but --task segmentation was given"):
        audit_task([ModelSource("resnet18")], "segmentation")


def test_one_registration_is_a_flag_its_help_and_a_result(monkeypatch):
    """A new protocol is one class: the command line and the registry's readers take it as it is."""
    monkeypatch.setattr("antialiased.evaluation.protocol.PROTOCOLS", PROTOCOLS.copy())
    import antialiased.evaluation.protocol as protocol_module

    @register
    class Brightness(Protocol):
        name = "brightness"
        flag = Flag("-eb", "--evaluate-brightness", "mean brightness of what the model sees")

    assert "brightness" in protocol_module.PROTOCOLS and "brightness" not in PROTOCOLS
    assert protocol_module.protocol_flags()[-1].dest == "evaluate_brightness"
    with pytest.raises(ConfigError, match="-eb is already"):
        register(type("Again", (Protocol,), {"name": "again", "flag": Brightness.flag}))
    with pytest.raises(ConfigError, match="registered twice"):
        register(Brightness)


class PixelNet(nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, len(SEG_CLASSES), 1))

    def forward(self, x):
        return {"out": self.body(x)}


def test_segmentation_records_make_a_table_of_miou_and_consistency(tmp_path):
    root = write_seg_shapes(tmp_path / "voc", train=0, val=3, size=48, seed=5)
    records = []
    for name, seed in (("segnet", 0), ("segnet_lpf3", 1)):
        config = EvalConfig(model=ModelSource(name), data=DataSettings(root, batch_size=1, workers=0),
                            protocols=("accuracy", "shift_consistency", "circular_consistency"),
                            run=RunSettings(seed=0, progress=False), shift=ShiftOptions(epochs=1),
                            invariance=InvarianceOptions(resamples=200), out_dir=tmp_path / name,
                            segmentation=SegmentationOptions(size=48, crop_size=32))
        report = evaluate(config, model=PixelNet(seed))
        records += [{**run.record, "arch": "segnet", "filter_size": 3 if "lpf" in name else None}
                    for run in report.runs]
    miou = {r["model"]: r["metrics"]["miou"] for r in records if r["protocol"] == "segmentation_accuracy"}
    assert table_values(records[0]) == (miou["segnet"], None)
    tables = summarize(records)
    rows = tables["segnet"]
    assert [(v.label, v.acc.mean) for v in rows] == [("Baseline", miou["segnet"]), ("Tri-3", miou["segnet_lpf3"])]
    text = markdown_report(tables)
    assert "| mIoU | Consistency (mASSC) |" in text and "| Accuracy |" not in text
    assert plot_network(rows, tmp_path / "segnet.png").stat().st_size > 1000
    invariance = invariance_markdown(records)
    assert "Circular segmentation consistency (-ec) (%)" in invariance and "Pixel accuracy, whole image (-e)" in invariance
    assert "mIoU, whole image" not in invariance  # the table's own columns are not repeated
