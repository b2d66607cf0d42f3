"""Checkpoints: atomic writes survive exceptions and SIGKILL, weights_only loading, weight export."""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from antialiased.cli.train import export_weights_from_args
from antialiased.errors import CheckpointError, ConfigError
from antialiased.support import checkpoints as ckpt_mod
from antialiased.support.checkpoints import (
    export_weights,
    link_checkpoint,
    load_checkpoint,
    save_checkpoint,
    strip_prefixes,
)
from antialiased.training.rng import capture_rng_state, restore_rng_state

ROOT = Path(__file__).resolve().parents[1]


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name]


def test_save_then_load_with_weights_only(tmp_path):
    state = {"epoch": 3, "arch": "resnet18_lpf4", "state_dict": {"fc.weight": torch.randn(2, 3)},
             "best_acc1": 12.5, "rng_state": [capture_rng_state(torch.Generator())]}
    path = save_checkpoint(state, tmp_path / "checkpoint.pth.tar")
    loaded = torch.load(path, weights_only=True)
    assert loaded["epoch"] == 3 and torch.equal(loaded["state_dict"]["fc.weight"], state["state_dict"]["fc.weight"])
    assert _leftovers(tmp_path) == []


def test_a_save_that_fails_midway_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pth.tar"
    save_checkpoint({"epoch": 1, "state_dict": {"w": torch.ones(4)}}, path)

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint({"epoch": 2, "state_dict": {"w": torch.zeros(4)}}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert _leftovers(tmp_path) == []


_KILL_SCRIPT = """
import sys, torch
from antialiased.support.checkpoints import save_checkpoint
path = sys.argv[1]
save_checkpoint({"epoch": 0, "state_dict": {"w": torch.zeros(1)}}, path)
print("ready", flush=True)
big = torch.randn(4_000_000)  # 16 MB: each save takes a while, so the kill lands inside one
epoch = 0
while True:
    epoch += 1
    save_checkpoint({"epoch": epoch, "state_dict": {"w": big}}, path)
"""


def test_sigkill_while_saving_leaves_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pth.tar"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        # wait until a large save is under way (its temporary file exists), then kill mid-write
        while not _leftovers(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert _leftovers(tmp_path), "the writer never started a second save"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    loaded = load_checkpoint(path)
    assert loaded["epoch"] >= 0
    assert loaded["state_dict"]["w"].numel() in (1, 4_000_000)
    # the next run removes what the killed writer left half-written
    leftovers = _leftovers(tmp_path)
    assert [p.name for p in ckpt_mod.remove_stale_temporaries(tmp_path)] == leftovers
    assert _leftovers(tmp_path) == []


def test_linked_snapshot_keeps_its_content_when_the_source_is_replaced(tmp_path):
    src = save_checkpoint({"epoch": 10}, tmp_path / "checkpoint.pth.tar")
    link_checkpoint(src, tmp_path / "checkpoint_010.pth.tar")
    save_checkpoint({"epoch": 11}, src)
    assert load_checkpoint(tmp_path / "checkpoint_010.pth.tar")["epoch"] == 10
    assert load_checkpoint(src)["epoch"] == 11


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    gen = torch.Generator().manual_seed(7)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    path = save_checkpoint({"rng_state": [capture_rng_state(gen)]}, tmp_path / "rng.pth")
    first = (random.random(), np.random.rand(), torch.rand(2), torch.randperm(10, generator=gen))
    restore_rng_state(load_checkpoint(path)["rng_state"][0], gen)
    second = (random.random(), np.random.rand(), torch.rand(2), torch.randperm(10, generator=gen))
    assert first[:2] == second[:2]
    assert torch.equal(first[2], second[2]) and torch.equal(first[3], second[3])


def test_loading_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pth.tar")
    junk = tmp_path / "junk.pth.tar"
    junk.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(junk)


def test_strip_prefixes_handles_dataparallel_ddp_and_compile():
    # Wrappers prefix every key; nested wrappers (compile around DDP) are peeled one after the other.
    sd = {"_orig_mod.module.conv.weight": 1, "_orig_mod.module.fc.bias": 2}
    assert strip_prefixes(sd) == {"conv.weight": 1, "fc.bias": 2}
    assert strip_prefixes({"module.conv.weight": 1}) == {"conv.weight": 1}
    # A model's own submodule called 'module' is not a wrapper: only some keys carry it, so none change.
    own = {"module.weight": 1, "head.bias": 2}
    assert strip_prefixes(own) == own


def test_export_weights_strips_optimizer_and_prefixes(tmp_path):
    from antialiased.models import create_model

    model = create_model("resnet18_lpf2", num_classes=3)
    wrapped = {f"module.{k}": v for k, v in model.state_dict().items()}  # as the paper's DataParallel saved them
    source = save_checkpoint({"epoch": 5, "arch": "resnet18_lpf2", "state_dict": wrapped, "optimizer": {"state": {}},
                              "best_acc1": 1.0, "classes": ["a", "b", "c"]}, tmp_path / "model_best.pth.tar")
    out = tmp_path / "weights.pth.tar"
    args = argparse.Namespace(resume=str(source), save_weights=str(out), arch="resnet18_lpf2")
    assert export_weights_from_args(args) == 0
    exported = torch.load(out, weights_only=True)
    # The weights and the run's identity travel; training state (optimizer, epoch, best) does not.
    assert sorted(exported) == ["arch", "classes", "state_dict"]
    assert exported["classes"] == ["a", "b", "c"] and not any(k.startswith("module.") for k in exported["state_dict"])
    rebuilt = create_model("resnet18_lpf2", weights=out, num_classes=3)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in rebuilt.state_dict().items())

    with pytest.raises(CheckpointError, match="trained as 'resnet18_lpf2'.*'resnet34_lpf2'"):
        export_weights(source, tmp_path / "other.pth.tar", arch="resnet34_lpf2")
    with pytest.raises(ConfigError, match="needs --resume"):
        export_weights_from_args(argparse.Namespace(resume="", save_weights=str(out), arch="resnet18_lpf2"))


def test_resume_auto_finishes_a_save_that_a_kill_cut_short(tmp_path):
    from antialiased.training.checkpoint import find_resumable, save_epoch

    save_epoch(tmp_path, {"epoch": 1}, is_best=True)
    save_checkpoint({"epoch": 2}, tmp_path / "checkpoint_new.pth.tar")  # staged; the renames never ran
    path, ckpt = find_resumable(tmp_path)
    assert (path.name, ckpt["epoch"]) == ("checkpoint.pth.tar", 2)
    assert load_checkpoint(tmp_path / "checkpoint.pth.tar")["epoch"] == 2
    assert load_checkpoint(tmp_path / "checkpoint_prev.pth.tar")["epoch"] == 1
    assert not (tmp_path / "checkpoint_new.pth.tar").exists()
    # killed between the two renames: no checkpoint.pth.tar at all, the staged file is the newest
    save_checkpoint({"epoch": 3}, tmp_path / "checkpoint_new.pth.tar")
    os.replace(tmp_path / "checkpoint.pth.tar", tmp_path / "checkpoint_prev.pth.tar")
    path, ckpt = find_resumable(tmp_path)
    assert (path.name, ckpt["epoch"]) == ("checkpoint.pth.tar", 3)
    assert load_checkpoint(tmp_path / "checkpoint_prev.pth.tar")["epoch"] == 2
    assert find_resumable(tmp_path / "empty") is None
