"""antialias() keeps the user's model: its class (as a base), methods, attributes, hooks and keys.

Where a module's own forward needs a new call inside it, the module runs its edited graph as its
forward and stays an instance of its class (``Antialiased<Class>``, one prefix, whichever method);
copies, pickles, state dicts, train/eval, torch.fx and torch.export work on the result.
"""
from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.fx
import torch.nn.functional as F
import torchvision
from torch import nn

from antialiased.layers import BlurPool
from antialiased.models.antialias import antialias


class UNet(nn.Module):
    """A home-made encoder-decoder: a functional max-pool in its own forward, a method and attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, 1, 1)
        self.bn = nn.BatchNorm2d(8)
        self.up = nn.ConvTranspose2d(8, 3, 2, 2)
        self.scale = 0.5
        self.tags = ["encoder", "decoder"]

    def extra(self) -> str:
        return f"{type(self).__name__} with {len(self.tags)} tags"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.max_pool2d(F.relu(self.bn(self.down(x))), 2)
        return self.up(y) * self.scale


class AntialiasedNet(UNet):
    """A user's class whose name already carries the prefix."""


def _binomial_blur(x: torch.Tensor, stride: int) -> torch.Tensor:
    """The 4-tap binomial blur with reflect padding (1, 2) and subsampling, written out directly."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    kernel = (taps[:, None] * taps[None, :]) / 64
    x = F.pad(x, (1, 2, 1, 2), mode="reflect")
    return F.conv2d(x, kernel.expand(x.shape[1], 1, 4, 4).to(x), stride=stride, groups=x.shape[1])


def test_a_users_model_stays_an_instance_of_its_class_with_its_methods_and_attributes():
    net = UNet().eval()
    keys = list(net.state_dict())
    model = antialias(net, upsample=False)  # the subsampling only: compared with the paper's recipe below
    assert model is net  # in place: the same object
    assert isinstance(model, UNet) and type(model).__name__ == "AntialiasedUNet" and type(model).__mro__[1] is UNet
    assert model.extra() == "AntialiasedUNet with 2 tags"
    assert model.scale == 0.5 and model.tags == ["encoder", "decoder"]
    assert list(model.state_dict()) == keys
    assert "" in model.antialias_summary.graph_modules
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        dense = F.max_pool2d(F.relu(net.bn(net.down(x))), 2, stride=1)  # the paper's MaxPool(2, 1) + blur(2)
        want = net.up(_binomial_blur(dense, 2)) * 0.5
        torch.testing.assert_close(model(x), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["blurpool", "blur-first", "aps", "aps-lpf"])
def test_one_prefix_whichever_method(method):
    model = antialias(UNet(), method=method)
    assert type(model).__name__ == "AntialiasedUNet" and type(model).__mro__[1] is UNet
    assert all(not type(m).__name__.startswith("AntialiasedAntialiased") for m in model.modules())
    prefixed = antialias(AntialiasedNet(), method=method)
    assert type(prefixed).__name__ == "AntialiasedNet" and type(prefixed).__mro__[1] is AntialiasedNet


def test_resnet_blocks_stay_basic_blocks():
    baseline = torchvision.models.resnet18(num_classes=5)
    model = antialias(copy.deepcopy(baseline))
    blocks = [getattr(model, f"layer{i}")[j] for i in range(1, 5) for j in range(2)]
    assert all(isinstance(b, torchvision.models.resnet.BasicBlock) for b in blocks)
    rewritten = {f"layer{i}.0" for i in (2, 3, 4)}
    for path, module in model.named_modules():
        if path in rewritten:
            assert type(module).__name__ == "AntialiasedBasicBlock" and type(module).__mro__[1].__name__ == "BasicBlock"
        assert not isinstance(module, torch.fx.GraphModule), path
    assert list(model.state_dict()) == list(baseline.state_dict())
    assert model.layer2[0].stride == 2 and model.layer2[0].expansion == 1  # the block's own attributes


def _converted() -> nn.Module:
    torch.manual_seed(0)
    return antialias(torchvision.models.resnet18(num_classes=4), filter_size=3).eval()


def test_copies_pickles_and_state_dicts_keep_class_and_function():
    model = _converted()
    x = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        want = model(x)
    buffer = io.BytesIO()
    torch.save(model, buffer)  # the whole object: the block classes are rebuilt from BasicBlock and their code
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False).eval()
    state = io.BytesIO()
    torch.save(model.state_dict(), state)
    state.seek(0)
    fresh = antialias(torchvision.models.resnet18(num_classes=4), filter_size=3).eval()
    fresh.load_state_dict(torch.load(state, weights_only=True), strict=True)
    for other in (loaded, copy.deepcopy(model), fresh):
        assert type(other.layer2[0]).__name__ == "AntialiasedBasicBlock"
        assert isinstance(other.layer2[0], torchvision.models.resnet.BasicBlock)
        with torch.no_grad():
            torch.testing.assert_close(other(x), want, rtol=0, atol=0)
    copied = copy.deepcopy(model)
    assert type(copied.layer2[0]) is type(model.layer2[0]) and copied.layer2[0].conv1 is not model.layer2[0].conv1


def test_train_eval_and_hooks_survive():
    net = UNet()
    calls = []
    net.register_forward_hook(lambda module, args, out: calls.append(out.shape))
    model = antialias(net).train()
    assert model.training and model.bn.training
    model(torch.rand(2, 3, 16, 16))
    assert not model.eval().bn.training and calls == [torch.Size([2, 3, 16, 16])]


class _Leaves(torch.fx.Tracer):
    """torch.fx's tracer with the toolkit's layers as leaves (their input checks do not take proxies)."""

    def is_leaf_module(self, m: nn.Module, name: str) -> bool:
        return type(m).__module__.startswith("antialiased.layers") or super().is_leaf_module(m, name)


@pytest.mark.parametrize("method", ["blurpool", "aps"])
def test_converted_models_trace_again_and_export(method):
    torch.manual_seed(0)
    model = antialias(UNet(), method=method).eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        want = model(x)
        traced = torch.fx.GraphModule(model, _Leaves().trace(model))
        torch.testing.assert_close(traced(x), want)
        exported = torch.export.export(model, (x,))
        torch.testing.assert_close(exported.module()(x), want, rtol=1e-5, atol=1e-6)


def test_a_traced_graph_module_stays_a_graph_module():
    traced = torch.fx.symbolic_trace(UNet())
    model = antialias(traced)
    assert model is traced and isinstance(model, torch.fx.GraphModule)
    assert model(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)
    assert any(isinstance(m, BlurPool) for m in model.modules())


def test_a_model_with_rewritten_blocks_exports_to_onnx(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    from antialiased.export import VerifySettings, export_model

    model = _converted()
    assert type(model.layer2[0]).__name__ == "AntialiasedBasicBlock"
    result = export_model(model, tmp_path / "resnet18.onnx", input_size=32,
                          verify=VerifySettings(num_images=1, random_batches=(2,)))
    assert result.verification.passed and result.verification.max_abs_diff < 1e-4


class _PoolsInForward(nn.Module):
    """A forward with a strided functional max-pool (a site) and a stride-1 functional average pool (not one)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(F.max_pool2d(torch.relu(self.conv(x)), 2), 3, 1, 1)
        return self.fc(x.mean((2, 3)))


def test_circular_aps_reaches_functional_pools_of_a_rewritten_forward():
    torch.manual_seed(0)
    model = antialias(_PoolsInForward(), method="aps", circular=True).eval()
    assert isinstance(model, _PoolsInForward)
    changed = {c.path: c.after for c in model.antialias_summary.changed if c.kind == "padding"}
    assert changed["avg_pool2d"] == "circular_avg_pool2d"  # the stride-1 pool pads circularly too
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        out = model(x)
        for shift in ((1, 0), (0, 3), (5, 7), (15, 15)):  # every circular shift: the same logits
            torch.testing.assert_close(model(torch.roll(x, shift, (2, 3))), out, rtol=1e-5, atol=1e-5)
