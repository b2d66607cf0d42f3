"""The compiled CPU kernel (``layers._native``): equal to the separable kernel (float64 to 1e-12,
float32 to rounding) forward and adjoint, in both memory formats, every padding mode, filter size
and stride, on odd, even and tiny maps; the same on one thread and on two; and the fallbacks
(no compiler, ANTIALIASED_NATIVE=0, inputs it does not take) give the same results."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest
import torch

from antialiased.layers import BlurPool, _native, _ops, _separable
from antialiased.layers._padding import effective_mode

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(_native.status() != "compiled", reason=f"compiled kernel {_native.status()}")]

MODES = ("reflect", "replicate", "constant", "circular")


def _both(x: torch.Tensor, size: int, stride: int, mode: str) -> tuple:
    pads = ((size - 1) // 2, size // 2) * 2
    mode = effective_mode(mode, pads, tuple(x.shape[2:]))
    out = _native.forward(x, None, size, stride, pads, mode)
    expected = _separable.forward(x, None, size, stride, pads, mode)
    grad = torch.randn_like(expected)
    back = _native.backward(grad, None, size, stride, pads, mode, tuple(x.shape[2:]))
    back_expected = _separable.backward(grad, None, size, stride, pads, mode, tuple(x.shape[2:]))
    return out, expected, back, back_expected


@pytest.mark.parametrize("channels_last", [False, True])
def test_equals_the_separable_kernel_forward_and_adjoint(channels_last):
    torch.manual_seed(0)
    sizes = ((9, 8), (14, 14), (7, 13), (2, 3), (1, 1), (30, 31))
    checked = 0
    for (h, w), size, stride, mode in itertools.product(sizes, range(1, 8), (1, 2, 3), MODES):
        x = torch.randn(2, 3, h, w, dtype=torch.float64)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out, expected, back, back_expected = _both(x, size, stride, mode)
        config = (h, w, size, stride, mode)
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-12, msg=str(config))
        torch.testing.assert_close(back, back_expected, rtol=0, atol=1e-12, msg=str(config))
        assert out.stride() == expected.stride() and back.stride() == back_expected.stride(), config
        checked += 1
    assert checked == 504


def test_float32_and_larger_maps():
    torch.manual_seed(1)
    for shape, channels_last in (((2, 64, 57, 56), False), ((2, 64, 57, 56), True), ((1, 8, 112, 111), False)):
        x = torch.randn(shape)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for size, stride in ((4, 2), (3, 1), (5, 2)):
            out, expected, back, back_expected = _both(x, size, stride, "reflect")
            torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(back, back_expected, rtol=1e-5, atol=1e-6)


def test_two_threads_equal_one(monkeypatch):
    """Work split over planes (NCHW), samples or output rows (NHWC, batch 1): the same numbers."""
    torch.manual_seed(2)
    for shape, channels_last in (((3, 16, 40, 41), False), ((1, 32, 48, 40), True), ((5, 8, 32, 32), True)):
        x = torch.randn(shape, dtype=torch.float64)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        torch.manual_seed(3)
        one = _both(x, 4, 2, "reflect")
        monkeypatch.setattr(_native, "_threads", lambda t: 2)
        torch.manual_seed(3)  # the same output gradient
        two = _both(x, 4, 2, "reflect")
        monkeypatch.undo()
        for a, b in zip(one, two):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_inputs_it_does_not_take_go_to_the_separable_kernel(monkeypatch):
    calls = []
    original = _separable.forward
    monkeypatch.setattr(_separable, "forward", lambda *a: calls.append(a[0].dim()) or original(*a))
    x = torch.randn(1, 2, 9, 8)
    _native.forward(x.to(torch.bfloat16), None, 4, 2, (1, 2, 1, 2), "reflect")  # a dtype it has no code for
    _native.forward(torch.randn(1, 2, 9), None, 4, 2, (1, 2), "reflect")  # 1-D
    _native.forward(x, None, 4, 2, (1, 2, 1, 2), "reflect")  # taken
    assert calls == [4, 3]
    strided = torch.randn(2, 3, 18, 16)[:, :, ::2, ::2]  # neither contiguous nor channels_last: copied first
    torch.testing.assert_close(_native.forward(strided, None, 4, 2, (1, 2, 1, 2), "reflect"),
                               _separable.forward(strided, None, 4, 2, (1, 2, 1, 2), "reflect"))


def test_the_operator_runs_it_and_gradcheck_holds(monkeypatch):
    calls = []
    original = _native.forward
    monkeypatch.setattr(_native, "forward", lambda *a: calls.append(1) or original(*a))
    assert _ops.KERNELS["cpu"] is _native
    layer = BlurPool(2, filt_size=5, pad_type="circular").double()
    x = torch.randn(2, 2, 7, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,)) and torch.autograd.gradgradcheck(layer, (x,))
    assert calls


_FALLBACK = """
import torch
from antialiased.layers import BlurPool, _native, _separable, _ops
x = torch.randn(2, 3, 11, 10)
_ops.KERNELS["cpu"] = _separable
expected = BlurPool(3)(x)
_ops.KERNELS["cpu"] = _native
print(_native.status())
assert torch.equal(BlurPool(3)(x), expected)
"""


@pytest.mark.parametrize("env", [{"ANTIALIASED_NATIVE": "0"}, {"CC": "/nonexistent/cc"}])
def test_without_the_compiled_kernel_the_layer_still_runs(env, tmp_path):
    environment = {**os.environ, "ANTIALIASED_KERNEL_DIR": str(tmp_path), **env}
    done = subprocess.run([sys.executable, "-c", _FALLBACK], env=environment, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    status = done.stdout.strip().splitlines()[-1]
    expected = ("disabled by ANTIALIASED_NATIVE=0" if "ANTIALIASED_NATIVE" in env else
                "not available: cannot run the C compiler /nonexistent/cc")
    assert status.startswith(expected), status
    assert not list(tmp_path.glob("*.so"))
