"""Distributed training: launch detection (torchrun, SLURM, flags) and a real 2-process torchrun run."""
from __future__ import annotations

import json

import pytest
import torch

from antialiased.errors import ConfigError
from antialiased.support.distributed import ShardSampler, detect_launch, first_slurm_host
from test_training_fixtures import cifar_subset, load, run_entry, tiny_args  # noqa: F401

_LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
                "SLURM_JOB_NODELIST", "SLURM_STEP_NODELIST", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture()
def clean_env(monkeypatch):
    for name in _LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _flags(world_size=-1, rank=-1):
    return {"world_size": world_size, "rank": rank}


@pytest.mark.parametrize("nodelist, host", [("gpu[03-05,9],cpu1", "gpu03"), ("node7", "node7"),
                                            ("a-1,b-2", "a-1"), ("n[1,2]", "n1")])
def test_first_slurm_host(nodelist, host):
    assert first_slurm_host(nodelist) == host


def test_single_process_by_default(clean_env):
    assert not detect_launch(**_flags()).distributed


def test_torchrun_environment(clean_env):
    clean_env.setenv("RANK", "3"), clean_env.setenv("WORLD_SIZE", "8"), clean_env.setenv("LOCAL_RANK", "1")
    info = detect_launch(**_flags())
    assert (info.distributed, info.rank, info.world_size, info.local_rank) == (True, 3, 8, 1)


def test_slurm_environment_sets_the_master(clean_env):
    for name, value in {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1",
                        "SLURM_JOB_NODELIST": "gpu[12-13]"}.items():
        clean_env.setenv(name, value)
    info = detect_launch(**_flags())
    assert (info.rank, info.world_size, info.local_rank, info.source) == (5, 8, 1, "SLURM")
    import os
    assert os.environ["MASTER_ADDR"] == "gpu12" and os.environ["MASTER_PORT"] == "29500"


def test_single_task_slurm_job_is_not_distributed(clean_env):
    clean_env.setenv("SLURM_PROCID", "0"), clean_env.setenv("SLURM_NTASKS", "1")
    assert not detect_launch(**_flags()).distributed


def test_paper_flags(clean_env):
    info = detect_launch(**_flags(world_size=4, rank=2))
    assert (info.distributed, info.rank, info.world_size) == (True, 2, 4)
    with pytest.raises(ConfigError, match="needs --rank"):
        detect_launch(**_flags(world_size=4))


TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _torchrun(cifar_subset, out, *extra):
    result = run_entry(tiny_args(cifar_subset, out, "-b", "8", "--seed", "0", "--no-progress", *extra),
                       launcher=TORCHRUN)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_torchrun_two_processes_over_gloo_write_one_set_of_files(cifar_subset, tmp_path):
    out = tmp_path / "ddp"
    result = _torchrun(cifar_subset, out, "-ep", "2")
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pth.tar", "checkpoint_prev.pth.tar", "log.jsonl",
                                                     "model_best.pth.tar"]
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert all(r["val_images"] == 40 for r in lines)  # two shards of 20, summed over the ranks
    ckpt = load(out / "checkpoint.pth.tar")
    assert len(ckpt["rng_state"]) == 2  # each rank's generators, for an exact resume
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
    # only rank 0 prints the epoch summaries
    assert result.stdout.count("Epoch 2/2:") == 1
    assert torch.isfinite(torch.tensor(lines[-1]["train_loss"]))

    # interrupted after epoch 1 and resumed under torchrun: the same weights as the straight run
    split = tmp_path / "split"
    _torchrun(cifar_subset, split, "-ep", "1")
    _torchrun(cifar_subset, split, "-ep", "2", "--resume", str(split / "checkpoint.pth.tar"))
    resumed = load(split / "checkpoint.pth.tar")
    assert resumed["epoch"] == 2
    for key, value in ckpt["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key


def test_validation_shards_cover_every_image_once():
    shards = [list(ShardSampler(range(41), rank=r, world_size=3)) for r in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(41))
    assert [len(ShardSampler(range(41), rank=r, world_size=3)) for r in range(3)] == [14, 14, 13]


def test_multiprocessing_distributed_splits_the_node_batch_over_its_gpus(clean_env):
    from antialiased.training import launch
    from antialiased.training.config import DataConfig, LaunchConfig, TrainConfig

    calls = {}
    clean_env.setattr(launch.torch.cuda, "device_count", lambda: 4)
    clean_env.setattr(launch.torch.multiprocessing, "spawn",
                      lambda fn, nprocs, args: calls.update(fn=fn, nprocs=nprocs, args=args[0]))
    cfg = TrainConfig(data=DataConfig("d", batch_size=256, workers=16), out_dir="o",
                      launch=LaunchConfig(world_size=2, rank=1, dist_url="tcp://node0:23456", spawn_per_gpu=True))
    worker = object()
    launch.spawn_per_gpu(cfg, worker)
    assert calls["nprocs"] == 4 and calls["fn"] is worker
    spawned = calls["args"]
    assert (spawned.launch.world_size, spawned.launch.rank, spawned.data.batch_size, spawned.data.workers) == \
        (8, 1, 64, 4)
    assert (cfg.launch.world_size, cfg.data.batch_size) == (2, 256)  # the caller's configuration is unchanged
    info = detect_launch(world_size=spawned.launch.world_size, rank=spawned.launch.rank,
                         spawned_index=3)  # the 4th GPU of node 1
    assert (info.rank, info.world_size, info.local_rank) == (7, 8, 3)


def test_a_package_error_in_a_spawned_process_reaches_the_parent_as_itself(clean_env):
    from torch.multiprocessing import ProcessRaisedException

    from antialiased.data import DatasetLayoutError
    from antialiased.training import launch
    from antialiased.training.config import DataConfig, LaunchConfig, TrainConfig

    def failing_spawn(trace):
        def spawn(fn, nprocs, args):
            raise ProcessRaisedException(f"\n\n-- Process 1 terminated with the following error:\n{trace}", 1, 4242)
        return spawn

    clean_env.setattr(launch.torch.cuda, "device_count", lambda: 2)
    cfg = TrainConfig(data=DataConfig("d"), out_dir="o", launch=LaunchConfig(spawn_per_gpu=True))
    trace = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
             "antialiased.data.folder.DatasetLayoutError: no images found under 'd/train'\nexpected layout: ...\n")
    clean_env.setattr(launch.torch.multiprocessing, "spawn", failing_spawn(trace))
    with pytest.raises(DatasetLayoutError, match=r"(?s)^no images found under 'd/train'\nexpected layout"):
        launch.spawn_per_gpu(cfg, print)
    clean_env.setattr(launch.torch.multiprocessing, "spawn", failing_spawn("Traceback ...\nKeyError: 'bug'\n"))
    with pytest.raises(ProcessRaisedException, match="KeyError"):  # a bug keeps its traceback
        launch.spawn_per_gpu(cfg, print)
