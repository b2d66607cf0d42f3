"""Adaptive blur pooling (DDAC, issue 19) against the authors' computation and a plain loop.

The reference follows ``Downsample_PASA_group_softmax`` (MaureenZOU/Adaptive-anti-Aliasing): a
reflect-padded k x k conv at every position, ``nn.BatchNorm2d`` on the full map, softmax over all
G k^2 channels, every position filtered with its group's taps (plain Python loops), then every
s-th row and column kept. The layer computes only the kept positions; outputs, gradients and the
BatchNorm running statistics must agree.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from antialiased.errors import ConfigError
from antialiased.layers import AdaptiveBlurPool, adaptive_filter2d
from antialiased.layers import adaptive as adaptive_module


def _loop_filter(padded: torch.Tensor, weights: torch.Tensor, k: int, groups: int) -> torch.Tensor:
    """out[n, c, i, j] = sum_{a, b} w[n, g(c) k^2 + a k + b, i, j] * padded[n, c, i + a, j + b], every position."""
    n, c = padded.shape[:2]
    h, w = weights.shape[2:]
    out = torch.zeros(n, c, h, w, dtype=padded.dtype)
    per_group = c // groups
    for b_ in range(n):
        for ch in range(c):
            g = ch // per_group
            for i in range(h):
                for j in range(w):
                    out[b_, ch, i, j] = sum(weights[b_, g * k * k + a * k + b, i, j] * padded[b_, ch, i + a, j + b]
                                            for a in range(k) for b in range(k))
    return out


def _authors(layer: AdaptiveBlurPool, bn: torch.nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """The authors' function with ``layer``'s conv weights and the given BatchNorm (mode as set)."""
    k, s = layer.filt_size, layer.stride
    padded = F.pad(x, (k // 2,) * 4, mode="reflect")
    logits = bn(F.conv2d(padded, layer.conv.weight))
    if layer.normalize == "joint":
        weights = logits.softmax(dim=1)
    else:
        weights = logits.unflatten(1, (layer.groups, k * k)).softmax(dim=2).flatten(1, 2)
    return _loop_filter(padded, weights, k, layer.groups)[:, :, ::s, ::s]


def _layer(channels=4, seed=0, **kwargs) -> AdaptiveBlurPool:
    torch.manual_seed(seed)
    layer = AdaptiveBlurPool(channels, **kwargs).double()
    with torch.no_grad():  # non-trivial BN parameters and statistics
        layer.bn.weight.uniform_(0.5, 1.5)
        layer.bn.bias.uniform_(-0.5, 0.5)
        layer.bn.running_mean.uniform_(-0.2, 0.2)
        layer.bn.running_var.uniform_(0.5, 2.0)
    return layer


CONFIGS = [
    dict(stride=2, filt_size=3, groups=2),
    dict(stride=2, filt_size=3, groups=4, normalize="group"),
    dict(stride=3, filt_size=5, groups=1),
    dict(stride=1, filt_size=3, groups=2),
]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("size", [(6, 6), (7, 5)])
def test_train_mode_matches_the_authors_and_updates_running_stats_alike(config, size, one_thread):
    layer = _layer(**config).train()
    bn = copy.deepcopy(layer.bn)
    x = torch.randn(2, 4, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(layer(x), _authors(layer, bn, x), rtol=1e-10, atol=1e-12)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(layer.bn, name), getattr(bn, name), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("config", CONFIGS)
def test_eval_mode_predicts_at_the_kept_positions_only_with_the_same_values(config, one_thread):
    layer = _layer(**config).eval()
    x = torch.randn(2, 4, 7, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(layer(x), _authors(layer, layer.bn, x), rtol=1e-10, atol=1e-12)


def test_cumulative_momentum_and_untracked_statistics_follow_batchnorm(one_thread):
    layer = _layer(groups=2).train()
    layer.bn.momentum = None
    bn = copy.deepcopy(layer.bn)
    for seed in range(3):
        x = torch.randn(2, 4, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(layer(x), _authors(layer, bn, x))
    torch.testing.assert_close(layer.bn.running_var, bn.running_var)
    untracked = AdaptiveBlurPool(4, groups=2).double()
    untracked.bn = torch.nn.BatchNorm2d(18, track_running_stats=False).double()
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(untracked.eval()(x), _authors(untracked, untracked.bn, x))


@pytest.mark.parametrize("channels,groups,k,stride", [(4, 2, 3, 2), (18, 2, 3, 2), (4, 4, 5, 3)])
def test_filtering_matches_the_loop_for_given_weights(channels, groups, k, stride, one_thread):
    x = torch.randn(1, channels, 5, 6, dtype=torch.float64)
    out_h, out_w = -(-5 // stride), -(-6 // stride)
    weights = torch.rand(1, groups * k * k, out_h, out_w, dtype=torch.float64)
    padded = F.pad(x, (k // 2,) * 4, mode="reflect")
    full = torch.rand(1, groups * k * k, 5, 6, dtype=torch.float64)
    full[:, :, ::stride, ::stride] = weights
    expected = _loop_filter(padded, full, k, groups)[:, :, ::stride, ::stride]
    torch.testing.assert_close(adaptive_filter2d(x, weights, stride, filt_size=k), expected)


@pytest.mark.parametrize("train", [True, False])
def test_gradients(train, one_thread):
    layer = _layer(groups=2).train(train)
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    state = {name: t.detach().clone() for name, t in layer.state_dict().items()}

    def run(inp, conv_weight, bn_weight):
        tensors = {name: t.clone() for name, t in state.items()}  # fresh statistics for every call
        tensors.update({"conv.weight": conv_weight, "bn.weight": bn_weight})
        return torch.func.functional_call(layer, tensors, (inp,))

    weights = (state["conv.weight"].clone().requires_grad_(True), state["bn.weight"].clone().requires_grad_(True))
    assert torch.autograd.gradcheck(run, (x, *weights), fast_mode=True)


def test_plain_ops_path_gives_the_same_values_and_gradients(one_thread, monkeypatch):
    x = torch.randn(2, 4, 6, 7, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(2, 18, 3, 4, dtype=torch.float64, requires_grad=True)
    custom = adaptive_filter2d(x, weights, 2)
    gx, gw = torch.autograd.grad(custom.square().sum(), (x, weights))
    monkeypatch.setattr(adaptive_module, "is_traced", lambda t: True)
    plain = adaptive_filter2d(x, weights, 2)
    px, pw = torch.autograd.grad(plain.square().sum(), (x, weights))
    torch.testing.assert_close(plain, custom)
    torch.testing.assert_close((px, pw), (gx, gw))


def test_backward_keeps_one_tensor_smaller_than_the_input(one_thread):
    """The target: no padded copy, no k^2-fold unfold; the predictor map (G k^2 = 72 channels) is all."""
    layer = AdaptiveBlurPool(128).train()
    x = torch.randn(2, 128, 16, 16, requires_grad=True)
    params = {p.untyped_storage().data_ptr() for p in layer.parameters()}
    saved = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params and storage.data_ptr() != x.untyped_storage().data_ptr():
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = layer(x)
    input_bytes = x.numel() * x.element_size()
    assert sum(saved.values()) < input_bytes and max(saved.values()) <= 72 * 2 * 16 * 16 * 4
    out.sum().backward()
    assert x.grad.shape == x.shape and layer.conv.weight.grad is not None


def test_keys_live_under_the_inserted_module_and_reset_initializes_as_the_authors(one_thread):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), AdaptiveBlurPool(16))
    assert sorted(k for k in model.state_dict() if k.startswith("1.")) == [
        "1.bn.bias", "1.bn.num_batches_tracked", "1.bn.running_mean", "1.bn.running_var", "1.bn.weight",
        "1.conv.weight", "1.gain"]
    layer = AdaptiveBlurPool(256, filt_size=3, groups=8)
    with torch.no_grad():
        layer.conv.weight.fill_(3.0)
        layer.bn.weight.fill_(5.0)
        layer.bn.running_mean.fill_(1.0)
    layer.reset_parameters()
    fan_out = 72 * 9  # out channels x kernel taps
    assert abs(layer.conv.weight.std().item() / (2.0 / fan_out) ** 0.5 - 1) < 0.05
    assert torch.equal(layer.bn.weight, torch.ones(72)) and torch.equal(layer.bn.running_mean, torch.zeros(72))


def test_joint_softmax_splits_unit_gain_across_groups_and_group_softmax_keeps_it(one_thread):
    x = torch.full((1, 8, 6, 6), 3.0)
    joint = AdaptiveBlurPool(8, groups=4).eval()(x)
    per_group = AdaptiveBlurPool(8, groups=4, normalize="group").eval()(x)
    torch.testing.assert_close(per_group, torch.full((1, 8, 3, 3), 3.0))
    # joint: the groups' gains sum to 1 at each position (channels 2g, 2g+1 share group g)
    torch.testing.assert_close(joint[:, ::2].sum(1) / 3.0, torch.ones(1, 3, 3))


def test_half_precision_under_autocast_and_small_maps(one_thread):
    layer = AdaptiveBlurPool(8, groups=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(torch.randn(2, 8, 8, 8))
    assert out.shape == (2, 8, 4, 4) and torch.isfinite(out.float()).all()
    out.float().sum().backward()
    assert AdaptiveBlurPool(8, groups=2, filt_size=5)(torch.randn(2, 8, 2, 2)).shape == (2, 8, 1, 1)  # replicate


@pytest.mark.parametrize("call,message", [
    (lambda: AdaptiveBlurPool(16, filt_size=4), "odd filt_size of 3, 5 or 7"),
    (lambda: AdaptiveBlurPool(12, groups=8), "use groups=4"),
    (lambda: AdaptiveBlurPool(12, groups=0), "groups must be an integer"),
    (lambda: AdaptiveBlurPool(8, normalize="softmax"), "normalize must be one of"),
    (lambda: AdaptiveBlurPool(8, pad_type="mirror"), "pad_type must be one of"),
    (lambda: AdaptiveBlurPool(8)(torch.randn(1, 4, 8, 8)), "build it with channels=4"),
    (lambda: AdaptiveBlurPool(8).train()(torch.randn(1, 8, 1, 1)), "more than one value per channel"),
    (lambda: adaptive_filter2d(torch.randn(1, 4, 8, 8), torch.rand(1, 9, 3, 3)), "weights must have shape"),
])
def test_bad_input_is_one_clear_line(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert message in str(info.value) and "\n" not in str(info.value)
