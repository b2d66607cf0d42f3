"""Haar wavelet pooling (WaveCNet) and TIPS (issue 19) against direct formulas and the authors' code.

Haar: the LL band written out per output sample (``(a + b + c + d) / 2`` with pywt's 'haar'
filter ``1/sqrt(2)`` per dimension), odd sides by the stated rules. TIPS: the released
``TIPS.forward`` (sourajitcs/tips) transcribed literally for stride 2 (its pad layers, its four
components in its order, ``nn.AdaptiveAvgPool2d``), and the regularizers by their formulas.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from antialiased.errors import ConfigError
from antialiased.layers import HaarPool, TranslationInvariantPolyphaseSampling, haar_pool2d, tips_fm_loss, tips_undo_loss
from antialiased.layers.tips import TIPSAux


def _haar_ll(x: torch.Tensor, odd: str) -> torch.Tensor:
    """One level, sample by sample: the orthonormal Haar low band (``h = (1/sqrt 2, 1/sqrt 2)`` per axis)."""
    n, c, h, w = x.shape
    oh, ow = (-(-h // 2), -(-w // 2)) if odd == "symmetric" else (h // 2, w // 2)
    low = 1 / math.sqrt(2)
    out = torch.zeros(n, c, oh, ow, dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            total = 0.0
            for a in (0, 1):
                for b in (0, 1):
                    r, q = min(2 * i + a, h - 1), min(2 * j + b, w - 1)  # symmetric extension: the last sample again
                    total = total + low * low * x[:, :, r, q]
            out[:, :, i, j] = total
    return out


@pytest.mark.parametrize("size,odd", [((4, 6), "symmetric"), ((5, 7), "symmetric"), ((1, 3), "symmetric"),
                                      ((6, 5), "symmetric"), ((5, 7), "crop"), ((6, 5), "crop")])
def test_haar_is_the_ll_band(size, odd, one_thread):
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    torch.testing.assert_close(haar_pool2d(x, odd=odd), _haar_ll(x, odd), rtol=0, atol=1e-14)


def test_haar_stride_4_is_two_levels_and_scales_energy_as_the_authors(one_thread):
    x = torch.randn(1, 2, 9, 12, dtype=torch.float64)
    torch.testing.assert_close(haar_pool2d(x, 4), _haar_ll(_haar_ll(x, "symmetric"), "symmetric"))
    assert haar_pool2d(x, 8).shape == (1, 2, 2, 2)
    const = torch.full((1, 1, 4, 4), 1.5)
    torch.testing.assert_close(HaarPool()(const), torch.full((1, 1, 2, 2), 3.0))  # 2x the mean: orthonormal
    y = torch.randn(1, 1, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: haar_pool2d(t, 2), (y,))
    assert list(HaarPool().state_dict()) == [] and repr(HaarPool(4, odd="crop")) == "HaarPool(stride=4, odd='crop')"


@pytest.mark.parametrize("call,message", [
    (lambda: HaarPool(3), "stride must be 2, 4, 8"),
    (lambda: HaarPool(2, odd="periodic"), "odd must be one of"),
    (lambda: haar_pool2d(torch.randn(1, 1, 1, 5), odd="crop"), "would be empty"),
    (lambda: haar_pool2d(torch.randn(1, 5, 5)), "(N, C, H, W)"),
])
def test_haar_bad_input(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert message in str(info.value) and "\n" not in str(info.value)


def _released_tips(layer: TranslationInvariantPolyphaseSampling, x: torch.Tensor) -> torch.Tensor:
    """The release's forward at stride 2: its pad layers, components 0..3, cell order, softmax."""
    n, c, h, w = x.shape
    pad = {(0, 0): [0, 0, 0, 0], (0, 1): [1, 0, 0, 0], (1, 0): [0, 0, 1, 0], (1, 1): [1, 0, 1, 0]}[(h % 2, w % 2)]
    x = nn.ReflectionPad2d(pad)(x)
    n, c, h, w = x.shape
    psi = torch.relu(layer.conv1(x))
    tau = torch.softmax(layer.conv2(nn.AdaptiveAvgPool2d((2, 2))(psi)).view(n, c, -1), dim=-1)
    stacks = torch.stack([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], dim=2)
    stacks = stacks.view(n, c, 4, h // 2 * w // 2)
    return (tau.reshape(n, c, 4, 1) * stacks).view(n, c, 4, h // 2, w // 2).sum(dim=2)


@pytest.mark.parametrize("size", [(8, 8), (7, 8), (8, 9), (5, 7)])
def test_tips_is_the_released_forward(size, one_thread):
    torch.manual_seed(0)
    layer = TranslationInvariantPolyphaseSampling(3).double()
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    torch.testing.assert_close(layer(x), _released_tips(layer, x), rtol=1e-12, atol=1e-12)


def test_tips_other_strides_gradients_and_keys(one_thread):
    torch.manual_seed(0)
    layer = TranslationInvariantPolyphaseSampling(2, stride=3, kernel_size=5).double()
    x = torch.randn(1, 2, 7, 9, dtype=torch.float64, requires_grad=True)
    out, aux = layer(x, return_aux=True)
    assert out.shape == (1, 2, 3, 3) and aux.tau.shape == (1, 2, 9) and aux.input.shape == (1, 2, 9, 9)
    torch.testing.assert_close(aux.tau.sum(-1), torch.ones(1, 2, dtype=torch.float64))
    assert torch.autograd.gradcheck(layer, (x,))
    model = nn.Sequential(nn.Identity(), TranslationInvariantPolyphaseSampling(4))
    assert sorted(model.state_dict()) == ["1.conv1.weight", "1.conv2.weight"]
    with torch.no_grad():
        model[1].conv1.weight.fill_(1.0)
    model[1].reset_parameters()
    assert abs(model[1].conv1.weight.std().item() / math.sqrt(2 / (4 * 9)) - 1) < 0.5  # fan_out = C k^2


def test_tips_regularizers_follow_their_formulas(one_thread):
    tau = torch.softmax(torch.randn(2, 3, 4), dim=-1)
    torch.testing.assert_close(tips_fm_loss(tau), (1 - tau.pow(2).sum(-1).sqrt()).mean())
    psi, inp = torch.randn(2, 3, 6, 6), torch.randn(2, 3, 6, 6)
    expected = ((psi - torch.roll(inp, (2, -1), dims=(2, 3))) ** 2).mean()
    torch.testing.assert_close(tips_undo_loss(TIPSAux(psi, tau, inp), (2, -1)), expected)


@pytest.mark.parametrize("call,message", [
    (lambda: TranslationInvariantPolyphaseSampling(4, stride=1), "stride must be an integer >= 2"),
    (lambda: TranslationInvariantPolyphaseSampling(4, kernel_size=4), "kernel_size must be odd"),
    (lambda: TranslationInvariantPolyphaseSampling(4)(torch.randn(1, 2, 4, 4)), "build it with channels=2"),
])
def test_tips_bad_input(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert message in str(info.value) and "\n" not in str(info.value)


def test_every_layer_gives_the_same_result_for_channels_last_inputs(one_thread):
    from antialiased.layers import AdaptiveBlurPool, LearnablePolyphaseSampling

    torch.manual_seed(0)
    layers = [HaarPool(2), TranslationInvariantPolyphaseSampling(8), AdaptiveBlurPool(8, groups=2).eval(),
              LearnablePolyphaseSampling(8, filt_size=3).eval()]
    x = torch.randn(2, 8, 9, 10)
    for layer in layers:
        dense = x.clone().requires_grad_(True)
        last = x.clone().to(memory_format=torch.channels_last).requires_grad_(True)
        a, b = layer(dense), layer(last)
        torch.testing.assert_close(a, b)
        a.sum().backward()
        b.sum().backward()
        torch.testing.assert_close(dense.grad, last.grad)


def test_every_layer_runs_on_meta_tensors_for_shape_probes():
    from antialiased.layers import AdaptiveBlurPool, ASAPPool, FLCPool, LearnablePolyphaseSampling

    x = torch.empty(2, 16, 13, 12, device="meta")
    layers = [FLCPool(2), ASAPPool(2), HaarPool(2), AdaptiveBlurPool(16).train(), AdaptiveBlurPool(16).eval(),
              LearnablePolyphaseSampling(16, filt_size=3).eval(), LearnablePolyphaseSampling(16).train(),
              TranslationInvariantPolyphaseSampling(16)]
    for layer in layers:
        out = layer.to("meta")(x)
        assert out.shape == (2, 16, 7, 6) and out.device.type == "meta", type(layer).__name__
