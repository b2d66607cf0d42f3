"""Training on a real CIFAR-10 subset: loss goes down, exact resume, accumulation, logs, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from antialiased.training import build_lr_scheduler, build_optimizer, train_one_epoch
from antialiased.training.optim import lr_factor
from antialiased.errors import CheckpointError, ConfigError, DataError, MissingDependencyError, OutputError
from antialiased.training import NonFiniteLossError
from test_training_fixtures import (cifar_subset, load, tiny_args, tiny_models, train_cli,  # noqa: F401
                                    train_fails)

pytestmark = pytest.mark.usefixtures("one_thread")


def _log_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------------- schedules
def test_step_and_cosine_schedules_follow_the_paper():
    model = torch.nn.Linear(2, 2)
    opt = build_optimizer(model, lr=0.1, momentum=0.9, weight_decay=1e-4)
    sched = build_lr_scheduler(opt, schedule="step", lr_step=2, epochs=6)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    assert lr_factor("cosine", 0, epochs=10) == 1.0 and lr_factor("cosine", 10, epochs=10) == pytest.approx(0)


def test_start_epoch_begins_part_way_along_the_schedule():
    opt = build_optimizer(torch.nn.Linear(2, 2), lr=0.1, momentum=0.9, weight_decay=0)
    build_lr_scheduler(opt, schedule="step", lr_step=30, epochs=90, start_epoch=60)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.001)


# ----------------------------------------------------------------------------- inner loop
def test_a_few_epochs_lower_the_loss(cifar_subset, tiny_models):
    from antialiased.data import ImageFolderDataset, eval_transform
    from antialiased.models import create_model

    torch.manual_seed(0)
    data = ImageFolderDataset(cifar_subset / "train", transform=eval_transform(resize=32, crop=32))
    loader = DataLoader(data, batch_size=30, shuffle=False)
    model = create_model("aa_tinynet_lpf2", num_classes=10)
    opt = build_optimizer(model, lr=0.05, momentum=0.9, weight_decay=0)
    losses = [train_one_epoch(model, torch.nn.CrossEntropyLoss(), opt, loader, torch.device("cpu"), e,
                              progress=False)["loss"] for e in range(6)]
    assert losses[-1] < losses[0] - 0.05, losses
    stats = train_one_epoch(model, torch.nn.CrossEntropyLoss(), opt, loader, torch.device("cpu"), 7,
                            max_iters=2, progress=False)
    assert stats["images"] == 60 and stats["images_per_s"] > 0 and 0 <= stats["acc1"] <= 100


# ------------------------------------------------------------------------- command line
def test_cli_trains_and_writes_checkpoints_and_logs(cifar_subset, tmp_path):
    out = tmp_path / "run"
    # --start-epoch 8 -ep 10: two cheap epochs that still reach the every-10-epochs snapshot
    assert train_cli(*tiny_args(cifar_subset, out, "--start-epoch", "8", "-ep", "10", "--seed", "1",
                                "--tensorboard", "--lr_step", "9")) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["checkpoint.pth.tar", "checkpoint_010.pth.tar", "checkpoint_prev.pth.tar", "log.jsonl",
                     "model_best.pth.tar", "tensorboard"]
    assert load(out / "checkpoint_prev.pth.tar")["epoch"] == 9  # the epoch before, a file of its own
    assert (out / "checkpoint_prev.pth.tar").stat().st_ino != (out / "checkpoint.pth.tar").stat().st_ino
    assert any((out / "tensorboard").iterdir())
    ckpt = load(out / "checkpoint.pth.tar")
    assert ckpt["epoch"] == 10 and ckpt["arch"] == "aa_tinynet_lpf2" and ckpt["num_classes"] == 10
    assert {"optimizer", "lr_scheduler", "rng_state", "best_acc1", "state_dict"} <= set(ckpt)
    # num_classes comes from the 10 class folders, and no wrapper prefixes are saved
    assert ckpt["state_dict"]["10.weight"].shape == (10, 16)
    lines = _log_lines(out)
    assert [r["epoch"] for r in lines] == [9, 10]
    assert [r["lr"] for r in lines] == pytest.approx([0.05, 0.005])  # epoch index 8 < 9 <= index 9
    for key in ("lr", "train_loss", "train_acc1", "val_acc1", "val_acc5", "images_per_s", "data_time",
                "epoch_time"):
        assert isinstance(lines[-1][key], float)
    assert lines[-1]["val_images"] == 40
    assert load(out / "model_best.pth.tar")["best_acc1"] == max(r["val_acc1"] for r in lines)


def test_interrupted_then_resumed_training_matches_uninterrupted(cifar_subset, tmp_path):
    common = ("--seed", "3", "--cos_lr", "-j", "1")
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train_cli(*tiny_args(cifar_subset, straight, "-ep", "3", *common)) == 0
    assert train_cli(*tiny_args(cifar_subset, split, "-ep", "1", *common)) == 0  # "killed" after epoch 1
    assert train_cli(*tiny_args(cifar_subset, split, "-ep", "3", "--resume", str(split / "checkpoint.pth.tar"),
                                *common)) == 0
    a, b = load(straight / "checkpoint.pth.tar"), load(split / "checkpoint.pth.tar")
    assert a["epoch"] == b["epoch"] == 3
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(pa["momentum_buffer"], pb["momentum_buffer"])
    assert [r["train_loss"] for r in _log_lines(straight)] == [r["train_loss"] for r in _log_lines(split)]


def test_batch_accumulation_gives_the_large_batch_update(cifar_subset, tmp_path):
    base = ("-ep", "1", "--seed", "5", "--wd", "1e-4", "--lr", "0.2")
    assert train_cli(*tiny_args(cifar_subset, tmp_path / "big", *base, "-mti", "1", "-b", "16",
                                arch="aa_tinynet_nobn_lpf2")) == 0
    assert train_cli(*tiny_args(cifar_subset, tmp_path / "acc", *base, "-mti", "2", "-b", "8", "-ba", "2",
                                arch="aa_tinynet_nobn_lpf2")) == 0
    big, acc = load(tmp_path / "big" / "checkpoint.pth.tar"), load(tmp_path / "acc" / "checkpoint.pth.tar")
    init = None
    for key, value in big["state_dict"].items():
        torch.testing.assert_close(acc["state_dict"][key], value, rtol=1e-5, atol=1e-6)
    # one optimizer step each: momentum buffers hold exactly one gradient
    for pa, pb in zip(big["optimizer"]["state"].values(), acc["optimizer"]["state"].values()):
        torch.testing.assert_close(pb["momentum_buffer"], pa["momentum_buffer"], rtol=1e-5, atol=1e-6)
        init = pa["momentum_buffer"]
    assert init is not None and init.abs().sum() > 0


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(cifar_subset, tmp_path, monkeypatch):
    from antialiased.training import setup

    out = tmp_path / "nan"
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "1", "--seed", "0")) == 0
    good = load(out / "checkpoint.pth.tar")

    class NaNLoss(torch.nn.CrossEntropyLoss):
        def forward(self, output, target):
            return super().forward(output, target) * float("nan")

    monkeypatch.setattr(setup, "build_criterion", NaNLoss)
    train_fails(NonFiniteLossError, r"(?s)training loss is nan.*last good checkpoint.*epoch 1",
                *tiny_args(cifar_subset, out, "-ep", "2", "--resume", str(out / "checkpoint.pth.tar")))
    kept = load(out / "checkpoint.pth.tar")
    assert kept["epoch"] == 1
    assert all(torch.equal(v, good["state_dict"][k]) for k, v in kept["state_dict"].items())
    assert len(_log_lines(out)) == 1
    # the way out the message suggests: the kept weights, a fresh optimizer and a smaller lr
    monkeypatch.undo()
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "2", "--weights", str(out / "checkpoint.pth.tar"),
                                "--start-epoch", "1", "--lr", "0.01")) == 0
    assert load(out / "checkpoint.pth.tar")["epoch"] == 2 and _log_lines(out)[-1]["lr"] == pytest.approx(0.01)


def test_save_weights_export_evaluates_with_weights(cifar_subset, tmp_path):
    from antialiased.cli import main as cli_main
    from antialiased.models import create_model

    out = tmp_path / "w"
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "1", "-mti", "2", "--seed", "0")) == 0
    weights = tmp_path / "weights.pth.tar"
    assert train_cli("-a", "aa_tinynet_lpf2", "--resume", str(out / "model_best.pth.tar"),
                     "--save_weights", str(weights)) == 0
    exported = load(weights)
    # the weights and the run's identity (arch, classes, data folder, spec); no optimizer, epoch or lr
    from antialiased.support.checkpoints import IDENTITY_KEYS

    assert list(exported) == ["state_dict", *IDENTITY_KEYS]
    assert exported["arch"] == "aa_tinynet_lpf2" and exported["num_classes"] == 10
    model = create_model("aa_tinynet_lpf2", weights=weights, num_classes=10)
    trained = load(out / "model_best.pth.tar")["state_dict"]
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items())
    results = tmp_path / "eval"
    assert cli_main(["eval", "--data", str(cifar_subset), "-a", "aa_tinynet_lpf2", "--weights", str(weights),
                     "--crop-size", "32", "-b", "20", "-j", "0", "--out-dir", str(results), "--no-progress"]) == 0
    expected = json.loads((out / "log.jsonl").read_text().splitlines()[-1])["val_acc1"]
    found = [json.loads(p.read_text()) for p in results.rglob("*.json")]
    assert any(_contains_value(f, expected) for f in found), (expected, found)


def _contains_value(obj, value) -> bool:
    if isinstance(obj, dict):
        return any(_contains_value(v, value) for v in obj.values())
    if isinstance(obj, list):
        return any(_contains_value(v, value) for v in obj)
    return isinstance(obj, float) and abs(obj - value) < 1e-6


# ------------------------------------------------------------------------------ bad input
def test_resuming_another_architecture_is_refused(cifar_subset, tmp_path):
    out = tmp_path / "arch"
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "1", "-mti", "1")) == 0
    train_fails(CheckpointError, "trained as 'aa_tinynet_lpf2'.*'aa_tinynet_nobn_lpf2'",
                *tiny_args(cifar_subset, out, "-ep", "2", "--resume", str(out / "checkpoint.pth.tar"),
                           arch="aa_tinynet_nobn_lpf2"))


def test_unwritable_out_dir_fails_before_training(cifar_subset, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    train_fails(OutputError, "cannot write to --out-dir", *tiny_args(cifar_subset, blocker / "out", "-ep", "1"))


def test_data_folder_without_images_is_a_clear_error(tmp_path):
    for split in ("train", "val"):
        (tmp_path / "empty" / split / "cat").mkdir(parents=True)
    train_fails(DataError, "no images found", *tiny_args(tmp_path / "empty", tmp_path / "out", "-ep", "1"))


@pytest.mark.parametrize("extra, message", [
    (("-ba", "0"), "batch-accum must be at least 1"),
    (("--pretrained",), "ImageNet weights with 1000 classes.*10 class folders"),
    (("--finetune",), "ImageNet weights with 1000 classes.*10 class folders"),
    (("--num-classes", "5"), "smaller than the 10 class folders"),
    (("--pretrained", "--finetune"), "pass only one"),
])
def test_bad_flags_are_clear_errors(cifar_subset, tmp_path, extra, message):
    train_fails(ConfigError, message, *tiny_args(cifar_subset, tmp_path / "out", "-ep", "1", *extra))


def test_missing_out_dir_and_multiprocessing_without_gpu(cifar_subset, tmp_path):
    train_fails(ConfigError, "needs --out-dir", "--data", str(cifar_subset), "-a", "aa_tinynet_lpf2")
    if not torch.cuda.is_available():
        train_fails(ConfigError, "no GPU is visible.*torchrun",
                    *tiny_args(cifar_subset, tmp_path / "o", "--multiprocessing-distributed"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback on machines without CUDA")
def test_gpu_flag_without_cuda_warns_and_trains_on_cpu(cifar_subset, tmp_path):
    with pytest.warns(RuntimeWarning, match="CUDA is not available"):
        assert train_cli(*tiny_args(cifar_subset, tmp_path / "gpu", "--gpu", "0", "-ep", "1", "-mti", "1",
                                    "--amp", "bf16", "--channels-last")) == 0
    assert load(tmp_path / "gpu" / "checkpoint.pth.tar")["epoch"] == 1


# ------------------------------------------------------------------------ paper commands
def test_the_seed_training_commands_parse_and_pass_the_checks(shared_dir):
    import shlex

    from antialiased.cli.paper import get_args_parser
    from antialiased.cli.train import config_from_args
    from antialiased.training import check_config

    readme = (shared_dir / "seed" / "README_IMAGENET.md").read_text()
    commands = [line for line in readme.splitlines()
                if line.startswith("python main.py") and "--out-dir" in line]
    assert len(commands) >= 10
    for line in commands:
        args = get_args_parser().parse_args(shlex.split(line)[2:])
        check_config(config_from_args(args))
        assert args.out_dir and args.data
    mobilenet = get_args_parser().parse_args(shlex.split(next(c for c in commands if "mobilenet" in c))[2:])
    assert (mobilenet.epochs, mobilenet.cos_lr, mobilenet.weight_decay, mobilenet.lr) == (150, True, 4e-5, 0.05)
    vgg = get_args_parser().parse_args(shlex.split(next(c for c in commands if "vgg16_bn" in c))[2:])
    assert (vgg.batch_size, vgg.batch_accum) == (128, 2)
    finetune = get_args_parser().parse_args(shlex.split(next(c for c in commands if "--finetune" in c))[2:])
    assert finetune.finetune and finetune.epochs == 60 and finetune.lr == 0.01


def test_finetune_starts_from_the_baseline_weights(cifar_subset, tmp_path):
    import torchvision

    torch.manual_seed(0)
    baseline = torchvision.models.resnet18(num_classes=10)
    path = tmp_path / "resnet18_baseline.pth"
    torch.save(baseline.state_dict(), path)
    out = tmp_path / "ft"
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "1", "-mti", "1", "-b", "8", "--lr", "1e-12",
                                "--finetune", "--baseline-weights", str(path), arch="resnet18_lpf2")) == 0
    trained = load(out / "checkpoint.pth.tar")["state_dict"]
    for key in ("conv1.weight", "fc.weight", "layer4.1.conv2.weight"):
        torch.testing.assert_close(trained[key], baseline.state_dict()[key], atol=1e-8, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fp16_amp_with_grad_scaler_and_channels_last(cifar_subset, tmp_path):
    out = tmp_path / "cuda"
    assert train_cli(*tiny_args(cifar_subset, out, "--gpu", "0", "-ep", "2", "--amp", "fp16", "--channels-last",
                                "-ba", "2", "--seed", "0")) == 0
    ckpt = load(out / "checkpoint.pth.tar")
    assert ckpt["scaler"] is not None and ckpt["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_tensorboard_missing_is_a_clear_error(cifar_subset, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if the package were absent
    train_fails(MissingDependencyError, "pip install tensorboard",
                *tiny_args(cifar_subset, tmp_path / "tb", "-ep", "1", "--tensorboard"))
    assert not (tmp_path / "tb").exists()  # refused before anything was written


def test_main_py_with_data_and_save_weights_trains_then_exports(cifar_subset, tmp_path):
    weights = tmp_path / "final.pth.tar"
    assert train_cli(*tiny_args(cifar_subset, tmp_path / "o", "-ep", "1", "-mti", "1", "--save_weights",
                                str(weights))) == 0
    best = load(tmp_path / "o" / "model_best.pth.tar")["state_dict"]
    exported = load(weights)["state_dict"]
    assert exported.keys() == best.keys() and all(torch.equal(exported[k], best[k]) for k in best)
