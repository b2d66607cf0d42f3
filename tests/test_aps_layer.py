"""Adaptive polyphase sampling layer: the invariance statement, against a plain-loop reference."""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from antialiased.errors import ConfigError
from antialiased.layers import blur_pool2d
from antialiased.layers.polyphase import (
    AdaptivePolyphaseSampling,
    adaptive_polyphase_sampling,
    polyphase_phase,
    polyphase_select,
)


def reference_phase(x: torch.Tensor, sh: int, sw: int, norm: str) -> list[int]:
    """Plain loops: wrap to multiples of the stride, then the first offset of largest norm."""
    h, w = x.shape[-2:]
    x = x[:, :, [r % h for r in range(-(-h // sh) * sh)]][:, :, :, [c % w for c in range(-(-w // sw) * sw)]]
    order = {"l2": 2, "l1": 1, "linf": float("inf")}[norm]
    phases = []
    for sample in x.double():
        norms = [torch.linalg.vector_norm(sample[:, i::sh, j::sw], ord=order).item()
                 for i in range(sh) for j in range(sw)]
        phases.append(max(range(len(norms)), key=lambda k: (norms[k], -k)))
    return phases


@pytest.mark.parametrize("norm", ["l2", "l1", "linf"])
@pytest.mark.parametrize("stride,size", [(2, (8, 12)), ((3, 2), (9, 10)), (2, (7, 5)), (4, (8, 8))])
def test_phase_and_component_match_plain_loops(norm, stride, size):
    torch.manual_seed(0)
    x = torch.randn(5, 3, *size)
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    phase = polyphase_phase(x, stride, norm)
    assert phase.tolist() == reference_phase(x, sh, sw, norm)
    out = adaptive_polyphase_sampling(x, stride, norm=norm)
    h, w = size
    for n, p in enumerate(phase.tolist()):
        i, j = divmod(p, sw)
        rows = [(i + sh * a) % h for a in range(-(-h // sh))]
        cols = [(j + sw * b) % w for b in range(-(-w // sw))]
        assert torch.equal(out[n], x[n][:, rows][:, :, cols])


def _all_shifts(x: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    shifts = [(dh, dw) for dh in range(h) for dw in range(w)]
    return torch.cat([torch.roll(x, s, dims=(2, 3)) for s in shifts]), shifts


@pytest.mark.parametrize("stride,filt_size", [(2, 1), (3, 1), ((2, 4), 1), (2, 3), (2, 4)])
def test_every_circular_shift_gives_the_shifted_output(stride, filt_size):
    """APS(roll(x, d)) == roll(APS(x), (p + d) // s) and p(roll(x, d)) == (p + d) % s, for every d."""
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    torch.manual_seed(1)
    h, w = 3 * sh, 2 * sw + (4 if sw == 2 else 0)
    x = torch.randn(2, 4, h, w)
    aps = AdaptivePolyphaseSampling(stride, filt_size=filt_size, circular=True)
    y, p = aps(x, return_phase=True)
    batch, shifts = _all_shifts(x, h, w)
    ys, ps = aps(batch, return_phase=True)
    for k, (dh, dw) in enumerate(shifts):
        for n in range(x.shape[0]):
            i, j = divmod(int(p[n]), sw)
            assert int(ps[2 * k + n]) == ((i + dh) % sh) * sw + (j + dw) % sw
            expected = torch.roll(y[n], ((i + dh) // sh, (j + dw) // sw), dims=(1, 2))
            torch.testing.assert_close(ys[2 * k + n], expected, rtol=1e-5, atol=1e-6)


def test_fixed_subsampling_is_not_shift_invariant():
    """The control: x[..., ::2, ::2] of a shifted input is not a shift of the unshifted output."""
    torch.manual_seed(2)
    x = torch.randn(1, 3, 8, 8)
    y = x[..., ::2, ::2]
    shifted = torch.roll(x, (1, 0), dims=(2, 3))[..., ::2, ::2]
    assert all(not torch.allclose(shifted, torch.roll(y, (a, b), dims=(2, 3))) for a in range(4) for b in range(4))


def test_branches_must_share_the_phase():
    """Two branches that meet: with a shared phase the sum shifts; with separate choices it need not."""
    torch.manual_seed(3)
    x = torch.randn(1, 4, 8, 8)
    weight = torch.randn(4, 4, 1, 1)

    def block(inp: torch.Tensor, share: bool) -> torch.Tensor:
        main = torch.relu(inp)
        main_out, phase = adaptive_polyphase_sampling(main, 2, return_phase=True)
        other = F.conv2d(inp, weight)
        # A nonlinearity after the merge: a plain global mean of a sum would average each branch alone.
        return torch.relu(main_out + adaptive_polyphase_sampling(other, 2, phase=phase if share else None))

    def invariant(share: bool) -> bool:
        pooled = block(x, share).mean(dim=(2, 3))
        return all(torch.allclose(block(torch.roll(x, (dh, dw), (2, 3)), share).mean(dim=(2, 3)), pooled, atol=1e-5)
                   for dh in range(8) for dw in range(8))

    assert polyphase_phase(torch.relu(x)).item() != polyphase_phase(F.conv2d(x, weight)).item()
    assert invariant(share=True)
    assert not invariant(share=False)


def test_ties_go_to_the_lowest_phase():
    assert polyphase_phase(torch.full((3, 2, 6, 6), 0.5), 3).tolist() == [0, 0, 0]
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 1] = 2.0  # phase 1
    x[0, 0, 1, 0] = -2.0  # phase 2, same norm
    assert polyphase_phase(x, 2, "l2").item() == 1
    assert polyphase_phase(x, 2, "linf").item() == 1
    x[0, 0, 1, 2] = 0.5  # phase 2 now larger
    assert polyphase_phase(x, 2, "l1").item() == 2


def test_gradients_flow_through_the_chosen_component_only():
    torch.manual_seed(4)
    x = torch.randn(3, 2, 6, 6, dtype=torch.double, requires_grad=True)
    phase = polyphase_phase(x.detach())
    assert torch.autograd.gradcheck(lambda t: adaptive_polyphase_sampling(t, 2), (x,))
    assert torch.autograd.gradcheck(lambda t: adaptive_polyphase_sampling(t, 2, filt_size=3, circular=True), (x,))
    adaptive_polyphase_sampling(x, 2).sum().backward()
    for n, p in enumerate(phase.tolist()):
        mask = torch.zeros(6, 6, dtype=torch.double)
        i, j = divmod(p, 2)
        mask[i::2, j::2] = 1
        assert torch.equal(x.grad[n], mask.expand(2, 6, 6))


def test_aps_lpf_blurs_then_samples_the_blurred_map():
    torch.manual_seed(5)
    x = torch.randn(2, 3, 8, 8)
    for circular, pad_type in [(True, "circular"), (False, "reflect"), (False, "zero")]:
        blurred = blur_pool2d(x, filt_size=4, stride=1, pad_type=pad_type)
        out = adaptive_polyphase_sampling(x, 2, filt_size=4, circular=circular, pad_type=None if circular else pad_type)
        assert torch.equal(out, polyphase_select(blurred, polyphase_phase(blurred), 2))


def test_channels_last_and_autocast():
    torch.manual_seed(6)
    x = torch.randn(2, 8, 8, 8)
    aps = AdaptivePolyphaseSampling(2, filt_size=3, circular=True)
    out = aps(x)
    cl = aps(x.contiguous(memory_format=torch.channels_last))
    assert cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(cl, out)
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, padding_mode="circular")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feat = conv(x)
        low = aps(feat)
    assert feat.dtype == low.dtype == torch.bfloat16
    assert torch.equal(polyphase_phase(feat), polyphase_phase(feat.float()))


def test_given_phase_is_used_and_checked():
    torch.manual_seed(7)
    x = torch.randn(2, 3, 4, 4)
    out = adaptive_polyphase_sampling(x, 2, phase=torch.tensor([3, 0]))
    assert torch.equal(out[0], x[0, :, 1::2, 1::2]) and torch.equal(out[1], x[1, :, ::2, ::2])
    with pytest.raises(ConfigError, match=r"shape \(2,\)"):
        adaptive_polyphase_sampling(x, 2, phase=torch.tensor([1]))
    with pytest.raises(ConfigError, match="integer tensor"):
        adaptive_polyphase_sampling(x, 2, phase=torch.tensor([1.0, 0.0]))


@pytest.mark.parametrize("call,match", [
    (lambda: AdaptivePolyphaseSampling(0), "stride"),
    (lambda: AdaptivePolyphaseSampling((2, 2, 2)), "stride"),
    (lambda: AdaptivePolyphaseSampling(2, norm="l3"), "norm must be one of"),
    (lambda: AdaptivePolyphaseSampling(2, filt_size=9), "filt_size"),
    (lambda: AdaptivePolyphaseSampling(2, filt_size=3, circular=True, pad_type="reflect"), "circular=True"),
    (lambda: AdaptivePolyphaseSampling(2)(torch.randn(3, 8, 8)), "4-D"),
    (lambda: AdaptivePolyphaseSampling(2)(torch.randn(1, 3, 0, 8)), "empty"),
])
def test_bad_arguments_raise_config_errors(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


def test_circular_layers_warn_when_a_side_is_not_divisible():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        AdaptivePolyphaseSampling(2, circular=True)(torch.randn(1, 2, 8, 8))
        AdaptivePolyphaseSampling(2)(torch.randn(1, 2, 7, 8))
    assert not caught
    with pytest.warns(UserWarning, match="7x8 feature map.*divisible by the stride"):
        out = AdaptivePolyphaseSampling(2, circular=True)(torch.randn(1, 2, 7, 8))
    assert out.shape == (1, 2, 4, 4)


def test_module_has_no_state_and_traces():
    aps = AdaptivePolyphaseSampling(2, filt_size=4, norm="l1")
    assert aps.state_dict() == {} and not list(aps.parameters())
    assert repr(aps) == "AdaptivePolyphaseSampling(stride=(2, 2), norm='l1', filt_size=4, circular=False, pad_type='reflect')"
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), aps)
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(traced(x), model(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    torch.manual_seed(8)
    x = torch.randn(4, 16, 16, 16)
    aps = AdaptivePolyphaseSampling(2, filt_size=3, circular=True)
    y, p = aps(x, return_phase=True)
    yc, pc = aps(x.cuda(), return_phase=True)
    assert torch.equal(pc.cpu(), p)
    torch.testing.assert_close(yc.cpu(), y, rtol=1e-5, atol=1e-5)
    with torch.autocast("cuda", dtype=torch.float16):
        half = aps(torch.nn.functional.relu(x.cuda().half()))
    assert half.dtype == torch.float16
