"""Helpers for the evaluation and data tests: small ImageNet-layout folders and tiny models."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn


def sample_files(sample_dir: Path, count: int, step: int = 37) -> list[Path]:
    """``count`` photos spread over the 1000-class sample (every ``step``-th file in wnid order)."""
    files = sorted(sample_dir.glob("*.JPEG"))
    return [files[(i * step) % len(files)] for i in range(count)]


def make_val_folder(root: Path, files: list[Path]) -> Path:
    """``root/val/<wnid>/<file>`` symlinks to the sample photos; returns ``root``."""
    for f in files:
        wnid = f.name.split("_")[0]
        (root / "val" / wnid).mkdir(parents=True, exist_ok=True)
        link = root / "val" / wnid / f.name
        if not link.exists():
            os.symlink(f, link)
    return root


class TinyNet(nn.Module):
    """A small fixed-weight CNN (not shift-invariant: strided, no blur)."""

    def __init__(self, num_classes: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 5, stride=4), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2),
                                      nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.fc = nn.Linear(16 * 16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class PixelPoolNet(nn.Module):
    """Global average of a per-pixel function: exactly shift-invariant on periodic images."""

    def __init__(self, num_classes: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.pixel = nn.Sequential(nn.Conv2d(3, 16, 1), nn.ReLU(), nn.Conv2d(16, 16, 1), nn.Tanh())
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pixel(x).mean(dim=(2, 3)))


def read_result(out_dir: Path, protocol: str) -> dict:
    """The one result file a run wrote for ``protocol`` into ``out_dir``."""
    files = sorted(Path(out_dir).glob(f"results_*_{protocol}_*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())
