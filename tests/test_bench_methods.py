"""benchmarks/methods_cifar.py and finetune_methods.py (issue 19, delivers 3 and 4): the whole path at the
tiniest budget on a few real CIFAR-10 images, and the pieces against independent computations."""
from __future__ import annotations

import json
import math
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import _methods_common as mc  # noqa: E402
import finetune_methods  # noqa: E402
import methods_cifar  # noqa: E402
from antialiased.errors import ConfigError, DataError  # noqa: E402
from antialiased.models.antialias import INSERTED, METHODS, antialias  # noqa: E402
from methods_cifar_data import CifarTensors, TrainBatches, load_cifar  # noqa: E402
from methods_cifar_train import Recipe, build_net, whiten_init  # noqa: E402


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory, cifar10_dir) -> Path:
    """A CIFAR-10 folder of links to the first 8 training and 3 test images of every class."""
    root = tmp_path_factory.mktemp("tiny_cifar")
    for split, count in (("train", 8), ("test", 3)):
        for folder in sorted((cifar10_dir / split).iterdir()):
            (root / split / folder.name).mkdir(parents=True)
            for f in sorted(folder.iterdir())[:count]:
                os.symlink(f, root / split / folder.name / f.name)
    return root


def _table(text: str) -> dict[str, list[str]]:
    """Method -> cells of the Markdown table (the first line starting with '| Method')."""
    lines = text[text.index("| Method"):].splitlines()
    rows = {}
    for line in lines[2:]:
        if not line.startswith("| "):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0].split("`")[1]] = cells[1:]
    return rows


def _mean_std(cell: str) -> tuple[float, float]:
    mean, _, std = cell.partition(" ± ")
    return float(mean), float(std or 0)


def _unavailable() -> str:
    return next(m for m in mc.ISSUE_19_METHODS if m not in METHODS)


def test_methods_cifar_tiny_end_to_end(tiny_cifar, tmp_path, capsys, one_thread):
    if all(m in METHODS for m in mc.ISSUE_19_METHODS):
        pytest.skip("every method of issue 19 is registered: no 'not available' row to check")
    missing = _unavailable()
    args = ["--device", "cpu", "--data", str(tiny_cifar), "--cache-dir", str(tmp_path / "cache"), "--epochs", "1",
            "--seeds", "0", "1", "--width", "4", "--batch-size", "40", "--adv-grid", "1", "--workers", "0",
            "--eval-batch", "15", "--out", str(tmp_path / "out"),
            "--methods", "baseline", "blurpool:3", "blur-first:3", "aps", missing]
    assert methods_cifar.main(args) == 0
    rows = _table(capsys.readouterr().out)
    assert list(rows) == ["baseline", "blurpool:3", "blur-first:3", "aps", missing]
    assert rows[missing][0] == mc.NOT_AVAILABLE
    assert rows["blur-first:3"][0].startswith("the same network as `blurpool:3`")  # the net has no strided convs
    runs = json.loads((tmp_path / "out" / "methods_cifar.json").read_text())["runs"]
    for label in ("baseline", "blurpool:3", "aps"):
        done = [r for r in runs if r["method"] == label and r["status"] == "done"]
        assert [r["seed"] for r in done] == [0, 1] and rows[label][-1] == "2"
        for cell, key in zip(rows[label], ("acc1", "crop_shift", "circular", "fractional", "adversarial")):
            mean, std = _mean_std(cell)
            values = [r[key] for r in done]
            assert 0 <= mean <= 100
            assert mean == pytest.approx(statistics.mean(values), abs=0.006)
            assert std == pytest.approx(statistics.stdev(values), abs=0.006)
        assert all(r["test_images"] == 30 and r["train_images_per_s"] > 0 and r["activations_MiB"] > 0 for r in done)
    # circular padding + APS, 32 pixels = 4 x the total stride 8: exactly invariant to circular shifts
    assert _mean_std(rows["aps"][2]) == (100.0, 0.0)
    assert (tmp_path / "out" / "methods_cifar.md").read_text().startswith("CIFAR-10 (80 training, 30 test images)")


def test_budget_lists_the_runs_it_skips(tiny_cifar, tmp_path, capsys, one_thread):
    args = ["--device", "cpu", "--data", str(tiny_cifar), "--cache-dir", str(tmp_path / "cache"), "--seeds", "0", "1",
            "--width", "4", "--workers", "0", "--budget-seconds", "0.001", "--out", str(tmp_path / "out"),
            "--methods", "baseline", "aps"]
    assert methods_cifar.main(args) == 0  # loading the data alone takes longer than the budget
    out = capsys.readouterr().out
    runs = json.loads((tmp_path / "out" / "methods_cifar.json").read_text())["runs"]
    assert [(r["method"], r["seed"], r["status"]) for r in runs] == [
        (m, seed, "skipped: over --budget-seconds") for seed in (0, 1) for m in ("baseline", "aps")]
    assert "Not run (over --budget-seconds): baseline (seed 0), aps (seed 0), baseline (seed 1), aps (seed 1)." in out
    assert _table(out)["aps"][0] == "skipped: over --budget-seconds"


def test_a_failing_method_is_reported_and_the_others_kept(tiny_cifar, tmp_path, capsys, monkeypatch, one_thread):
    real = methods_cifar.run_one

    def run_one(session, spec, seed):
        if spec.text == "aps":
            raise RuntimeError("boom\n in a layer")
        return real(session, spec, seed)

    monkeypatch.setattr(methods_cifar, "run_one", run_one)
    args = ["--device", "cpu", "--data", str(tiny_cifar), "--cache-dir", str(tmp_path / "cache"), "--epochs", "0.5",
            "--seeds", "0", "--width", "4", "--batch-size", "40", "--adv-grid", "1", "--workers", "0",
            "--out", str(tmp_path / "out"), "--methods", "aps", "baseline"]
    assert methods_cifar.main(args) == 0
    captured = capsys.readouterr()
    rows = _table(captured.out)
    assert rows["aps"][0] == "failed: RuntimeError: boom in a layer" and rows["baseline"][-1] == "1"
    assert "Failed: aps (seed 0): RuntimeError: boom in a layer" in captured.out
    assert "Traceback" in captured.err
    runs = json.loads((tmp_path / "out" / "methods_cifar.json").read_text())["runs"]
    assert [r["status"] for r in runs] == ["failed: RuntimeError: boom in a layer", "done"]


def test_finetune_tiny_end_to_end(tiny_cifar, tmp_path, capsys, one_thread):
    args = ["--device", "cpu", "--data", str(tiny_cifar), "--cache-dir", str(tmp_path / "cache"), "--epochs", "1",
            "--seeds", "0", "--width", "4", "--batch-size", "40", "--adv-grid", "1", "--workers", "0",
            "--finetune-fraction", "0.5", "--out", str(tmp_path / "out"),
            "--methods", "baseline", "blurpool:3", "aps-lpf:3"]
    assert finetune_methods.main(args) == 0
    rows = _table(capsys.readouterr().out)
    assert list(rows) == ["baseline", "blurpool:3", "aps-lpf:3"]
    runs = {r["method"]: r for r in json.loads((tmp_path / "out" / "finetune_methods.json").read_text())["runs"]}
    for label, cells in rows.items():
        before, after = cells[0].split(" → ")
        assert float(before) == pytest.approx(runs[label]["before_acc1"], abs=0.006)
        assert float(after) == pytest.approx(runs[label]["after_acc1"], abs=0.006)
        assert runs[label]["finetune_steps"] == 1  # half of one epoch of 80 images, batch 40
    assert cells[2] == "100.00 → 100.00"  # aps-lpf converted with circular padding: invariant before and after


def test_converted_copy_keeps_the_trained_weights(tiny_cifar, tmp_path, one_thread):
    parser = finetune_methods.get_args_parser()
    args = parser.parse_args(["--device", "cpu", "--data", str(tiny_cifar), "--cache-dir", str(tmp_path), "--workers",
                              "0", "--width", "4", "--out", str(tmp_path), "--methods", "baseline", "blurpool:3"])
    session = finetune_methods.open_session(args, Recipe(width=4), log=lambda m: None)
    trained = finetune_methods.build_model(session, finetune_methods.BASELINE, 0)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn_like(p))  # "training"
    model = finetune_methods.converted_copy(trained, session.specs[1], session)
    kept = trained.state_dict()
    assert all(torch.equal(v, kept[k]) for k, v in model.state_dict().items() if k in kept)
    assert set(kept) <= set(model.state_dict()) and model.antialias_summary.changed
    assert not hasattr(trained, "antialias_summary")  # the trained baseline itself is left alone


def test_cache_holds_the_decoded_pixels(tiny_cifar, tmp_path):
    data = load_cifar(tiny_cifar, tmp_path, workers=0, log=lambda m: None)
    files = sorted(tiny_cifar.glob("train/*/*.jpg"))
    assert data.train_images.shape == (80, 3, 32, 32) and data.train_images.dtype == torch.uint8
    assert data.classes == sorted(p.name for p in (tiny_cifar / "train").iterdir())
    for i in (0, 37, 79):
        pixels = np.asarray(Image.open(files[i]).convert("RGB")).transpose(2, 0, 1)
        assert np.array_equal(data.train_images[i].numpy(), pixels)
        assert data.train_labels[i] == data.classes.index(files[i].parent.name)
    cached = list(tmp_path.glob("*.pt"))
    assert len(cached) == 1
    again = load_cifar(tiny_cifar, tmp_path, workers=0, log=lambda m: pytest.fail("decoded twice"))
    assert torch.equal(again.test_images, data.test_images) and torch.equal(again.train_labels, data.train_labels)


def test_refuses_a_folder_without_splits(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="has no test/ folder"):
        load_cifar(tmp_path, tmp_path / "cache", workers=0)


def _tensors(n: int = 6, size: int = 8) -> CifarTensors:
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    return CifarTensors(images, torch.arange(n), images[:2], torch.arange(2), ["a"] * n, "test")


def test_training_batches_are_flipped_crops_of_the_padded_images():
    data = _tensors()
    batches = TrainBatches(data, torch.device("cpu"), batch_size=4, translate=2, seed=0)
    mean, std = data.channel_stats
    normalized = (data.train_images.float() / 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    flips = []
    for _ in range(2):
        seen = 0
        for images, labels in batches.epoch_batches():
            for image, label in zip(images, labels):
                source = normalized[label]
                views = {(flip, dy, dx): F.pad((source.flip(-1) if flip else source)[None], (2,) * 4,
                                               mode="reflect")[0, :, dy:dy + 8, dx:dx + 8]
                         for flip in (0, 1) for dy in range(5) for dx in range(5)}
                match = [key for key, view in views.items() if torch.allclose(view, image, atol=1e-6)]
                assert match, "not a flipped crop of the padded image"
                flips.append((int(label), match[0][0]))
                seen += 1
        assert seen == 6
    first, second = dict(flips[:6]), dict(flips[6:])
    assert all(first[k] != second[k] for k in first)  # alternating flip: every image flips between epochs


def test_whitening_makes_the_patch_covariance_the_identity():
    images = torch.randn(64, 3, 10, 10) * torch.tensor([1.0, 3.0, 0.2]).view(1, 3, 1, 1)
    images[:, 1] += images[:, 0]  # correlated channels
    conv = nn.Conv2d(3, 54, 3)
    whiten_init(conv, images, eps=0.0)
    with torch.no_grad():
        out = F.conv2d(images.double(), conv.weight.double())[:, :27]  # the first half: the eigenvectors
    flat = out.permute(0, 2, 3, 1).reshape(-1, 27)
    cov = flat.T @ flat / flat.shape[0]
    assert torch.allclose(cov, torch.eye(27, dtype=torch.float64), atol=1e-3)
    assert torch.equal(conv.weight[27:], -conv.weight[:27])


def test_schedule_is_airbench_triangle():
    recipe = Recipe()
    assert recipe.factor(0, 100) == pytest.approx(0.2)
    assert recipe.factor(23, 100) == pytest.approx(1.0)
    assert recipe.factor(100, 100) == pytest.approx(0.07)
    assert recipe.factor(50, 100) == pytest.approx(1 + (0.07 - 1) * 27 / 77)
    # airbench's decoupled values for PyTorch's SGD: lr 11.5 / (1024 (1 + 1 / 0.15))
    assert recipe.sgd_lr() == pytest.approx(11.5 / (1024 * (1 + 1 / 0.15)))
    assert recipe.finetune(0.1, 0.1).factor(23, 100) == pytest.approx(0.1)


def test_parse_methods_refuses_what_cannot_run():
    with pytest.raises(ConfigError, match="unknown method 'blurry'"):
        mc.parse_methods(["blurry"])
    with pytest.raises(ConfigError, match="must be an integer from 1 to 7"):
        mc.parse_methods(["blurpool:9"])
    assert mc.parse_methods(["blurpool"])[0].call("net", "supported") == "antialias(net(), method='blurpool')"
    assert mc.parse_methods(["aps-lpf:3"])[0].options("supported") == {"method": "aps-lpf", "filter_size": 3,
                                                                       "circular": True}
    with pytest.raises(ConfigError, match="each once"):
        mc.parse_methods(["baseline", "baseline"])
    spec = mc.parse_methods([_unavailable() + ":3"])[0] if any(m not in METHODS for m in mc.ISSUE_19_METHODS) else None
    assert spec is None or not spec.available


class _ExpTimes(nn.Module):
    """exp(x) * x: autograd keeps x and exp(x), two input-sized tensors."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x) * x


def test_saved_activations_per_inserted_layer():
    layer = _ExpTimes()
    setattr(layer, INSERTED, True)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), layer, nn.ReLU())
    x = torch.rand(2, 3, 8, 8)
    with mc.SavedActivations(net) as saved:
        net(x)
    size = 2 * 4 * 8 * 8 * 4
    # the conv keeps its input (x), exp(x) * x keeps the conv's output and exp(x), the ReLU its output
    assert saved.total_bytes == x.numel() * 4 + 3 * size
    info = saved.per_layer()["1"]
    assert info["keeps_input"] and info["input_sized_kept"] == 2 and info["largest_other_vs_input"] == 1.0
    assert info["saved_MiB"] == pytest.approx(2 * size / 2 ** 20)


def test_blur_layers_keep_nothing_for_backward_the_dense_pool_its_indices():
    from antialiased.layers import BlurPool

    net = antialias(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)), filter_size=3)
    with mc.SavedActivations(net) as saved:
        net(torch.rand(2, 3, 16, 16))
    kinds = {type(net.get_submodule(path)): info for path, info in saved.per_layer().items()}
    assert set(kinds) == {BlurPool, nn.MaxPool2d}
    assert kinds[BlurPool]["saved_MiB"] == 0 and kinds[BlurPool]["input_sized_kept"] == 0
    # MaxPool(2, 1) keeps its int64 indices, 15 x 15 per channel: 8 bytes each against the 16 x 16 float input
    assert kinds[nn.MaxPool2d]["largest_other_vs_input"] == pytest.approx(15 * 15 * 8 / (16 * 16 * 4))


def test_run_budget_estimates_from_earlier_runs():
    budget = mc.RunBudget(100.0)
    assert budget.fits("a")  # nothing known yet
    budget.record("a", 60.0)
    assert budget.expected("a") == 60.0 and budget.expected("b") == 60.0
    budget.record("b", 20.0)
    assert budget.expected("c") == 40.0
    budget.start -= 50  # 50 s spent: another 60 s run of "a" would end past 100
    assert not budget.fits("a") and budget.fits("b")
    with pytest.raises(ConfigError):
        mc.RunBudget(0)


def test_mean_std_matches_statistics():
    values = [93.1, 92.4, 93.9]
    mean, std = _mean_std(mc.mean_std(values))
    assert mean == pytest.approx(statistics.mean(values), abs=0.005)
    assert std == pytest.approx(statistics.stdev(values), abs=0.005)
    assert mc.mean_std([float("nan"), None]) == "-" and not math.isnan(_mean_std(mc.mean_std([5.0]))[0])


def _with_learned_layers() -> nn.Module:
    """The benchmark's network with a learned layer of each kind where antialias() would put them."""
    from antialiased.layers import AdaptiveBlurPool, LearnablePolyphaseSampling

    net = build_net(4)
    net.block1.pool = LearnablePolyphaseSampling(4)
    net.block2.pool = AdaptiveBlurPool(16, filt_size=3, groups=8)
    for layer in (net.block1.pool, net.block2.pool):
        setattr(layer, INSERTED, True)
    return net


def test_learned_layers_get_their_papers_optimizer_settings():
    from methods_cifar_train import _optimizer

    net = _with_learned_layers()
    optimizer, _ = _optimizer(net, Recipe(), total_steps=10)
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    lr, decay = Recipe().sgd_lr(), Recipe().sgd_decay()
    for p in net.block1.pool.parameters():  # LPS's scorer: no weight decay (the authors' optimizer)
        assert group_of[id(p)]["weight_decay"] == 0 and group_of[id(p)]["initial_lr"] == lr
    for p in net.block2.pool.parameters():  # DDAC: trained like the convs, its BN bias not scaled 64x
        group = group_of[id(p)]
        assert group["initial_lr"] == lr and group["weight_decay"] * lr == pytest.approx(decay)
    assert group_of[id(net.block2.norm1.bias)]["initial_lr"] == 64 * lr  # the network's own BatchNorm biases
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.2 * 64 * lr)  # the schedule starts at 0.2
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(net.parameters()))


def test_training_moves_the_learned_layers(one_thread):
    from methods_cifar_train import train

    net = _with_learned_layers()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    batches = TrainBatches(_tensors(8, 32), torch.device("cpu"), batch_size=4, translate=2, seed=0)
    numbers = train(net, batches, Recipe(epochs=1, batch_size=4))
    assert numbers["steps"] == 2 and math.isfinite(numbers["loss"])
    after = net.state_dict()
    for name in ("block1.pool.scorer.conv1.weight", "block2.pool.conv.weight", "whiten.bias"):
        assert not torch.equal(before[name], after[name]), name
    assert torch.equal(before["whiten.weight"], after["whiten.weight"])  # frozen


def test_the_benchmark_trains_learned_layers_by_the_packages_rules(one_thread):
    # one source of truth with `antialiased train`: training.method_rules' groups (named by layer, with their
    # source) and per-epoch schedules (LPS's Gumbel temperature x0.85 every 10 epochs: 11 epochs, once)
    from antialiased.training.method_rules import parameter_groups
    from methods_cifar_train import _optimizer, train

    net = _with_learned_layers()
    optimizer, _ = _optimizer(net, Recipe(), total_steps=10)
    rules = {g["name"]: g["source"] for g in parameter_groups(net, lr=1.0, weight_decay=1.0) if g["name"] != "default"}
    assert {g["name"]: g.get("source") for g in optimizer.param_groups if g["name"] in rules} == rules
    start = float(net.block1.pool.gumbel_tau)
    batches = TrainBatches(_tensors(8, 32), torch.device("cpu"), batch_size=8, translate=2, seed=0)
    train(net, batches, Recipe(epochs=11, batch_size=8))
    assert float(net.block1.pool.gumbel_tau) == pytest.approx(start * 0.85)
