"""Faults and hostile input in training (issue 13): each test reproduces a failure of the old code.

Covered: a new run into a folder holding another run, ``--resume auto`` (fresh start, torn newest
checkpoint, log cut back), an explicitly named corrupt checkpoint, batches of unreadable images,
hopeless flag values, a resume with nothing left to train, a full disk, the non-finite-loss message,
and the identity (classes, data folder, model record) a checkpoint carries.
"""
from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from antialiased.data import SKIPPED_TARGET
from antialiased.errors import CheckpointError, ConfigError, OutputError
from antialiased.training import NonFiniteLossError, train_one_epoch
from conftest import torch_threads
from test_training_fixtures import (cifar_subset, load, register_tiny_models, tiny_args,  # noqa: F401
                                    train_cli, train_fails)

pytestmark = pytest.mark.usefixtures("one_thread")

SEEDED = ("--seed", "4", "-j", "0")


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def _same_weights(a: Path, b: Path) -> bool:
    sa, sb = load(a)["state_dict"], load(b)["state_dict"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def straight(cifar_subset, tmp_path_factory) -> Path:
    """An uninterrupted two-epoch run, the reference for every resumed one."""
    out = tmp_path_factory.mktemp("straight") / "run"
    with torch_threads(1):  # as the tests run (one_thread): the same float sums, bit for bit
        assert train_cli(*tiny_args(cifar_subset, out, "-ep", "2", *SEEDED)) == 0
    return out


# ------------------------------------------------------------------ a new run over an old one
def test_a_new_run_refuses_a_folder_holding_another_run(cifar_subset, tmp_path, capsys):
    out = tmp_path / "R"
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "1", "-mti", "2")) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "1", "-mti", "2")) == 2
    err = capsys.readouterr().err
    assert "--resume auto" in err and "new --out-dir" in err and "checkpoint.pth.tar" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing touched
    # resuming another folder's checkpoint into R would overwrite R's run too
    other = tmp_path / "other"
    assert train_cli(*tiny_args(cifar_subset, other, "-ep", "1", "-mti", "1")) == 0
    train_fails(OutputError, "holds the checkpoints of another run.*--resume auto",
                *tiny_args(cifar_subset, out, "-ep", "2", "-mti", "1", "--resume", str(other / "checkpoint.pth.tar")))


# --------------------------------------------------------------------------- --resume auto
def test_resume_auto_starts_fresh_then_continues_exactly(cifar_subset, tmp_path, straight, capsys):
    out = tmp_path / "auto"
    # the same command twice, as a scheduler would re-run it: no checkpoint -> a new run; then resume
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "1", "--resume", "auto", *SEEDED)) == 0
    assert "no checkpoint in" in capsys.readouterr().out
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "2", "--resume", "auto", *SEEDED)) == 0
    assert load(out / "checkpoint.pth.tar")["epoch"] == 2
    assert _same_weights(out / "checkpoint.pth.tar", straight / "checkpoint.pth.tar")
    assert [r["train_loss"] for r in _log(out)] == [r["train_loss"] for r in _log(straight)]


def _torn(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # in place, as a crash of the disk or the copy would leave it


def test_resume_auto_falls_back_to_the_previous_checkpoint_when_the_newest_is_torn(cifar_subset, tmp_path,
                                                                                     straight):
    out = tmp_path / "torn"
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "2", *SEEDED)) == 0
    assert load(out / "checkpoint_prev.pth.tar")["epoch"] == 1
    _torn(out / "checkpoint.pth.tar")
    with pytest.warns(RuntimeWarning, match=r"passed over checkpoint\.pth\.tar.*checkpoint_prev\.pth\.tar \(epoch 1\)"):
        assert train_cli(*tiny_args(cifar_subset, out, "-ep", "2", "--resume", "auto", *SEEDED)) == 0
    assert (out / "checkpoint.pth.tar.unreadable").exists()  # set aside, never taken again
    assert load(out / "checkpoint.pth.tar")["epoch"] == 2
    assert _same_weights(out / "checkpoint.pth.tar", straight / "checkpoint.pth.tar")
    # the log was cut back to epoch 1 before epoch 2 was trained again: one line per epoch
    assert [r["epoch"] for r in _log(out)] == [1, 2]
    assert [r["train_loss"] for r in _log(out)] == [r["train_loss"] for r in _log(straight)]


def test_an_explicit_corrupt_checkpoint_names_the_alternatives(cifar_subset, tmp_path):
    out = tmp_path / "bad"
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "2", "-mti", "1")) == 0
    _torn(out / "checkpoint.pth.tar")
    err = train_fails(CheckpointError, "cannot read checkpoint",
                      *tiny_args(cifar_subset, out, "-ep", "3", "-mti", "1", "--resume",
                                 str(out / "checkpoint.pth.tar")))
    assert "checkpoint_prev.pth.tar (epoch 1)" in str(err) and "--resume auto" in str(err)


def test_a_torn_log_line_is_cut_on_resume(cifar_subset, tmp_path):
    out = tmp_path / "log"
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "1", "-mti", "1")) == 0
    with open(out / "log.jsonl", "a") as f:
        f.write('{"epoch": 2, "lr": 0.0')  # a kill in the middle of writing the next line
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "2", "-mti", "1", "--resume", "auto")) == 0
    assert [r["epoch"] for r in _log(out)] == [1, 2]  # every line parses


# ----------------------------------------------------------------------- unreadable images
def _corrupt_subset(cifar10_dir: Path, dest: Path, readable: int, corrupt: int, val_corrupt: int = 1) -> Path:
    classes = sorted(p.name for p in (cifar10_dir / "train").iterdir())[:2]
    for split, source, n_bad in (("train", "train", corrupt), ("val", "test", val_corrupt)):
        for cls in classes:
            folder = dest / split / cls
            folder.mkdir(parents=True)
            for image in sorted((cifar10_dir / source / cls).iterdir())[:readable]:
                os.symlink(image, folder / image.name)
            for i in range(n_bad):
                (folder / f"bad_{i:02d}.jpg").write_bytes(b"" if i % 2 else b"\xff\xd8 not really a jpeg")
    (dest / "train" / classes[0] / "notes.txt").write_text("not an image")  # left out when the folder is read
    return dest


def test_batches_of_unreadable_images_are_skipped_and_reported(cifar10_dir, tmp_path):
    # 4 readable and 28 unreadable training images in batches of 4: at least 4 batches hold no image
    data = _corrupt_subset(cifar10_dir, tmp_path / "data", readable=2, corrupt=14)
    out = tmp_path / "run"
    assert train_cli(*tiny_args(data, out, "-ep", "2", "-b", "4", "--seed", "0",
                                arch="aa_tinynet_nobn_lpf2")) == 0
    for record in _log(out):
        assert record["train_unreadable"] == 28 and record["train_images"] == 4
        assert record["train_skipped_batches"] >= 4 and record["val_skipped"] == 2
        assert torch.isfinite(torch.tensor(record["train_loss"]))
    report = json.loads((out / "skipped_images.json").read_text())
    reasons = {str(Path(e["file"]).relative_to(data / "train")): e["reason"] for e in report["train"]}
    assert sorted(reasons) == sorted([f"{cls}/bad_{i:02d}.jpg" for cls in ("airplane", "automobile")
                                      for i in range(14)] + ["airplane/notes.txt"])
    assert reasons["airplane/bad_01.jpg"] == "empty file (0 bytes)"
    assert reasons["airplane/bad_00.jpg"] == "cannot identify image file"
    assert reasons["airplane/notes.txt"] == "not an image file"
    assert len(report["val"]) == 2 and all(e["reason"] for e in report["val"])


class _Net(nn.Module):
    """Conv + BatchNorm + a linear head: batch statistics make placeholder images matter."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.body(x))


def _one_epoch(batches, model: nn.Module) -> dict:
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    return train_one_epoch(model, nn.CrossEntropyLoss(), opt, batches, torch.device("cpu"), 1, progress=False)


def test_a_batch_trains_on_its_readable_images_only():
    torch.manual_seed(0)
    images, targets = torch.randn(5, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1])
    placeholder = torch.zeros(2, 3, 8, 8)  # what the dataset yields for unreadable files
    mixed = (torch.cat([images[:3], placeholder]), torch.tensor([0, 1, 2, SKIPPED_TARGET, SKIPPED_TARGET]),
             torch.arange(5))
    a, b = _Net(), _Net()
    b.load_state_dict(a.state_dict())
    stats = _one_epoch([mixed], a)
    _one_epoch([(images[:3], targets[:3])], b)  # the independent computation: only the readable images
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert (stats["images"], stats["unreadable"], stats["unreadable_indices"]) == (3, 2, [3, 4])


def test_batches_too_small_for_batch_norm_are_skipped_not_crashed():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))  # 1 value per channel
    good = (torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 0, 1]))
    lonely = (torch.randn(3, 3, 2, 2), torch.tensor([1, SKIPPED_TARGET, SKIPPED_TARGET]))
    empty = (torch.randn(2, 3, 2, 2), torch.tensor([SKIPPED_TARGET, SKIPPED_TARGET]))
    stats = _one_epoch([good, lonely, empty, good], net)
    assert stats["skipped_batches"] == 2 and stats["images"] == 8 and stats["unreadable"] == 4
    assert torch.isfinite(torch.tensor(stats["loss"]))


def _vote_worker(rank: int, world: int, init: str, folder: str) -> None:
    import torch.distributed as dist

    from antialiased.training.engine import SkipVote

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(_Net())
    rng = torch.Generator().manual_seed(rank)
    batches = [(torch.randn(4, 3, 8, 8, generator=rng), torch.tensor([0, 1, 2, 0])) for _ in range(4)]
    if rank == 0:  # only rank 0 meets a batch it cannot train on, and the last one of a group
        batches[1] = (batches[1][0], torch.full((4,), SKIPPED_TARGET))
        batches[3] = (batches[3][0], torch.tensor([0, SKIPPED_TARGET, SKIPPED_TARGET, SKIPPED_TARGET]))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    stats = train_one_epoch(model, nn.CrossEntropyLoss(), opt, batches, torch.device("cpu"), 1, progress=False,
                            batch_accum=2, skip_vote=SkipVote())
    params = {k: v.detach() for k, v in model.module.named_parameters()}  # batch-norm statistics stay per rank
    torch.save({"skipped": stats["skipped_batches"], "state": params}, f"{folder}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks two gloo processes (POSIX only)")
def test_under_ddp_every_rank_skips_the_batch_one_of_them_cannot_train(tmp_path):
    ctx = torch.multiprocessing.get_context("fork")  # torch is imported already: no interpreter start
    init = f"file://{tmp_path / 'rendezvous'}"
    procs = [ctx.Process(target=_vote_worker, args=(r, 2, init, str(tmp_path))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        if p.exitcode is None:
            p.kill()
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]  # no hang, no crash
    got = [load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert got[0]["skipped"] == got[1]["skipped"] == 2  # both ranks skipped batches 2 and 4
    assert len(got[0]["state"]) == 6  # conv, batch norm and head: weights and biases
    for key, value in got[0]["state"].items():  # and their weights stayed equal (gradients were averaged)
        assert torch.equal(value, got[1]["state"][key]), key


# ----------------------------------------------------------------------------- small ones
@pytest.mark.parametrize("lr", ["nan", "inf", "-0.1", "0"])
def test_hopeless_learning_rates_are_refused(cifar_subset, tmp_path, lr):
    train_fails(ConfigError, "--lr must be a positive finite number", *tiny_args(cifar_subset, tmp_path / "o",
                                                                                 "-ep", "1", "--lr", lr))
    assert not (tmp_path / "o").exists()


def test_batch_of_one_with_batch_norm_is_a_clear_error(cifar_subset, tmp_path):
    train_fails(ConfigError, r"-b 1: resnet18_lpf2 has batch norm.*-b 2",
                *tiny_args(cifar_subset, tmp_path / "o", "-ep", "1", "-b", "1", "-mti", "2", arch="resnet18_lpf2"))
    # without batch norm a batch of one trains
    assert train_cli(*tiny_args(cifar_subset, tmp_path / "nobn", "-ep", "1", "-b", "1", "-mti", "2",
                                arch="aa_tinynet_nobn_lpf2")) == 0


def test_a_resume_with_nothing_left_to_train_says_so(cifar_subset, tmp_path, capsys):
    out = tmp_path / "done"
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "1", "-mti", "1")) == 0
    before = (out / "checkpoint.pth.tar").read_bytes()
    capsys.readouterr()
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "1", "--resume", "auto")) == 0
    said = capsys.readouterr().out
    assert "nothing to train: 1 epoch(s) are done and -ep/--epochs is 1" in said and "larger -ep" in said
    assert (out / "checkpoint.pth.tar").read_bytes() == before


@pytest.mark.parametrize("failure", ["enospc", "torch"])
def test_a_full_disk_is_one_clear_message_and_keeps_the_previous_checkpoint(cifar_subset, tmp_path, capsys,
                                                                            monkeypatch, failure):
    from antialiased.support import checkpoints

    out = tmp_path / "full"
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "1", "-mti", "1")) == 0
    before = (out / "checkpoint.pth.tar").read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 the first bytes")
        if failure == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    monkeypatch.setattr(checkpoints.torch, "save", full_disk)
    capsys.readouterr()
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "2", "-mti", "1", "--resume", "auto")) == 2
    err = capsys.readouterr().err
    assert "disk is full" in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2
    monkeypatch.setattr(checkpoints.torch, "save", real_save)
    assert (out / "checkpoint.pth.tar").read_bytes() == before
    assert [p.name for p in out.iterdir() if ".tmp-" in p.name] == []
    assert [r["epoch"] for r in _log(out)] == [1]
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "2", "-mti", "1", "--resume", "auto")) == 0  # space again
    assert load(out / "checkpoint.pth.tar")["epoch"] == 2


class _NaNLoss(nn.CrossEntropyLoss):
    def forward(self, output, target):
        return super().forward(output, target) * float("nan")


def test_a_non_finite_loss_before_any_checkpoint_names_no_file(cifar_subset, tmp_path, monkeypatch):
    from antialiased.training import setup

    monkeypatch.setattr(setup, "build_criterion", _NaNLoss)
    err = train_fails(NonFiniteLossError, "before any checkpoint was written.*--lr",
                      *tiny_args(cifar_subset, tmp_path / "nan", "-ep", "1", "-mti", "2"))
    assert ".pth.tar" not in str(err)


# ------------------------------------------------------------------------------- identity
@dataclass
class _Spec:
    arch: str
    filter_size: int


def test_checkpoints_record_identity_and_resume_refuses_other_classes(cifar_subset, tmp_path, monkeypatch):
    from antialiased.models import load_model

    register_tiny_models()
    import antialiased.training.model_setup as model_setup

    def with_records(*args, **kwargs):
        model = load_model(*args, **kwargs)
        model.model_spec, model.weights_info = _Spec("aa_tinynet", 2), None
        return model

    monkeypatch.setattr(model_setup, "load_model", with_records)
    out = tmp_path / "id"
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "1", "-mti", "1")) == 0
    ckpt = load(out / "checkpoint.pth.tar")
    assert ckpt["classes"] == sorted(p.name for p in (cifar_subset / "train").iterdir())
    assert ckpt["data"] == str(cifar_subset.absolute()) and ckpt["model_spec"] == {"arch": "aa_tinynet",
                                                                                  "filter_size": 2}
    assert ckpt["config"]["optim"]["lr"] == 0.05 and [r["epoch"] for r in ckpt["log"]] == [1]

    other = tmp_path / "other"  # the same images under other class names
    for split in ("train", "val"):
        for i, cls in enumerate(sorted((cifar_subset / split).iterdir())):
            (other / split / f"kind{i}").mkdir(parents=True)
            for image in cls.iterdir():
                os.symlink(image, other / split / f"kind{i}" / image.name)
    train_fails(CheckpointError, r"trained on 10 classes that differ.*only in the data: \['kind0'",
                *tiny_args(other, out, "-ep", "2", "-mti", "1", "--resume", "auto"))


def test_checkpoints_record_the_model_records_of_the_registry(cifar_subset, tmp_path):
    out = tmp_path / "r18"
    assert train_cli(*tiny_args(cifar_subset, out, "-ep", "1", "-mti", "1", "-b", "4", arch="resnet18_lpf2")) == 0
    ckpt = load(out / "checkpoint.pth.tar")
    assert ckpt["model_spec"]["name"] == "resnet18_lpf2" and ckpt["model_spec"]["filter_size"] == 2
    assert ckpt["weights_info"]["kind"] == "random" and ckpt["weights_info"]["num_classes"] == 10
