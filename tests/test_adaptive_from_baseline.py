"""A trained baseline converted with method='adaptive' and loaded by load_baseline keeps its function.

Regression: the authors' 'joint' softmax makes each group's filter sum to about 1/G, so every
AdaptiveBlurPool handed the next BatchNorm inputs ~G times smaller than its running statistics
expect; on a CIFAR airnet (three such layers) the converted network predicted one class for every
image, before and after a short fine-tune. ``init_from_baseline`` now starts every group's filter
as the k x k binomial blur with unit gain; the reference here is that blur computed directly
(a depthwise conv of the reflect-padded map), swapped in for each inserted layer.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from antialiased.layers import AdaptiveBlurPool
from antialiased.models.antialias import antialias
from antialiased.models.transfer import load_baseline


class _DirectBlur(nn.Module):
    """Binomial k x k blur, reflect padding, then every s-th sample: a plain depthwise conv."""

    def __init__(self, channels: int, k: int, stride: int) -> None:
        super().__init__()
        row = torch.tensor([math.comb(k - 1, i) for i in range(k)], dtype=torch.float32)
        taps = torch.outer(row, row) / row.sum() ** 2
        self.register_buffer("taps", taps.expand(channels, 1, k, k).clone())
        self.k, self.stride = k, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (self.k // 2,) * 4, mode="reflect")
        return F.conv2d(padded, self.taps, stride=self.stride, groups=x.shape[1])


def _trained_like_baseline() -> nn.Module:
    """resnet18 whose BatchNorms hold running statistics of real activations (cumulative average)."""
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
            nn.init.uniform_(m.bias, -0.2, 0.2)
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(16, 3, 32, 32))
    return net.eval()


@pytest.mark.parametrize("normalize", ["joint", "group"])
def test_converted_baseline_starts_as_the_binomial_blur_not_collapsed(normalize, one_thread):
    baseline = _trained_like_baseline()
    state = {k: v.clone() for k, v in baseline.state_dict().items()}
    model = antialias(torchvision.models.resnet18(num_classes=10), method="adaptive", filter_size=3,
                      normalize=normalize)
    load_baseline(model, state)
    model.eval()
    reference = antialias(torchvision.models.resnet18(num_classes=10), method="adaptive", filter_size=3,
                          normalize=normalize)
    reference.load_state_dict(model.state_dict())
    layers = [(name, m) for name, m in reference.named_modules() if isinstance(m, AdaptiveBlurPool)]
    assert layers
    for name, layer in layers:
        parent, _, leaf = name.rpartition(".")
        setattr(reference.get_submodule(parent) if parent else reference, leaf,
                _DirectBlur(layer.channels, layer.filt_size, layer.stride))
    x = torch.randn(12, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out, want, base = model(x), reference.eval()(x), baseline(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-4)
    # not collapsed: the logits vary across images (blurring random images leaves 0.24 of the baseline's
    # spread here; the authors' init with the joint softmax left 0.02, one class for every image)
    assert out.std(0).mean() > 0.1 * base.std(0).mean() and len(set(out.argmax(1).tolist())) > 1


def test_gain_is_saved_and_checkpoints_without_it_load_as_the_authors_function(one_thread):
    layer = AdaptiveBlurPool(16, groups=8)
    layer.init_from_baseline()
    assert layer.gain.item() == 8.0 and torch.equal(layer.bn.weight, torch.zeros(72))
    copy = AdaptiveBlurPool(16, groups=8)
    copy.load_state_dict(layer.state_dict())
    assert copy.gain.item() == 8.0
    authors = {k: v for k, v in layer.state_dict().items() if k != "gain"}  # the authors' keys only
    copy.load_state_dict(authors)  # strict
    assert copy.gain.item() == 1.0
    x = torch.rand(2, 16, 8, 8)
    with torch.no_grad():  # joint filters sum to gain at every position
        torch.testing.assert_close(layer.eval().filters(x).sum(1), torch.full((2, 4, 4), 8.0))
    layer.reset_parameters()
    assert layer.gain.item() == 1.0
