"""The demo: generated data, the small nets' anti-aliasing recipe, an end-to-end quick run, --data."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from antialiased.cli.demo import main as demo_main
from antialiased.demo import DemoCNN, DemoConfig, SHAPES, SmallResNet, generate_shapes, run_demo
from antialiased.layers import BlurPool
from antialiased.reporting import load_results, summarize


def test_generated_shapes_are_deterministic_and_balanced():
    x1, y1 = generate_shapes(64, image_size=40, crop_size=32, seed=3)
    x2, y2 = generate_shapes(64, image_size=40, crop_size=32, seed=3)
    x3, _ = generate_shapes(64, image_size=40, crop_size=32, seed=4)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(x1, x3)
    assert x1.shape == (64, 3, 40, 40) and x1.dtype == torch.uint8
    assert torch.bincount(y1, minlength=len(SHAPES)).tolist() == [64 // len(SHAPES)] * len(SHAPES)
    # textures are high-frequency: neighbouring pixels differ a lot, unlike smooth images
    assert (x1[..., 1:].float() - x1[..., :-1].float()).abs().mean() > 10


def test_shapes_reject_bad_arguments():
    with pytest.raises(ValueError, match="unknown shape classes"):
        generate_shapes(4, classes=("disk", "hexagon"))
    with pytest.raises(ValueError, match="image_size >= crop_size"):
        generate_shapes(4, image_size=20, crop_size=32)


def _layers(model, kind):
    return [m for m in model.modules() if isinstance(m, kind)]


@pytest.mark.parametrize("net", [DemoCNN, SmallResNet])
def test_nets_follow_the_paper_recipe(net):
    base, aa = net(num_classes=5), net(num_classes=5, filter_size=3)
    assert not _layers(base, BlurPool)
    blurs = _layers(aa, BlurPool)
    assert blurs and all(b.filt_size == 3 and b.stride == 2 for b in blurs)
    # no strided conv or max-pool is left in the anti-aliased net: BlurPool does all subsampling
    assert all(m.stride in (1, (1, 1)) for m in _layers(aa, (nn.Conv2d, nn.MaxPool2d)))
    assert any(m.stride in (2, (2, 2)) for m in _layers(base, (nn.Conv2d, nn.MaxPool2d)))
    x = torch.rand(2, 3, 32, 32)
    assert base(x).shape == aa(x).shape == (2, 5)
    # no extra parameters, as the paper says
    assert sum(p.numel() for p in base.parameters()) == sum(p.numel() for p in aa.parameters())


def test_quick_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    threads = torch.get_num_threads()
    try:  # one thread: shared CI machines are often oversubscribed
        assert demo_main(["--quick", "--out-dir", str(out), "--no-progress", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    for label in ("Baseline", "Rect-2", "Tri-3", "Tri-4", "Bin-5"):
        assert label in printed
    files = list(out.glob("results_*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    assert data["schema"] == "antialiased.result/1" and data["protocol"] == "demo"
    assert data["dataset"] == "generated:shapes" and data["seed"] == 0
    assert [r["filter_size"] for r in data["results"]] == [None, 2, 3, 4, 5]
    for r in data["results"]:
        m = r["metrics"]
        assert 0 <= m["acc1"] <= 100 and 0 <= m["consistency"] <= 100 and m["pairs"] == 200
        assert m["consistency_ci95"][0] <= m["consistency"] <= m["consistency_ci95"][1]
    # it learned something in the quick run: clearly better than chance (1/8, 200 test images)
    assert max(r["metrics"]["acc1"] for r in data["results"]) > 100 / len(SHAPES) + 7
    rows = summarize(load_results([files[0]]))["democnn"]
    assert [v.label for v in rows] == ["Baseline", "Rect-2", "Tri-3", "Tri-4", "Bin-5"]
    assert (out / "demo_democnn_seed0.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "demo_democnn_seed0.md").read_text().startswith("|          | Accuracy | Consistency |")


def _tiny(tmp_path, **kw):
    base = dict(out_dir=str(tmp_path), epochs=1, train_size=128, test_size=64, width=4, epochs_shift=1,
                filter_sizes=(3,), progress=False, plot=False)
    return run_demo(DemoConfig(**{**base, **kw}))


def test_demo_is_deterministic_given_seed(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # summation order: identical threads for identical floats
    try:
        a = _tiny(tmp_path / "a", seed=5).records
        b = _tiny(tmp_path / "b", seed=5).records
    finally:
        torch.set_num_threads(threads)
    assert [r["metrics"]["train_loss"] for r in a] == [r["metrics"]["train_loss"] for r in b]
    assert [(r["metrics"]["acc1"], r["metrics"]["consistency"]) for r in a] == \
           [(r["metrics"]["acc1"], r["metrics"]["consistency"]) for r in b]


def test_demo_on_an_imagefolder_dataset(tmp_path, cifar10_dir):
    result = _tiny(tmp_path, data=str(cifar10_dir), crop_size=28, max_shift=4, train_size=160, test_size=40)
    data = json.loads(result.results_path.read_text())
    assert data["dataset"] == str(cifar10_dir.resolve())
    assert data["counts"]["train"] == 160 and data["counts"]["test"] == 40
    assert data["settings"]["classes"][:2] == ["airplane", "automobile"] and data["settings"]["image_size"] == 32
    assert [r["model"] for r in data["results"]] == ["democnn", "democnn_lpf3"]


def test_demo_errors_are_clear(tmp_path, capsys):
    assert demo_main(["--data", str(tmp_path / "nope"), "--out-dir", str(tmp_path), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "flat").mkdir()
    assert demo_main(["--data", str(tmp_path / "flat"), "--out-dir", str(tmp_path), "--no-progress"]) == 2
    assert "train/ folder" in capsys.readouterr().err
    assert demo_main(["--filter-sizes", "9", "--out-dir", str(tmp_path), "--no-progress"]) == 2
    assert "--filter-sizes" in capsys.readouterr().err
    assert demo_main(["--device", "cuda:7" if not torch.cuda.is_available() else "nonsense",
                      "--out-dir", str(tmp_path), "--no-progress"]) == 2
    assert "--device" in capsys.readouterr().err
