"""Mid-epoch recovery (issue 17 item 6): a kill costs the work since the last recovery checkpoint, not the epoch.

The runs are the kill harness's (tests/test_training_kill.py): real training processes forked from
the test, SIGKILLed at the N-th backward pass. 120 training images, -b 16: 7 batches per epoch.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_training_fixtures import ROOT, cifar_subset, load, tiny_args, train_cli, train_fails  # noqa: F401
from test_training_kill import KILL_RANK1_ENTRY, _log_parses, _run, _same_weights

pytestmark = pytest.mark.usefixtures("one_thread")

BATCHES = 7  # per epoch
VAL_IMAGES = 40


def _reads(monkeypatch) -> dict[str, int]:
    """Count the images read from now on, per split."""
    from antialiased.data import ImageFolderDataset

    counts = {"train": 0, "val": 0}
    real = ImageFolderDataset.__getitem__

    def getitem(self, index):
        counts["train" if Path(self.root).name == "train" else "val"] += 1
        return real(self, index)
    monkeypatch.setattr(ImageFolderDataset, "__getitem__", getitem)
    return counts


def _straight(data: Path, root: Path, *extra: str) -> Path:
    out = root / "straight"
    assert _run(tiny_args(data, out, "-ep", "3", "--seed", "2", "--checkpoint-every", "0", *extra)) == "done"
    return out


def test_a_kill_mid_epoch_resumes_from_the_recovery_checkpoint_to_the_same_weights(cifar_subset, tmp_path,
                                                                                     monkeypatch):
    straight = _straight(cifar_subset, tmp_path)
    out = tmp_path / "killed"
    argv = tiny_args(cifar_subset, out, "-ep", "3", "--seed", "2", "--checkpoint-every-steps", "2", "--resume", "auto")
    # backward pass 12 = batch 5 of epoch 2; recovery checkpoints were written after batches 2 and 4
    assert _run(argv, "backward", BATCHES + 5) == "killed"
    recovery = load(out / "checkpoint_recovery.pth.tar")
    assert recovery["mid_epoch"]["epoch"] == 2 and recovery["mid_epoch"]["batches_done"] == 4
    assert recovery["epoch"] == 1 and load(out / "checkpoint.pth.tar")["epoch"] == 1
    assert len(recovery["mid_epoch"]["sums"]) == 1 and recovery["mid_epoch"]["sums"][0]["seen"] == 4 * 16

    reads = _reads(monkeypatch)
    assert train_cli(*argv) == 0
    # the 4 batches done are not read again: 3 batches of epoch 2, 7 of epoch 3, two validations
    assert reads == {"train": (BATCHES - 4) * 16 + BATCHES * 16, "val": 2 * VAL_IMAGES}
    assert not (out / "checkpoint_recovery.pth.tar").exists()  # superseded by the epoch's own checkpoint
    assert _same_weights(straight / "checkpoint.pth.tar", out / "checkpoint.pth.tar") == []
    a, b = load(straight / "checkpoint.pth.tar"), load(out / "checkpoint.pth.tar")
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(pa["momentum_buffer"], pb["momentum_buffer"])
    # the epoch's statistics cover the whole epoch, batches before the kill included
    assert [r["train_loss"] for r in _log_parses(out)] == [r["train_loss"] for r in _log_parses(straight)]
    assert [r["train_images"] for r in _log_parses(out)] == [BATCHES * 16] * 3


def test_a_kill_while_a_recovery_checkpoint_is_written_keeps_the_previous_one(cifar_subset, tmp_path):
    straight = _straight(cifar_subset, tmp_path)
    out = tmp_path / "killed"
    argv = tiny_args(cifar_subset, out, "-ep", "3", "--seed", "2", "--checkpoint-every-steps", "2", "--resume", "auto")
    assert _run(argv, "checkpoint", 2) == "killed"  # half of the second one (batch 4) on disk, then the kill
    assert load(out / "checkpoint_recovery.pth.tar")["mid_epoch"]["batches_done"] == 2
    assert [p.name for p in out.iterdir() if p.name.startswith(".checkpoint_recovery.pth.tar.tmp-")]
    assert _run(argv) == "done"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert _same_weights(straight / "checkpoint.pth.tar", out / "checkpoint.pth.tar") == []


def test_time_based_recovery_with_accumulation_and_another_worker_count(cifar_subset, tmp_path):
    """--checkpoint-every MINUTES, -ba 2, bf16 autocast, a data-loader worker before the kill and none after it:
    the same weights. (fp16 with its grad scaler needs CUDA: the scaler's state travels as at the end of an epoch.)"""
    common = ("-ep", "2", "--seed", "4", "-ba", "2", "--cos_lr", "--amp", "bf16")
    straight = tmp_path / "straight"
    assert _run(tiny_args(cifar_subset, straight, *common, "--checkpoint-every", "0")) == "done"
    out = tmp_path / "killed"
    # a tiny interval: a recovery checkpoint after every accumulation step (batches 2, 4, 6)
    argv = tiny_args(cifar_subset, out, *common, "--checkpoint-every", "1e-9", "--resume", "auto")
    assert _run([*argv, "-j", "1"], "backward", BATCHES + 4) == "killed"  # batch 4 of epoch 2, before its step
    mid = load(out / "checkpoint_recovery.pth.tar")["mid_epoch"]
    assert (mid["epoch"], mid["batches_done"], mid["batch_accum"]) == (2, 2, 2)
    assert _run([*argv, "-j", "0"]) == "done"
    assert _same_weights(straight / "checkpoint.pth.tar", out / "checkpoint.pth.tar") == []
    assert [r["train_loss"] for r in _log_parses(out)] == [r["train_loss"] for r in _log_parses(straight)]


def test_recovery_checkpoints_do_not_change_the_run(cifar_subset, tmp_path):
    """Writing them (every batch here) leaves weights and RNG streams alone."""
    straight = _straight(cifar_subset, tmp_path)
    often = tmp_path / "often"
    assert _run(tiny_args(cifar_subset, often, "-ep", "3", "--seed", "2", "--checkpoint-every-steps", "1")) == "done"
    assert _same_weights(straight / "checkpoint.pth.tar", often / "checkpoint.pth.tar") == []
    assert sorted(p.name for p in often.iterdir()) == sorted(p.name for p in straight.iterdir())


def test_a_recovery_checkpoint_needs_the_batches_it_was_written_with(cifar_subset, tmp_path):
    from antialiased.errors import CheckpointError

    out = tmp_path / "killed"
    argv = tiny_args(cifar_subset, out, "-ep", "2", "--seed", "2", "--checkpoint-every-steps", "2", "--resume", "auto")
    assert _run(argv, "backward", 5) == "killed"  # in epoch 1: no epoch checkpoint yet
    train_fails(CheckpointError, r"mid-epoch recovery checkpoint \(epoch 1, batch 4 of 7\) whose remaining batches "
                                 r"depend on settings that changed \(-b 16 then, 8 now\).*delete it", *argv, "-b", "8")
    assert _run(argv, "backward", (BATCHES - 4) + 5) == "killed"  # resumed at batch 4 of 7; killed in epoch 2
    train_fails(CheckpointError, r"\(batches per epoch 7 then, 3 now \(-mti\)\).*the end of the epoch before: "
                                 r"--resume .*killed/checkpoint\.pth\.tar", *argv, "-mti", "3")


def test_bad_intervals_are_refused(cifar_subset, tmp_path):
    from antialiased.errors import ConfigError

    train_fails(ConfigError, r"--checkpoint-every takes minutes >= 0",
                *tiny_args(cifar_subset, tmp_path / "o", "--checkpoint-every", "-1"))
    train_fails(ConfigError, r"--checkpoint-every-steps takes a number of batches >= 0",
                *tiny_args(cifar_subset, tmp_path / "o", "--checkpoint-every-steps", "-2"))


# --- which file --resume auto takes -----------------------------------------------------------------


def _epoch_file(path: Path, epoch: int, log: list[dict]) -> dict:
    state = {"epoch": epoch, "arch": "resnet18", "state_dict": {"w": torch.full((2,), float(epoch))}, "log": log}
    torch.save(state, path)
    return state


def _recovery_file(path: Path, epoch_done: int, log: list[dict], batches_done: int = 3) -> dict:
    state = {"epoch": epoch_done, "arch": "resnet18", "state_dict": {"w": torch.full((2,), epoch_done + 0.5)},
             "log": log, "mid_epoch": {"epoch": epoch_done + 1, "batches_done": batches_done, "batches": 7}}
    torch.save(state, path)
    return state


def test_resume_auto_takes_the_recovery_checkpoint_only_when_it_continues_the_newest_epoch(tmp_path):
    from antialiased.training.checkpoint import RECOVERY_NAME, find_resumable

    log1, log2 = [{"epoch": 1, "time": 1.0}], [{"epoch": 1, "time": 1.0}, {"epoch": 2, "time": 2.0}]
    _epoch_file(tmp_path / "checkpoint_prev.pth.tar", 1, log1)
    _epoch_file(tmp_path / "checkpoint.pth.tar", 2, log2)
    _recovery_file(tmp_path / RECOVERY_NAME, 2, log2)
    path, found = find_resumable(tmp_path)
    assert path.name == RECOVERY_NAME and found["mid_epoch"]["epoch"] == 3
    assert find_resumable(tmp_path, mid_epoch=False)[0].name == "checkpoint.pth.tar"

    # a newest checkpoint torn: the recovery one still continues the run (its log extends the previous one's)
    (tmp_path / "checkpoint.pth.tar").write_bytes(b"torn")
    with pytest.warns(RuntimeWarning, match=r"passed over checkpoint\.pth\.tar .*resuming from .*recovery"):
        assert find_resumable(tmp_path, set_aside=False)[0].name == RECOVERY_NAME

    # one left from epoch 2 after epoch 3's checkpoint was written (a kill before it was removed): stale
    _epoch_file(tmp_path / "checkpoint.pth.tar", 3, [*log2, {"epoch": 3, "time": 3.0}])
    assert find_resumable(tmp_path)[0].name == "checkpoint.pth.tar"
    assert not (tmp_path / RECOVERY_NAME).exists()  # removed by the resume

    # one from a run that started again (--weights ... --start-epoch): its log is another run's
    _recovery_file(tmp_path / RECOVERY_NAME, 3, [{"epoch": 1, "time": 9.0}, {"epoch": 2, "time": 9.5},
                                                 {"epoch": 3, "time": 9.9}])
    assert find_resumable(tmp_path, set_aside=False)[0].name == "checkpoint.pth.tar"


def test_a_folder_with_only_a_recovery_checkpoint_is_a_run(tmp_path):
    from antialiased.errors import OutputError
    from antialiased.training.checkpoint import RECOVERY_NAME, find_resumable, refuse_other_run

    _recovery_file(tmp_path / RECOVERY_NAME, 0, [])
    assert find_resumable(tmp_path)[0].name == RECOVERY_NAME
    with pytest.raises(OutputError, match="holds the checkpoints of another run"):
        refuse_other_run(tmp_path, resume=None, weights=None)


def test_evaluation_and_export_take_the_end_of_epoch_checkpoint_and_name_the_newer_recovery(tmp_path, capsys):
    """Their --resume auto means validated weights: the recovery file is named, to be passed explicitly."""
    from antialiased.cli.paper import main as paper_main
    from antialiased.training.checkpoint import RECOVERY_NAME

    log = [{"epoch": 1, "time": 1.0}]
    _epoch_file(tmp_path / "checkpoint.pth.tar", 1, log)
    _recovery_file(tmp_path / RECOVERY_NAME, 1, log, batches_done=5)
    weights = tmp_path / "w.pth"
    assert paper_main(["-a", "resnet18", "--resume", "auto", "--out-dir", str(tmp_path),
                       "--save_weights", str(weights)]) == 0
    out = capsys.readouterr().out
    assert f"=> --resume auto: {tmp_path / 'checkpoint.pth.tar'} (epoch 1)" in out
    assert f"a newer mid-epoch recovery checkpoint, {tmp_path / RECOVERY_NAME} (epoch 2, batch 5 of 7)" in out
    assert torch.equal(torch.load(weights, weights_only=True)["state_dict"]["w"], torch.full((2,), 1.0))

    (tmp_path / "checkpoint.pth.tar").unlink()
    assert paper_main(["-a", "resnet18", "--resume", "auto", "--out-dir", str(tmp_path),
                       "--save_weights", str(weights)]) == 2
    err = capsys.readouterr().err
    assert "holds no training checkpoint" in err and f"--resume {tmp_path / RECOVERY_NAME}" in err
    assert "(epoch 2, batch 5 of 7)" in err


# --- DDP: two processes over gloo under torchrun --------------------------------------------------


def test_ddp_two_processes_resume_mid_epoch_to_the_same_weights(cifar_subset, tmp_path):
    """torchrun, 2 CPU processes (gloo), -b 8: 7 batches per rank and epoch. Rank 1 is SIGKILLed in epoch 2
    after the recovery checkpoint of batch 4; torchrun ends the run; the same command with --resume auto
    continues each rank's share of the epoch at batch 4 and ends with the uninterrupted run's weights."""
    script = tmp_path / "ddp_entry.py"
    script.write_text(KILL_RANK1_ENTRY.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}

    def torchrun(out: Path, *extra: str, **more_env: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
               *tiny_args(cifar_subset, out, "-b", "8", "-ep", "2", "--seed", "0", "--no-progress", *extra)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**env, **more_env}, cwd=ROOT)

    straight = torchrun(tmp_path / "straight", "--checkpoint-every", "0")
    assert straight.returncode == 0, straight.stderr[-5000:]
    out = tmp_path / "killed"
    killed = torchrun(out, "--checkpoint-every-steps", "2", "--resume", "auto", KILL_RANK1_AT_BACKWARD=str(7 + 5))
    assert killed.returncode != 0
    mid = load(out / "checkpoint_recovery.pth.tar")["mid_epoch"]
    assert (mid["epoch"], mid["batches_done"], mid["world_size"], len(mid["sums"])) == (2, 4, 2, 2)
    resumed = torchrun(out, "--checkpoint-every-steps", "2", "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr[-5000:]
    assert "then 4 of the 7 batches of epoch 2" in resumed.stdout and "Epoch 1/2:" not in resumed.stdout
    assert _same_weights(tmp_path / "straight" / "checkpoint.pth.tar", out / "checkpoint.pth.tar") == []
    assert [r["train_loss"] for r in _log_parses(out)] == [r["train_loss"] for r in _log_parses(tmp_path / "straight")]
