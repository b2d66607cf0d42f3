"""BlurPool layers: published outputs, every padding mode, exact gradients, nothing saved for backward."""
from __future__ import annotations

import copy
import itertools
import pickle
import re

import pytest
import torch
import torch.nn.functional as F

import antialiased.layers as layers
from antialiased.errors import ConfigError
from antialiased.layers import _separable
from antialiased.layers import (
    BlurPool,
    BlurPool1D,
    BlurPool3D,
    binomial_filter,
    blur_pool1d,
    blur_pool2d,
    blur_pool3d,
)

CLASSES = {1: BlurPool1D, 2: BlurPool, 3: BlurPool3D}
FUNCTIONALS = {1: blur_pool1d, 2: blur_pool2d, 3: blur_pool3d}
CONVS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TORCH_PAD = {"reflect": "reflect", "replicate": "replicate", "zero": "constant", "circular": "circular"}


def reference(x: torch.Tensor, filt_size: int, stride: int = 2, pad_type: str = "reflect", pad_off: int = 0) -> torch.Tensor:
    """The textbook formulation: pad with F.pad, then a depthwise convolution with the 2-D/3-D filter."""
    ndim = x.dim() - 2
    before, after = (filt_size - 1) // 2 + pad_off, filt_size // 2 + pad_off
    mode = TORCH_PAD[pad_type]
    if mode == "reflect" and max(before, after) >= min(x.shape[2:]):
        mode = "replicate"  # the documented fallback for small maps
    padded = F.pad(x, [before, after] * ndim, mode=mode) if before or after else x
    taps = torch.tensor([float(c) for c in _binomial_row(filt_size)], dtype=x.dtype)
    filt = taps
    for _ in range(ndim - 1):
        filt = filt[..., None] * taps
    filt = (filt / filt.sum()).expand(x.shape[1], 1, *filt.shape)
    return CONVS[ndim](padded, filt, stride=stride, groups=x.shape[1])


def _binomial_row(n: int) -> list[int]:
    row = [1]
    for _ in range(n - 1):
        row = [a + b for a, b in zip([0] + row, row + [0])]
    return row


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- published outputs

@pytest.fixture(scope="module")
def golden_blurpool(reference_dir):
    return torch.load(reference_dir / "golden_blurpool.pt", weights_only=True)


def _golden_keys() -> list[str]:
    return [
        f"{d}_filt{f}_{pad}_s{s}_off{off}"
        for d, f, pad, s, off in itertools.product(
            ("2d", "1d"), range(1, 8), ("reflect", "replicate", "zero"), (1, 2, 3), (0, 1)
        )
    ]


def test_golden_file_has_the_expected_configurations(golden_blurpool):
    assert set(golden_blurpool["outputs"]) == set(_golden_keys())


@pytest.mark.parametrize("requires_grad", [False, True], ids=["inference", "training"])
def test_matches_published_outputs(golden_blurpool, requires_grad):
    failures = []
    for key, expected in golden_blurpool["outputs"].items():
        dims, f, pad, s, off = re.fullmatch(r"(\dd)_filt(\d)_(\w+)_s(\d)_off(\d)", key).groups()
        layer = (BlurPool if dims == "2d" else BlurPool1D)(4, pad_type=pad, filt_size=int(f), stride=int(s), pad_off=int(off))
        x = golden_blurpool["inputs"][dims].clone().requires_grad_(requires_grad)
        out = layer(x)
        if out.shape != expected.shape or not torch.allclose(out, expected, rtol=1e-4, atol=1e-4):
            failures.append(key)
    assert not failures, f"outputs differ from the published layer for {failures}"


# ---------------------------------------------------------------- against a direct computation

CONFIGS = list(itertools.product((2, 3, 4, 5, 7), (1, 2, 3), ("reflect", "replicate", "zero", "circular"), (0, 1)))


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_outputs_and_gradients_equal_pad_then_conv(ndim):
    torch.manual_seed(ndim)
    sizes = {1: (1, 2, 5, 9, 16), 2: (3, 6, 9), 3: (4, 5)}[ndim]
    checked = 0
    for (f, s, pad, off), size in itertools.product(CONFIGS, sizes):
        if pad == "circular" and f // 2 + off > size:
            continue  # F.pad's circular mode (the reference) cannot wrap more than once
        x = torch.randn((2, 3) + (size,) * ndim, dtype=torch.float64, requires_grad=True)
        x_ref = x.detach().clone().requires_grad_(True)
        out = CLASSES[ndim](3, pad_type=pad, filt_size=f, stride=s, pad_off=off).double()(x)
        expected = reference(x_ref, f, s, pad, off)
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
        grad = torch.randn_like(expected)
        out.backward(grad)
        expected.backward(grad)
        torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-12, atol=1e-12)
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("pad_type", ["reflect", "zero", "circular", "replicate"])
def test_gradcheck(pad_type):
    x = torch.randn(1, 2, 7, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: blur_pool2d(t, 4, 2, pad_type), (x,))
    y = torch.randn(1, 2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: blur_pool3d(t, 3, 2, pad_type, 1), (y,))


def test_circular_padding_wraps_around():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 0, 0] = 1.0  # a corner pixel leaks to the opposite side only with circular padding
    out = BlurPool(1, pad_type="circular", filt_size=3, stride=1)(x)
    assert out[0, 0, -1, -1] == pytest.approx(1 / 16)
    assert BlurPool(1, pad_type="zero", filt_size=3, stride=1)(x)[0, 0, -1, -1] == 0


def test_blurpool3d_equals_direct_sum():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 7, 8, dtype=torch.float64)
    out = BlurPool3D(3, pad_type="zero", filt_size=3, stride=2)(x)
    w = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64) / 4
    padded = F.pad(x, [1, 1] * 3)
    expected = torch.zeros_like(out)
    for i, j, k in itertools.product(range(3), repeat=3):
        expected += w[i] * w[j] * w[k] * padded[:, :, i::2, j::2, k::2][:, :, : out.shape[2], : out.shape[3], : out.shape[4]]
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_functional_equals_module(ndim):
    x = torch.randn((2, 5) + (9,) * ndim)
    for f, s, pad, off in [(4, 2, "reflect", 0), (3, 3, "zero", 1), (5, 1, "replicate", 0), (1, 2, "reflect", 1)]:
        module = CLASSES[ndim](5, pad_type=pad, filt_size=f, stride=s, pad_off=off)
        torch.testing.assert_close(FUNCTIONALS[ndim](x, filt_size=f, stride=s, pad_type=pad, pad_off=off), module(x))


def test_aliases_refl_and_repl():
    x = torch.randn(1, 2, 9, 9)
    torch.testing.assert_close(BlurPool(2, pad_type="refl")(x), BlurPool(2, pad_type="reflect")(x))
    torch.testing.assert_close(BlurPool(2, pad_type="repl")(x), BlurPool(2, pad_type="replicate")(x))


def test_binomial_filter_values():
    torch.testing.assert_close(binomial_filter(4, 1), torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8)
    f2 = binomial_filter(5)
    assert f2.shape == (5, 5) and f2.sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(f2, torch.outer(binomial_filter(5, 1), binomial_filter(5, 1)))


# ---------------------------------------------------------------- code paths

@pytest.fixture
def separable_kernel(monkeypatch):
    """The operator's CPU kernel set to the ATen-op separable one (whose internals these tests probe)."""
    monkeypatch.setitem(layers._ops.KERNELS, "cpu", _separable)


def test_matmul_pass_is_used_and_agrees(monkeypatch, separable_kernel):
    monkeypatch.setattr(_separable, "_MATMUL_MIN_LENGTH", 1)
    monkeypatch.setattr(_separable, "_MATMUL_MAX_LENGTH", 64)
    monkeypatch.setattr(_separable, "_MATMUL_MIN_ELEMENTS", 1)
    used = []
    original = _separable.dense_matrix
    monkeypatch.setattr(_separable, "dense_matrix", lambda *a, **k: used.append(a[0].n) or original(*a, **k))
    for pad in ("reflect", "zero", "circular", "replicate"):
        x = torch.randn(2, 3, 5, 30, dtype=torch.float64, requires_grad=True)
        x_ref = x.detach().clone().requires_grad_(True)
        out, expected = blur_pool2d(x, 4, 2, pad), reference(x_ref, 4, 2, pad)
        torch.testing.assert_close(out, expected)
        grad = torch.randn_like(expected)
        out.backward(grad)
        expected.backward(grad)
        torch.testing.assert_close(x.grad, x_ref.grad)
    assert 30 in used


def test_matrix_is_built_once_per_plan_dtype_and_scale():
    p = _separable.plan(30, (0.25, 0.5, 0.25), 2, 1, 1, "constant")
    assert _separable.plan(30, (0.25, 0.5, 0.25), 2, 1, 1, "constant") is p
    a = _separable.dense_matrix(p, torch.float32, torch.device("cpu"))
    assert _separable.dense_matrix(p, torch.float32, torch.device("cpu")) is a
    assert _separable.dense_matrix(p, torch.float32, torch.device("cpu"), 2.0) is not a
    # Row i holds the taps at columns 2i-1 .. 2i+1 (zero padding drops the ones outside).
    expected = torch.zeros(15, 30)
    for i in range(15):
        for k, w in enumerate((0.25, 0.5, 0.25)):
            if 0 <= 2 * i + k - 1 < 30:
                expected[i, 2 * i + k - 1] = w
    torch.testing.assert_close(a, expected)


def test_chunked_and_matmul_free_paths_agree(monkeypatch, separable_kernel):
    torch.manual_seed(1)
    x = torch.randn(3, 6, 20, 21, requires_grad=True)
    expected = reference(x.detach(), 4)
    monkeypatch.setattr(_separable, "_CHUNK_ELEMENTS", 500)  # forces chunking over batch*channels
    torch.testing.assert_close(blur_pool2d(x), expected)
    torch.testing.assert_close(blur_pool2d(x.detach().contiguous(memory_format=torch.channels_last)), expected)
    monkeypatch.setattr(_separable, "_MATMUL_MAX_LENGTH", 4)  # strided-view passes on every dimension
    monkeypatch.setattr(_separable, "_MATMUL_MIN_LENGTH", 1)
    torch.testing.assert_close(blur_pool2d(x), expected)
    long = torch.randn(2, 3, 1000, dtype=torch.float64, requires_grad=True)
    out = blur_pool1d(long, 5, 3, "reflect")
    torch.testing.assert_close(out, reference(long.detach(), 5, 3))
    assert torch.autograd.gradcheck(lambda t: blur_pool1d(t, 5, 3, "circular"), (long[:, :, :40].detach().requires_grad_(),))


def test_channels_last_stays_channels_last_with_equal_values_and_gradients():
    x = torch.randn(2, 8, 15, 12)
    x_cl = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    x_ref = x.clone().requires_grad_(True)
    out = BlurPool(8)(x_cl)
    assert out.is_contiguous(memory_format=torch.channels_last)
    expected = reference(x_ref, 4)
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(expected)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(x_cl.grad, x_ref.grad)


def test_small_maps_with_reflect_padding_fall_back_to_replicate():
    x = torch.randn(2, 3, 2, 3)  # reflect padding of 3 needs a map larger than 3
    out = BlurPool(3, filt_size=7)(x)
    torch.testing.assert_close(out, BlurPool(3, pad_type="replicate", filt_size=7)(x))
    assert out.shape == (2, 3, 1, 2)
    assert BlurPool(3, filt_size=4)(torch.randn(1, 3, 1, 1)).shape == (1, 3, 1, 1)


def test_saves_no_tensors_for_backward():
    """The blur's backward needs only its fixed filter: autograd keeps that buffer, nothing input-sized."""
    saved = []
    x = torch.randn(2, 4, 16, 16, requires_grad=True)
    layer = BlurPool(4)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = layer(x)
    assert len(saved) == 1 and saved[0] is layer.filt
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        blur_pool2d(x)  # the functional's binomial filter is implicit: nothing at all
    assert saved == []
    # The textbook pad+conv keeps the padded input (what this layer avoids).
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        reference(x, 4)
    assert any(t.shape == (2, 4, 19, 19) for t in saved)
    out.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize("pad_type", ["reflect", "circular"])
def test_double_backward_equals_pad_then_conv(pad_type):
    """The backward is itself differentiable: second derivatives (of a non-linear loss) match the
    textbook formulation's, and gradgradcheck passes in float64."""
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64, requires_grad=True)
    layer = BlurPool(3, pad_type=pad_type, filt_size=5).double()
    (grad,) = torch.autograd.grad(layer(x).pow(3).sum(), x, create_graph=True)
    (second,) = torch.autograd.grad(grad.square().sum(), x)
    x_ref = x.detach().clone().requires_grad_(True)
    (grad_ref,) = torch.autograd.grad(reference(x_ref, 5, pad_type=pad_type).pow(3).sum(), x_ref, create_graph=True)
    (second_ref,) = torch.autograd.grad(grad_ref.square().sum(), x_ref)
    torch.testing.assert_close(grad, grad_ref)
    torch.testing.assert_close(second, second_ref)
    assert torch.autograd.gradgradcheck(layer, (x[:1, :, :6, :5].detach().requires_grad_(),))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtypes_are_kept(dtype):
    x = torch.randn(2, 4, 11, 10)
    layer = BlurPool(4).to(dtype)
    assert layer.filt.dtype == dtype
    xd = x.to(dtype).requires_grad_(True)
    out = layer(xd)
    assert out.dtype == dtype
    tol = {torch.float16: 2e-3, torch.bfloat16: 2e-2, torch.float64: 1e-6}[dtype]
    torch.testing.assert_close(out.float(), reference(x.to(dtype).float(), 4), rtol=tol, atol=tol)
    out.float().sum().backward()
    assert xd.grad.dtype == dtype
    # A float32 layer applied to a low-precision input (as under autocast) also keeps the input's dtype.
    assert BlurPool(4)(x.to(dtype)).dtype == dtype


def test_autocast_cpu_bfloat16():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 12, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = BlurPool(4)(conv(x))
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert conv.weight.grad is not None


def test_device_and_dtype_moves_follow_the_buffer():
    layer = BlurPool(3).to("cpu").double()
    assert layer.filt.dtype == torch.float64 and layer.filt.device.type == "cpu"
    assert layer(torch.randn(1, 3, 8, 8, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_and_saves_nothing():
    x = torch.randn(2, 8, 17, 16)
    layer = BlurPool(8)
    expected = layer(x)
    xc = x.cuda().requires_grad_(True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = layer.cuda()(xc)
    assert [t.shape for t in saved] == [layer.filt.shape]  # the filter only
    torch.testing.assert_close(out.cpu(), expected)
    out.sum().backward()
    x_ref = x.clone().requires_grad_(True)
    reference(x_ref, 4).sum().backward()
    torch.testing.assert_close(xc.grad.cpu(), x_ref.grad)


def test_torch_compile_traces_the_layer():
    layer = BlurPool(3)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    x = torch.randn(1, 3, 10, 10, requires_grad=True)
    out = compiled(x)
    torch.testing.assert_close(out, reference(x.detach(), 4))
    out.sum().backward()
    x_ref = x.detach().clone().requires_grad_(True)
    reference(x_ref, 4).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)


# ---------------------------------------------------------------- module contract

@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_state_dict_holds_the_filter(ndim):
    layer = CLASSES[ndim](6, filt_size=5)
    state = layer.state_dict()
    assert list(state) == ["filt"]
    assert state["filt"].shape == (6, 1) + (5,) * ndim
    torch.testing.assert_close(state["filt"][0, 0], binomial_filter(5, ndim))
    CLASSES[ndim](6, filt_size=5).load_state_dict(state)


def _pad_conv(x: torch.Tensor, filt: torch.Tensor, stride: int, pads: list[int], mode: str) -> torch.Tensor:
    """Independent of the layer's kernels: F.pad, then the grouped convolution with ``filt``."""
    return CONVS[x.dim() - 2](F.pad(x, pads, mode=mode), filt, stride=stride, groups=x.shape[1])


def _other_filters(channels: int, f: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(f)
    row, col = torch.rand(f, generator=g, dtype=torch.float64), torch.rand(f, generator=g, dtype=torch.float64) - 0.3
    return {
        "separable, not binomial": torch.outer(row, col).expand(channels, 1, f, f).contiguous(),
        "not separable": torch.rand(f, f, generator=g, dtype=torch.float64).expand(channels, 1, f, f).contiguous(),
        "one per channel": torch.outer(row, row) * torch.arange(1.0, channels + 1, dtype=torch.float64).view(-1, 1, 1, 1),
    }


@pytest.mark.parametrize("pad_type", ["reflect", "replicate", "zero", "circular"])
def test_a_loaded_filter_is_applied(pad_type):
    """Any filter loaded into the layer is what it applies, separable or not, forward and backward."""
    torch.manual_seed(0)
    for f, stride in ((3, 2), (4, 2), (5, 1)):
        for what, filt in _other_filters(3, f).items():
            layer = BlurPool(3, pad_type=pad_type, filt_size=f, stride=stride).double()
            layer.load_state_dict({"filt": filt})
            x = torch.randn(2, 3, 9, 8, dtype=torch.float64, requires_grad=True)
            x_ref = x.detach().clone().requires_grad_(True)
            out = layer(x)
            expected = _pad_conv(x_ref, filt, stride, [(f - 1) // 2, f // 2] * 2, TORCH_PAD[pad_type])
            torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12, msg=f"{what}, f={f}")
            grad = torch.randn_like(expected)
            out.backward(grad)
            expected.backward(grad)
            torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-12, atol=1e-12, msg=f"{what}, f={f}")
            with torch.no_grad():
                torch.testing.assert_close(layer(x), expected, rtol=1e-12, atol=1e-12)


def test_editing_the_filter_in_place_is_picked_up():
    layer = BlurPool(2, filt_size=3, pad_type="zero")
    x = torch.randn(1, 2, 8, 8)
    before = layer(x)
    with torch.no_grad():
        layer.filt.mul_(2.0)  # still separable: the cached taps must follow the new version
    torch.testing.assert_close(layer(x), 2 * before)
    with torch.no_grad():
        layer.filt[:, :, 1, 1] += 1.0  # no longer separable
    torch.testing.assert_close(layer(x), _pad_conv(x, layer.filt, 2, [1, 1, 1, 1], "constant"))


def test_layers_and_functionals_made_under_inference_mode():
    """Tensors made under inference mode have no version counter; the layer must not need one."""
    x = torch.randn(1, 3, 9, 8)
    expected = reference(x, 4)
    with torch.inference_mode():
        torch.testing.assert_close(blur_pool2d(x, 4, 2, "reflect"), expected)
        layer = BlurPool(3)
        torch.testing.assert_close(layer(x), expected)
        layer.filt.mul_(0.5)  # an edit of an inference-mode filter is still picked up
        torch.testing.assert_close(layer(x), 0.5 * expected)
    torch.testing.assert_close(blur_pool2d(x, 4, 2, "reflect"), expected)


def test_filter_size_one_applies_its_weight():
    layer = BlurPool(2, filt_size=1, stride=2)
    x = torch.randn(1, 2, 7, 7)
    torch.testing.assert_close(layer(x), x[:, :, ::2, ::2])
    layer.load_state_dict({"filt": torch.full((2, 1, 1, 1), 0.5)})
    torch.testing.assert_close(layer(x), 0.5 * x[:, :, ::2, ::2])


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_non_persistent_filter(ndim):
    layer = CLASSES[ndim](4, pad_type="zero", filt_size=3, stride=2, persistent=False)
    assert list(layer.state_dict()) == []
    assert "persistent=False" in repr(layer)
    layer.load_state_dict({}, strict=True)
    moved = layer.double()
    assert moved.filt.dtype == torch.float64  # still follows .to()
    x = torch.randn((2, 4) + (7,) * ndim, dtype=torch.float64)
    torch.testing.assert_close(moved(x), reference(x, 3, 2, "zero"))
    # The keyword the model conversion uses, and a subclass keeps working.

    class Tagged(BlurPool):
        pass

    tagged = Tagged(4, pad_type="reflect", filt_size=5, stride=2, persistent=False)
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 1), tagged)
    assert list(model.state_dict()) == ["0.weight", "0.bias"]
    assert tagged(torch.randn(1, 4, 9, 9)).shape == (1, 4, 5, 5)


def test_pickle_and_deepcopy_roundtrip():
    layer = BlurPool(3, pad_type="zero", filt_size=5, stride=3, pad_off=1)
    x = torch.randn(1, 3, 14, 14)
    for clone in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
        torch.testing.assert_close(clone(x), layer(x))
        assert repr(clone) == repr(layer)


def test_repr_names_the_configuration():
    assert repr(BlurPool(8, pad_type="zero", filt_size=3, stride=2)) == (
        "BlurPool(8, pad_type='zero', filt_size=3, stride=2, pad_off=0)"
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"channels": 0}, "channels"),
        ({"channels": 2.5}, "channels"),
        ({"filt_size": 0}, "filt_size"),
        ({"filt_size": 8}, "filt_size"),
        ({"filt_size": "4"}, "filt_size"),
        ({"stride": 0}, "stride"),
        ({"stride": 1.5}, "stride"),
        ({"pad_type": "mirror"}, "pad_type"),
        ({"pad_off": -1}, "pad_off"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        BlurPool(**{"channels": 4, **kwargs})


def test_bad_inputs_raise_config_error():
    layer = BlurPool(4)
    cases = [
        (lambda: layer(torch.randn(4, 8, 8)), "4-D input.*unsqueeze"),
        (lambda: layer(torch.randn(1, 3, 8, 8)), "built for 4 channels.*channels=3"),
        (lambda: layer(torch.ones(1, 4, 8, 8, dtype=torch.long)), r"floating-point.*\.float\(\)"),
        (lambda: layer(torch.ones(1, 4, 0, 8)), "empty spatial"),
        (lambda: layer(torch.ones(1, 4, 8, 8, device="meta").to("meta")), "filter is on cpu.*input is on meta"),
        (lambda: blur_pool1d([1.0, 2.0]), "3-D input"),
        (lambda: blur_pool1d(torch.ones(1, 2, 5, dtype=torch.int32), filt_size=1), "floating-point"),
        (lambda: blur_pool2d(torch.randn(1, 1, 4, 4), stride=0), "stride"),
        (lambda: blur_pool2d(torch.randn(1, 1, 4, 4), filt_size=9), "filt_size.*1 to 7"),
        (lambda: blur_pool2d(torch.randn(1, 1, 4, 4), pad_type="nope"), "pad_type.*circular"),
    ]
    for call, match in cases:
        with pytest.raises(ConfigError, match=match):
            call()
