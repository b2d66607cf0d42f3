"""Shared fixtures: the read-only data and references in ../shared (tests skip cleanly without it)."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ANTIALIASED_SHARED", ROOT.parent / "shared"))

# Keep the suite predictable on a 2-core CI machine.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@contextlib.contextmanager
def torch_threads(n: int):
    """Run with ``n`` torch threads, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """Tiny tensors run fastest on one thread: with two, every op pays a thread hand-off that on a
    busy 2-core machine costs milliseconds. Also keeps float sums identical between runs."""
    with torch_threads(1):
        yield


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path}: these tests need the shared data folder beside the project "
                    f"(set ANTIALIASED_SHARED to point elsewhere)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(SHARED, "../shared")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    path = _require(SHARED / "reference", "golden references (../shared/reference)")
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))  # for deterministic_weights.py
    return path


@pytest.fixture(scope="session")
def imagenet_sample_dir() -> Path:
    return _require(SHARED / "data" / "imagenet-sample", "ImageNet sample (../shared/data/imagenet-sample)")


@pytest.fixture(scope="session")
def cifar10_dir() -> Path:
    return _require(SHARED / "data" / "cifar10", "CIFAR-10 (../shared/data/cifar10)")


@pytest.fixture
def items_read(monkeypatch) -> list[int]:
    """The indices of the ImageFolderDataset items read in this process, in order (run with -j 0)."""
    from antialiased.data import ImageFolderDataset

    read: list[int] = []
    original = ImageFolderDataset.__getitem__

    def recording(self, index):
        read.append(int(index))
        return original(self, index)

    monkeypatch.setattr(ImageFolderDataset, "__getitem__", recording)
    return read
