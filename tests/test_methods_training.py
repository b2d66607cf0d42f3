"""Issue 19's methods in training, exactness, export and on the command line.

- LPS in eval mode with ``circular=True``: a converted ResNet-18 and MobileNet-v2 give the same
  logits for every circular shift tried (as ``tests/test_aps_exactness.py`` tests APS), in training
  mode too when the Gumbel noise is the same for every shift (all scorers see the same data).
- The optimizer: the parameters of LPS's scorer and of TIPS go to groups without weight decay (their
  authors'), every other parameter to the default group; the LPS temperature follows the authors'
  step decay (x0.85 every 10 epochs, at least 0.025), set from the epoch alone, and a real training
  run (``antialiased train --aa-method lps``) applies it.
- ONNX: every method exports (the FFT methods as matrix products) and onnxruntime agrees.
- ``--aa-method`` / ``--aa-option``: choices and help from the method table; a bad option ends the
  command at once with one line.
"""
from __future__ import annotations

import copy
import json
import re

import pytest
import torch
import torchvision
from torch import nn

from antialiased.cli._aa_flags import parse_aa_option
from antialiased.layers import LearnablePolyphaseSampling
from antialiased.models.antialias import METHODS, antialias
from antialiased.training.method_rules import apply_epoch_schedules, parameter_groups
from antialiased.training.optim import build_optimizer
from test_training_fixtures import cifar_subset  # noqa: F401  (a pytest fixture)
from tests.test_aps_exactness import _calibrated, _check_exact, _logits, _spread

NARROW = {
    "resnet18": lambda: torchvision.models.resnet18(num_classes=10),
    "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.25),
}
SHIFTS = [(1, 0), (0, 1), (1, 1), (3, 7), (17, 29), (31, 31), (63, 45)]


@pytest.mark.parametrize("method", ["lps", "lps-lpf"])
@pytest.mark.parametrize("name", list(NARROW))
def test_lps_is_exactly_invariant_to_circular_shifts(name, method, one_thread):
    base = _calibrated(NARROW[name])
    model = antialias(NARROW[name](), method=method, circular=True, filter_size=3)
    model.load_state_dict(base.state_dict(), strict=False)
    torch.manual_seed(1)
    x = torch.randn(1, 3, 64, 64)
    _check_exact(_logits(model.eval(), x, SHIFTS))
    assert _spread(_logits(base, x, [(1, 0), (3, 7)])) > 1e-2  # the baseline is not invariant


def test_lps_shortcut_samplers_follow_the_main_path_and_freeze_their_scorer():
    model = antialias(torchvision.models.resnet18(num_classes=3), method="lps")
    main, shortcut = model.layer2[0].blur_conv1, model.layer2[0].downsample.blur_0  # before the shortcut's 1x1 conv
    assert isinstance(main, LearnablePolyphaseSampling) and isinstance(shortcut, LearnablePolyphaseSampling)
    assert all(p.requires_grad for p in main.parameters())
    assert not any(p.requires_grad for p in shortcut.parameters())  # never called: it takes main's phase
    hand_off = [c for c in model.antialias_summary.changed if c.kind == "phase" and c.path == "layer2.0.blur_conv1"]
    assert hand_off and "layer2.0.downsample.blur_0" in hand_off[0].after


def test_lps_upsampling_takes_soft_phases_in_training():
    from tests._upsample_nets import TinyUNet, calibrated

    net = calibrated(TinyUNet())
    model = antialias(copy.deepcopy(net), method="lps", circular=True)
    model.load_state_dict(net.state_dict(), strict=False)
    x = torch.randn(2, 3, 32, 32)
    model.train()(x).sum().backward()  # Gumbel weights reach every upsampling (composed for the 8x one)
    model.eval()
    with torch.no_grad():
        y, shifted = model(x), model(torch.roll(x, (3, 5), dims=(2, 3)))
    torch.testing.assert_close(shifted, torch.roll(y, (3, 5), dims=(2, 3)), rtol=1e-4, atol=1e-4)  # equivariant


# --- optimizer groups and schedules ----------------------------------------------------------------


def test_optimizer_groups_follow_each_methods_paper():
    lps = antialias(torchvision.models.resnet18(num_classes=3), method="lps")
    groups = {g["name"]: g for g in build_optimizer(lps, lr=0.1, momentum=0.9, weight_decay=1e-4).param_groups}
    scorers = {id(p) for m in lps.modules() if isinstance(m, LearnablePolyphaseSampling)
               for p in m.scorer.parameters() if p.requires_grad}
    assert {id(p) for p in groups["LearnablePolyphaseSampling"]["params"]} == scorers
    assert groups["LearnablePolyphaseSampling"]["weight_decay"] == 0.0 and groups["default"]["weight_decay"] == 1e-4
    assert {id(p) for p in groups["default"]["params"]}.isdisjoint(scorers)
    assert len(groups["default"]["params"]) + len(scorers) == len(list(lps.parameters()))  # each parameter once
    tips = antialias(torchvision.models.resnet18(num_classes=3), method="tips")
    assert [g["name"] for g in parameter_groups(tips, lr=0.1, weight_decay=1e-4)] == [
        "default", "TranslationInvariantPolyphaseSampling"]
    for method in ("blurpool", "adaptive", "flc", "wavelet"):  # their authors train the new layers like the rest
        net = antialias(torchvision.models.resnet18(num_classes=3), method=method)
        (only,) = parameter_groups(net, lr=0.1, weight_decay=1e-4)
        assert len(only["params"]) == len(list(net.parameters()))


def test_gumbel_temperature_follows_the_authors_step_decay():
    model = antialias(torchvision.models.resnet18(num_classes=3), method="lps")
    layers = [m for m in model.modules() if isinstance(m, LearnablePolyphaseSampling)]
    for epoch in (0, 9, 10, 25, 200, 3):
        apply_epoch_schedules(model, epoch)
        want = max(0.025, 1.0 * 0.85 ** (epoch // 10))
        assert all(float(m.gumbel_tau) == pytest.approx(want) for m in layers), epoch
    assert apply_epoch_schedules(model, 3) == []  # set from the epoch alone: nothing changes twice


def test_training_applies_the_schedule(cifar_subset, tmp_path):
    """``--start-epoch 10``: the run's first epoch is the 11th, where the authors' temperature is 0.85."""
    from test_training_fixtures import load, tiny_args, train_cli  # noqa: F811

    out = tmp_path / "run"
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "11", "--start-epoch", "10", "-mti", "1", "-b", "8",
                                arch="mobilenet_v3_small_lpf2"),
                     "--aa-method", "lps", "--aa-option", "hidden_channels=4") == 0
    checkpoint = load(out / "checkpoint.pth.tar")
    taus = [v for k, v in checkpoint["state_dict"].items() if k.endswith("gumbel_tau")]
    assert taus and all(float(t) == pytest.approx(0.85) for t in taus)
    assert checkpoint["model_spec"]["options"] == {"hidden_channels": 4}
    assert [g["weight_decay"] for g in checkpoint["optimizer"]["param_groups"]] == [1e-4, 0.0]


# --- export ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["adaptive", "lps", "lps-lpf", "flc", "asap", "wavelet", "tips"])
def test_every_method_exports_to_onnx(method, tmp_path, one_thread):
    pytest.importorskip("onnxruntime", reason="onnxruntime is an optional dependency (pip install onnxruntime)")
    from antialiased.export import VerifySettings, export_model

    torch.manual_seed(0)
    net = antialias(nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
                                  nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(16, 4)), method=method)
    result = export_model(net, tmp_path / f"{method}.onnx", input_size=32,
                          verify=VerifySettings(num_images=2, random_batches=(3,)))
    assert result.verification.passed and result.verification.max_abs_diff < 1e-4
    if method in ("flc", "asap"):  # the FFT runs as two real matrix products: no FFT operator needed
        assert "MatMul" in result.op_counts and not any("DFT" in op for op in result.op_counts)


# --- command line ------------------------------------------------------------------------------------


def test_aa_option_values_parse_as_literals():
    assert parse_aa_option("groups=4") == ("groups", 4)
    assert parse_aa_option("hidden-channels=None") == ("hidden_channels", None)
    assert parse_aa_option("include_stem=True") == ("include_stem", True)
    assert parse_aa_option("crop=authors") == ("crop", "authors")


def test_aa_method_lists_every_method_and_their_options(capsys):
    from antialiased.cli.paper import get_args_parser

    parser = get_args_parser()
    action = next(a for a in parser._actions if a.dest == "aa_method")
    assert set(action.choices) == set(METHODS)
    for method in METHODS.values():
        assert all(option.name in action.help for option in method.method_options)


@pytest.mark.parametrize("argv,message", [
    (["--aa-method", "adaptive", "--aa-option", "groups=0"], "groups must be a positive integer"),
    (["--aa-method", "flc", "--aa-option", "groups=4"], "unknown aa_options 'groups'"),
    (["--aa-method", "adaptive", "-a", "resnet18_lpf4"], r"use _lpf3, _lpf5 or _lpf7 \(method adaptive\)"),
    (["--aa-option", "groups"], "expected KEY=VALUE"),
])
def test_bad_method_options_end_the_command_with_one_line(argv, message, tmp_path, capsys):
    from antialiased.cli.paper import main

    try:
        status = main(["--data", str(tmp_path / "absent"), "-a", "resnet18_lpf3", *argv], mode="eval")
    except SystemExit as exit:  # argparse's own errors (a malformed KEY=VALUE)
        status = exit.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error:" in line]  # argparse's own errors come after its usage lines
    assert len(errors) == 1 and re.search(message, errors[0]) and not any("Traceback" in line for line in err)


def test_audit_and_report_put_methods_side_by_side(imagenet_sample_dir, tmp_path, capsys):
    from antialiased.cli import main
    from tests._evalutil import make_val_folder, sample_files

    data = make_val_folder(tmp_path / "data", sample_files(imagenet_sample_dir, 2, step=211))
    out = tmp_path / "audit"
    assert main(["audit", "-a", "resnet18_lpf3@lps", "-a", "resnet18_lpf3@flc", "--data", str(data), "--out-dir",
                 str(out), "--protocols", "ec", "--crop-size", "32", "--max-shift", "4", "--bootstrap", "100",
                 "-j", "0", "--no-progress", "-b", "2", "--no-plots"]) == 0
    summary = json.loads((out / "report.json").read_text())
    assert [(m["label"], m["method"]) for m in summary["models"]] == [("resnet18_lpf3@lps", "lps"),
                                                                      ("resnet18_lpf3@flc", "flc")]
    assert "resnet18_lpf3@lps" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main(["report", str(out), "--out-dir", str(tmp_path / "merged"), "--no-plots"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| resnet18_lpf3")]
    assert any("lps" in row for row in rows) and any("flc" in row for row in rows)
