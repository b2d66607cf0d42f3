"""The one evaluation loop: protocols sharing a decode give what each gives alone; units, errors, result files."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision import transforms as T

import antialiased
from antialiased.data import IMAGENET_MEAN, IMAGENET_STD, ImageFolderDataset, uint8_transform
from antialiased.errors import ConfigError, DataError
from antialiased.evaluation import (AccuracyScorer, DataSettings, DiagonalScorer, EvalConfig, LoopOptions,
                                    ModelSource, RunSettings, ShiftConsistencyScorer, ShiftOptions, evaluate,
                                    evaluate_accuracy, make_result, run_protocols, shift_consistency, write_result)
from tests._evalutil import TinyNet, make_val_folder, sample_files

N = 12


@pytest.fixture(scope="module")
def val_root(tmp_path_factory, imagenet_sample_dir):
    root = tmp_path_factory.mktemp("loop")
    make_val_folder(root, sample_files(imagenet_sample_dir, N, step=53))
    return root


class CountingDataset(ImageFolderDataset):
    """Counts decodes (one process: workers=0)."""

    decodes = 0

    def __getitem__(self, index):
        type(self).decodes += 1
        return super().__getitem__(index)


def _loader(root: Path, size: int, counting: bool = False) -> DataLoader:
    cls = CountingDataset if counting else ImageFolderDataset
    return DataLoader(cls(root / "val", transform=uint8_transform(256, size), return_index=True), batch_size=4)


def test_protocols_in_one_loop_equal_each_alone_and_decode_once(val_root):
    model = TinyNet(num_classes=N).eval()
    alone_acc = evaluate_accuracy(model, _loader(val_root, 224), "cpu", progress=False, return_predictions=True)
    alone_es = shift_consistency(model, _loader(val_root, 256), "cpu", epochs=3, seed=9, progress=False,
                                 return_labels=True)
    CountingDataset.decodes = 0
    acc, es = AccuracyScorer(224, keep_predictions=True), ShiftConsistencyScorer(224, 32, 3, seed=9, keep_labels=True)
    out = run_protocols(model, _loader(val_root, 256, counting=True), "cpu", [acc, es],
                        LoopOptions(progress=False, cache_bytes=1 << 30))
    assert CountingDataset.decodes == N  # one decode per image for both protocols and all three passes
    assert out.cached and out.count == N
    assert torch.equal(out.results["accuracy"]["predictions"], alone_acc["predictions"])
    assert out.results["accuracy"]["acc1"] == alone_acc["acc1"]
    assert torch.equal(out.results["shift_consistency"]["labels"], alone_es["labels"])
    assert out.results["shift_consistency"]["agree"] == alone_es["agree"]


def test_center_view_of_the_shared_decode_is_torchvisions_center_crop(val_root):
    # -e alone decodes straight to 224; with -es the 224 center of the 256 decode must be the same pixels.
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    reference = torch.cat([x for x, _ in DataLoader(datasets.ImageFolder(str(val_root / "val"), tf), batch_size=N)])
    seen = {}

    class Grab(AccuracyScorer):
        def score(self, batch, forward):
            seen.setdefault(batch.raw.shape[-1], []).append(batch.center(224).clone())

    for size in (224, 256):
        run_protocols(TinyNet(N), _loader(val_root, size), "cpu", [Grab(224)], LoopOptions(progress=False))
    for size in (224, 256):
        assert torch.equal(torch.cat(seen[size]), reference), size


def test_units_are_per_image_and_per_batch_outcomes(val_root):
    model = TinyNet(num_classes=N).eval()
    acc, es = AccuracyScorer(224), ShiftConsistencyScorer(224, 32, 2, seed=1)
    out = run_protocols(model, _loader(val_root, 256), "cpu", [acc, es], LoopOptions(progress=False))
    units_acc, units_es = out.units["accuracy"], out.units["shift_consistency"]
    assert sorted(units_acc["index"].tolist()) == list(range(N))
    assert 100 * units_acc["correct1"].mean() == pytest.approx(out.results["accuracy"]["acc1"])
    assert 100 * units_acc["correct5"].mean() == pytest.approx(out.results["accuracy"]["acc5"])
    assert units_es["agree"].sum() == out.results["shift_consistency"]["agree"] and len(units_es["agree"]) == 2 * N
    assert set(units_es["pass"].tolist()) == {0, 1} and set(units_es["batch"].tolist()) == {0, 1, 2}


def test_diagonal_scorer_shares_the_loop_with_accuracy(val_root):
    model = TinyNet(num_classes=N).eval()
    out = run_protocols(model, _loader(val_root, 256), "cpu", [AccuracyScorer(224), DiagonalScorer(224, 32)],
                        LoopOptions(progress=False))
    arrays = out.results["diagonal"]["arrays"]
    # Offset (16, 16) of the diagonal is the center crop: the same top-1 as the accuracy protocol.
    assert np.array_equal(arrays["correct"][:, 16], out.units["accuracy"]["correct1"])


def test_unreadable_images_are_counted_and_an_empty_run_is_an_error():
    images, model = torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.nn.Sequential(torch.nn.Flatten(),
                                                                                      torch.nn.Linear(192, 3))
    data = [(images, torch.tensor([0, -100, 2, -100]), torch.arange(4))]
    out = evaluate_accuracy(model, data, "cpu", progress=False)
    assert (out["count"], out["skipped"], out["skipped_indices"]) == (2, 2, [1, 3])
    with pytest.raises(DataError, match="no image could be evaluated"):
        evaluate_accuracy(model, [(images, torch.full((4,), -100))], "cpu", progress=False)
    with pytest.raises(DataError, match="target class 5 but the model has only 3 outputs"):
        evaluate_accuracy(model, [(images, torch.tensor([0, 5, 1, 1]))], "cpu", progress=False)
    with pytest.raises(ConfigError, match="each once"):
        run_protocols(model, data, "cpu", [AccuracyScorer(), AccuracyScorer()])


def test_result_files_never_clobber_even_when_written_at_once(tmp_path):
    record = make_result(model="m/x", arch="m", filter_size=None, weights="random", protocol="accuracy",
                         dataset="d", seed=None, device="cpu", metrics={"acc1": 1.0}, counts={"images": 1},
                         skipped_files=[], settings={}, classes=["a", "b"])
    paths: list[Path] = []
    threads = [threading.Thread(target=lambda: paths.append(write_result(record, tmp_path))) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(paths)) == 40 == len(list(tmp_path.glob("results_m_x_accuracy_*.json")))
    assert all(json.loads(p.read_text())["classes"] == ["a", "b"] for p in paths)


def test_evaluate_library_call_records_identity_classes_and_decode(val_root, tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "w.pth"
    torch.save({"state_dict": antialiased.create_model("resnet18_lpf2", num_classes=N).state_dict()}, weights)
    data = DataSettings(val_root, batch_size=6, workers=0, crop_size=64, max_shift=16)
    base = dict(model=ModelSource("resnet18_lpf2", weights=weights), data=data,
                run=RunSettings(seed=3, progress=False), shift=ShiftOptions(epochs=2))
    alone = evaluate(EvalConfig(**base, protocols=("accuracy",), out_dir=tmp_path / "a"))
    both = evaluate(EvalConfig(**base, protocols=("accuracy", "shift_consistency"), out_dir=tmp_path / "b"))
    assert alone["accuracy"].record["settings"]["decode_size"] == 64
    assert both["accuracy"].record["settings"]["decode_size"] == 80
    assert alone["accuracy"].result["acc1"] == both["accuracy"].result["acc1"]
    record = json.loads(both["shift_consistency"].path.read_text())
    assert record["classes"] == sorted(p.name for p in (val_root / "val").iterdir())
    assert record["weights"] == f"file:{weights.resolve()}" and record["model"] == "resnet18_lpf2"
    assert record["model_spec"]["filter_size"] == 2 and record["model_spec"]["method"] == "blurpool"
    assert record["weights_info"]["kind"] == "file" and record["weights_info"]["num_classes"] == N
    assert record["metrics"]["pairs"] == 2 * N and record["settings"]["offset_seed"] == 3


def test_bad_settings_fail_before_any_work(val_root):
    data = DataSettings(val_root, workers=0)
    with pytest.raises(ConfigError, match="only one of --pretrained, --weights PATH and --resume PATH"):
        evaluate(EvalConfig(ModelSource("resnet18_lpf2", pretrained=True, weights="w.pth"), data))
    with pytest.raises(ConfigError, match="--epochs-shift must be >= 1"):
        evaluate(EvalConfig(ModelSource("resnet18_lpf2"), data, shift=ShiftOptions(epochs=0)))
    with pytest.raises(ConfigError, match="unknown protocol"):
        evaluate(EvalConfig(ModelSource("resnet18_lpf2"), data, protocols=("accuracy", "nope")))


@pytest.mark.parametrize("extra", range(8))
@pytest.mark.parametrize("view", range(32, 42))
def test_the_shared_decode_holds_torchvisions_center_crop_for_every_margin(extra, view):
    # CenterCrop(32) of CenterCrop(view) is a pixel off CenterCrop(32) for some sides and margins
    # (torchvision rounds half offsets to even): the view the loop decodes is placed so that it never is.
    # The shorter side is the view's (as after Resize(view)), the longer one view + extra, both ways round.
    from antialiased.data.transforms import CenteredView, center_offset

    x = torch.arange(3 * (view + extra) * view).view(3, view + extra, view)
    x = x if extra % 2 else x.transpose(1, 2)
    o = center_offset(view, 32)
    cut = CenteredView(view, 32)(x)
    assert cut.shape[-2:] == (view, view)
    assert torch.equal(cut[:, o:o + 32, o:o + 32], T.CenterCrop(32)(x))
    if (view - 32) % 4 == 0:  # the paper's 256 - 224: the same view as CenterCrop(view)
        assert torch.equal(cut, T.CenterCrop(view)(x))


@pytest.mark.parametrize("max_shift", [6, 7])
def test_accuracy_with_shift_protocols_scores_torchvisions_center_crop(val_root, tmp_path, max_shift):
    # margins 6 and 7 (not multiples of 4) on the sample photos (not square): -e with -es and -ed cuts,
    # pixel for pixel, Resize(crop + max_shift) + CenterCrop(crop), the crop -e alone and training validate on
    weights = tmp_path / "w.pth"
    torch.manual_seed(0)
    torch.save({"state_dict": antialiased.create_model("resnet18_lpf2", num_classes=N).state_dict()}, weights)
    data = DataSettings(val_root, batch_size=6, workers=0, crop_size=32, max_shift=max_shift)
    base = dict(model=ModelSource("resnet18_lpf2", weights=weights), data=data, save_images=True,
                run=RunSettings(seed=3, progress=False), shift=ShiftOptions(epochs=1))
    alone = evaluate(EvalConfig(**base, protocols=("accuracy",), out_dir=tmp_path / "a"))
    mixed = evaluate(EvalConfig(**base, protocols=("accuracy", "shift_consistency", "diagonal"),
                                out_dir=tmp_path / "b"))
    assert mixed["accuracy"].record["settings"]["decode_size"] == 32 + max_shift
    assert alone["accuracy"].result["acc1"] == mixed["accuracy"].result["acc1"]
    expected = ImageFolderDataset(val_root / "val", T.Compose([T.Resize(32 + max_shift), T.CenterCrop(32),
                                                               T.PILToTensor()]))
    saved = sorted((tmp_path / "b" / "images" / "accuracy").glob("*.png"))
    assert len(saved) == N
    for i, png in enumerate(saved):
        assert torch.equal(T.PILToTensor()(datasets.folder.pil_loader(str(png))), expected[i][0]), png.name
