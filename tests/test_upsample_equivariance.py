"""Exact circular-shift equivariance of segmentation networks converted with method="aps", circular=True
(issue 18 item 1): f(roll(x, s)) == roll(f(x), s), to float tolerance, for integer shifts s.

APS subsamplings pick their phase from the data; each upsampling zero-inserts on the phase of the
subsamplings it undoes (found on the traced data path, composed over several levels); every border
wraps around. Checked on a U-Net of the tests' own (every kind of up site; every shift of a 16x16
input), torchvision's FCN and DeepLabV3 (ResNet-50) and LR-ASPP (MobileNet-v3-large), and a
segmentation_models_pytorch U-Net, random weights, eval mode, at 64x64 (sides divisible by the total
stride). The same networks unconverted are not equivariant. The keys do not change (the baseline's
state dict loads strictly) and the summary names every upsampling the baseline really does (found
by an independent recorder) as changed.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from antialiased.models.antialias import antialias
from tests._upsample_nets import TinyUNet, calibrated
from tests.test_antialias_coverage import real_subsampling

pytestmark = pytest.mark.usefixtures("one_thread")

RTOL = 1e-4  # of the largest output; float32 sums in another order, the polyphase layers add no error
SHIFTS = [(1, 0), (0, 1), (1, 1), (3, 7), (17, 29), (31, 31), (63, 45), (5, 62)]  # odd, large, both axes
UP_KINDS = {"transposed_conv", "interpolate", "pixel_shuffle"}


def _out(y):
    return y["out"] if isinstance(y, dict) else y


def _rolled_outputs(model: torch.nn.Module, x: torch.Tensor, shifts: list[tuple[int, int]], chunk: int = 8):
    """(f(x), [f(roll(x, s)) for s]) in batches."""
    batch = torch.cat([x] + [torch.roll(x, s, dims=(2, 3)) for s in shifts])
    with torch.no_grad():
        out = torch.cat([_out(model(part)) for part in batch.split(chunk)])
    return out[:1], out[1:]


def _equivariance_error(model, x, shifts, chunk: int = 8) -> float:
    """Largest |f(roll(x, s)) - roll(f(x), s)| over the shifts, relative to the largest output."""
    y, shifted = _rolled_outputs(model, x, shifts, chunk)
    want = torch.cat([torch.roll(y, s, dims=(2, 3)) for s in shifts])
    return ((shifted - want).abs().max() / y.abs().max()).item()


def _convert(base: torch.nn.Module, method: str = "aps", size: int = 64, **options) -> torch.nn.Module:
    model = antialias(copy.deepcopy(base), method=method, circular=True, input_size=(3, size, size), **options)
    assert list(model.state_dict()) == list(base.state_dict())
    model.load_state_dict(base.state_dict(), strict=True)  # the baseline's weights load as they are
    return model.eval()


def _check_summary_names_every_upsampling(model, base, size: int) -> None:
    found, _ = real_subsampling(base, torch.rand(1, 3, size, size))
    real_ups = {path for path, kind in found if kind == "upsample"}
    changed = [c for c in model.antialias_summary.changed if c.kind in UP_KINDS]
    owners = {c.path.rpartition(".")[0] if c.before.startswith("F.") else c.path for c in changed}
    assert real_ups and real_ups == owners, (real_ups, owners)
    paired = {c.path for c in model.antialias_summary.changed if c.kind == "phase" and "zero-inserts" in c.after}
    assert paired == {c.path for c in changed}  # each one takes the phase of what it undoes
    assert not [s for s in model.antialias_summary.left_alone if s.kind == "phase"]


@pytest.fixture(scope="module")
def unet():
    return calibrated(TinyUNet(), size=32)


@pytest.mark.parametrize("method", ["aps", "aps-lpf"])
def test_own_unet_is_equivariant_to_every_shift(unet, method):
    model = _convert(unet, method, size=16, filter_size=3)
    torch.manual_seed(1)
    x = torch.randn(1, 3, 16, 16)
    every = [(dh, dw) for dh in range(16) for dw in range(16)][1:]
    assert _equivariance_error(model, x, every, chunk=64) < RTOL
    _check_summary_names_every_upsampling(model, unet, 16)


def test_own_unet_at_a_larger_size_and_the_baseline_is_not_equivariant(unet):
    torch.manual_seed(2)
    x = torch.randn(1, 3, 64, 64)
    assert _equivariance_error(_convert(unet), x, SHIFTS) < RTOL
    assert _equivariance_error(unet, x, SHIFTS[:2]) > 100 * RTOL
    # Circular padding alone is not enough: the fixed subsampling and upsampling grids see odd shifts.
    blurred = antialias(copy.deepcopy(unet), method="aps", circular=True, upsample=False, input_size=(3, 64, 64))
    assert _equivariance_error(blurred.eval(), x, SHIFTS[:2]) > 100 * RTOL


def _torchvision(name: str):
    builders = {
        "fcn_resnet50": torchvision.models.segmentation.fcn_resnet50,
        "deeplabv3_resnet50": torchvision.models.segmentation.deeplabv3_resnet50,
        "lraspp_mobilenet_v3_large": torchvision.models.segmentation.lraspp_mobilenet_v3_large,
    }
    return builders[name](weights=None, weights_backbone=None, num_classes=4)


def _converted_equivariant(net: nn.Module, seed: int) -> nn.Module:
    """``net`` (calibrated) converted: equivariant on a 64-pixel input where the baseline is not; the summary
    names every up site."""
    base = calibrated(net, size=64)
    model = _convert(base)
    torch.manual_seed(seed)
    x = torch.randn(1, 3, 64, 64)
    assert _equivariance_error(model, x, SHIFTS, chunk=3) < RTOL
    assert _equivariance_error(base, x, SHIFTS[:1]) > 100 * RTOL
    _check_summary_names_every_upsampling(model, base, 64)
    return model


@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50", "lraspp_mobilenet_v3_large"])
def test_torchvision_segmentation_models_are_equivariant(name):
    model = _converted_equivariant(_torchvision(name), seed=3)
    if name.startswith("deeplabv3"):  # the image-pooling branch broadcasts a 1x1 map: listed, not an up site
        pooling = [s for s in model.antialias_summary.left_alone if s.path == "classifier.0.convs.4.interpolate"]
        assert len(pooling) == 1 and "not an up site" in pooling[0].reason
        assert "composed phase" in next(c.after for c in model.antialias_summary.changed
                                        if c.kind == "phase" and c.path == "interpolate")  # 8x: three levels


def test_segmentation_models_pytorch_unet_is_equivariant():
    smp = pytest.importorskip("segmentation_models_pytorch", reason="the 'segmentation' extra (pinned in the lock file)")
    model = _converted_equivariant(smp.Unet("resnet18", encoder_weights=None, classes=4), seed=4)
    blocks = sorted(c.path for c in model.antialias_summary.changed if c.kind == "interpolate")
    assert blocks == [f"decoder.blocks.{i}.interpolate" for i in range(5)]
