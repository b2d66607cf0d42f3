"""support.devices.threads_beside_workers: on the CPU, torch's intra-op threads are lowered to
``max(1, cores - workers)`` while the loader's workers run and restored afterwards, unless the user
chose the count (OMP_NUM_THREADS / MKL_NUM_THREADS, torch.set_num_threads); the evaluation loop
applies it to the passes that read the loader, not to passes replayed from memory."""
from __future__ import annotations

import logging
import os

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from antialiased.evaluation import LoopOptions, run_protocols
from antialiased.evaluation.loop import Scorer
from antialiased.support import devices
from antialiased.support.devices import threads_beside_workers


@pytest.fixture
def machine(monkeypatch):
    """A process on ``cores`` CPUs whose torch thread count is the package's default (``threads``)."""
    before = torch.get_num_threads()

    def make(cores: int, threads: int) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
        torch.set_num_threads(threads)
        monkeypatch.setattr(devices, "_THREADS_AT_IMPORT", threads)
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            monkeypatch.delenv(name, raising=False)

    yield make
    torch.set_num_threads(before)


@pytest.mark.parametrize("cores, threads, workers, inside", [
    (4, 4, 2, 2), (4, 4, 1, 3), (2, 2, 2, 1), (2, 2, 6, 1), (8, 2, 2, 2),  # (8, 2): never raised
])
def test_lowered_while_workers_run_then_restored(machine, cores, threads, workers, inside):
    machine(cores, threads)
    with threads_beside_workers(torch.device("cpu"), workers) as used:
        assert torch.get_num_threads() == used == inside
    assert torch.get_num_threads() == threads


def test_restored_after_an_error(machine):
    machine(3, 3)
    with pytest.raises(RuntimeError, match="boom"), threads_beside_workers("cpu", 1):
        assert torch.get_num_threads() == 2
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 3


@pytest.mark.parametrize("why", ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "set_num_threads", "cuda", "no workers"])
def test_left_alone(machine, monkeypatch, why):
    machine(4, 4)
    device, workers = "cpu", 2
    if why.endswith("_NUM_THREADS"):
        monkeypatch.setenv(why, "4")
    elif why == "set_num_threads":  # called by the user after the package was imported
        torch.set_num_threads(3)
    elif why == "cuda":
        device = "cuda"
    else:
        workers = 0
    expected = torch.get_num_threads()
    with threads_beside_workers(device, workers) as used:
        assert torch.get_num_threads() == used == expected
    assert torch.get_num_threads() == expected


def test_logged_once_at_debug_level(machine, monkeypatch, caplog):
    machine(4, 4)
    monkeypatch.setattr(devices, "_announced", False)
    with caplog.at_level(logging.DEBUG, logger="antialiased.support.devices"):
        for _ in range(3):
            with threads_beside_workers("cpu", 2):
                pass
    lines = [r for r in caplog.records if r.name == "antialiased.support.devices"]
    assert len(lines) == 1 and lines[0].levelno == logging.DEBUG
    assert "2 torch thread(s) beside 2 loader worker(s) on 4 core(s) (was 4" in lines[0].getMessage()


class _Threads(Scorer):
    """Records torch's thread count at every batch of every pass."""

    name, passes = "threads", 2

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def score(self, batch, forward) -> None:
        forward(batch.images)
        self.seen.append((batch.pass_index, torch.get_num_threads()))

    def result(self, sums) -> dict:
        return {}


@pytest.mark.parametrize("cache_bytes", [1 << 20, 0])
def test_evaluation_loop_lowers_the_passes_that_read_the_loader(machine, cache_bytes):
    machine(3, 3)
    images = torch.randint(0, 256, (6, 3, 4, 4), dtype=torch.uint8)
    loader = DataLoader(TensorDataset(images, torch.zeros(6, dtype=torch.long)), batch_size=2, num_workers=1)
    scorer = _Threads()
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    run_protocols(model, loader, "cpu", [scorer], LoopOptions(progress=False, cache_bytes=cache_bytes))
    replayed = 3 if cache_bytes else 2  # the second pass: from memory (no workers), or the loader again
    assert scorer.seen == [(0, 2)] * 3 + [(1, replayed)] * 3
    assert torch.get_num_threads() == 3
