"""Learnable polyphase sampling (LPS/LPU, issue 19) against the authors' computation, and its exactness.

The reference scores components as the authors' ``LPSLogitLayersV2`` does: the components stacked
into the batch, two 3x3 ``nn.Conv2d(padding='same', padding_mode=...)`` with a ReLU between, the
mean of the result per component. Eval mode keeps the argmax component; training mixes the
components with ``F.gumbel_softmax`` weights. Exactness is tested as tests/test_aps_exactness.py
tests APS: every circular shift of the input gives the shifted output, and a small circular
network built with LPS gives the same logits for every shift (while its strided twin does not).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from antialiased.errors import ConfigError
from antialiased.layers import (
    AdaptivePolyphaseSampling,
    LearnablePolyphaseSampling,
    LearnablePolyphaseUpsampling,
    polyphase_resample,
    polyphase_upsample,
)


def _components(x: torch.Tensor, sh: int, sw: int) -> list[torch.Tensor]:
    return [x[:, :, i::sh, j::sw] for i in range(sh) for j in range(sw)]


def _authors_logits(layer: LearnablePolyphaseSampling, x: torch.Tensor) -> torch.Tensor:
    sh, sw = layer.stride
    mode = layer.scorer.padding
    conv1 = nn.Conv2d(layer.channels, layer.hidden_channels, 3, padding="same", padding_mode=mode).double()
    conv2 = nn.Conv2d(layer.hidden_channels, layer.hidden_channels, 3, padding="same", padding_mode=mode).double()
    conv1.load_state_dict(layer.scorer.conv1.state_dict())
    conv2.load_state_dict(layer.scorer.conv2.state_dict())
    parts = _components(x, sh, sw)
    stacked = torch.cat(parts)  # components in the batch: shared weights
    scores = conv2(torch.relu(conv1(stacked))).mean(dim=(-1, -2, -3))
    return torch.stack(torch.split(scores, x.shape[0]), -1)


def _layer(channels=3, **kwargs) -> LearnablePolyphaseSampling:
    torch.manual_seed(0)
    return LearnablePolyphaseSampling(channels, **kwargs).double()


@pytest.mark.parametrize("stride", [2, (2, 3), 3])
@pytest.mark.parametrize("padding", ["circular", "zeros"])
def test_scorer_matches_the_authors_per_component_network(stride, padding, one_thread):
    layer = _layer(stride=stride, hidden_channels=5, scorer_padding=padding)
    sh, sw = layer.stride
    x = torch.randn(2, 3, 4 * sh, 3 * sw, dtype=torch.float64)
    torch.testing.assert_close(layer.logits(x), _authors_logits(layer, x), rtol=1e-10, atol=1e-12)


def test_eval_keeps_the_best_scored_component(one_thread):
    layer = _layer().eval()
    x = torch.randn(3, 3, 8, 6, dtype=torch.float64)
    y, phase = layer(x, return_phase=True)
    best = _authors_logits(layer, x).argmax(dim=1)
    assert torch.equal(phase, best)
    parts = _components(x, 2, 2)
    assert torch.equal(y, torch.stack([parts[int(p)][n] for n, p in enumerate(best)]))


@pytest.mark.parametrize("recompute", [True, False])
def test_training_mixes_components_with_a_gumbel_sample(recompute, one_thread):
    layer = _layer(tau=0.5, recompute=recompute).train()
    x = torch.randn(2, 3, 6, 8, dtype=torch.float64)
    logits = _authors_logits(layer, x)  # builds convs: before seeding
    torch.manual_seed(11)
    y, weights = layer(x, return_phase=True)
    torch.manual_seed(11)
    expected = F.gumbel_softmax(logits, tau=0.5, hard=False)
    torch.testing.assert_close(weights, expected)
    mixed = sum(weights[:, p, None, None, None] * part for p, part in enumerate(_components(x, 2, 2)))
    torch.testing.assert_close(y, mixed)


@pytest.mark.parametrize("recompute", [True, False])
def test_gradients_through_the_scorer_and_the_mix(recompute, one_thread):
    layer = _layer(recompute=recompute, filt_size=3).train()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    weight = layer.scorer.conv1.weight.detach().clone().requires_grad_(True)

    def run(inp, w):
        torch.manual_seed(3)  # the same Gumbel noise on every call
        return torch.func.functional_call(layer, {"scorer.conv1.weight": w}, (inp,), strict=False)

    assert torch.autograd.gradcheck(run, (x, weight), fast_mode=True)


def test_backward_keeps_only_the_input(one_thread):
    layer = LearnablePolyphaseSampling(32).train()
    x = torch.randn(4, 32, 16, 16, requires_grad=True)
    params = {p.untyped_storage().data_ptr() for p in layer.parameters()}
    saved = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and ptr != x.untyped_storage().data_ptr():
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = layer(x)
    assert sum(saved.values()) < x.numel() * x.element_size() / 16  # the Gumbel weights and such
    out.sum().backward()
    assert layer.scorer.conv1.weight.grad is not None and x.grad.shape == x.shape


SHIFTS = [(dh, dw) for dh in range(8) for dw in range(8)]


@pytest.mark.parametrize("filt_size", [1, 3])
def test_circular_shift_gives_the_shifted_output_for_every_shift(filt_size, one_thread):
    layer = LearnablePolyphaseSampling(4, filt_size=filt_size, circular=True).eval()
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        y, phase = layer(x, return_phase=True)
        for dh, dw in SHIFTS:
            shifted, p = layer(torch.roll(x, (dh, dw), dims=(2, 3)), return_phase=True)
            for n in range(2):
                i, j = divmod(int(phase[n]), 2)
                assert int(p[n]) == ((i + dh) % 2) * 2 + (j + dw) % 2
                expected = torch.roll(y[n], ((i + dh) // 2, (j + dw) // 2), dims=(1, 2))
                if filt_size == 1:  # pure selection: bit for bit
                    assert torch.equal(shifted[n], expected)
                else:  # the blur's float sums run in another order at the wrapped border
                    torch.testing.assert_close(shifted[n], expected, rtol=0, atol=1e-6)


class _TinyNet(nn.Module):
    """Conv (circular) -> ReLU -> down -> conv -> ReLU -> down -> global pool -> linear."""

    def __init__(self, down: nn.Module, down2: nn.Module) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, padding_mode="circular")
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, padding_mode="circular")
        self.down, self.down2, self.fc = down, down2, nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(torch.relu(self.conv1(x)))
        x = self.down2(torch.relu(self.conv2(x)))
        return self.fc(x.mean(dim=(2, 3)))


def test_a_circular_network_with_lps_is_exactly_shift_invariant(one_thread):
    torch.manual_seed(1)
    lps = _TinyNet(LearnablePolyphaseSampling(8, filt_size=3, circular=True),
                   LearnablePolyphaseSampling(8, filt_size=3, circular=True)).eval()
    strided = _TinyNet(nn.AvgPool2d(1, 2), nn.AvgPool2d(1, 2)).eval()
    strided.load_state_dict({k: v for k, v in lps.state_dict().items() if k.startswith(("conv", "fc"))})
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    batch = torch.cat([x] + [torch.roll(x, s, dims=(2, 3)) for s in [(1, 0), (0, 1), (3, 5), (7, 13), (15, 15)]])
    with torch.no_grad():
        logits, control = lps(batch), strided(batch)
    spread = ((logits[1:] - logits[0]).abs().max() / logits[0].abs().max()).item()
    control_spread = ((control[1:] - control[0]).abs().max() / control[0].abs().max()).item()
    assert spread < 1e-5 and control_spread > 1e-3


def test_phase_roles_and_composed_phases(one_thread):
    from antialiased.layers.polyphase import compose_phases, phase_role

    assert phase_role(LearnablePolyphaseSampling(2)) == "down" and phase_role(LearnablePolyphaseUpsampling(2)) == "up"
    down1, down2 = LearnablePolyphaseSampling(2).eval(), LearnablePolyphaseSampling(2).eval()
    x = torch.randn(2, 2, 8, 8)
    y1, p1 = down1(x, return_phase=True)
    y2, p2 = down2(y1, return_phase=True)
    assert torch.equal(y2, polyphase_resample(x, compose_phases([p1, p2], [2, 2]), 4))  # two levels = one at 4


def test_phase_hand_off_between_branches(one_thread):
    a, b = LearnablePolyphaseSampling(3), LearnablePolyphaseSampling(3)
    x, other = torch.randn(2, 3, 6, 6), torch.randn(2, 3, 6, 6)
    a.eval(), b.eval()
    _, phase = a(x, return_phase=True)
    assert torch.equal(b(other, phase=phase), polyphase_resample(other, phase))
    _, aps_phase = AdaptivePolyphaseSampling(2)(x, return_phase=True)
    assert torch.equal(b(other, phase=aps_phase), polyphase_resample(other, aps_phase))  # APS phases fit
    a.train(), b.train()
    _, weights = a(x, return_phase=True)
    assert weights.shape == (2, 4) and torch.allclose(weights.sum(1), torch.ones(2))
    mixed = sum(weights[:, p, None, None, None] * part for p, part in enumerate(_components(other, 2, 2)))
    torch.testing.assert_close(b(other, phase=weights), mixed)


def test_upsampling_is_the_adjoint_of_the_selection(one_thread):
    x = torch.randn(3, 2, 6, 8, dtype=torch.float64)
    y = torch.randn(3, 2, 3, 4, dtype=torch.float64)
    phase = torch.tensor([0, 3, 2])
    lhs = (polyphase_resample(x, phase) * y).sum()
    rhs = (x * polyphase_upsample(y, phase)).sum()
    torch.testing.assert_close(lhs, rhs)
    up = polyphase_upsample(y, phase)
    for n, p in enumerate(phase.tolist()):
        i, j = divmod(p, 2)
        assert torch.equal(up[n, :, i::2, j::2], y[n]) and int((up[n] != 0).sum()) == y[n].numel()


def test_soft_upsampling_is_the_authors_repeat_and_pixel_shuffle(one_thread):
    y = torch.randn(2, 3, 4, 5)
    weights = torch.softmax(torch.randn(2, 4), dim=1)
    expected = F.pixel_shuffle(torch.repeat_interleave(y, 4, dim=1) * weights.repeat(1, 3).view(2, 12, 1, 1), 2)
    torch.testing.assert_close(polyphase_upsample(y, weights), expected)


def test_lpu_module_blur_gain_output_size_and_gradients(one_thread):
    up = LearnablePolyphaseUpsampling(2, filt_size=3, circular=True)
    const = torch.full((1, 1, 4, 4), 2.0)
    torch.testing.assert_close(up(const, torch.tensor([1])), torch.full((1, 1, 8, 8), 2.0))  # gain s^2
    assert up(const, torch.tensor([1]), size=(7, 8)).shape == (1, 1, 7, 8)
    torch.testing.assert_close(polyphase_upsample(const), polyphase_upsample(const, torch.tensor([0])))
    y = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: LearnablePolyphaseUpsampling(2)(t, torch.tensor([2])), (y,))


def test_odd_sides_are_extended_circularly_and_warned_about(one_thread):
    layer = LearnablePolyphaseSampling(2, circular=True).eval()
    x = torch.randn(1, 2, 5, 7)
    with pytest.warns(UserWarning, match="divisible by the stride"):
        y, phase = layer(x, return_phase=True)
    wrapped = torch.cat([x, x[:, :, :1]], 2)
    wrapped = torch.cat([wrapped, wrapped[:, :, :, :1]], 3)
    assert y.shape == (1, 2, 3, 4) and torch.equal(y, polyphase_resample(wrapped, phase))


def test_keys_tau_and_reset(one_thread):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), LearnablePolyphaseSampling(4, hidden_channels=2, tau=2.0))
    assert sorted(k for k in model.state_dict() if k.startswith("1.")) == [
        "1.gumbel_tau", "1.scorer.conv1.bias", "1.scorer.conv1.weight", "1.scorer.conv2.bias", "1.scorer.conv2.weight"]
    layer = model[1]
    with torch.no_grad():
        layer.gumbel_tau.fill_(0.1)
        layer.scorer.conv1.weight.fill_(9.0)
    layer.reset_parameters()
    assert float(layer.gumbel_tau) == 2.0 and layer.scorer.conv1.weight.abs().max() < 1.0


@pytest.mark.parametrize("call,message", [
    (lambda: LearnablePolyphaseSampling(4, tau=0), "tau must be a positive number"),
    (lambda: LearnablePolyphaseSampling(4, hidden_channels=0), "hidden_channels must be an integer"),
    (lambda: LearnablePolyphaseSampling(4, scorer_padding="reflect"), "scorer padding must be one of"),
    (lambda: LearnablePolyphaseSampling(4, circular=True, pad_type="zero"), "leave it unset"),
    (lambda: LearnablePolyphaseSampling(4, filt_size=9), "filt_size"),
    (lambda: LearnablePolyphaseSampling(4)(torch.randn(1, 3, 4, 4)), "build it with channels=3"),
    (lambda: polyphase_resample(torch.randn(2, 1, 4, 4), torch.tensor([0.5, 0.5])), "integer tensor"),
    (lambda: polyphase_upsample(torch.randn(2, 1, 4, 4), torch.tensor([1])), "return_phase=True"),
])
def test_bad_input_is_one_clear_line(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert message in str(info.value) and "\n" not in str(info.value)
