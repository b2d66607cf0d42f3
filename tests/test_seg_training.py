"""Training segmentation models (issue 18 item 5) on the generated VOC-layout shapes (demo/seg_shapes.py).

The real command line trains LR-ASPP and an smp U-Net at 64 px for a few iterations: random scale,
flip and crop of image and mask together, cross-entropy with 255 ignored (+0.5 x the auxiliary
head's), the poly schedule per optimizer step, validation by the segmentation ``-e`` (checked
against a plain loop), checkpoints and exact resume (SIGKILLed mid-epoch, bit for bit), and the bad
input: a classifier with ``--task segmentation``, a segmentation model on class folders.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from antialiased.demo.seg_shapes import write_seg_shapes
from antialiased.errors import ConfigError, DataError, ModelError
from antialiased.models import create_model
from antialiased.training.schedules import StepwiseLR
from antialiased.training.seg_data import JointTransform
from antialiased.training.segmentation import SegmentationLoss
from test_training_fixtures import load, run_entry, train_cli, train_fails
from test_training_kill import _log_parses, _run, _same_weights

pytestmark = pytest.mark.usefixtures("one_thread")

ARCH = "lraspp_mobilenet_v3_large_lpf2"
TRAIN, VAL, SIZE = 12, 4, 64  # 3 batches of 4 per epoch


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return write_seg_shapes(tmp_path_factory.mktemp("shapes"), train=TRAIN, val=VAL, size=SIZE, seed=0)


def _args(data: Path, out: Path, *extra: str, arch: str = ARCH) -> list[str]:
    return ["--data", str(data), "-a", arch, "--num-classes", "6", "--crop-size", "64", "--seg-size", str(SIZE),
            "-j", "0", "--out-dir", str(out), "--seed", "0", *extra]


def _plain_miou(model: torch.nn.Module, root: Path, classes: int) -> float:
    """mIoU over the val images by a plain loop: PIL decode, shorter side to SIZE, ImageNet normalization."""
    confusion = np.zeros((classes, classes), dtype=np.int64)
    model.eval()
    for name in (root / "ImageSets/Segmentation/val.txt").read_text().split():
        image = TF.resize(Image.open(root / "JPEGImages" / f"{name}.png").convert("RGB"), SIZE,
                          interpolation=InterpolationMode.BILINEAR)
        mask = np.array(Image.open(root / "SegmentationClass" / f"{name}.png"), dtype=np.int64)
        x = TF.normalize(TF.to_tensor(image), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])[None]
        with torch.no_grad():
            out = model(x)
        pred = (out["out"] if isinstance(out, dict) else out)[0].argmax(0).numpy()
        keep = mask != 255
        confusion += np.bincount(mask[keep] * classes + pred[keep], minlength=classes ** 2).reshape(classes, classes)
    inter = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - inter
    return float(100 * np.mean(inter[union > 0] / union[union > 0]))


# --- the pieces -------------------------------------------------------------------------------------------


def test_the_joint_transform_moves_image_and_mask_together():
    labels = np.zeros((80, 120), np.uint8)
    labels[:, 60:] = 2
    labels[50:, :] = 4  # three regions whose brightness is 50 x their label
    image = Image.fromarray(np.repeat((labels * 50)[..., None], 3, axis=2))
    transform = JointTransform(base_size=80, crop_size=96, mean=(0, 0, 0), std=(1, 1, 1))
    flips = set()
    for seed in range(30):
        torch.manual_seed(seed)
        pixels, mask = transform(image, Image.fromarray(labels))
        assert pixels.shape == (3, 96, 96) and mask.shape == (96, 96)
        assert set(mask.unique().tolist()) <= {0, 2, 4, 255}  # nearest: no new labels; 255 only from padding
        brightness = (pixels[0] * 255).round()
        padded = mask == 255
        assert bool((brightness[padded] == 0).all())  # the image is padded with 0 where the mask has 255
        labelled = ~padded
        agree = (brightness[labelled] - 50 * mask[labelled]).abs() <= 2
        assert agree.float().mean() > 0.9  # the same crop and flip (bilinear differs only along edges)
        columns = torch.arange(96).expand(96, 96)
        if bool((mask == 0).any()) and bool((mask == 2).any()):  # label 2 right of label 0, unless flipped
            flips.add(bool(columns[mask == 2].float().mean() < columns[mask == 0].float().mean()))
    assert flips == {True, False}  # both orientations drawn
    torch.manual_seed(0)
    a = transform(image, Image.fromarray(labels))
    torch.manual_seed(0)
    assert all(torch.equal(x, y) for x, y in zip(a, transform(image, Image.fromarray(labels))))


def test_the_loss_is_the_references_cross_entropy_with_the_auxiliary_head():
    torch.manual_seed(0)
    out, aux = torch.randn(2, 5, 8, 8), torch.randn(2, 5, 8, 8)
    target = torch.randint(0, 5, (2, 8, 8))
    target[0, :3] = 255
    expected = F.cross_entropy(out, target, ignore_index=255) + 0.5 * F.cross_entropy(aux, target, ignore_index=255)
    torch.testing.assert_close(SegmentationLoss()({"out": out, "aux": aux}, target), expected)
    torch.testing.assert_close(SegmentationLoss()(out, target), F.cross_entropy(out, target, ignore_index=255))
    assert float(SegmentationLoss()(out, torch.full_like(target, 255))) == 0.0  # no labelled pixel: no NaN


def test_the_poly_schedule_moves_with_every_optimizer_step():
    from antialiased.training.config import OptimConfig
    from antialiased.training.schedules import build_schedule

    net = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.02)
    schedule = build_schedule(opt, OptimConfig(lr=0.02, epochs=3, schedule="poly", batch_accum=2), 5)  # 3 steps/epoch
    assert isinstance(schedule, StepwiseLR)
    seen = []
    for _ in range(9):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
    schedule.step()  # an epoch's end changes nothing
    assert seen == pytest.approx([0.02 * (1 - k / 9) ** 0.9 for k in range(9)])
    assert opt.param_groups[0]["lr"] == 0.0 and "_hook" not in schedule.state_dict()


# --- the command line -----------------------------------------------------------------------------------


def test_two_epochs_log_miou_keep_the_best_and_match_a_plain_loop(shapes, tmp_path):
    out = tmp_path / "run"
    assert train_cli(*_args(shapes, out, "-ep", "2")) == 0
    log = _log_parses(out)
    assert [r["epoch"] for r in log] == [1, 2]
    for record in log:
        assert {"train_loss", "train_pixel_acc", "val_miou", "val_pixel_acc", "best_miou"} <= set(record)
        assert "val_acc1" not in record and record["val_images"] == VAL
    # the defaults of torchvision's reference: lr 0.02, poly per optimizer step over 2 epochs x 3 steps
    assert [r["lr"] for r in log] == pytest.approx([0.02, 0.02 * (1 - 3 / 6) ** 0.9])
    best = load(out / "model_best.pth.tar")
    assert best["best_miou"] == max(r["val_miou"] for r in log) and "best_acc1" not in best
    assert best["epoch"] == 1 + int(np.argmax([r["val_miou"] for r in log]))
    config = load(out / "checkpoint.pth.tar")["config"]
    assert (config["optim"]["lr"], config["optim"]["schedule"], config["data"]["batch_size"]) == (0.02, "poly", 4)
    assert best["model_spec"]["task"] == "segmentation" and best["num_classes"] == 6
    model = create_model(ARCH, weights=out / "model_best.pth.tar")
    assert _plain_miou(model, shapes, 6) == pytest.approx(log[best["epoch"] - 1]["val_miou"], abs=1e-9)


def test_an_smp_unet_trains_with_flags_given_and_an_auxiliary_head_learns(shapes, tmp_path):
    pytest.importorskip("segmentation_models_pytorch", reason="smp/ names need the 'segmentation' extra")
    out = tmp_path / "smp"
    assert train_cli(*_args(shapes, out, "-ep", "1", "-mti", "1", "--lr", "0.1", "--lr-schedule", "step",
                            arch="smp/Unet-resnet18_lpf2"), "--aa-method", "aps") == 0
    record = _log_parses(out)[0]
    assert record["lr"] == 0.1 and load(out / "checkpoint.pth.tar")["model_spec"]["method"] == "aps"
    # a weights file with torchvision's auxiliary head: the head is built, and only the auxiliary loss reaches it
    torch.manual_seed(0)
    source = torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                                           num_classes=6, aux_loss=True)
    torch.save(source.state_dict(), tmp_path / "aux.pth")
    out = tmp_path / "aux"
    assert train_cli(*_args(shapes, out, "-ep", "1", "-mti", "1", "--wd", "0", "--weights", str(tmp_path / "aux.pth"),
                            arch="deeplabv3_mobilenet_v3_large")) == 0
    trained = load(out / "checkpoint.pth.tar")["state_dict"]
    moved = [k for k in trained if k.startswith("aux_classifier.") and k.endswith("weight")
             and not torch.equal(trained[k], source.state_dict()[k])]
    assert moved  # without weight decay, only the 0.5 x auxiliary loss moves the auxiliary head


def test_a_run_killed_mid_epoch_resumes_to_the_same_weights(shapes, tmp_path):
    argv = ("-ep", "2", "--checkpoint-every-steps", "1", "--resume", "auto")
    straight = tmp_path / "straight"
    assert _run(_args(shapes, straight, *argv)) == "done"
    killed = tmp_path / "killed"
    # backward pass 5 = batch 2 of epoch 2: a recovery checkpoint after batch 1 of epoch 2 exists
    assert _run(_args(shapes, killed, *argv), "backward", 5) == "killed"
    recovery = load(killed / "checkpoint_recovery.pth.tar")
    assert recovery["mid_epoch"]["batches_done"] == 1 and recovery["lr_scheduler"]["last_epoch"] == 4
    assert _run(_args(shapes, killed, *argv)) == "done"
    assert _same_weights(straight / "checkpoint.pth.tar", killed / "checkpoint.pth.tar") == []
    assert [r["val_miou"] for r in _log_parses(killed)] == [r["val_miou"] for r in _log_parses(straight)]
    a, b = load(straight / "checkpoint.pth.tar"), load(killed / "checkpoint.pth.tar")
    assert a["lr_scheduler"]["last_epoch"] == b["lr_scheduler"]["last_epoch"] == 6
    assert a["optimizer"]["param_groups"][0]["lr"] == b["optimizer"]["param_groups"][0]["lr"] == 0.0


def test_ddp_two_processes_train_and_validate_on_shards(shapes, tmp_path):
    """torchrun, 2 CPU processes (gloo): each rank trains on its share and validates its shard of the val
    images; the summed confusion matrix gives the mIoU of a plain loop over all of them."""
    out = tmp_path / "ddp"
    done = run_entry([*_args(shapes, out, "-ep", "1", "-b", "2", "--no-progress")],
                     launcher=["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"])
    assert done.returncode == 0, done.stderr[-5000:]
    record = _log_parses(out)[0]
    assert (record["train_images"], record["val_images"]) == (TRAIN, VAL)
    model = create_model(ARCH, weights=out / "checkpoint.pth.tar")
    assert _plain_miou(model, shapes, 6) == pytest.approx(record["val_miou"], abs=1e-9)


# --- bad input: one line, before any image is read ------------------------------------------------------


def _no_image_read(monkeypatch) -> list[str]:
    opened: list[str] = []
    real = Image.open

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return real(path, *args, **kwargs)
    monkeypatch.setattr(Image, "open", spy)
    return opened


def test_a_classifier_given_task_segmentation_is_refused_first(shapes, tmp_path, monkeypatch, capsys):
    opened = _no_image_read(monkeypatch)
    out = tmp_path / "out"
    assert train_cli("--data", str(shapes), "-a", "resnet18", "--task", "segmentation", "--out-dir", str(out)) == 2
    err = capsys.readouterr().err
    assert "resnet18 is a classification model but --task segmentation was given" in err
    assert len(err.strip().splitlines()) == 2 and not out.exists() and not opened  # the line + the traceback hint
    train_fails(ModelError, "fcn_resnet50 is a segmentation model but --task classification",
                "--data", str(shapes), "-a", "fcn_resnet50", "--task", "classification", "--out-dir", str(out))


def test_a_segmentation_model_with_class_folders_is_refused_before_reading(tmp_path, monkeypatch):
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (tmp_path / "folder" / split / cls).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / "folder" / split / cls / "a.png")
    opened = _no_image_read(monkeypatch)
    train_fails(DataError, r"holds class folders \(cat, dog: an image-classification folder\).*train\.txt",
                *_args(tmp_path / "folder", tmp_path / "out"))
    assert not opened


def test_other_bad_segmentation_setups_are_clear(shapes, tmp_path):
    pytest.importorskip("segmentation_models_pytorch", reason="smp/ names need the 'segmentation' extra")
    args = _args(shapes, tmp_path / "one", arch="smp/Unet-resnet18")
    args.remove("--num-classes"), args.remove("6")
    train_fails(ConfigError, r"predicts 1 class per pixel.*--num-classes N", *args)
    pairs = tmp_path / "pairs"  # one images/ + masks/ pairing: no training split of its own
    for sub in ("images", "masks"):
        (pairs / sub).mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(pairs / "images" / "a.png")
    Image.new("L", (64, 64)).save(pairs / "masks" / "a.png")
    train_fails(DataError, "holds one images/ \\+ masks/ pairing: training needs its own pairs",
                *_args(pairs, tmp_path / "out"))


def test_images_and_masks_folders_train_and_bad_masks_are_skipped_and_listed(tmp_path):
    root = tmp_path / "pairs"
    for split, count in (("train", 8), ("val", 2)):
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (64, 64), (i * 20, 0, 0)).save(root / split / "images" / f"{i}.png")
            Image.fromarray(np.full((64, 64), i % 3, np.uint8)).save(root / split / "masks" / f"{i}.png")
    Image.fromarray(np.full((64, 64), 9, np.uint8)).save(root / "train" / "masks" / "7.png")  # 9: not a class
    Image.new("RGB", (64, 64)).save(root / "train" / "images" / "orphan.png")  # no mask
    out = tmp_path / "out"
    assert train_cli(*_args(root, out, "-ep", "1")) == 0
    record = _log_parses(out)[0]
    assert record["train_images"] == 7 and record["train_unreadable"] == 1 and record["val_images"] == 2
    skipped = {e["file"]: e["reason"] for e in json.loads((out / "skipped_images.json").read_text())["train"]}
    mask = str(root / "train" / "masks" / "7.png")
    assert skipped[str(root / "train" / "images" / "7.png")].startswith(f"{mask}: label 9 is not a class")
    assert any(f.endswith("orphan.png") and "an image without a mask" in r for f, r in skipped.items())
