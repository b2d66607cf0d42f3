"""``antialiased train --resume CKPT`` / ``--resume auto`` / ``--weights FILE`` without ``-a``: the recorded model."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from antialiased.cli import main as antialiased_main
from antialiased.cli._recorded_arch import use_recorded_arch
from antialiased.cli.paper import get_args_parser, main as paper_main
from test_training_fixtures import load, make_subset, register_tiny_models

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = "aa_tinynet_lpf2"
FLAGS = ["--crop-size", "32", "-b", "16", "-j", "0", "--lr", "0.05", "--no-progress"]


@pytest.fixture(scope="module")
def data(cifar10_dir: Path, tmp_path_factory) -> Path:
    return make_subset(cifar10_dir, tmp_path_factory.mktemp("c10"), train_per_class=2, val_per_class=1)


@pytest.fixture(scope="module")
def run(data: Path, tmp_path_factory) -> Path:
    """A run folder after one epoch of the tiny model, trained with -a."""
    register_tiny_models()
    out = tmp_path_factory.mktemp("run")
    assert antialiased_main(["train", "--data", str(data), "-a", TINY, "--out-dir", str(out), "-ep", "1",
                             *FLAGS]) == 0
    return out


def _line(path) -> str:
    return f"=> -a not given: using '{TINY}', the model {path} records (pass -a NAME to choose another)"


def test_train_resume_without_a_continues_the_recorded_model(data, run, capsys):
    capsys.readouterr()
    ckpt = run / "checkpoint.pth.tar"
    assert antialiased_main(["train", "--data", str(data), "--resume", str(ckpt), "--out-dir", str(run), "-ep", "2",
                             *FLAGS]) == 0
    out = capsys.readouterr().out
    assert out.count("=> -a not given") == 1 and _line(ckpt) in out
    assert f"=> training {TINY} on" in out
    saved = load(ckpt)
    assert (saved["epoch"], saved["arch"], type(saved["arch"])) == (2, TINY, str)
    # --resume auto finds the same run's newest checkpoint (epoch 2) and its model
    assert antialiased_main(["train", "--data", str(data), "--resume", "auto", "--out-dir", str(run), "-ep", "3",
                             *FLAGS]) == 0
    out = capsys.readouterr().out
    assert _line(ckpt) in out and "2 epoch(s) done" in out
    assert (load(ckpt)["epoch"], load(ckpt)["arch"]) == (3, TINY)


def test_train_weights_without_a_starts_from_the_recorded_model(data, run, tmp_path, capsys):
    weights = tmp_path / "w.pth"
    assert paper_main(["--resume", str(run / "model_best.pth.tar"), "--save_weights", str(weights)]) == 0
    exported = torch.load(weights, weights_only=True)
    assert exported["arch"] == TINY and "epoch" not in exported  # what --save_weights files record
    capsys.readouterr()
    new = tmp_path / "new"
    assert antialiased_main(["train", "--data", str(data), "--weights", str(weights), "--out-dir", str(new),
                             "-ep", "1", "--max-train-iters", "1", *FLAGS]) == 0
    assert _line(weights) in capsys.readouterr().out
    assert load(new / "checkpoint.pth.tar")["arch"] == TINY


def test_a_new_run_with_resume_auto_keeps_the_default(tmp_path, capsys):
    for extra in (["--out-dir", str(tmp_path)], []):  # an empty run folder; no --out-dir (training names it)
        args = get_args_parser().parse_args(["--data", "d", "--resume", "auto", *extra])
        use_recorded_arch(args, ["train"])
        assert args.arch == "resnet18" and type(args.arch) is str and args.aa_method is None
    plain = tmp_path / "plain.pth"  # a bare state dict records nothing
    torch.save({"fc.weight": torch.zeros(2, 3)}, plain)
    args = get_args_parser().parse_args(["--data", "d", "--weights", str(plain)])
    use_recorded_arch(args, ["train"])
    assert args.arch == "resnet18"
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("case", ["bad name", "missing file", "unreadable auto"])
def test_resume_errors_come_before_the_data_is_listed(case, data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    ckpt = out / "checkpoint.pth.tar"
    if case == "bad name":
        torch.save({"epoch": 1, "arch": "aa_tinynet_lpf9x", "state_dict": {}}, ckpt)
    elif case == "unreadable auto":
        ckpt.write_bytes(b"torn")
    resume = "auto" if case == "unreadable auto" else str(ckpt)
    listed: list[str] = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path=".": listed.append(str(path)) or real_scandir(path))
    assert antialiased_main(["train", "--data", str(data), "--resume", resume, "--out-dir", str(out), *FLAGS]) == 2
    err = capsys.readouterr().err
    expected = {"bad name": "unknown model 'aa_tinynet_lpf9x'", "missing file": f"checkpoint not found: {ckpt}",
                "unreadable auto": f"--resume auto: no checkpoint in {out} can be read"}[case]
    assert expected in err and "Traceback" not in err, err
    assert not [p for p in listed if p.startswith(str(data))]
