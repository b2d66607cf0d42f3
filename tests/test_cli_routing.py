"""What ``main.py`` runs for which flags (export, evaluate, train), and how its errors end."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

import antialiased
import antialiased.cli.paper as paper
from antialiased.cli.paper import get_args_parser, main as paper_main, route
from antialiased.errors import DataError
from tests._evalutil import make_val_folder, sample_files

N = 4
SMALL = ["--crop-size", "64", "--max-shift", "16", "-j", "0", "--no-progress", "-b", "4"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, imagenet_sample_dir):
    root = tmp_path_factory.mktemp("routing")
    return make_val_folder(root, sample_files(imagenet_sample_dir, N, step=211))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(2)
    model = antialiased.create_model("resnet18_lpf2", num_classes=N)
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pth.tar"
    torch.save({"epoch": 1, "arch": "resnet18_lpf2", "best_acc1": 0.0, "optimizer": {"state": {}},
                "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    return path, model.state_dict()


def _steps(command: str, mode: str | None = None) -> list[str]:
    return route(get_args_parser().parse_args(command.split()), mode)


@pytest.mark.parametrize("command, mode, steps", [
    ("--data D -a resnet18_lpf4 -e --save_weights W", None, ["export", "evaluate"]),  # export refuses: no --resume
    ("--data D -a resnet18_lpf4 -e --resume C --save_weights W", None, ["export", "evaluate"]),
    ("-a resnet18_lpf4 --resume C --save_weights W", None, ["export"]),
    ("--data D -a resnet18_lpf4 --resume C --save_weights W", None, ["export"]),
    ("--data D -a resnet18_lpf4 --out-dir O --save_weights W", None, ["train"]),
    ("-a resnet18_lpf4 --save_weights W", None, ["export"]),  # refuses: no --resume, nothing to train on
    ("--data D -a resnet18_lpf4 -es", None, ["evaluate"]),
    ("--data D -a resnet18_lpf4 --out-dir O", None, ["train"]),
    ("--data D -a resnet18_lpf4 --out-dir O --save_weights W", "train", ["train"]),
])
def test_route_table(command, mode, steps):
    assert _steps(command, mode) == steps


def test_save_weights_with_evaluation_and_no_checkpoint_is_refused(data_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(paper, "run_training", lambda args: pytest.fail("must not train"))
    weights = tmp_path / "w.pth"
    argv = ["--data", str(data_root), "-a", "resnet18_lpf2", "-e", "--save_weights", str(weights),
            "--out-dir", str(tmp_path / "out"), *SMALL]
    assert paper_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("main.py: error: --save_weights") and "--resume CHECKPOINT" in err
    assert not weights.exists() and not (tmp_path / "out").exists()


def test_resume_and_save_weights_with_evaluation_exports_then_evaluates(data_root, checkpoint, tmp_path, capsys):
    path, state = checkpoint
    weights = tmp_path / "w.pth"
    argv = ["--data", str(data_root), "-a", "resnet18_lpf2", "-e", "--resume", str(path), "--save_weights",
            str(weights), "--out-dir", str(tmp_path / "out"), *SMALL]
    assert paper_main(argv) == 0
    out = capsys.readouterr().out
    assert out.index("=> wrote weights") < out.index(" * Acc@1")
    exported = torch.load(weights, weights_only=True)
    # No training state (optimizer, epoch) travels; the run's identity (arch) does.
    assert sorted(exported) == ["arch", "state_dict"]
    assert all(torch.equal(exported["state_dict"][k], v) for k, v in state.items())
    result = json.loads(next((tmp_path / "out").glob("results_*_accuracy_*.json")).read_text())
    assert result["weights"] == f"checkpoint:{path.resolve()}" and result["counts"]["images"] == N


def test_resume_and_save_weights_alone_only_exports(data_root, checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(paper, "run_training", lambda args: pytest.fail("must not train"))
    monkeypatch.setattr(paper, "run_evaluation", lambda args: pytest.fail("must not evaluate"))
    path, state = checkpoint
    weights = tmp_path / "w.pth"
    assert paper_main(["--data", str(data_root), "-a", "resnet18_lpf2", "--resume", str(path), "--save_weights",
                       str(weights)]) == 0
    assert set(torch.load(weights, weights_only=True)["state_dict"]) == set(state)
    assert "=> wrote weights" in capsys.readouterr().out


def test_data_and_save_weights_without_evaluation_trains(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(paper, "run_training", lambda args: calls.append(args) or 0)
    monkeypatch.setattr(paper, "run_evaluation", lambda args: pytest.fail("must not evaluate"))
    argv = ["--data", str(tmp_path), "-a", "resnet18_lpf2", "--out-dir", str(tmp_path / "o"), "--save_weights",
            str(tmp_path / "w.pth")]
    assert paper_main(argv) == 0
    assert len(calls) == 1 and calls[0].save_weights == str(tmp_path / "w.pth")  # training exports model_best


def test_unexpected_errors_keep_their_traceback_and_package_errors_are_one_line(monkeypatch, capsys):
    monkeypatch.setattr(paper, "run_evaluation", lambda args: (_ for _ in ()).throw(ZeroDivisionError("bug")))
    with pytest.raises(ZeroDivisionError):
        paper_main(["--data", "D", "-e"])
    monkeypatch.setattr(paper, "run_evaluation", lambda args: (_ for _ in ()).throw(DataError("two\nlines")))
    assert paper_main(["--data", "D", "-e"], mode="eval") == 2
    assert capsys.readouterr().err.startswith("antialiased eval: error: two\nlines\n")


def test_worker_errors_end_in_the_original_message(data_root, tmp_path, capsys):
    root = tmp_path / "bad"
    for f in (data_root / "val").rglob("*.JPEG"):
        (root / "val" / f.parent.name).mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.realpath(f), root / "val" / f.parent.name / f.name)
    broken = next((root / "val").iterdir()) / "broken.JPEG"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    argv = ["--data", str(root), "-a", "resnet18_lpf2", "-e", "--strict", *SMALL, "-j", "1"]
    with pytest.warns(UserWarning, match="randomly initialized"):
        assert paper_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("main.py: error: ") and "broken.JPEG" in err
    assert "Original Traceback" not in err and "DataLoader worker" not in err


# --- --resume auto outside training: the newest readable checkpoint of --out-dir ---------------------


def test_resume_auto_with_save_weights_exports_the_newest_readable_checkpoint(checkpoint, tmp_path, capsys,
                                                                               monkeypatch):
    monkeypatch.setattr(paper, "run_training", lambda args: pytest.fail("must not train"))
    path, state = checkpoint
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint_prev.pth.tar").write_bytes(path.read_bytes())
    (run / "checkpoint.pth.tar").write_bytes(path.read_bytes()[:1000])  # torn newest: passed over, left alone
    weights = tmp_path / "w.pth"
    with pytest.warns(RuntimeWarning, match=r"passed over checkpoint\.pth\.tar .*resuming from .*checkpoint_prev"):
        assert paper_main(["-a", "resnet18_lpf2", "--resume", "auto", "--out-dir", str(run),
                           "--save_weights", str(weights)]) == 0
    out = capsys.readouterr().out
    assert f"=> --resume auto: {run / 'checkpoint_prev.pth.tar'} (epoch 1)" in out
    assert f"=> wrote weights of {run / 'checkpoint_prev.pth.tar'} to {weights}" in out
    exported = torch.load(weights, weights_only=True)["state_dict"]
    assert set(exported) == set(state) and all(torch.equal(exported[k], v) for k, v in state.items())
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pth.tar", "checkpoint_prev.pth.tar"]


def test_resume_auto_with_evaluation_evaluates_the_newest_checkpoint(data_root, checkpoint, tmp_path, capsys):
    path, _ = checkpoint
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pth.tar").write_bytes(path.read_bytes())
    argv = ["--data", str(data_root), "-a", "resnet18_lpf2", "-e", "--resume", "auto", "--out-dir", str(run), *SMALL]
    assert paper_main(argv) == 0
    assert " * Acc@1" in capsys.readouterr().out
    result = json.loads(next(run.glob("results_*_accuracy_*.json")).read_text())
    assert result["weights"] == f"checkpoint:{(run / 'checkpoint.pth.tar').resolve()}"


@pytest.mark.parametrize("where, expected", [
    (None, r"main.py: error: --resume auto takes the newest readable checkpoint in --out-dir: add --out-dir DIR"),
    ("empty", r"main.py: error: --resume auto: \S+empty holds no training checkpoint \(checkpoint\.pth\.tar, .*"
              r"--resume PATH"),
    ("absent", r"main.py: error: --resume auto: \S+absent holds no training checkpoint"),
])
def test_resume_auto_without_a_checkpoint_is_a_clear_error(where, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(paper, "run_evaluation", lambda args: pytest.fail("must not evaluate"))
    (tmp_path / "empty").mkdir()
    weights = tmp_path / "w.pth"
    argv = ["-a", "resnet18_lpf2", "--resume", "auto", "--save_weights", str(weights), "-e"]
    assert paper_main(argv + (["--out-dir", str(tmp_path / where)] if where else [])) == 2
    err = capsys.readouterr().err
    assert re.match(expected, err), err
    assert "Traceback" not in err and not weights.exists()


def test_training_resolves_resume_auto_itself(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(paper, "run_training", lambda args: seen.append(args.resume) or 0)
    assert paper_main(["--data", str(tmp_path), "-a", "resnet18_lpf2", "--out-dir", str(tmp_path / "new"),
                       "--resume", "auto"]) == 0
    assert seen == ["auto"]  # a new run when the folder holds no checkpoint: training's decision


def test_resume_help_mentions_auto():
    help_text = " ".join(get_args_parser().format_help().split())
    assert "or 'auto': the newest readable checkpoint in --out-dir" in help_text
