"""Exactness of APS (issue 10, item 5): circular shifts do not change the logits of a converted model.

ResNet-18, MobileNet-v2 and DenseNet-121 (torchvision, random weights, eval mode) converted with
``method="aps"`` / ``"aps-lpf"`` and ``circular=True`` give the same logits, to float tolerance,
and the same top-1 class, for every circular shift tried, at 64x64 and 224x224 (sides divisible by
the total stride, 32). The same models without APS do not: their logits move by far more than the
tolerance. Several shifts go through one forward pass. The default run uses narrow MobileNet-v2 /
DenseNet-121 (same layer structure, fewer channels) and a handful of shifts; ``-m sweep`` runs the
full-width models over every shift of a 32x32 period at 64x64 and many at 224x224.
"""
from __future__ import annotations

import copy
import random

import pytest
import torch

from antialiased.models.antialias import antialias
from antialiased.models.antialias._circular import make_circular

torchvision = pytest.importorskip("torchvision")

NARROW = {
    "resnet18": lambda: torchvision.models.resnet18(num_classes=10),
    "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.25),
    "densenet121": lambda: torchvision.models.DenseNet(8, (6, 12, 24, 16), 16, num_classes=10),
}
FULL = {
    "resnet18": lambda: torchvision.models.resnet18(),
    "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(),
    "densenet121": lambda: torchvision.models.densenet121(),
}
# Odd shifts, shifts that are no multiple of any stride (2..32), large ones, both axes at once.
SHIFTS_64 = [(1, 0), (0, 1), (1, 1), (3, 7), (17, 29), (31, 31), (63, 45), (5, 62)]
SHIFTS_224 = [(1, 0), (13, 7), (101, 57)]
CONTROL_SHIFTS = [(1, 0), (3, 7)]  # enough to show that a model without APS is not invariant
RTOL = 1e-4  # of the largest logit; float32 reorders sums, APS itself adds no error


def _calibrated(build, seed: int = 0) -> torch.nn.Module:
    """A random-weight model whose BatchNorm statistics come from one random batch (eval mode).

    Default running statistics leave some random nets with vanishing activations; one
    training-mode pass gives every layer unit-scale features, so tolerances mean something.
    """
    torch.manual_seed(seed)
    model = build()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: this batch's statistics exactly
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, 64, 64))
    return model.eval()


def _converted(base: torch.nn.Module, build, method: str) -> torch.nn.Module:
    model = antialias(build(), method=method, circular=True, filter_size=3)
    model.load_state_dict(base.state_dict(), strict=True)  # same keys: the base's weights load as they are
    return model.eval()


def _logits(model: torch.nn.Module, x: torch.Tensor, shifts: list[tuple[int, int]], chunk: int = 64) -> torch.Tensor:
    """Logits of ``x`` (one image) and of each circular shift of it: (1 + len(shifts), classes)."""
    batch = torch.cat([x] + [torch.roll(x, s, dims=(2, 3)) for s in shifts])
    with torch.no_grad():
        return torch.cat([model(part) for part in batch.split(chunk)])


def _spread(logits: torch.Tensor) -> float:
    """Largest change of any logit under a shift, relative to the largest logit."""
    return ((logits[1:] - logits[0]).abs().max() / logits[0].abs().max()).item()


@pytest.fixture(scope="module")
def narrow_models() -> dict:
    cache: dict = {}

    def get(name: str, method: str | None) -> torch.nn.Module:
        if (name, None) not in cache:
            cache[name, None] = _calibrated(NARROW[name])
        if (name, method) not in cache:
            cache[name, method] = _converted(cache[name, None], NARROW[name], method)
        return cache[name, method]

    return get


def _check_exact(logits: torch.Tensor, rtol: float = RTOL) -> None:
    scale = logits[0].abs().max().item()
    torch.testing.assert_close(logits[1:], logits[0].expand_as(logits[1:]), rtol=rtol, atol=rtol * scale)
    assert (logits.argmax(dim=1) == logits[0].argmax()).all()


@pytest.mark.parametrize("method", ["aps", "aps-lpf"])
@pytest.mark.parametrize("name", list(NARROW))
def test_aps_is_exactly_invariant_at_64(narrow_models, name, method):
    torch.manual_seed(1)
    x = torch.randn(1, 3, 64, 64)
    model = narrow_models(name, method)
    _check_exact(_logits(model, x, SHIFTS_64))
    baseline = _logits(narrow_models(name, None), x, CONTROL_SHIFTS)
    assert _spread(baseline) > 100 * RTOL, "the baseline should not be shift-invariant"


@pytest.mark.parametrize("name", list(NARROW))
def test_aps_is_exactly_invariant_at_224(narrow_models, name):
    torch.manual_seed(2)
    x = torch.randn(1, 3, 224, 224)
    logits = _logits(narrow_models(name, "aps"), x, SHIFTS_224)
    _check_exact(logits)
    assert logits.shape == (1 + len(SHIFTS_224), 10)
    assert _spread(_logits(narrow_models(name, None), x, CONTROL_SHIFTS)) > 100 * RTOL


@pytest.mark.parametrize("name", list(NARROW))
def test_circular_padding_alone_is_not_enough(narrow_models, name):
    """Circular padding without APS: fixed subsampling grids still see odd shifts differently."""
    model = copy.deepcopy(narrow_models(name, None))
    make_circular(model)
    torch.manual_seed(3)
    logits = _logits(model, torch.randn(1, 3, 64, 64), CONTROL_SHIFTS + [(32, 32)])
    assert _spread(logits[:-1]) > 100 * RTOL
    assert _spread(logits[[0, -1]]) < RTOL  # a whole period of the subsampling grid (32) is a true shift


def test_sides_not_divisible_by_the_total_stride_are_reported(narrow_models):
    with pytest.warns(UserWarning, match="divisible by the stride"):
        _logits(narrow_models("mobilenet_v2", "aps"), torch.randn(1, 3, 72, 72), [])


@pytest.fixture
def sweep_device():
    """CUDA when there is one (TF32 off: exactness is a float32 statement), else the CPU."""
    if not torch.cuda.is_available():
        yield torch.device("cpu")
        return
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


# Float32 on a GPU: the full DenseNet-121 with aps-lpf moved its logits by up to 3.6e-4 of the
# largest one (H200, TF32 off), the rounding of the depthwise blur differing with the position;
# float64 gave exactly 0 for every model and method, so the sweep checks both.
SWEEP_RTOL = {torch.float32: 1e-3, torch.float64: 1e-10}


@pytest.mark.sweep
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("method", ["aps", "aps-lpf"])
@pytest.mark.parametrize("name", list(FULL))
def test_sweep_every_shift_of_a_period_full_width(name, method, dtype, sweep_device):
    base = _calibrated(FULL[name])
    model = _converted(base, FULL[name], method).to(sweep_device, dtype)
    torch.manual_seed(4)
    x = torch.randn(1, 3, 64, 64, device=sweep_device, dtype=dtype)
    shifts = [(dh, dw) for dh in range(32) for dw in range(32)][1:]
    _check_exact(_logits(model, x, shifts, chunk=32).cpu(), SWEEP_RTOL[dtype])
    rng = random.Random(5)
    big = torch.randn(1, 3, 224, 224, device=sweep_device, dtype=dtype)
    shifts = [(rng.randrange(224), rng.randrange(224)) for _ in range(40)] + [(1, 0), (0, 1), (1, 1), (31, 31)]
    _check_exact(_logits(model, big, shifts, chunk=8).cpu(), SWEEP_RTOL[dtype])
    assert _spread(_logits(base.to(sweep_device, dtype), big, shifts[:8], chunk=8)) > 100 * RTOL
