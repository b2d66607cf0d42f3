"""Shared pieces of the training tests: a CIFAR-10 subset in ImageNet layout and two tiny models.

The tiny models are registered under ``aa_tinynet`` (conv-BN-ReLU-BlurPool twice) and
``aa_tinynet_nobn`` (the same without batch norm), so the real command line can train them in
seconds: ``main.py -a aa_tinynet_lpf2 ...``. Subprocess tests run :data:`ENTRY_SCRIPT`, which
registers them before handing over to ``antialiased.cli.paper.main``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from antialiased.layers import BlurPool

ROOT = Path(__file__).resolve().parents[1]
N_CLASSES = 10
TRAIN_PER_CLASS = 12
VAL_PER_CLASS = 4

ENTRY_SCRIPT = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
import test_training_fixtures
test_training_fixtures.register_tiny_models()
from antialiased.cli.paper import main
sys.exit(main(sys.argv[1:]))
"""


def _tinynet(*, filter_size: int = 2, num_classes: int = 1000, batch_norm: bool = True) -> nn.Module:
    layers: list[nn.Module] = []
    for cin, cout in ((3, 8), (8, 16)):
        layers.append(nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers += [nn.ReLU(inplace=True), BlurPool(cout, filt_size=filter_size, stride=2)]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))


def register_tiny_models() -> None:
    from antialiased.models import list_archs, register_model

    if "aa_tinynet" not in list_archs():
        register_model("aa_tinynet")(lambda **kw: _tinynet(batch_norm=True, **kw))
        register_model("aa_tinynet_nobn")(lambda **kw: _tinynet(batch_norm=False, **kw))


def make_subset(cifar10_dir: Path, dest: Path, train_per_class: int = TRAIN_PER_CLASS,
                val_per_class: int = VAL_PER_CLASS) -> Path:
    """DEST/train and DEST/val with symlinks to the first images of each CIFAR-10 class."""
    classes = sorted(p.name for p in (cifar10_dir / "train").iterdir() if p.is_dir())[:N_CLASSES]
    for split, source, n in (("train", "train", train_per_class), ("val", "test", val_per_class)):
        for cls in classes:
            out = dest / split / cls
            out.mkdir(parents=True, exist_ok=True)
            for image in sorted((cifar10_dir / source / cls).iterdir())[:n]:
                os.symlink(image, out / image.name)
    return dest


@pytest.fixture(scope="session")
def cifar_subset(cifar10_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_subset(cifar10_dir, tmp_path_factory.mktemp("cifar_subset"))


@pytest.fixture()
def tiny_models() -> None:
    register_tiny_models()


def train_cli(*argv: str, raw: bool = False) -> int:
    """``main.py ARGS`` in this process (tiny models registered).

    ``raw=True`` skips the command line's error handling, so a test sees the library's exception.
    """
    register_tiny_models()
    from antialiased.cli._errors import TRACEBACK_ENV
    from antialiased.cli.paper import main

    # --seed turns on deterministic algorithms process-wide; give the next test the state it expects.
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    before = os.environ.pop(TRACEBACK_ENV, None)
    if raw:  # the documented switch: the command line re-raises the package's errors
        os.environ[TRACEBACK_ENV] = "1"
    try:
        return main([*argv, "--no-progress"])
    finally:
        os.environ.pop(TRACEBACK_ENV, None)
        if before is not None:
            os.environ[TRACEBACK_ENV] = before
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = cudnn


def train_fails(error: type[BaseException], match: str, *argv: str) -> BaseException:
    """Run ``main.py ARGS`` expecting the library to raise ``error`` with a message matching ``match``."""
    with pytest.raises(error, match=match) as info:
        train_cli(*argv, raw=True)
    return info.value


def tiny_args(data: Path, out: Path, *extra: str, arch: str = "aa_tinynet_lpf2") -> list[str]:
    return ["--data", str(data), "-a", arch, "--crop-size", "32", "-b", "16", "-j", "0", "--lr", "0.05",
            "--out-dir", str(out), *extra]


def run_entry(args: list[str], *, launcher: list[str] | None = None, timeout: float = 240,
              env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the command line in a fresh interpreter (optionally under a launcher such as torchrun)."""
    script = Path(os.environ.get("TMPDIR", "/tmp")) / f"aa_train_entry_{os.getpid()}.py"
    script.write_text(ENTRY_SCRIPT)
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    cmd = [sys.executable, *(launcher or []), str(script), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=ROOT)


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)
