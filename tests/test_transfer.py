"""Transfer of a trained torchvision baseline into its anti-aliased counterpart."""
from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from antialiased.errors import ModelError, WeightsError
from antialiased.layers import binomial_filter
from antialiased.models import create_model
from antialiased.models.transfer import blur_keys, copy_params_buffers, init_from_baseline


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


@pytest.mark.parametrize("arch,filter_size", [("resnet18", 4), ("densenet121", 3), ("mobilenet_v2", 5)])
def test_every_tensor_lands_on_its_counterpart(arch, filter_size):
    baseline = randomized(torchvision.models.get_model(arch, num_classes=10))
    model = create_model(f"{arch}_lpf{filter_size}", num_classes=10)
    pairs = copy_params_buffers(baseline, model)

    source, dest = baseline.state_dict(), model.state_dict()
    filters = blur_keys(model)
    assert filters and all(k.endswith(".filt") for k in filters)
    # Every baseline entry was used exactly once, and every non-filter entry of the model written.
    assert sorted(pairs.values()) == sorted(source)
    assert set(pairs) == set(dest) - filters
    for dst_key, src_key in pairs.items():
        assert dst_key.rsplit(".", 1)[-1] == src_key.rsplit(".", 1)[-1]
        assert torch.equal(dest[dst_key], source[src_key]), f"{src_key} -> {dst_key}"
    # Blur filters are untouched.
    for key in filters:
        torch.testing.assert_close(dest[key][0, 0], binomial_filter(filter_size))


def test_role_mapping_follows_inserted_blur_layers():
    baseline = torchvision.models.mobilenet_v2(num_classes=10)
    pairs = copy_params_buffers(baseline, create_model("mobilenet_v2_lpf4", num_classes=10))
    assert pairs["classifier.0.weight"] == "classifier.1.weight"
    # stride-2 block: [expand, depthwise, BlurPool, project, bn] -> project conv moves from 2 to 3
    assert pairs["features.2.conv.3.weight"] == "features.2.conv.2.weight"
    assert pairs["features.2.conv.4.running_var"] == "features.2.conv.3.running_var"
    pairs = copy_params_buffers(torchvision.models.resnet18(), create_model("resnet18_lpf2"))
    assert pairs["layer2.0.conv2.1.weight"] == "layer2.0.conv2.weight"
    assert pairs["layer2.0.downsample.1.weight"] == "layer2.0.downsample.0.weight"
    assert pairs["layer2.0.downsample.2.num_batches_tracked"] == "layer2.0.downsample.1.num_batches_tracked"


@pytest.mark.parametrize("arch,size", [("vgg11_bn", (65, 70)), ("alexnet", (99, 103)), ("mobilenet_v2", (45, 64))])
def test_filter_size_one_reproduces_baseline(arch, size):
    """With a 1-tap filter the blur is plain subsampling. For VGG, AlexNet and MobileNet-v2 the
    anti-aliased net then computes exactly the baseline's function: subsampling commutes with
    BN/ReLU, MaxPool(k, s1) then subsample = MaxPool(k, s), a dense conv then subsample = the
    strided conv (even and odd sizes). Not so for ResNet (its stem pools 2x2 instead of 3x3,
    padded) nor DenseNet (transitions average-pool), so those are not tested here."""
    torch.manual_seed(0)
    baseline = randomized(torchvision.models.get_model(arch, num_classes=10)).eval()
    model = create_model(f"{arch}_lpf1", num_classes=10).eval()
    copy_params_buffers(baseline, model)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected = baseline(x)
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-5)
        assert expected.std() > 1e-3  # a non-trivial function


def test_filter_size_one_differs_for_resnet():
    torch.manual_seed(0)
    baseline = randomized(torchvision.models.resnet18(num_classes=10)).eval()
    model = create_model("resnet18_lpf1", num_classes=10).eval()
    copy_params_buffers(baseline, model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        def stem(net):
            return net.maxpool(net.relu(net.bn1(net.conv1(x))))

        assert stem(model).shape == stem(baseline).shape
        assert not torch.allclose(stem(model), stem(baseline), atol=1e-2)
        # ... and only because of the stem: with the baseline's stem pool the two nets agree.
        model.maxpool = nn.Sequential(baseline.maxpool)
        torch.testing.assert_close(model(x), baseline(x), rtol=1e-4, atol=1e-5)


def test_mismatched_architectures_raise():
    with pytest.raises(WeightsError, match="not the same architecture"):
        copy_params_buffers(torchvision.models.resnet18(), create_model("resnet34_lpf4"))
    with pytest.raises(ValueError, match=r"'fc.weight' \(10, 512\) does not match .*'fc.weight' \(1000, 512\)"):
        copy_params_buffers(torchvision.models.resnet18(num_classes=10), create_model("resnet18_lpf4"))


def test_init_from_baseline_sources(tmp_path):
    baseline = randomized(torchvision.models.resnet18(num_classes=3))
    from_module = init_from_baseline("resnet18_lpf3", baseline_weights=baseline, num_classes=3)
    path = tmp_path / "resnet18.pth"
    torch.save(baseline.state_dict(), path)
    from_file = init_from_baseline("resnet18_lpf3", baseline_weights=path, num_classes=3)
    from_dict = init_from_baseline("resnet18_lpf3", baseline_weights=baseline.state_dict(), num_classes=3)
    from_file_classes = init_from_baseline("resnet18_lpf3", baseline_weights=path)  # num_classes: the baseline's
    for model in (from_module, from_file, from_dict, from_file_classes):
        assert model.maxpool[1].filt.shape == (64, 1, 3, 3) and model.fc.out_features == 3
        assert torch.equal(model.layer4[0].conv2[1].weight, baseline.layer4[0].conv2.weight)
        assert torch.equal(model.layer4[0].downsample[2].running_var, baseline.layer4[0].downsample[1].running_var)
        assert model.weights_info.kind == "baseline" and model.model_spec.name == "resnet18_lpf3"
    assert from_file.weights_info.label == f"baseline:file:{path}"
    assert from_file.weights_info.baseline.label == f"file:{path}" and from_file.weights_info.num_classes == 3
    assert from_dict.weights_info.label == "baseline:memory:state_dict"
    assert from_module.weights_info.label == "baseline:memory:module"
    made_here = create_model("resnet18", weights=path)  # a model made by create_model carries its record
    assert init_from_baseline("resnet18_lpf2", baseline_weights=made_here).weights_info.label == f"baseline:file:{path}"


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
