"""Up sites in antialias(): every kind is found and named in the summary, each method's upsampling rule,
upsample=False, the pairing with the subsamplings on the data path, and the bad-input rows (non-integer
factors, align_corners=True, size= targets, methods without an upsampling rule, 1x1 broadcasts)."""
from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from antialiased.layers import BlurPool
from antialiased.layers.polyphase import PolyphaseConvTranspose2d, PolyphaseUpsampling
from antialiased.models.antialias import METHODS, SITE_KINDS, AntialiasWarning, Method, antialias
from antialiased.models.antialias._types import SITE_RULES
from tests._upsample_nets import TinyUNet, calibrated

pytestmark = pytest.mark.usefixtures("one_thread")

UP_KINDS = {"transposed_conv", "interpolate", "pixel_shuffle"}


class EveryUp(nn.Module):
    """One of each up site, as layers and as functional calls (some sizes only known at run time)."""

    def __init__(self) -> None:
        super().__init__()
        self.transposed = nn.ConvTranspose2d(4, 4, 2, stride=2)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.upsample_to = nn.Upsample(size=(16, 16), mode="bilinear")
        self.shuffle = nn.PixelShuffle(2)
        self.reduce = nn.Conv2d(4, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 4, 8, 8)
        a = self.transposed(x) + self.upsample(x) + self.upsample_to(x)
        b = F.interpolate(x, size=a.shape[-2:], mode="bilinear", align_corners=False)
        c = F.interpolate(x, scale_factor=2, mode="bicubic") + F.pixel_shuffle(torch.cat([x] * 4, 1), 2)
        return a + b + c + self.shuffle(torch.cat([x] * 4, 1)).mean(1, keepdim=True) * self.reduce(x).sum()


def _convert(model: nn.Module, **options) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AntialiasWarning)
        return antialias(copy.deepcopy(model), **{"input_size": (4, 8, 8), **options})


def _by_path(entries) -> dict:
    return {e.path: e for e in entries}


def test_site_rules_are_one_table_with_directions():
    assert {k for k, r in SITE_RULES.items() if r.direction == "up"} == UP_KINDS
    assert {k for k, r in SITE_RULES.items() if r.direction == "down"} == {"conv", "max_pool", "avg_pool"}
    assert set(SITE_KINDS) == set(SITE_RULES)  # a live view of the rules
    assert all(set(METHODS[m].up_rewriters) == UP_KINDS for m in ("blurpool", "blur-first", "aps", "aps-lpf"))


def test_every_up_site_is_changed_by_blurpool_with_a_stride_1_blur_after():
    base = EveryUp().eval()
    model = _convert(base, filter_size=3)
    changed = _by_path(model.antialias_summary.changed)
    want = {"transposed", "upsample", "upsample_to", "shuffle", "interpolate", "interpolate_1", "pixel_shuffle"}
    assert want <= set(changed) and {changed[p].kind for p in want} == UP_KINDS
    blurs = [m for m in model.modules() if isinstance(m, BlurPool)]
    assert len(blurs) == len(want) and all(b.stride == 1 and b.filt_size == 3 for b in blurs)
    assert changed["interpolate"].before.startswith("F.interpolate(") and "size=<run time>" in changed["interpolate"].before
    model.load_state_dict(base.state_dict(), strict=True)
    assert list(model.state_dict()) == list(base.state_dict())
    x = torch.randn(2, 4, 8, 8)
    assert model(x).shape == base(x).shape


def test_with_a_one_tap_blur_the_conversion_computes_the_same_function():
    """filter_size=1 makes each inserted blur the identity: what remains is the call-to-layer rewrite."""
    base = EveryUp().eval()
    model = _convert(base, filter_size=1)
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(model(x), base(x))


def test_upsample_false_lists_every_up_site_with_the_reason():
    model = _convert(EveryUp(), upsample=False)
    left = _by_path(model.antialias_summary.left_alone)
    ups = [p for p, e in left.items() if e.kind in UP_KINDS]
    assert len(ups) == 7 and all("upsample=False" in left[p].reason for p in ups)
    assert not [c for c in model.antialias_summary.changed if c.kind in UP_KINDS]
    assert not any(isinstance(m, BlurPool) for m in model.modules())


def test_aps_makes_every_2d_up_site_polyphase_and_3d_ones_are_left_with_the_reason():
    model = _convert(EveryUp(), method="aps", circular=True)
    changed = _by_path([c for c in model.antialias_summary.changed if c.kind in UP_KINDS])
    assert len(changed) == 7
    assert isinstance(model.transposed, PolyphaseConvTranspose2d) and model.transposed.circular
    assert isinstance(model.upsample_to, PolyphaseUpsampling) and model.upsample_to.size == (16, 16)
    net3 = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.ConvTranspose3d(2, 2, 2, stride=2))
    left = _by_path(_convert_3d(net3).antialias_summary.left_alone)
    assert "2-D" in left["1"].reason and left["1"].kind == "transposed_conv"


def _convert_3d(net: nn.Module) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AntialiasWarning)
        return antialias(net, method="aps", input_size=(1, 4, 8, 8))


class Unusual(nn.Module):
    """The issue's bad-input rows: a non-integer factor, align_corners=True, a size= that is no multiple."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 2, 8, 8)
        a = F.interpolate(x, scale_factor=1.5, mode="bilinear")
        b = F.interpolate(x, size=(12, 12), mode="nearest")
        c = F.interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=True)
        d = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=True)
        return a + b + c + d[..., :12, :12]


def test_bad_input_rows_aps_leaves_what_has_no_polyphase_form_with_the_reason():
    model = _convert(Unusual(), method="aps", input_size=(2, 8, 8))
    left = _by_path(model.antialias_summary.left_alone)
    assert "non-integer factor (1.5, 1.5)" in left["interpolate"].reason
    assert "non-integer factor (1.5, 1.5)" in left["interpolate_1"].reason  # size= 12 from 8: 1.5
    assert "align_corners=True" in left["interpolate_3"].reason
    assert "non-integer" in left["interpolate_2"].reason or "align_corners" in left["interpolate_2"].reason
    assert not [c for c in model.antialias_summary.changed if c.kind == "interpolate"]
    x = torch.randn(1, 2, 8, 8)
    torch.testing.assert_close(model(x), Unusual()(x))  # left alone: the same calls


def test_bad_input_rows_blurpool_blurs_after_all_of_them():
    model = _convert(Unusual(), filter_size=3, input_size=(2, 8, 8))
    changed = _by_path(model.antialias_summary.changed)
    assert {"interpolate", "interpolate_1", "interpolate_2", "interpolate_3"} <= set(changed)
    assert all("BlurPool" in changed[p].after for p in changed)


class OtherModes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.area = nn.Upsample(scale_factor=2, mode="area")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 2, 8, 8)
        factor = x.shape[-1] // 4  # a scale_factor the forward computes
        return self.area(x) + F.interpolate(x, scale_factor=factor, mode="nearest")


def test_modes_without_a_polyphase_form_and_run_time_factors():
    left = _by_path(_convert(OtherModes(), method="aps", input_size=(2, 8, 8)).antialias_summary.left_alone)
    assert "mode 'area' has no polyphase form" in left["area"].reason and "bilinear" in left["area"].reason
    assert "scale_factor is computed at run time" in left["interpolate"].reason
    base = OtherModes()
    model = _convert(base, filter_size=3, input_size=(2, 8, 8))
    assert {c.path for c in model.antialias_summary.changed} == {"area", "interpolate"}
    x = torch.randn(1, 2, 8, 8)
    assert model(x).shape == base(x).shape


def test_size_targets_convert_where_the_ratio_is_whole():
    model = _convert(EveryUp(), method="aps", circular=True)
    by_path = _by_path(model.antialias_summary.changed)
    assert "PolyphaseUpsampling(stride=(2, 2), mode='bilinear'" in by_path["interpolate"].after
    x = torch.randn(2, 4, 8, 8)
    assert model(x).shape == EveryUp()(x).shape


def test_a_method_without_an_upsampling_rule_leaves_up_sites_with_that_reason(monkeypatch):
    blur = METHODS["blurpool"]
    monkeypatch.setitem(METHODS, "down-only", Method("down-only", "test: no upsampling rule", blur.rewriters))
    model = _convert(EveryUp(), method="down-only")
    left = [e for e in model.antialias_summary.left_alone if e.kind in UP_KINDS]
    assert len(left) == 7 and all("has no upsampling rule" in e.reason for e in left)


class ImagePooling(nn.Module):
    """DeepLabV3's image-pooling branch: global pooling, then interpolation back to the map (a broadcast)."""

    def __init__(self) -> None:
        super().__init__()
        self.pool, self.conv = nn.AdaptiveAvgPool2d(1), nn.Conv2d(2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.interpolate(self.conv(self.pool(x)), size=x.shape[-2:], mode="bilinear", align_corners=False)


def test_interpolating_a_1x1_map_is_not_an_up_site():
    for method in ("blurpool", "aps"):
        model = _convert(ImagePooling(), method=method, input_size=(2, 8, 8))
        entry = _by_path(model.antialias_summary.left_alone)["interpolate"]
        assert "1x1 map" in entry.reason and "not an up site" in entry.reason
        assert not [c for c in model.antialias_summary.changed if c.kind == "interpolate"]


class OptionalSkip(nn.Module):
    """segmentation_models_pytorch's decoder block: the last one is called with skip=None."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor, height: int, width: int, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = F.interpolate(x, size=(height, width), mode="nearest")
        if skip is not None:
            x = x + skip
        return self.conv(x)


class Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([OptionalSkip(), OptionalSkip(), OptionalSkip()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = self.blocks[0](x, 2 * h, 2 * w, skip=torch.zeros_like(x).repeat(1, 1, 2, 2))
        y = self.blocks[1](y, 4 * h, 4 * w, skip=None)
        return self.blocks[2](y, 8 * h, 8 * w)  # skip left out: its default, None


def test_a_forward_called_with_none_keeps_its_branch():
    base = Decoder().eval()
    model = _convert(base, filter_size=1, input_size=(2, 4, 4))
    assert {c.path for c in model.antialias_summary.changed} == {f"blocks.{i}.interpolate" for i in range(3)}
    x = torch.randn(1, 2, 4, 4)
    torch.testing.assert_close(model(x), base(x))


class EncoderDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(2, 2, 3, 2, 1)
        self.blocks = nn.ModuleList([OptionalSkip(), OptionalSkip()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = self.blocks[0](self.down(x), h, w, skip=x)  # back to the input's level, its skip connection
        return self.blocks[1](y, 2 * h, 2 * w)  # a last upsampling with no subsampling to undo


def test_aps_retraces_a_forward_fixed_to_none_and_fx_keeps_working():
    model = _convert(EncoderDecoder(), method="aps", circular=True, input_size=(2, 8, 8))
    paired = [c.path for c in model.antialias_summary.changed if c.kind == "phase" and "zero-inserts" in c.after]
    assert paired == ["blocks.0.interpolate"]  # the one that undoes the subsampling
    left = {s.path: s.reason for s in model.antialias_summary.left_alone if s.kind == "phase"}
    assert "no adaptive polyphase subsampling is on its input's path" in left["blocks.1.interpolate"]
    assert model(torch.randn(2, 2, 8, 8)).shape == (2, 2, 16, 16)
    torch.fx.symbolic_trace(nn.Sequential(nn.ReLU()))  # tracing still works afterwards (nothing left behind)


def test_each_upsampling_pairs_with_the_subsamplings_it_undoes():
    model = _convert(calibrated(TinyUNet()), method="aps", circular=True, input_size=(3, 32, 32))
    phases = {c.path: c.after for c in model.antialias_summary.changed if c.kind == "phase"}
    assert "the phase of pool3.1:" in phases["up3"]  # the transposed conv undoes the last level
    assert "the phase of down2.3:" in phases["interpolate"]  # F.interpolate(size=skip) the middle one
    assert "the phase of pool1.1:" in phases["up1"]
    assert "the phase of avg_pool2d.1:" in phases["shuffle"]  # the pixel shuffle undoes the functional pool
    assert "composed phase of pool1.1, down2.3, pool3.1 (finest first): undoes 8x8" in phases["interpolate_1"]
    ups = [c.path for c in model.antialias_summary.changed if c.kind in UP_KINDS]
    assert sorted(ups) == ["interpolate", "interpolate_1", "shuffle", "up1", "up3"]


class Mismatch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.down, self.up = nn.MaxPool2d(2), nn.Upsample(scale_factor=4)
        self.alone = nn.ConvTranspose2d(2, 2, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x)) + self.alone(x)[..., ::2, ::2].repeat(1, 1, 2, 2)


def test_upsamplings_without_a_match_are_listed_with_the_reason():
    model = _convert(Mismatch(), method="aps", input_size=(2, 8, 8))
    left = {e.path: e.reason for e in model.antialias_summary.left_alone if e.kind == "phase"}
    assert "upsamples by (4, 4) but" in left["up"] and "subsample by (2, 2)" in left["up"]
    assert "no adaptive polyphase subsampling is on its input's path" in left["alone"]


class OnlyAt48(nn.Module):
    """Runs only at 48x48 (the probe's default sizes fail); upsamples to a size its forward computes."""

    def __init__(self) -> None:
        super().__init__()
        self.down, self.pool = nn.Conv2d(3, 3, 3, 2, 1), nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, 3, 48, 48)  # fails at other sizes, yet traces
        return F.interpolate(self.pool(self.down(x)), size=x.shape[-2:], mode="bilinear")


def test_a_model_the_probe_cannot_run_converts_when_no_up_site_is_rewritten():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AntialiasWarning)
        model = antialias(OnlyAt48(), upsample=False, include_stem=True)
    assert [c.path for c in model.antialias_summary.changed] == ["down", "pool"]
    assert "upsample=False" in _by_path(model.antialias_summary.left_alone)["interpolate"].reason
    with pytest.raises(Exception, match="input_size"):  # rewriting it needs the factor: the probe's error says how
        antialias(OnlyAt48(), include_stem=True)
    assert antialias(OnlyAt48(), include_stem=True, input_size=(3, 48, 48))(torch.rand(1, 3, 48, 48)).shape[-1] == 48
