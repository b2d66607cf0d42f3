"""FLC and ASAP pooling (issue 19): the layers against an explicit float64 DFT and the authors' code.

The reference transforms with explicit DFT sums (no torch.fft), moves the spectrum with explicit
index arithmetic (fftshift / ifftshift written out), windows, crops and transforms back; the
authors' stride-2 code (GeJulia/flc_pooling: ``FLC_Pooling``, ``ASAP_padding_one``) is also
transcribed literally with torch.fft and numpy's Hamming window, for ``crop='authors'``.
"""
from __future__ import annotations

import cmath
import math

import numpy as np
import pytest
import torch

from antialiased.errors import ConfigError
from antialiased.layers import ASAPPool, FLCPool, asap_pool2d, flc_pool2d, fourier_low_cut
from antialiased.layers import fourier


def _dft_1d(values: list[complex], sign: int) -> list[complex]:
    n = len(values)
    return [sum(values[t] * cmath.exp(sign * 2j * math.pi * k * t / n) for t in range(n)) for k in range(n)]


def _reference_side(x: list[complex], s: int, hamming: bool, pad_one: bool, crop: str) -> list[complex]:
    """One side, by the definition: pad, DFT / N, fftshift, window, crop, ifftshift, inverse DFT."""
    signal = list(x) + ([0.0] if pad_one else [])
    big = len(signal)
    spectrum = [v / big for v in _dft_1d(signal, -1)]
    shifted = [spectrum[(j - big // 2) % big] for j in range(big)]  # index j holds frequency j - N//2
    if hamming:
        window = np.abs(np.hamming(big))
        shifted = [v * math.sqrt(window[j]) for j, v in enumerate(shifted)]
    if crop == "authors":
        start, stop = int(big / 4), int(big / 4 * 3)
    else:
        m = -(-len(x) // s)
        start, stop = big // 2 - m // 2, big // 2 - m // 2 + m
    kept = shifted[start:stop]
    m = len(kept)
    unshifted = [kept[(i + m // 2) % m] for i in range(m)]  # ifftshift written out
    return _dft_1d(unshifted, +1)  # norm="forward": the inverse is not scaled


def _reference(x: torch.Tensor, stride, hamming=False, pad_one=False, crop="centered") -> torch.Tensor:
    """Separable: rows, then columns, per channel; the real part at the end."""
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    out = []
    for plane in x.reshape(-1, *x.shape[-2:]).tolist():
        rows = [_reference_side(r, sw, hamming, pad_one, crop) for r in plane]
        cols = [_reference_side([r[j] for r in rows], sh, hamming, pad_one, crop) for j in range(len(rows[0]))]
        out.append([[cols[j][i].real for j in range(len(cols))] for i in range(len(cols[0]))])
    return torch.tensor(out, dtype=torch.float64).reshape(*x.shape[:-2], len(out[0]), len(out[0][0]))


def _authors_flc(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    low = torch.fft.fftshift(torch.fft.fft2(x, norm="forward"))[:, :, int(h / 4):int(h / 4 * 3), int(w / 4):int(w / 4 * 3)]
    return torch.fft.ifft2(torch.fft.ifftshift(low), norm="forward").real


def _authors_asap_padding_one(x: torch.Tensor) -> torch.Tensor:
    x = torch.nn.functional.pad(x, (0, 1, 0, 1), "constant", 0)
    window = torch.tensor(np.sqrt(np.outer(np.abs(np.hamming(x.size(2))), np.abs(np.hamming(x.size(3))))))
    low = torch.fft.fftshift(torch.fft.fft2(x, norm="forward")) * window
    low = low[:, :, int(x.size(2) / 4):int(x.size(2) / 4 * 3), int(x.size(3) / 4):int(x.size(3) / 4 * 3)]
    return torch.fft.ifft2(torch.fft.ifftshift(low), norm="forward").real


SIZES = [(8, 8), (12, 16), (6, 10), (7, 9), (5, 4), (1, 3)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("hamming,pad_one", [(False, False), (True, True), (True, False)])
def test_stride_2_matches_the_explicit_dft(size, hamming, pad_one, one_thread):
    x = torch.randn(2, 2, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(sum(size)))
    got = fourier_low_cut(x, 2, hamming=hamming, pad_one=pad_one)
    assert got.shape == (2, 2, -(-size[0] // 2), -(-size[1] // 2))
    torch.testing.assert_close(got, _reference(x, 2, hamming, pad_one), rtol=0, atol=1e-12)


@pytest.mark.parametrize("stride,size", [(3, (9, 12)), (3, (7, 8)), ((2, 3), (8, 9)), (4, (10, 16))])
def test_other_strides_match_the_explicit_dft(stride, size, one_thread):
    x = torch.randn(1, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(flc_pool2d(x, stride), _reference(x, stride), rtol=0, atol=1e-12)
    torch.testing.assert_close(asap_pool2d(x, stride), _reference(x, stride, True, True), rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [(8, 8), (16, 12), (6, 10), (14, 14), (7, 9), (32, 28)])
def test_authors_crop_is_their_code_literally(size, one_thread):
    x = torch.randn(2, 2, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(flc_pool2d(x, crop="authors"), _authors_flc(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(asap_pool2d(x, crop="authors"), _authors_asap_padding_one(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [(8, 8), (16, 12), (32, 28)])
def test_centered_crop_equals_the_authors_where_sides_divide_by_4(size, one_thread):
    x = torch.randn(1, 2, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(flc_pool2d(x), _authors_flc(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(asap_pool2d(x), _authors_asap_padding_one(x), rtol=0, atol=1e-12)


def test_authors_crop_is_off_centre_for_sides_2_mod_4(one_thread):
    """The published indices at H = 6 keep frequencies -2..0: the result is not the centred band's."""
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    assert not torch.allclose(flc_pool2d(x, crop="authors"), flc_pool2d(x), atol=1e-3)


@pytest.mark.parametrize("hamming,pad_one", [(False, False), (True, True)])
def test_fft_path_for_large_maps_matches_the_matrix_path(hamming, pad_one, one_thread, monkeypatch):
    x = torch.randn(1, 2, 130, 135, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    by_fft = fourier_low_cut(x, 2, hamming=hamming, pad_one=pad_one)  # sides > 128: torch.fft
    monkeypatch.setattr(fourier, "_MATRIX_MAX_SIDE", 1000)
    by_matrices = fourier_low_cut(x, 2, hamming=hamming, pad_one=pad_one)
    torch.testing.assert_close(by_fft, by_matrices, rtol=0, atol=1e-12)
    small = x[..., :12, :10]
    monkeypatch.setattr(fourier, "_MATRIX_MAX_SIDE", 4)
    torch.testing.assert_close(fourier_low_cut(small, 2, hamming=hamming, pad_one=pad_one),
                               _reference(small, 2, hamming, pad_one), rtol=0, atol=1e-12)


def test_dc_gain(one_thread):
    """FLC keeps a constant; ASAP scales DC by the window there (1 for the odd length of pad_one)."""
    const = torch.full((1, 1, 8, 8), 2.0, dtype=torch.float64)
    torch.testing.assert_close(flc_pool2d(const), torch.full((1, 1, 4, 4), 2.0, dtype=torch.float64))
    # pad_one: the padded 9x9 map has mean 2 * 64 / 81, and the output's mean is its DC bin, unscaled.
    torch.testing.assert_close(asap_pool2d(const).mean(), torch.tensor(2.0 * 64 / 81, dtype=torch.float64))
    dc = float(np.hamming(8)[4])  # N = 8: DC sits at index 4 of a symmetric window centred at 3.5
    torch.testing.assert_close(asap_pool2d(const, pad_one=False), torch.full((1, 1, 4, 4), 2.0 * dc, dtype=torch.float64))


def test_gradients_are_the_adjoint(one_thread):
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: fourier_low_cut(t, 2, hamming=True, pad_one=True), (x,))
    assert torch.autograd.gradcheck(lambda t: flc_pool2d(t, (2, 3)), (x,))


def test_backward_keeps_nothing_input_sized(one_thread):
    x = torch.randn(4, 8, 32, 32, requires_grad=True)
    saved = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        ASAPPool(2)(x).sum().backward()
    assert saved and max(saved) < x.numel() * x.element_size() / 4
    assert x.grad is not None and x.grad.shape == x.shape


def test_half_precision_and_autocast_compute_in_float32(one_thread):
    x = torch.randn(2, 3, 16, 16)
    half = x.to(torch.bfloat16)
    out = flc_pool2d(half)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, flc_pool2d(half.float()).to(torch.bfloat16), rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = ASAPPool(2)(x)
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, ASAPPool(2)(x), rtol=0, atol=0)


def test_modules_have_no_state_and_keep_channels_last(one_thread):
    pool = torch.nn.Sequential(FLCPool(2), ASAPPool((2, 2), pad_one=False))
    assert list(pool.state_dict()) == []
    assert repr(pool[1]) == "ASAPPool(stride=(2, 2), pad_one=False)"
    x = torch.randn(2, 4, 16, 16).to(memory_format=torch.channels_last)
    torch.testing.assert_close(pool(x), pool(x.contiguous()))


@pytest.mark.parametrize("call,message", [
    (lambda: FLCPool(2, crop="middle"), "crop must be one of"),
    (lambda: FLCPool(3, crop="authors"), "use crop='centered'"),
    (lambda: FLCPool(0), "stride must be a positive integer"),
    (lambda: flc_pool2d(torch.ones(3, 8, 8)), "(N, C, H, W)"),
    (lambda: flc_pool2d(torch.ones(1, 1, 8, 8, dtype=torch.int64)), "floating-point"),
])
def test_bad_input_is_one_clear_line(call, message):
    with pytest.raises(ConfigError, match=None) as info:
        call()
    assert message in str(info.value) and "\n" not in str(info.value)
