"""The APS methods' pieces: rewriters, the phase hand-off between branches that meet, pool sizes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from antialiased.layers.polyphase import AdaptivePolyphaseSampling
from antialiased.models.antialias._aps import APS, APS_LPF, _pool_size, share_phases
from antialiased.models.antialias._circular import make_circular
from antialiased.models.antialias._types import Rewrite, RewriteContext, Site, Skip


def _roll(x: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    return torch.roll(x, shift, dims=(2, 3))


class _Block(nn.Module):
    """A residual block already converted by hand: strided conv -> stride 1 + APS, shortcut APS + 1x1."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.aps1 = AdaptivePolyphaseSampling(2, circular=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.aps_short = AdaptivePolyphaseSampling(2, circular=True)
        self.short = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.aps1(torch.relu(self.conv1(x))))
        return torch.relu(out + self.short(self.aps_short(x)))


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.aps0 = AdaptivePolyphaseSampling(2, circular=True)
        self.block1 = _Block(8, 8)
        self.block2 = _Block(8, 16)
        self.branch_a = nn.Conv2d(16, 4, 3, padding=1)
        self.branch_b = nn.Conv2d(16, 4, 1)
        self.aps_a = AdaptivePolyphaseSampling(2, circular=True)
        self.aps_b = AdaptivePolyphaseSampling(2, circular=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.block1(self.aps0(torch.relu(self.stem(x)))))
        x = torch.cat([self.aps_a(self.branch_a(x)), self.aps_b(torch.sigmoid(self.branch_b(x)))], dim=1)
        return x.mean(dim=(2, 3))


class _Leaves(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, AdaptivePolyphaseSampling) or super().is_leaf_module(m, qualname)


def _invariant(model: nn.Module, x: torch.Tensor, shifts: list[tuple[int, int]]) -> bool:
    with torch.no_grad():
        base = model(x)
        return all(torch.allclose(model(_roll(x, s)), base, rtol=1e-4, atol=1e-5) for s in shifts)


@pytest.mark.parametrize("leaf", [True, False], ids=["module-nodes", "function-nodes"])
def test_branches_that_meet_get_one_phase_and_the_net_becomes_invariant(leaf):
    torch.manual_seed(0)
    net = _Net().eval()
    make_circular(net)
    graph = _Leaves().trace(net) if leaf else torch.fx.Tracer().trace(net)
    gm = torch.fx.GraphModule(net, graph)
    x = torch.randn(2, 3, 32, 32)
    shifts = [(1, 0), (0, 3), (5, 7), (13, 2), (31, 31), (16, 8)]
    assert not _invariant(gm, x, shifts)  # each sampler picks its own phase: the adds and the concat disagree
    groups = share_phases(gm)
    if leaf:
        assert sorted(map(sorted, groups)) == [["aps_a", "aps_b"], ["block1.aps1", "block1.aps_short"],
                                               ["block2.aps1", "block2.aps_short"]]
        assert [g[0] for g in sorted(groups)] == ["aps_a", "block1.aps1", "block2.aps1"]  # leader: first in order
    else:
        assert sorted(len(g) for g in groups) == [2, 2, 2]
    assert _invariant(gm, x, shifts)
    assert not share_phases(gm)  # already shared: nothing left to do


def test_inputs_of_a_group_are_united_too():
    """Two branches that each subsample twice before meeting: both levels must share."""

    class TwoLevels(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a1, self.a2, self.b1, self.b2 = (AdaptivePolyphaseSampling(2, circular=True) for _ in range(4))
            self.conv_a = nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular")
            self.conv_b = nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = self.a2(torch.relu(self.conv_a(self.a1(x))))
            b = self.b2(torch.sigmoid(self.b1(self.conv_b(x))))
            return (a * b).mean(dim=(2, 3))

    torch.manual_seed(1)
    gm = torch.fx.GraphModule(TwoLevels(), _Leaves().trace(TwoLevels()))
    groups = share_phases(gm)
    assert sorted(map(sorted, groups)) == [["a1", "b1"], ["a2", "b2"]]
    assert _invariant(gm, torch.randn(2, 2, 16, 16), [(1, 1), (3, 0), (0, 5), (7, 9)])


def test_aux_outputs_are_not_a_meeting_point():
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = AdaptivePolyphaseSampling(2), AdaptivePolyphaseSampling(2)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.a(x), self.b(x + 1)

    assert share_phases(torch.fx.GraphModule(TwoHeads(), _Leaves().trace(TwoHeads()))) == []


def _site(module: nn.Module, kind: str, stride: int = 2, ndim: int = 2) -> Site:
    return Site("m", kind, module, (stride,) * ndim, 4, 8, ndim=ndim)


def test_conv_rewrites():
    ctx = RewriteContext(filter_size=3)
    r = APS.rewriters["conv"](_site(nn.Conv2d(4, 8, 3, 2, 1), "conv"), ctx)
    assert isinstance(r, Rewrite) and r.stride == (1, 1) and r.after_followers
    (layer,) = r.after
    assert (layer.stride, layer.filt_size, layer.circular, layer.pad_type) == ((2, 2), 1, False, "reflect")
    r = APS_LPF.rewriters["conv"](_site(nn.Conv2d(4, 8, 1, 2), "conv"), RewriteContext(filter_size=5, circular=True))
    (layer,) = r.before  # a pad-free 1x1 conv: sample its input first
    assert r.stride == (1, 1) and not r.after and (layer.filt_size, layer.circular) == (5, True)
    skip = APS.rewriters["conv"](_site(nn.Conv1d(4, 8, 3, 2, 1), "conv", ndim=1), ctx)
    assert isinstance(skip, Skip) and "2-D" in skip.reason
    assert APS.converts_stem and APS.supports_circular and APS_LPF.converts_stem


@pytest.mark.parametrize("pool", [nn.MaxPool2d(3, 2, 1), nn.MaxPool2d(2, 2), nn.MaxPool2d(3, 2, ceil_mode=True),
                                  nn.MaxPool2d(3, 2, 1, ceil_mode=True), nn.AvgPool2d(2, 2), nn.AvgPool2d(3, 2, 1),
                                  nn.AvgPool2d(3, 3, 1)],
                         ids=repr)
@pytest.mark.parametrize("method", [APS, APS_LPF], ids=lambda m: m.name)
def test_pool_rewrites_keep_the_output_size(pool, method):
    kind = "max_pool" if isinstance(pool, nn.MaxPool2d) else "avg_pool"
    r = method.rewriters[kind](_site(pool, kind, pool.stride), RewriteContext(filter_size=3))
    assert isinstance(r, Rewrite)
    layers = [*r.before, r.replace, *r.after]
    assert isinstance(layers[-1], AdaptivePolyphaseSampling)
    if method is APS or kind == "max_pool" or pool.kernel_size == 2:  # AvgPool(2, 2) gives floor(n / 2)
        assert type(r.replace) is type(pool) and r.replace.stride in (1, (1, 1))
    else:  # the blur replaces the box filter where that keeps the size
        assert r.replace is layers[-1] and r.replace.filt_size == 3
    for n in range(3, 40):
        x = torch.randn(1, 4, n, n + 1)
        y = x
        for layer in layers:
            y = layer(y)
        assert y.shape == pool(x).shape, n


def test_phase_entries_and_circular_padding_in_finalize():
    from antialiased.models.antialias._summary import AntialiasSummary

    torch.manual_seed(2)
    net = _Net()
    for m in net.modules():
        if isinstance(m, AdaptivePolyphaseSampling):
            m.circular = False  # finalize's circular pass must not depend on it
    gm = torch.fx.GraphModule(net, _Leaves().trace(net))
    summary = AntialiasSummary(method="aps", filter_size=1)
    APS.finalize(gm, RewriteContext(filter_size=1, circular=True, summary=summary))
    kinds = [c.kind for c in summary.changed]
    assert kinds.count("phase") == 3 and kinds.count("padding") == 6  # every 3x3 conv; 1x1 convs pad nothing
    assert any("hands its phase to block1.aps_short" in c.after for c in summary.changed)


def test_pool_size_formula_matches_torch():
    for n in range(1, 30):
        for k, s, p, d in [(3, 2, 1, 1), (2, 2, 0, 1), (3, 2, 0, 1), (3, 3, 1, 2), (5, 2, 2, 1)]:
            if n + 2 * p < d * (k - 1) + 1:
                continue
            for ceil_mode in (False, True):
                want = F.max_pool2d(torch.zeros(1, 1, n, n), k, s, p, d, ceil_mode).shape[-1]
                assert _pool_size(n, k, s, p, d, ceil_mode) == want, (n, k, s, p, d, ceil_mode)
