"""The method layers (issue 19) on CUDA: the CPU float64 results, autograd, autocast (skipped without a GPU).

Each layer runs forward and backward on the GPU in float32 and is compared with the same layer on
the CPU in float64 (outputs and input gradients); FLC/ASAP also on a map large enough for the
torch.fft path, and under float16 autocast (computed in float32: the result equals the float32
one rounded to float16).
"""
from __future__ import annotations

import copy

import pytest
import torch

from antialiased.layers import (
    AdaptiveBlurPool,
    ASAPPool,
    FLCPool,
    HaarPool,
    LearnablePolyphaseSampling,
    LearnablePolyphaseUpsampling,
    TranslationInvariantPolyphaseSampling,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def no_tf32():
    """cuDNN's default TF32 convolutions round to ~1e-3: compare full float32 against float64."""
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before

LAYERS = {
    "flc": lambda: FLCPool(2),
    "asap": lambda: ASAPPool(2),
    "haar": lambda: HaarPool(2),
    "adaptive-train": lambda: AdaptiveBlurPool(16, groups=4).train(),
    "adaptive-eval": lambda: AdaptiveBlurPool(16, groups=4).eval(),
    "lps-eval": lambda: LearnablePolyphaseSampling(16, filt_size=3, circular=True).eval(),
    "tips": lambda: TranslationInvariantPolyphaseSampling(16),
}


def _run(layer: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    out = layer(x)
    (out * torch.linspace(-1, 1, out.numel(), device=x.device, dtype=out.dtype).view_as(out)).sum().backward()
    return out.detach(), x.grad


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("size", [(20, 18), (150, 140)])
def test_cuda_matches_cpu_float64(name, size):
    if size[0] > 100 and name not in ("flc", "asap"):
        pytest.skip("the large size exercises the FFT path only")
    torch.manual_seed(0)
    layer = LAYERS[name]()
    x = torch.randn(2, 16, *size)
    cpu_out, cpu_grad = _run(copy.deepcopy(layer).double(), x.double())
    gpu_out, gpu_grad = _run(copy.deepcopy(layer).cuda(), x.cuda())
    torch.testing.assert_close(gpu_out.cpu().double(), cpu_out, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gpu_grad.cpu().double(), cpu_grad, rtol=1e-4, atol=1e-4)


def test_lps_training_and_lpu_on_cuda():
    torch.manual_seed(0)
    down = LearnablePolyphaseSampling(8, filt_size=3).cuda().train()
    x = torch.randn(2, 8, 16, 16, device="cuda", requires_grad=True)
    y, weights = down(x, return_phase=True)
    up = LearnablePolyphaseUpsampling(2)(y, weights)
    up.square().sum().backward()
    assert up.shape == x.shape and down.scorer.conv1.weight.grad.isfinite().all()


@pytest.mark.parametrize("name", ["flc", "asap"])
def test_fourier_under_float16_autocast_is_float32_rounded(name):
    layer = LAYERS[name]()
    x = torch.randn(2, 8, 28, 28, device="cuda").half()
    with torch.autocast("cuda", dtype=torch.float16):
        out = layer(x)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out, layer(x.float()).half(), rtol=1e-3, atol=1e-3)


def test_adaptive_and_tips_train_under_float16_autocast():
    layers = [AdaptiveBlurPool(16).cuda().train(), TranslationInvariantPolyphaseSampling(16).cuda(),
              LearnablePolyphaseSampling(16).cuda().train()]
    x = torch.randn(2, 16, 16, 16, device="cuda", requires_grad=True)
    with torch.autocast("cuda", dtype=torch.float16):
        total = sum(layer(x).float().sum() for layer in layers)
    total.backward()
    assert x.grad.isfinite().all()
