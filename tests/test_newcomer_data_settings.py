"""Issue 17 item 2: checkpoints carry their evaluation settings (crop, resize, mean/std), and eval, audit,
export and exported weights use them unless told otherwise (a differing explicit value warns, naming both).

The reproduction: ``eval --resume ckpt -e`` of a 32-pixel CIFAR checkpoint evaluated at 256/224.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import torch

from antialiased.data import IMAGENET_MEAN, IMAGENET_STD, ImageFolderDataset
from test_training_fixtures import load, register_tiny_models, tiny_args, train_cli
from tests._evalutil import read_result

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = ("airplane", "cat", "ship")
# A normalization of one's own, far from ImageNet's, so an evaluation that ignored the record would show
# (test_eval_normalizes_as_training_did checks that the two give different accuracies).
OWN_STATS = ((0.9, 0.1, 0.5), (0.1, 0.5, 0.2))


@pytest.fixture(scope="module")
def data(cifar10_dir: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("c10settings")
    for split, source, n in (("train", "train", 8), ("test", "test", 5)):
        for cls in CLASSES:
            (root / split / cls).mkdir(parents=True)
            for image in sorted((cifar10_dir / source / cls).iterdir())[:n]:
                os.symlink(image, root / split / cls / image.name)
    return root


def _train(data: Path, out: Path, *extra: str) -> Path:
    assert train_cli(*tiny_args(data, out, "-ep", "1", "-b", "8", "--seed", "0", *extra)) == 0
    return out / "checkpoint.pth.tar"


@pytest.fixture(scope="module")
def run32(data: Path, tmp_path_factory) -> Path:
    """A 32-pixel run (tiny_args: --crop-size 32) with the default (ImageNet) normalization."""
    return _train(data, tmp_path_factory.mktemp("run32") / "run")


@pytest.fixture(scope="module")
def run_own_stats(data: Path, tmp_path_factory) -> Path:
    mean, std = OWN_STATS
    return _train(data, tmp_path_factory.mktemp("runstats") / "run", "--mean", *map(str, mean), "--std", *map(str, std))


def said(run, capfd) -> list[str]:
    """The warnings ``run()`` gave: recorded ones, and those the command line printed as one line each."""
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
    return [str(w.message) for w in caught] + capfd.readouterr().err.splitlines()


def _evaluate(data: Path, out: Path, capfd, *extra: str) -> tuple[dict, list[str]]:
    register_tiny_models()

    def run():
        assert train_cli("--data", str(data), "-a", "aa_tinynet_lpf2", "-e", "-j", "0", "--out-dir", str(out),
                         *extra) == 0
    messages = said(run, capfd)
    return read_result(out, "accuracy"), messages


def _dataset(folder: Path, resize: int, crop: int, mean, std) -> ImageFolderDataset:
    from torchvision import transforms as T

    return ImageFolderDataset(folder, T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor(),
                                                 T.Normalize(mean, std)]))


def _model(weights: Path) -> torch.nn.Module:
    from antialiased.models import create_model

    register_tiny_models()
    return create_model("aa_tinynet_lpf2", weights=str(weights)).eval()


def _accuracy(weights: Path, folder: Path, resize: int, crop: int, mean, std) -> float:
    """Top-1 of the weights on every image of ``folder``, by torchvision's transforms and a plain loop."""
    model = _model(weights)
    dataset = _dataset(folder, resize, crop, mean, std)
    hits = 0
    with torch.no_grad():
        for image, target in dataset:
            hits += int(model(image[None]).argmax(1).item() == target)
    return 100 * hits / len(dataset)


def _head_fitted_to(checkpoint: Path, folder: Path, out: Path, mean, std) -> Path:
    """``checkpoint`` (its record kept) with its linear head refitted by least squares to the pooled
    features of ``folder``'s images under ``mean``/``std``: predictions that depend on the normalization
    whatever the (tiny, one-epoch) training made of the head."""
    record = load(checkpoint)
    model = _model(checkpoint)
    dataset = _dataset(folder, 37, 32, mean, std)
    with torch.no_grad():
        features = torch.cat([model[:-1](image[None]) for image, _ in dataset]).double()
    targets = torch.nn.functional.one_hot(torch.tensor([t for _, t in dataset]), len(CLASSES)).double()
    design = torch.cat([features, torch.ones(len(features), 1, dtype=torch.float64)], dim=1)
    solution = torch.linalg.lstsq(design, targets, driver="gelsd").solution.float()  # (features + 1, classes)
    record["state_dict"]["10.weight"] = solution[:-1].T.contiguous()
    record["state_dict"]["10.bias"] = solution[-1].contiguous()
    torch.save(record, out)
    return out


def test_checkpoints_record_the_preprocessing_of_their_validation(run32, run_own_stats):
    for name in ("checkpoint.pth.tar", "model_best.pth.tar"):
        assert load(run32.parent / name)["preprocessing"] == {
            "crop_size": 32, "resize_size": 37, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    recorded = load(run_own_stats)["preprocessing"]
    assert (recorded["mean"], recorded["std"]) == (list(OWN_STATS[0]), list(OWN_STATS[1]))


def test_eval_of_a_32_pixel_checkpoint_runs_at_32(data, run32, tmp_path, capfd):
    result, messages = _evaluate(data, tmp_path, capfd, "--resume", str(run32))
    settings = result["settings"]
    assert (settings["crop_size"], settings["resize"], settings["max_shift"]) == (32, 37, 5)
    acc1 = result["metrics"]["acc1"]
    acc1 = acc1["value"] if isinstance(acc1, dict) else acc1
    # the same number as training's own validation of these weights, and as a plain loop at 37/32
    logged = json.loads((run32.parent / "log.jsonl").read_text().splitlines()[-1])["val_acc1"]
    assert acc1 == pytest.approx(logged)
    assert acc1 == pytest.approx(_accuracy(run32, data / "test", 37, 32, IMAGENET_MEAN, IMAGENET_STD))
    assert not [m for m in messages if "differs from" in m]  # nothing given, nothing to warn about


def test_explicit_values_win_with_a_warning_naming_both(data, run32, tmp_path, capfd):
    result, messages = _evaluate(data, tmp_path / "crop", capfd, "--resume", str(run32), "--crop-size", "28")
    assert (result["settings"]["crop_size"], result["settings"]["resize"]) == (28, 32)  # the recorded ratio 37/32
    warned = [m for m in messages if "differs from" in m]
    assert len(warned) == 1 and "--crop-size 28" in warned[0] and "32" in warned[0] and str(run32) in warned[0]
    result, messages = _evaluate(data, tmp_path / "shift", capfd, "--resume", str(run32), "--max-shift", "8")
    assert (result["settings"]["crop_size"], result["settings"]["resize"]) == (32, 40)
    warned = [m for m in messages if "differs from" in m]
    assert len(warned) == 1 and "40" in warned[0] and "37" in warned[0]
    _, messages = _evaluate(data, tmp_path / "same", capfd, "--resume", str(run32), "--crop-size", "32")
    assert not [m for m in messages if "differs from" in m]  # the recorded value, given again: no warning
    result, messages = _evaluate(data, tmp_path / "all", capfd, "--resume", str(run32), "--crop-size", "30",
                                 "--max-shift", "6", "--mean", "0.5", "0.5", "0.5", "--std", "0.2", "0.2", "0.2")
    warned = [m for m in messages if "differs from" in m]
    assert len(warned) == 4 and all(str(run32) in m for m in warned)  # everything given: each one still said
    assert (result["settings"]["crop_size"], result["settings"]["resize"], result["settings"]["mean"]) == \
        (30, 36, [0.5, 0.5, 0.5])


def test_eval_and_shift_protocols_of_a_cifar_checkpoint_run_as_the_readme_says(data, run32, tmp_path, capfd):
    # 37 - 32 = 5, an odd margin: -e -es runs without extra flags, and -e scores, pixel for pixel, the
    # Resize(37) + CenterCrop(32) crops that -e alone and training's validation score
    result, _ = _evaluate(data, tmp_path, capfd, "--resume", str(run32), "-es", "--epochs-shift", "1",
                          "--evaluate-save")
    settings = result["settings"]
    assert (settings["crop_size"], settings["resize"], settings["max_shift"], settings["decode_size"]) == \
        (32, 37, 5, 37)
    logged = json.loads((run32.parent / "log.jsonl").read_text().splitlines()[-1])["val_acc1"]
    assert result["metrics"]["acc1"] == pytest.approx(logged)
    assert read_result(tmp_path, "shift_consistency")["counts"]["images"] == len(CLASSES) * 5
    from torchvision import transforms as T
    from torchvision.datasets.folder import pil_loader

    expected = ImageFolderDataset(data / "test", T.Compose([T.Resize(37), T.CenterCrop(32), T.PILToTensor()]))
    saved = sorted((tmp_path / "images" / "accuracy").glob("*.png"))
    assert len(saved) == len(expected)
    for i, png in enumerate(saved):
        assert torch.equal(T.PILToTensor()(pil_loader(str(png))), expected[i][0]), png.name


def test_exported_weights_keep_the_settings(data, run32, tmp_path, capfd):
    weights = tmp_path / "w.pth.tar"
    assert train_cli("-a", "aa_tinynet_lpf2", "--resume", str(run32), "--save_weights", str(weights)) == 0
    assert torch.load(weights, weights_only=True)["preprocessing"] == load(run32)["preprocessing"]
    result, _ = _evaluate(data, tmp_path / "eval", capfd, "--weights", str(weights))
    assert (result["settings"]["crop_size"], result["settings"]["resize"]) == (32, 37)


def test_the_audit_uses_each_checkpoints_settings(data, run32, tmp_path):
    from antialiased.cli.audit import main as audit_main

    register_tiny_models()
    out = tmp_path / "audit"
    assert audit_main(["-a", f"aa_tinynet_lpf2={run32}", "--data", str(data), "--protocols", "e", "--out-dir",
                       str(out), "-j", "0", "--no-plots", "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [(r["settings"]["crop_size"], r["settings"]["resize"]) for r in report["results"]] == [(32, 37)]
    assert (report["settings"]["crop_size"], report["settings"]["max_shift"]) == (32, 5)


def test_export_takes_the_checkpoints_input_size_and_preprocessing(run32, tmp_path, capfd):
    import antialiased.cli
    from antialiased.export.metadata import EXTRA_FILE

    register_tiny_models()
    out = tmp_path / "c10.pt2"
    assert antialiased.cli.main(["export", "-a", "aa_tinynet_lpf2", "--resume", str(run32), "--format",
                                 "exported-program", "--out", str(out)]) == 0
    extra = {EXTRA_FILE: ""}
    torch.export.load(out, extra_files=extra)
    props = json.loads(extra[EXTRA_FILE])
    assert "32, 32]" in props["input"] and props["resize"] == "37"
    assert props["mean"] == ",".join(map(str, IMAGENET_MEAN))
    messages = said(lambda: antialiased.cli.main(["export", "-a", "aa_tinynet_lpf2", "--resume", str(run32),
                                                  "--format", "exported-program", "--out", str(tmp_path / "c64.pt2"),
                                                  "--input-size", "64", "--no-verify"]), capfd)
    assert len([m for m in messages if "--input-size 64 differs from the crop size 32" in m]) == 1, messages
    assert (tmp_path / "c64.pt2").is_file()


def test_eval_normalizes_as_training_did(data, run_own_stats, tmp_path, capfd):
    result, _ = _evaluate(data, tmp_path / "run", capfd, "--resume", str(run_own_stats))
    settings = result["settings"]
    assert (settings["mean"], settings["std"]) == (list(OWN_STATS[0]), list(OWN_STATS[1]))
    acc1 = result["metrics"]["acc1"]
    acc1 = acc1["value"] if isinstance(acc1, dict) else acc1
    logged = json.loads((run_own_stats.parent / "log.jsonl").read_text().splitlines()[-1])["val_acc1"]
    assert acc1 == pytest.approx(logged)
    assert acc1 == pytest.approx(_accuracy(run_own_stats, data / "test", 37, 32, *OWN_STATS))
    # One epoch on 24 images may leave a head that names one class whatever the input (then both
    # normalizations score the same); a head fitted to the test images under the recorded statistics
    # tells them apart. Checked first by the plain loop, so this test cannot pass by an accident of ties.
    fitted = _head_fitted_to(run_own_stats, data / "test", tmp_path / "fitted.pth.tar", *OWN_STATS)
    own = _accuracy(fitted, data / "test", 37, 32, *OWN_STATS)
    imagenet = _accuracy(fitted, data / "test", 37, 32, IMAGENET_MEAN, IMAGENET_STD)
    assert own != pytest.approx(imagenet), (own, imagenet)
    result, _ = _evaluate(data, tmp_path / "fitted", capfd, "--resume", str(fitted))
    acc1 = result["metrics"]["acc1"]
    acc1 = acc1["value"] if isinstance(acc1, dict) else acc1
    assert acc1 == pytest.approx(own)
