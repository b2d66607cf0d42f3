"""``eval --resume CKPT`` / ``--weights FILE`` without ``-a``: the model the file records, not resnet18 (and no data
read first)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import torch

import antialiased
from antialiased.cli import main as antialiased_main
from antialiased.cli._recorded_arch import arch_default, use_recorded_arch
from antialiased.cli.paper import get_args_parser, main as paper_main
from tests._evalutil import make_val_folder, read_result, sample_files

N = 4
SMALL = ["--crop-size", "64", "--max-shift", "16", "-j", "0", "--no-progress", "-b", "4"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, imagenet_sample_dir):
    return make_val_folder(tmp_path_factory.mktemp("ilsvrc"), sample_files(imagenet_sample_dir, N, step=211))


def _checkpoint(path: Path, arch: str, **extra) -> Path:
    torch.manual_seed(2)
    model = antialiased.create_model("resnet18_lpf2", num_classes=N)
    torch.save({"epoch": 1, "arch": arch, "state_dict": model.state_dict(), **extra}, path)
    return path


def test_eval_without_a_uses_the_checkpoints_model(data_root, tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "checkpoint.pth.tar", "resnet18_lpf2")
    out = tmp_path / "out"
    assert antialiased_main(["eval", "--data", str(data_root), "--resume", str(ckpt), "--out-dir", str(out),
                             *SMALL]) == 0
    printed = capsys.readouterr().out
    assert f"=> -a not given: using 'resnet18_lpf2', the model {ckpt} records" in printed
    result = read_result(out, "accuracy")
    assert (result["model"], result["filter_size"]) == ("resnet18_lpf2", 2)
    assert result["weights"] == f"checkpoint:{ckpt.resolve()}"
    # -a typed (even the old default) is kept: the identity check refuses it, naming both, as before
    assert antialiased_main(["eval", "-a", "resnet18", "--data", str(data_root), "--resume", str(ckpt),
                             "--out-dir", str(out), *SMALL]) == 2
    err = capsys.readouterr().err
    assert f"was trained as 'resnet18_lpf2', but -a/--arch is 'resnet18'" in err and "Traceback" not in err


def test_export_weights_without_a_uses_the_checkpoints_model(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "checkpoint.pth.tar", "resnet18_lpf2")
    out = tmp_path / "w.pth"
    assert paper_main(["--resume", str(ckpt), "--save_weights", str(out)]) == 0  # main.py: export only
    saved = torch.load(out, weights_only=True)
    assert saved["arch"] == "resnet18_lpf2" and type(saved["arch"]) is str
    assert torch.equal(saved["state_dict"]["fc.weight"], torch.load(ckpt, weights_only=True)["state_dict"]["fc.weight"])


def test_a_bad_recorded_name_fails_before_the_data_is_listed(data_root, tmp_path, capsys, monkeypatch):
    ckpt = _checkpoint(tmp_path / "checkpoint.pth.tar", "resnt18_lpf2")
    listed: list[str] = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path=".": listed.append(str(path)) or real_scandir(path))
    assert antialiased_main(["eval", "--data", str(data_root), "--resume", str(ckpt), *SMALL]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'resnt18_lpf2'" in err and "Closest names: resnet18" in err
    assert not [p for p in listed if p.startswith(str(data_root))]


def test_recorded_method_and_options_come_with_the_name(tmp_path, capsys):
    spec = {"name": "resnet18_lpf2", "family": "paper", "arch": "resnet18", "filter_size": 2, "method": "aps",
            "options": {"circular": True}, "task": "classification"}
    ckpt = _checkpoint(tmp_path / "c.pth.tar", "resnet18_lpf2", model_spec=spec)
    args = get_args_parser().parse_args(["--resume", str(ckpt), "-e"])
    use_recorded_arch(args, ["evaluate"])
    assert (args.arch, args.aa_method, args.aa_options) == ("resnet18_lpf2", "aps", [("circular", True)])
    given = get_args_parser().parse_args(["--resume", str(ckpt), "-e", "--aa-method", "blurpool"])
    use_recorded_arch(given, ["evaluate"])  # a method typed is kept (the loader checks it against the record)
    assert (given.arch, given.aa_method, given.aa_options) == ("resnet18_lpf2", "blurpool", None)
    trained = get_args_parser().parse_args(["--resume", str(ckpt), "--data", "d"])
    use_recorded_arch(trained, ["train"])  # training resumes the recorded model too
    assert (trained.arch, trained.aa_method, trained.aa_options) == ("resnet18_lpf2", "aps", [("circular", True)])
    plain = argparse.Namespace(arch=arch_default(), resume="", aa_method=None, aa_options=None)
    use_recorded_arch(plain, ["evaluate"])
    assert plain.arch == "resnet18" and type(plain.arch) is str


def test_eval_weights_without_a_uses_the_model_the_file_records(data_root, tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "checkpoint.pth.tar", "resnet18_lpf2")
    weights = tmp_path / "w.pth"
    assert paper_main(["--resume", str(ckpt), "--save_weights", str(weights)]) == 0  # records arch, no epoch
    capsys.readouterr()
    out, typed = tmp_path / "out", tmp_path / "typed"
    assert antialiased_main(["eval", "--data", str(data_root), "--weights", str(weights), "--out-dir", str(out),
                             *SMALL]) == 0
    assert f"=> -a not given: using 'resnet18_lpf2', the model {weights} records" in capsys.readouterr().out
    result = read_result(out, "accuracy")
    assert (result["model"], result["filter_size"]) == ("resnet18_lpf2", 2)
    # the same figures as with -a typed: the same model and weights
    assert antialiased_main(["eval", "-a", "resnet18_lpf2", "--data", str(data_root), "--weights", str(weights),
                             "--out-dir", str(typed), *SMALL]) == 0
    assert result["metrics"] == read_result(typed, "accuracy")["metrics"]


def test_eval_weights_recording_nothing_keep_the_default(data_root, tmp_path, capsys):
    torch.manual_seed(3)
    plain = tmp_path / "plain.pth"  # a bare state dict: no arch recorded
    torch.save(antialiased.create_model("resnet18", num_classes=N).state_dict(), plain)
    out = tmp_path / "out"
    assert antialiased_main(["eval", "--data", str(data_root), "--weights", str(plain), "--out-dir", str(out),
                             *SMALL]) == 0
    assert "-a not given" not in capsys.readouterr().out
    assert read_result(out, "accuracy")["model"] == "resnet18"
