"""Errors before work (issue 16 item 5): a bad model name ends every command before anything is read or written.

An unknown or mistyped name (with the closest names), a filter size outside the method's range and a
missing optional extra (timm) end ``eval``, ``train``, ``export``, ``audit`` and ``bench-runtime``
with exit status 2 and one error line, before any data folder is listed, any weight downloaded or
any output folder created. Folder listing is spied on (``os.scandir`` / ``os.listdir``), so a typo
that waited for the scan of a 100,000-file folder would show up here with 10 files.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from antialiased.cli import main as antialiased_main
from antialiased.cli.paper import main as paper_main

BAD_NAMES = {  # name, its baseline's spelling for bench-runtime (--archs, --filter-sizes), the message
    "typo": ("resnet18_lpf4x", "resnet18x", "unknown model 'resnet18", "Closest names: resnet18"),
    "unknown arch": ("resnt50_lpf4", "resnt50", "unknown model 'resnt50", "Closest names: resnet50"),
    "filter size": ("resnet18_lpf9", "resnet18", "filter size 9 in 'resnet18_lpf9' is out of range: use _lpf1 to _lpf7",
                    ""),
    "missing timm": ("timm/resnet18_lpf4", "timm/resnet18", "timm/ model names need timm, an optional dependency: "
                     "pip install timm", ""),
}


def _commands(name: str, base: str, data: Path, out: Path) -> dict[str, list[str]]:
    return {
        "eval": ["eval", "--data", str(data), "-a", name, "--out-dir", str(out), "-j", "0"],
        "train": ["train", "--data", str(data), "-a", name, "--out-dir", str(out), "-j", "0"],
        "export": ["export", "-a", name, "--out", str(out / "model.onnx"), "--data", str(data / "val")],
        "audit": ["audit", "-a", "resnet18_lpf2", "-a", name, "--data", str(data), "--out-dir", str(out), "-j", "0"],
        "bench-runtime": ["bench-runtime", "--archs", base, "--filter-sizes", "9" if name.endswith("_lpf9") else "2",
                          "--out-dir", str(out), "--no-progress"],
    }


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A dataset folder of 10 files (their content never matters: nothing may read them)."""
    root = tmp_path / "data"
    for split in ("train", "val"):
        for c in range(2):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(5 if split == "val" else 1):
                (folder / f"img{i}.JPEG").write_bytes(b"not read")
    return root


@pytest.fixture
def no_work(monkeypatch, data: Path) -> list[str]:
    """Record every folder listing under the data folder, and fail on any download."""
    listed: list[str] = []
    real_scandir, real_listdir = os.scandir, os.listdir

    def scandir(path="."):
        if str(path).startswith(str(data)):
            listed.append(str(path))
        return real_scandir(path)

    def listdir(path="."):
        if str(path).startswith(str(data)):
            listed.append(str(path))
        return real_listdir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "listdir", listdir)
    from antialiased.support import downloads

    monkeypatch.setattr(downloads, "fetch_to_cache", lambda *a, **k: pytest.fail("downloaded before the name check"))
    return listed


@pytest.mark.parametrize("command", ["eval", "train", "export", "audit", "bench-runtime"])
@pytest.mark.parametrize("case", sorted(BAD_NAMES))
def test_a_bad_name_fails_first_in_every_command(command, case, data, tmp_path, no_work, capsys, monkeypatch):
    name, base, message, close = BAD_NAMES[case]
    if case == "missing timm":
        monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    out = tmp_path / "out"
    assert antialiased_main(_commands(name, base, data, out)[command]) == 2
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first.startswith(f"antialiased {command}: error: ") and message in first and close in first, err
    assert "Traceback" not in err and len([line for line in err.splitlines() if "error" in line]) == 1
    assert no_work == [], f"{command} listed {no_work} before refusing {name!r}"
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_main_py_and_the_library_fail_first_too(data, tmp_path, no_work, capsys):
    from antialiased.errors import ModelError
    from antialiased.evaluation import DataSettings, EvalConfig, ModelSource, evaluate
    from antialiased.training import DataConfig, ModelConfig, TrainConfig, train

    out = tmp_path / "out"
    assert paper_main(["--data", str(data), "-a", "resnet18_lpf4x", "-e", "--out-dir", str(out)]) == 2
    assert capsys.readouterr().err.startswith("main.py: error: unknown model 'resnet18_lpf4x'")
    with pytest.raises(ModelError, match="Closest names: resnet18_lpf4"):
        evaluate(EvalConfig(model=ModelSource("resnet18_lpf4x"), data=DataSettings(str(data)), out_dir=str(out)))
    with pytest.raises(ModelError, match="Closest names: resnet18_lpf4"):
        train(TrainConfig(data=DataConfig(str(data)), model=ModelConfig("resnet18_lpf4x"), out_dir=str(out)))
    with pytest.raises(ModelError, match="cannot be made with method 'bilinear'"):
        evaluate(EvalConfig(model=ModelSource("resnet18_lpf4", aa_method="bilinear"), data=DataSettings(str(data))))
    assert no_work == [] and not out.exists()
    from antialiased.data import ImageFolderDataset

    ImageFolderDataset(data / "val")  # the spy sees the package's folder scan
    assert no_work and all(path.startswith(str(data)) for path in no_work)
