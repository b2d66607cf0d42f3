"""A trained baseline's weights in its anti-aliased conversion: load_baseline, init_from_baseline, by-role pairing."""
from __future__ import annotations

import copy
import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from antialiased.errors import ModelError, WeightsError
from antialiased.layers import BlurPool, binomial_filter
from antialiased.models import create_model, init_from_baseline, load_baseline
from antialiased.models.antialias import INSERTED, METHODS, Method, Rewrite, antialias
from antialiased.models.transfer import copy_params_buffers, inserted_keys


def randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every float parameter and buffer distinct random values (BN stats included), so a
    misplaced or skipped copy shows up; BN variances stay positive."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                values = torch.rand(tensor.shape, generator=g) + 0.5 if key.endswith("running_var") else \
                    torch.randn(tensor.shape, generator=g) * 0.1
                tensor.copy_(values)
            else:
                tensor.fill_(int(torch.randint(1, 1000, (), generator=g)))
    return model


def _assert_same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("arch,filter_size", [("resnet18", 4), ("densenet121", 3)])
def test_the_papers_models_take_torchvisions_keys(arch, filter_size):
    """The paper's models are torchvision's converted: the baseline's state dict loads as it is."""
    baseline = randomized(torchvision.models.get_model(arch, num_classes=10))
    model = load_baseline(create_model(f"{arch}_lpf{filter_size}", num_classes=10), baseline.state_dict())
    _assert_same(model.state_dict(), baseline.state_dict())
    blurs = [m for m in model.modules() if isinstance(m, BlurPool)]
    assert blurs and all(getattr(m, INSERTED) for m in blurs) and inserted_keys(model) == set()
    for blur in blurs:  # fixed filters: not saved, not touched
        torch.testing.assert_close(blur.filt[0, 0], binomial_filter(filter_size))


def test_mobilenet_v2s_single_linear_classifier_takes_torchvisions_classifier():
    baseline = randomized(torchvision.models.mobilenet_v2(num_classes=10))
    model = load_baseline(create_model("mobilenet_v2_lpf5", num_classes=10), baseline.state_dict())
    assert torch.equal(model.classifier[0].weight, baseline.classifier[1].weight)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in baseline.state_dict().items() if not k.startswith("classifier"))
    pairs = copy_params_buffers(baseline, create_model("mobilenet_v2_lpf4", num_classes=10))  # by role, the same
    assert pairs["classifier.0.weight"] == "classifier.1.weight" and pairs["features.2.conv.2.weight"] == \
        "features.2.conv.2.weight"


@pytest.mark.parametrize("arch,size", [("vgg11_bn", (65, 70)), ("alexnet", (99, 103)), ("mobilenet_v2", (45, 64))])
def test_filter_size_one_reproduces_baseline(arch, size):
    """With a 1-tap filter the blur is plain subsampling. For VGG, AlexNet and MobileNet-v2 the
    anti-aliased net then computes exactly the baseline's function: subsampling commutes with
    BN/ReLU, MaxPool(k, s1) then subsample = MaxPool(k, s), a dense conv then subsample = the
    strided conv (even and odd sizes). Not so for ResNet (its stem pools 2x2 instead of 3x3,
    padded) nor DenseNet (transitions average-pool), so those are not tested here."""
    torch.manual_seed(0)
    baseline = randomized(torchvision.models.get_model(arch, num_classes=10)).eval()
    model = load_baseline(create_model(f"{arch}_lpf1", num_classes=10), baseline.state_dict()).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected = baseline(x)
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-5)
        assert expected.std() > 1e-3  # a non-trivial function


def test_filter_size_one_differs_for_resnet():
    torch.manual_seed(0)
    baseline = randomized(torchvision.models.resnet18(num_classes=10)).eval()
    model = load_baseline(create_model("resnet18_lpf1", num_classes=10), baseline.state_dict()).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        def stem(net):
            return net.maxpool(net.relu(net.bn1(net.conv1(x))))

        assert stem(model).shape == stem(baseline).shape
        assert not torch.allclose(stem(model), stem(baseline), atol=1e-2)
        # ... and only because of the stem: with the baseline's stem pool the two nets agree.
        model.maxpool = nn.Sequential(baseline.maxpool)
        torch.testing.assert_close(model(x), baseline(x), rtol=1e-4, atol=1e-5)


def test_load_baseline_is_strict_about_everything_else():
    baseline = torchvision.models.resnet18(num_classes=10).state_dict()
    model = create_model("resnet18_lpf3", num_classes=10)
    with pytest.raises(WeightsError, match=r"1 unexpected key \(in the file, not in the model\): extra"):
        load_baseline(model, {**baseline, "extra": torch.zeros(1)})
    missing = {k: v for k, v in baseline.items() if k != "fc.bias"}
    with pytest.raises(WeightsError, match=r"1 missing key \(in the model, not in the file\): fc.bias"):
        load_baseline(model, missing)
    with pytest.raises(WeightsError, match="only the classifier differs.*num_classes=1000"):
        load_baseline(model, torchvision.models.resnet18().state_dict())
    with pytest.raises(WeightsError, match="num_classes"):
        copy_params_buffers(torchvision.models.resnet18(num_classes=10), create_model("resnet18_lpf4"))
    with pytest.raises(WeightsError, match="not the same architecture"):
        copy_params_buffers(torchvision.models.resnet18(), create_model("resnet34_lpf4"))


# --- a learned method's inserted layers: the protocol load_baseline follows ----------------------------


class LearnedBlur(nn.Module):
    """A depthwise 3x3 conv that subsamples, meant to start as the binomial blur (a learned method's layer)."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False)
        self.starts = 0

    def init_from_baseline(self) -> None:
        with torch.no_grad():
            self.conv.weight.copy_(binomial_filter(3).expand_as(self.conv.weight))
        self.starts += 1

    def forward(self, x):
        return self.conv(x)


def _learned(site, ctx):
    return Rewrite(stride=(1, 1), after=(LearnedBlur(site.out_channels, site.factor),), after_followers=True)


@pytest.fixture
def learned_method(monkeypatch):
    monkeypatch.setitem(METHODS, "learned-test", Method("learned-test", "a test method with learned layers",
                                                        {"conv": _learned}))
    return "learned-test"


def test_learned_layers_are_the_only_missing_keys_and_start_their_own_way(learned_method):
    baseline = randomized(torchvision.models.resnet18(num_classes=4))
    model = antialias(torchvision.models.resnet18(num_classes=4), method=learned_method)
    layers = [m for m in model.modules() if isinstance(m, LearnedBlur)]
    assert layers and all(getattr(m, INSERTED) for m in layers)
    learned = inserted_keys(model)
    assert learned and all(k.endswith("conv.weight") for k in learned) and not learned & set(baseline.state_dict())
    assert set(model.state_dict()) == set(baseline.state_dict()) | learned

    load_baseline(model, baseline.state_dict())
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in baseline.state_dict().items())
    assert all(m.starts == 1 for m in layers)
    assert all(torch.equal(m.conv.weight[0, 0], binomial_filter(3)) for m in layers)

    with pytest.raises(WeightsError, match="already holds entries of the layers antialias\\(\\) inserted"):
        load_baseline(model, model.state_dict())  # an anti-aliased checkpoint is not a baseline's
    with pytest.raises(WeightsError, match="missing key"):
        load_baseline(model, {k: v for k, v in baseline.state_dict().items() if k != "conv1.weight"})


# --- init_from_baseline ----------------------------------------------------------------------------


def test_init_from_baseline_sources(tmp_path):
    baseline = randomized(torchvision.models.resnet18(num_classes=3))
    from_module = init_from_baseline("resnet18_lpf3", baseline_weights=baseline, num_classes=3)
    path = tmp_path / "resnet18.pth"
    torch.save(baseline.state_dict(), path)
    from_file = init_from_baseline("resnet18_lpf3", baseline_weights=path, num_classes=3)
    from_dict = init_from_baseline("resnet18_lpf3", baseline_weights=baseline.state_dict(), num_classes=3)
    from_file_classes = init_from_baseline("resnet18_lpf3", baseline_weights=path)  # num_classes: the baseline's
    from_dict_classes = init_from_baseline("resnet18_lpf3", baseline_weights=baseline.state_dict())
    for model in (from_module, from_file, from_dict, from_file_classes, from_dict_classes):
        assert model.maxpool[1].filt.shape == (64, 1, 3, 3) and model.fc.out_features == 3
        _assert_same(model.state_dict(), baseline.state_dict())
        assert model.weights_info.kind == "baseline" and model.model_spec.name == "resnet18_lpf3"
    assert from_file.weights_info.label == f"baseline:file:{path}"
    assert from_file.weights_info.baseline.label == f"file:{path}" and from_file.weights_info.num_classes == 3
    assert from_dict.weights_info.label == "baseline:memory:state_dict"
    assert from_module.weights_info.label == "baseline:memory:module"
    made_here = create_model("resnet18", weights=path)  # a model made by create_model carries its record
    assert init_from_baseline("resnet18_lpf2", baseline_weights=made_here).weights_info.label == f"baseline:file:{path}"
    before = copy.deepcopy(baseline.state_dict())
    _assert_same(baseline.state_dict(), before)  # the module handed over was read, not changed


def test_init_from_baseline_errors(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="is the baseline itself"):
        init_from_baseline("resnet18", baseline_weights=torchvision.models.resnet18())
    with pytest.raises(FileNotFoundError):
        init_from_baseline("resnet18_lpf4", baseline_weights=tmp_path / "missing.pth")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models, "get_model", offline)
    with pytest.raises(RuntimeError, match="baseline_weights='path/to/resnet18.pth'"):
        init_from_baseline("resnet18_lpf4")
