"""Circular-padding conversion: every converted layer keeps the size and commutes with circular shifts."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from antialiased.models.antialias._circular import CircularPool2d, make_circular, same_pads

SHIFTS = [(0, 1), (1, 0), (3, 5), (7, 2), (5, 7)]


def _commutes(layer: nn.Module, x: torch.Tensor, stride: int = 1) -> bool:
    y = layer(x)
    return all(
        torch.allclose(layer(torch.roll(x, (dh, dw), (2, 3))), torch.roll(y, (dh // stride, dw // stride), (2, 3)),
                       atol=1e-5)
        for dh, dw in SHIFTS if dh % stride == 0 and dw % stride == 0
    )


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3, padding=1), dict(kernel_size=7, padding=3), dict(kernel_size=2, padding=0),
    dict(kernel_size=3, padding=2, dilation=2), dict(kernel_size=(1, 7), padding=(0, 3)),
    dict(kernel_size=3, padding="same"), dict(kernel_size=3, padding="valid"), dict(kernel_size=3, padding=0),
    dict(kernel_size=4, padding=1, padding_mode="reflect"),
])
def test_convs_pad_circularly_and_keep_the_size(kwargs):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, **kwargs)
    x = torch.randn(2, 3, 8, 8)
    pads = same_pads(conv.kernel_size, conv.padding, conv.dilation)
    expected = F.conv2d(F.pad(x, pads, mode="circular"), conv.weight, conv.bias, dilation=conv.dilation)
    keys = list(conv.state_dict())
    changed, skipped = make_circular(nn.Sequential(conv))
    assert len(changed) == 1 and not skipped
    torch.testing.assert_close(conv(x), expected)
    assert conv(x).shape[-2:] == (8, 8) and list(conv.state_dict()) == keys
    assert _commutes(conv, x)


def test_pad_free_convs_are_left_alone():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1, stride=2))
    assert make_circular(model) == ([], [])
    assert model[0].padding_mode == "zeros"


@pytest.mark.parametrize("pool", [
    nn.MaxPool2d(3, 1, 1), nn.MaxPool2d(2, 1), nn.MaxPool2d(3, 1, 2, dilation=2),
    nn.AvgPool2d(3, 1, 1), nn.AvgPool2d(3, 1, 1, count_include_pad=False), nn.AvgPool2d(2, 1),
    nn.AvgPool2d(3, 1, 1, divisor_override=2),
], ids=repr)
def test_stride_one_pools_pad_circularly(pool):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 8, 8)
    model = nn.Sequential(pool)
    changed, _ = make_circular(model)
    assert len(changed) == 1 and isinstance(model[0], CircularPool2d)
    k, p = pool.kernel_size, pool.padding
    d = getattr(pool, "dilation", 1)
    padded = F.pad(x, [p, d * (k - 1) - p] * 2, mode="circular")
    if isinstance(pool, nn.MaxPool2d):
        expected = F.max_pool2d(padded, k, 1, 0, d)
    else:  # every window is full: the sum over k*k values, divided by k*k (or the override)
        expected = F.avg_pool2d(padded, k, 1, 0, divisor_override=pool.divisor_override)
    torch.testing.assert_close(model(x), expected)
    assert model(x).shape == x.shape and _commutes(model, x)


@pytest.mark.parametrize("pool", [nn.MaxPool2d(3, 2, 1, ceil_mode=True), nn.MaxPool2d(2, 2), nn.AvgPool2d(2, 2)], ids=repr)
def test_strided_pools_give_ceil_size_and_commute_with_stride_multiples(pool):
    torch.manual_seed(2)
    x = torch.randn(1, 2, 8, 10)
    model = nn.Sequential(pool)
    make_circular(model)
    assert model(x).shape[-2:] == (4, 5)
    assert _commutes(model, x, stride=2)


def test_padding_modules_become_circular():
    model = nn.Sequential(nn.ZeroPad2d((1, 0, 2, 1)), nn.ReflectionPad2d(1), nn.ReplicationPad2d(2))
    make_circular(model)
    x = torch.randn(1, 1, 5, 5)
    assert all(isinstance(m, nn.CircularPad2d) for m in model)
    torch.testing.assert_close(model[0](x), F.pad(x, (1, 0, 2, 1), mode="circular"))


class _FunctionalPools(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(self.conv(x), kernel_size=3, stride=1, padding=1)
        return F.max_pool2d(x, 3, 1, 1).mean(dim=(2, 3))


def test_functional_pools_in_a_graph_are_converted():
    torch.manual_seed(3)
    traced = torch.fx.symbolic_trace(_FunctionalPools())
    changed, _ = make_circular(traced)
    assert sorted(after for _, _, after in changed)[-2:] == ["circular_avg_pool2d", "circular_max_pool2d"]
    x = torch.randn(2, 3, 8, 8)
    out = traced(x)
    for shift in SHIFTS:
        torch.testing.assert_close(traced(torch.roll(x, shift, (2, 3))), out, rtol=1e-5, atol=1e-5)


class _SamePadConv(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pads on its own, like timm's Conv2dSame
        return super().forward(F.pad(x, (1, 1, 1, 1)))


def test_what_cannot_be_converted_is_listed_with_the_reason():
    model = nn.Sequential(_SamePadConv(3, 3, 3), nn.ConvTranspose2d(3, 3, 2, 2), nn.AdaptiveAvgPool2d(7),
                          nn.AdaptiveAvgPool2d(1))
    changed, skipped = make_circular(model)
    assert not changed
    reasons = dict(skipped)
    assert set(reasons) == {"0", "1", "2"}
    assert "overrides Conv2d" in reasons["0"] and "transposed" in reasons["1"] and "keeps positions" in reasons["2"]


def test_a_stride_one_network_becomes_exactly_invariant_and_keeps_its_keys():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(4)
    model = torchvision.models.resnet18(num_classes=5)
    for module in model.modules():  # no subsampling left: the network is then shift-equivariant
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            module.stride = 1 if isinstance(module, nn.MaxPool2d) else (1, 1)
    model.eval()
    keys = list(model.state_dict())
    x = torch.randn(1, 3, 12, 12)
    with torch.no_grad():
        baseline = model(x)
        moved = model(torch.roll(x, (5, 7), (2, 3)))
        assert not torch.allclose(moved, baseline, atol=1e-4)  # zero padding sees the border
        make_circular(model)
        out = model(x)
        for shift in SHIFTS:
            torch.testing.assert_close(model(torch.roll(x, shift, (2, 3))), out, rtol=1e-4, atol=1e-5)
    assert list(model.state_dict()) == keys
    model.load_state_dict(torchvision.models.resnet18(num_classes=5).state_dict(), strict=True)
