"""Polyphase upsampling layers (APS-U): the layer they replace at phase 0, the definition by plain loops at
every phase, circular borders, phase composition, and their bad input."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from antialiased.errors import ConfigError
from antialiased.layers.polyphase import (
    AdaptivePolyphaseSampling,
    PolyphaseConvTranspose2d,
    PolyphaseUpsampling,
    compose_phases,
    phase_role,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear", "bicubic"])
@pytest.mark.parametrize("stride", [2, 3, 8, (2, 3)])
def test_phase_zero_is_torch_interpolate(mode, stride):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 7)
    options = {} if mode.startswith("nearest") else {"align_corners": False}
    want = F.interpolate(x, scale_factor=stride, mode=mode, **options)
    got = PolyphaseUpsampling(stride, mode=mode)(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    size = want.shape[-2:]  # torch computes from the sizes, as a size= call does: the same
    torch.testing.assert_close(PolyphaseUpsampling(stride, mode=mode)(x, size=tuple(size)),
                               F.interpolate(x, size=tuple(size), mode=mode, **options), rtol=1e-5, atol=1e-5)


def test_phase_zero_is_pixel_shuffle():
    x = torch.randn(2, 12, 3, 4)
    assert torch.equal(PolyphaseUpsampling(2, mode="pixel_shuffle")(x), F.pixel_shuffle(x, 2))


TRANSPOSED = [  # (in, out, kernel, stride, padding, output_padding, dilation, groups, bias)
    (3, 4, 2, 2, 0, 0, 1, 1, True), (3, 4, 4, 2, 1, 0, 1, 1, False), (3, 4, 3, 2, 1, 1, 1, 1, True),
    (4, 6, 3, 2, 1, 0, 1, 2, True), (3, 4, 5, 3, 1, 2, 2, 1, True),
]


@pytest.mark.parametrize("config", TRANSPOSED, ids=str)
def test_transposed_twin_is_the_conv_at_phase_zero(config):
    cin, cout, k, s, p, op, d, g, bias = config
    torch.manual_seed(1)
    conv = nn.ConvTranspose2d(cin, cout, k, s, p, op, groups=g, bias=bias, dilation=d)
    twin = PolyphaseConvTranspose2d.from_conv(conv)
    assert twin.weight is conv.weight and list(twin.state_dict()) == list(conv.state_dict())
    x = torch.randn(2, cin, 4, 5)
    torch.testing.assert_close(twin(x), conv(x))
    size = [(n - 1) * s - 2 * p + d * (k - 1) + 1 + (s - 1) for n in x.shape[2:]]  # the largest torch allows
    torch.testing.assert_close(twin(x, output_size=size), conv(x, output_size=size))


# -- the definition, by plain loops ---------------------------------------------------------------

def _triangle(t: float) -> float:
    return max(0.0, 1.0 - abs(t))


def _loop_circular_interpolation(y: torch.Tensor, s: int, phase: int, mode: str) -> torch.Tensor:
    """Zero-insert at (i, j) of an s-times grid, then the kernel, wrapping around (one channel)."""
    i, j = divmod(phase, s)
    (h, w), out = y.shape, torch.zeros(s * y.shape[0], s * y.shape[1], dtype=torch.float64)
    for r, c in itertools.product(range(s * h), range(s * w)):
        if mode == "nearest":  # the sample inserted at (s m + i) covers s pixels from there
            out[r, c] = y[((r - i) // s) % h, ((c - j) // s) % w]
            continue
        # bilinear: sample m sits at s m + i + (s - 1) / 2 in output pixels, the triangle is s wide
        total = 0.0
        for m, n in itertools.product(range(-2, h + 2), range(-2, w + 2)):
            wr = _triangle((r - (s * m + i) - (s - 1) / 2) / s)
            wc = _triangle((c - (s * n + j) - (s - 1) / 2) / s)
            total += wr * wc * float(y[m % h, n % w])
        out[r, c] = total
    return out


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("s", [2, 3])
def test_circular_polyphase_interpolation_matches_the_definition(mode, s):
    torch.manual_seed(2)
    y = torch.randn(1, 1, 3, 4, dtype=torch.float64)
    layer = PolyphaseUpsampling(s, mode=mode, circular=True)
    for phase in range(s * s):
        got = layer(y, phase=torch.tensor([phase]))[0, 0]
        torch.testing.assert_close(got, _loop_circular_interpolation(y[0, 0], s, phase, mode))


def _loop_circular_transposed(y: torch.Tensor, conv: nn.ConvTranspose2d, phase: int) -> torch.Tensor:
    """out[n] = sum over inputs m and taps k landing on n = s m + phase + d k - p, modulo s * H."""
    (s, _), (p, _), (d, _), k = conv.stride, conv.padding, conv.dilation, conv.kernel_size[0]
    i, j = divmod(phase, s)
    cin, h, w = y.shape
    weight = conv.weight.detach().double()
    out = torch.zeros(conv.out_channels, s * h, s * w, dtype=torch.float64)
    for m, n, a, b in itertools.product(range(h), range(w), range(k), range(k)):
        r, c = (s * m + i + d * a - p) % (s * h), (s * n + j + d * b - p) % (s * w)
        out[:, r, c] += torch.einsum("i,io->o", y[:, m, n], weight[:, :, a, b])
    return out + conv.bias.detach().double()[:, None, None]


@pytest.mark.parametrize("config", [(2, 2, 0, 1), (4, 2, 1, 1), (3, 2, 1, 2), (3, 3, 1, 1)], ids=str)
def test_circular_polyphase_transposed_conv_matches_the_definition(config):
    k, s, p, d = config
    torch.manual_seed(3)
    conv = nn.ConvTranspose2d(2, 3, k, s, p, dilation=d).double()
    layer = PolyphaseConvTranspose2d.from_conv(conv, circular=True)
    y = torch.randn(1, 2, 3, 4, dtype=torch.float64)
    for phase in range(s * s):
        got = layer(y, phase=torch.tensor([phase]))[0]
        torch.testing.assert_close(got, _loop_circular_transposed(y[0], conv, phase))


def test_phases_differ_per_sample():
    torch.manual_seed(4)
    y = torch.randn(3, 2, 4, 4)
    layer = PolyphaseUpsampling(2, mode="bicubic", circular=True)
    phase = torch.tensor([0, 3, 1])
    out = layer(y, phase=phase)
    for n in range(3):
        torch.testing.assert_close(out[n:n + 1], layer(y[n:n + 1], phase=phase[n:n + 1]))


def test_upsampling_undoes_the_subsampling_it_pairs_with():
    """APS keeps component (i, j); nearest APS-U puts it back there: selecting it again is the identity,
    and a circular shift of the input shifts the round trip alike (the U-Net's exactness in small)."""
    torch.manual_seed(5)
    down, up = AdaptivePolyphaseSampling(2, circular=True), PolyphaseUpsampling(2, circular=True)
    x = torch.randn(2, 3, 8, 8)
    y, phase = down(x, return_phase=True)
    assert torch.equal(down(up(y, phase=phase), phase=phase), y)
    for shift in [(1, 0), (0, 1), (3, 5)]:
        xs = torch.roll(x, shift, dims=(2, 3))
        ys, ps = down(xs, return_phase=True)
        torch.testing.assert_close(up(ys, phase=ps), torch.roll(up(y, phase=phase), shift, dims=(2, 3)))


def test_compose_phases_by_a_direct_offset():
    rng = torch.Generator().manual_seed(6)
    strides = [(2, 2), (2, 3), (3, 2)]
    phases = [torch.randint(0, sh * sw, (5,), generator=rng) for sh, sw in strides]
    got = compose_phases(phases, strides)
    for n in range(5):  # a sample of the last map sits at i_1 + s_1 (i_2 + s_2 i_3) of the first
        rows = [int(p[n]) // sw for p, (_, sw) in zip(phases, strides)]
        cols = [int(p[n]) % sw for p, (_, sw) in zip(phases, strides)]
        i = rows[0] + 2 * (rows[1] + 2 * rows[2])
        j = cols[0] + 2 * (cols[1] + 3 * cols[2])
        assert int(got[n]) == i * (2 * 3 * 2) + j
    weights = compose_phases([F.one_hot(p, sh * sw).float() for p, (sh, sw) in zip(phases, strides)], strides)
    assert torch.equal(weights.argmax(1), got) and torch.allclose(weights.sum(1), torch.ones(5))


def test_protocol_roles_and_gradients():
    assert phase_role(PolyphaseUpsampling(2)) == "up" and phase_role(AdaptivePolyphaseSampling(2)) == "down"
    assert phase_role(PolyphaseConvTranspose2d(2, 2, 2, 2)) == "up" and phase_role(nn.Upsample(scale_factor=2)) is None
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    PolyphaseUpsampling(2, mode="bilinear", circular=True, filt_size=3)(x, phase=torch.tensor([1, 2])).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_bad_input_is_one_clear_line():
    up = PolyphaseUpsampling(2)
    with pytest.raises(ConfigError, match=r"integer phase of shape \(2,\)"):
        up(torch.randn(2, 1, 3, 3), phase=torch.tensor([0]))
    with pytest.raises(ConfigError, match="LearnablePolyphaseUpsampling"):
        up(torch.randn(1, 1, 3, 3), phase=torch.tensor([[0.5, 0.5, 0.0, 0.0]]))
    with pytest.raises(ConfigError, match="mode must be one of"):
        PolyphaseUpsampling(2, mode="trilinear")
    with pytest.raises(ConfigError, match="one factor"):
        PolyphaseUpsampling((2, 3), mode="pixel_shuffle")
    with pytest.raises(ConfigError, match="one stride per phase"):
        compose_phases([torch.tensor([0])], [2, 2])
