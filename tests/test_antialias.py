"""antialias(model): the paper's architectures as instances, the summary, the methods, bad input.

The exactness tests compare antialias() applied by hand with the paper's models
(``create_model("<arch>_lpf<N>")``: the same recipe, with the published model's extras); that the
paper's models equal the published implementation is the golden test's job (test_models.py).
Coverage of other models is in test_antialias_coverage.py.
"""
from __future__ import annotations

import copy
import io
import json

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import antialiased
from antialiased.errors import ConfigError, ModelError
from antialiased.layers import BlurPool, BlurPool1D, binomial_filter
from antialiased.models.antialias import METHODS, AntialiasWarning, Method, Rewrite, antialias
from antialiased.models.antialias._paper import PAPER_TABLE, table_markdown

PAPER_ARCHS = [arch for family in PAPER_TABLE for arch in family.archs]
# (arch, filter size, input size): one of each family, small inputs where the architecture allows.
FAST_PAPER_CASES = [
    ("resnet18", 4, 64), ("resnet50", 3, 32), ("densenet121", 5, 32), ("mobilenet_v2", 2, 32),
    ("vgg11_bn", 4, 32), ("alexnet", 4, 64),
]


def _same_function(arch: str, filter_size: int, size: int) -> None:
    torch.manual_seed(0)
    baseline = torchvision.models.get_model(arch, num_classes=10)
    published = antialiased.create_model(f"{arch}_lpf{filter_size}", num_classes=10)
    antialiased.models.copy_params_buffers(baseline, published)
    converted = antialias(copy.deepcopy(baseline), filter_size=filter_size)
    converted.load_state_dict(baseline.state_dict(), strict=True)
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        got, want = converted.eval()(x), published.eval()(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch,filter_size,size", FAST_PAPER_CASES)
def test_paper_architectures_are_instances(arch, filter_size, size):
    _same_function(arch, filter_size, size)


@pytest.mark.sweep
@pytest.mark.parametrize("filter_size", range(1, 8))
@pytest.mark.parametrize("arch", PAPER_ARCHS)
def test_paper_architectures_are_instances_sweep(arch, filter_size):
    _same_function(arch, filter_size, 64 if arch == "alexnet" else 32)


def test_paper_table_lists_the_23_architectures():
    assert len(PAPER_ARCHS) == 23 and len(set(PAPER_ARCHS)) == 23
    text = table_markdown()
    assert all(arch in text for arch in PAPER_ARCHS)
    assert "MaxPool(2, s1)" in text and "stride 2 -> ReLU -> blur(2)" in text


def test_resnet_keeps_class_keys_and_loads_pretrained_layout_strictly():
    baseline = torchvision.models.resnet18(num_classes=10)
    model = antialias(copy.deepcopy(baseline))
    assert isinstance(model, torchvision.models.ResNet)
    assert list(model.state_dict()) == list(baseline.state_dict())  # same keys, same order
    model.load_state_dict(baseline.state_dict(), strict=True)
    blurs = [m for m in model.modules() if isinstance(m, BlurPool)]
    assert len(blurs) == 7 and all("filt" in m._non_persistent_buffers_set for m in blurs)
    # its relu serves two calls: the block runs its edited graph, still a BasicBlock (one prefix, never two)
    assert isinstance(model.layer2[0], torchvision.models.resnet.BasicBlock)
    assert type(model.layer2[0]).__name__ == "AntialiasedBasicBlock"
    assert not isinstance(model.layer2[0], torch.fx.GraphModule)
    assert "layer2.0" in model.antialias_summary.graph_modules
    assert isinstance(model.maxpool, nn.Sequential) and model.maxpool[0].kernel_size == 2  # the paper's stem pool


def test_blocks_in_a_module_list_are_found_through_the_parent():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList([nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, 2, 1)])
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            return torch.relu(self.bn(self.blocks[1](self.blocks[0](x))))

    model = antialias(Net())
    assert model.antialias_summary.changed[0].after.endswith("bn -> relu -> BlurPool(4, filt_size=4, stride=2)")
    assert model(torch.rand(1, 3, 9, 9)).shape == (1, 4, 5, 5)


def test_new_layers_follow_the_model_dtype_and_device():
    model = antialias(torchvision.models.resnet18(num_classes=2).double())
    assert all(m.filt.dtype == torch.float64 for m in model.modules() if isinstance(m, BlurPool))
    assert model.eval()(torch.rand(1, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_conversion_on_cuda():
    model = antialias(torchvision.models.resnet18(num_classes=2).cuda()).eval()
    assert all(m.filt.is_cuda for m in model.modules() if isinstance(m, BlurPool))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x.cuda()).cpu(), model.cpu()(x), rtol=1e-4, atol=1e-4)


def test_conversion_leaves_the_model_state_as_it_was():
    class Counting(nn.Module):  # a forward that updates a buffer, as timm's BatchNormAct2d does
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, 2, 1)
            self.register_buffer("calls", torch.zeros(()))

        def forward(self, x):
            self.calls.add_(1)
            return F.max_pool2d(self.conv(x), 2)

    net = nn.Sequential(Counting(), nn.BatchNorm2d(4))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    model = antialias(net)
    assert [c.path for c in model.antialias_summary.changed] == ["0.max_pool2d"]
    after = model.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[k], v) for k, v in before.items())


def test_converted_model_copies_and_pickles():
    model = antialias(torchvision.models.resnet18(num_classes=4)).eval()
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False).eval()
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x)) and torch.equal(copy.deepcopy(model)(x), model(x))


def test_summary_lists_changes_and_reasons_as_table_and_json():
    model = antialias(torchvision.models.resnet18(num_classes=10), filter_size=3)
    summary = model.antialias_summary
    changed = {c.path: c for c in summary.changed}
    assert set(changed) == {"maxpool", "layer2.0.conv1", "layer2.0.downsample.0", "layer3.0.conv1",
                            "layer3.0.downsample.0", "layer4.0.conv1", "layer4.0.downsample.0"}
    assert changed["layer2.0.conv1"].after.endswith("bn1 -> relu -> BlurPool(128, filt_size=3, stride=2)")
    assert changed["layer2.0.downsample.0"].after.startswith("BlurPool(64, filt_size=3, stride=2) -> Conv2d")
    left = {s.path: s.reason for s in summary.left_alone}
    assert "stem" in left["conv1"] and "adaptive" in left["avgpool"]
    text = str(summary)
    assert "layer3.0.conv1" in text and "left" in text and "7 changed, 2 left alone" in text
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["method"] == "blurpool" and data["filter_size"] == 3 and len(data["changed"]) == 7


def test_include_stem_converts_the_first_conv():
    model = antialias(torchvision.models.resnet18(num_classes=10), include_stem=True)
    assert model.conv1.stride == (1, 1)
    stem = next(c for c in model.antialias_summary.changed if c.path == "conv1")
    assert stem.after.endswith("bn1 -> relu -> BlurPool(64, filt_size=4, stride=2)")
    assert model.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def test_the_stem_is_found_behind_an_input_transform():
    model = antialias(torchvision.models.googlenet(init_weights=False, transform_input=True, aux_logits=False))
    stems = [s.path for s in model.antialias_summary.left_alone if s.reason.startswith("stem")]
    assert stems == ["conv1.conv"]  # torch functions (the input transform) are not layers before it


def test_blur_first_blurs_before_the_unchanged_strided_conv():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2, padding=1),
                        nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 8, 1, stride=2))
    reference = copy.deepcopy(net).eval()
    model = antialias(net, method="blur-first", filter_size=3, pad_type="zero").eval()
    assert model[2].stride == (2, 2) and model[5].stride == (1, 1)
    x = torch.rand(2, 3, 16, 16)
    blur = binomial_filter(3)
    smooth = lambda t, s: F.conv2d(F.pad(t, [1, 1, 1, 1]), blur.expand(t.shape[1], 1, 3, 3), stride=s,  # noqa: E731
                                   groups=t.shape[1])
    h = reference[1](reference[0](x))
    h = reference[4](reference[3](reference[2](smooth(h, 1))))  # blur (stride 1), then the strided conv
    want = F.conv2d(smooth(h, 2), reference[5].weight, reference[5].bias)  # 1x1: blur-subsample, conv at stride 1
    with torch.no_grad():
        torch.testing.assert_close(model(x), want)


def test_blurpool_recipe_matches_a_hand_computation():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.AvgPool2d(3, 2, 1))
    reference = copy.deepcopy(net).eval()
    model = antialias(net, include_stem=True, filter_size=2, pad_type="zero").eval()
    x = torch.rand(1, 3, 12, 12)
    box = torch.full((4, 1, 2, 2), 0.25)
    blur = lambda t: F.conv2d(F.pad(t, [0, 1, 0, 1]), box, stride=2, groups=4)  # noqa: E731 (f=2: pad 0 before, 1 after)
    h = reference[2](reference[1](F.conv2d(x, reference[0].weight, reference[0].bias, padding=1)))
    h = blur(F.max_pool2d(blur(h), 2, 1))
    with torch.no_grad():
        torch.testing.assert_close(model(x), blur(h))


@pytest.mark.parametrize("pool", [
    nn.MaxPool2d(3, 2), nn.MaxPool2d(3, 2, 1), nn.MaxPool2d(3, 2, ceil_mode=True), nn.MaxPool2d(2, 2, ceil_mode=True),
    nn.MaxPool2d(3, 2, 1, ceil_mode=True), nn.AvgPool2d(2, 2), nn.AvgPool2d(3, 2, 1), nn.AvgPool2d(2, 2, ceil_mode=True),
    nn.AvgPool2d(3, 2), nn.AvgPool2d(3, 3),
])
def test_pools_keep_the_output_size_at_every_input_size(pool):
    net = nn.Sequential(nn.Conv2d(2, 2, 1), pool)
    converted = antialias(copy.deepcopy(net), filter_size=3)
    assert [c.path for c in converted.antialias_summary.changed] == ["1"]
    for size in range(3, 21):
        x = torch.rand(1, 2, size, size)
        try:
            want = net(x).shape
        except RuntimeError:
            continue
        assert converted(x).shape == want, (pool, size)


def test_functional_pools_become_layers_in_a_graph_module():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 5, 3, padding=1)

        def forward(self, x):
            return F.avg_pool2d(F.max_pool2d(self.conv(x), kernel_size=3, stride=2), 2).mean((2, 3))

    net = Net()
    model = antialias(copy.deepcopy(net))
    assert isinstance(model, Net) and type(model) is not Net  # the model's own forward needed rewriting
    assert [c.path for c in model.antialias_summary.changed] == ["max_pool2d", "avg_pool2d"]
    assert model.antialias_summary.changed[0].before.startswith("F.max_pool2d(kernel_size=3, stride=(2, 2)")
    assert list(model.state_dict()) == list(net.state_dict())
    assert model(torch.rand(1, 3, 19, 19)).shape == net(torch.rand(1, 3, 19, 19)).shape


def test_one_and_three_dimensional_models():
    net1 = nn.Sequential(nn.Conv1d(2, 4, 3, 2, 1), nn.BatchNorm1d(4), nn.ReLU(), nn.MaxPool1d(2))
    model = antialias(net1, include_stem=True)
    assert [type(m) for m in model.modules()].count(BlurPool1D) == 2
    assert model(torch.rand(2, 2, 33)).shape == (2, 4, 8)
    net3 = nn.Sequential(nn.Conv3d(1, 2, 3, 1, 1), nn.ReLU(), nn.MaxPool3d(2))
    assert antialias(net3)(torch.rand(1, 1, 6, 8, 8)).shape == (1, 2, 3, 4, 4)


def test_layers_left_alone_are_listed_with_reasons():
    class Custom(nn.Module):
        stride = 2

        def forward(self, x):
            return x[:, :, ::2, ::2]

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, stride=(2, 1), padding=1),
                        nn.ConvTranspose2d(4, 4, 2, stride=2), Custom(), nn.Conv2d(4, 4, 3, padding=2, dilation=2),
                        nn.AdaptiveAvgPool2d(1))
    with pytest.warns(AntialiasWarning, match="nothing changed"):
        model = antialias(net, upsample=False)  # upsample=True (the default) blurs after the transposed conv
    left = {s.path: s.reason for s in model.antialias_summary.left_alone}
    assert "differs between dimensions" in left["1"] and "transposed" in left["2"]
    assert "custom layer Custom" in left["3"] and "dilated" in left["4"] and "adaptive" in left["5"]
    assert model.antialias_summary.changed == []


def test_converting_twice_changes_nothing_more():
    model = antialias(torchvision.models.resnet18(num_classes=2))
    with pytest.warns(AntialiasWarning, match="nothing changed"):
        again = antialias(model)
    kinds = {s.kind for s in again.antialias_summary.left_alone}
    assert again.antialias_summary.changed == [] and kinds == {"conv", "blur", "adaptive_pool"}


def test_a_model_without_subsampling_warns_and_has_an_empty_summary():
    with pytest.warns(AntialiasWarning):
        model = antialias(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
    assert len(model.antialias_summary) == 0 and str(model.antialias_summary).endswith("0 left alone")


class _Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it; ``.item()`` also fails on meta tensors."""

    def __init__(self, slot: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(6)
        if slot:
            self.aa = nn.Identity()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        if x.mean().item() > 1e9:
            x = x * 2
        return self.pool(getattr(self, "aa", nn.Identity())(x))


def test_untraceable_blocks_use_module_rules_or_say_why():
    model = antialias(_Untraceable(slot=True), include_stem=True)
    assert isinstance(model.aa, BlurPool) and model.conv.stride == (1, 1)  # timm-style 'aa' slot
    assert isinstance(model.pool[1], BlurPool) and model.pool[1].channels == 6  # channels from the real probe
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 6, 4, 4)
    model = antialias(_Untraceable(slot=False), include_stem=True)
    reason = next(s.reason for s in model.antialias_summary.left_alone if s.path == "conv")
    assert "could not be followed" in reason and "traceable" in reason
    assert model.conv.stride == (2, 2)  # refused sites are left exactly as they were


def test_training_dependent_forward_is_not_frozen():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            x = self.conv(x)
            return F.max_pool2d(x, 2) if self.training else F.avg_pool2d(x, 2)

    with pytest.warns(AntialiasWarning):
        model = antialias(Net())
    assert "training than in eval mode" in model.antialias_summary.left_alone[0].reason


def test_vision_transformer_patch_embedding_is_a_clear_error():
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2,
                                                hidden_dim=16, mlp_dim=32, num_classes=4)
    with pytest.raises(ModelError, match="conv_proj .* patch embedding of a vision transformer"):
        antialias(vit)


@pytest.mark.parametrize("kwargs,match", [
    ({"method": "aliased"}, "unknown anti-aliasing method 'aliased'; valid methods: .*blur-first, blurpool"),
    ({"filter_size": 0}, "filter_size must be an integer from 1 to 7"),
    ({"filter_size": 8}, "filter_size must be an integer from 1 to 7"),
    ({"filter_size": True}, "filter_size must be an integer"),
    ({"pad_type": "mirror"}, "pad_type must be one of"),
    ({"include_stem": "yes"}, "include_stem must be True or False"),
    ({"circular": True}, "circular=True needs a method that supports it"),
    ({"input_size": (224, 224, 3, 1, 1)}, "input_size must be"),
    ({"input_size": (3, 0, 32)}, "input_size must be an integer >= 1"),
])
def test_bad_options_are_clear_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        antialias(nn.Conv2d(3, 3, 3, 2), **kwargs)


def test_not_a_module_is_a_model_error():
    with pytest.raises(ModelError, match="takes a torch.nn.Module, got str"):
        antialias("resnet50")


def test_inputs_too_small_for_the_padding_name_the_layer_and_the_fix():
    with pytest.raises(ConfigError, match=r"layer4\.0\.\S*blur\S* \(BlurPool, filt_size=7\) gets a 2x2 feature map.*pad_type='replicate'"):
        antialias(torchvision.models.resnet18(num_classes=2), filter_size=7, input_size=(3, 32, 32))
    with pytest.raises(ModelError, match="Pass input_size"):
        antialias(torchvision.models.resnet18(num_classes=2), input_size=(5, 64, 64))  # wrong channel count
    model = antialias(torchvision.models.resnet18(num_classes=2), filter_size=3, input_size=(3, 64, 64))
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 2)


def test_a_new_method_plugs_into_the_table(monkeypatch):
    def subsample_only(site, ctx):  # no blur at all: a filter of one tap
        return Rewrite(stride=(1,) * site.ndim, after=(ctx.blur(site.out_channels, site.factor, site.ndim, 1),),
                       after_followers=True)

    monkeypatch.setitem(METHODS, "subsample", Method("subsample", "test", {"conv": subsample_only}))
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, 2, 1), nn.ReLU(), nn.MaxPool2d(2))
    reference = copy.deepcopy(net)
    model = antialias(net, method="subsample")
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(model(x), reference(x))  # stride 1 then keeping every other pixel: the same
    reason = next(s.reason for s in model.antialias_summary.left_alone if s.path == "3")
    assert reason == "method 'subsample' does not rewrite max_pool sites"


def _site_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(("changed ", "left "))]


def test_summary_states_a_shared_reason_once_and_keeps_a_line_per_site():
    summary = antialias(torchvision.models.efficientnet_b0(num_classes=10)).antialias_summary
    text = str(summary)
    pools = [s for s in summary.left_alone if s.kind == "adaptive_pool"]
    assert len(pools) == 17 and len({s.reason for s in pools}) == 1  # 16 squeeze-excitations and the head
    assert text.count(pools[0].reason) == 1 and f"[1] 17 adaptive pools: {pools[0].reason}" in text.splitlines()
    lines = _site_lines(text)
    assert len(lines) == len(summary.changed) + len(summary.left_alone)
    for site in pools:
        assert sum(line.split()[:2] == ["left", site.path] and line.endswith("[1]") for line in lines) == 1
    stem = next(line for line in lines if line.split()[1] == "features.0.0")
    assert stem.endswith(next(s.reason for s in summary.left_alone if s.path == "features.0.0"))  # alone: inline


class _UpOnly(nn.Module):
    """Two strided transposed convs, then two pixel shuffles: up sites only."""

    def __init__(self) -> None:
        super().__init__()
        self.t1, self.t2 = nn.ConvTranspose2d(3, 4, 2, stride=2), nn.ConvTranspose2d(4, 4, 2, stride=2)
        self.c1, self.p1 = nn.Conv2d(4, 16, 1), nn.PixelShuffle(2)
        self.c2, self.p2 = nn.Conv2d(4, 16, 1), nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.p2(self.c2(self.p1(self.c1(self.t2(self.t1(x))))))


def _notes(summary) -> list[str]:
    return [line for line in str(summary).splitlines() if line.startswith("[")]


def test_summary_notes_name_the_up_site_kinds():
    # torchvision's FCN with its auxiliary head interpolates twice (out and aux): one note for both
    fcn = torchvision.models.segmentation.fcn_resnet50(weights=None, weights_backbone=None, aux_loss=True,
                                                       num_classes=3)
    summary = antialias(fcn, upsample=False, input_size=(3, 64, 64)).antialias_summary
    reason = next(s.reason for s in summary.left_alone if s.kind == "interpolate")
    assert [s.path for s in summary.left_alone if s.kind == "interpolate"] == ["interpolate", "interpolate_1"]
    assert any(note.endswith(f"2 interpolations: {reason}") for note in _notes(summary)), _notes(summary)
    with pytest.warns(AntialiasWarning, match="nothing changed"):
        summary = antialias(_UpOnly(), upsample=False, input_size=(3, 8, 8)).antialias_summary
    assert [note.split(":")[0][4:] for note in _notes(summary)] == ["2 strided transposed convs", "2 pixel shuffles"]
    # upsamplings with no adaptive subsampling on their path: the phase entries are hand-offs, not "samplers"
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Upsample(scale_factor=2), nn.Conv2d(4, 4, 3, padding=1),
                        nn.Upsample(scale_factor=2, mode="bilinear"))
    summary = antialias(net, method="aps", input_size=(3, 16, 16)).antialias_summary
    assert [s.path for s in summary.left_alone if s.kind == "phase"] == ["1", "3"]
    assert [note.split(":")[0] for note in _notes(summary)] == ["[1] 2 phase hand-offs"]


def test_summary_shows_only_the_options_a_method_uses():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, 2, 1))
    plain = antialias(copy.deepcopy(net), method="aps").antialias_summary
    assert str(plain).splitlines()[0].startswith("antialias(method='aps', include_stem=True): ")
    assert plain.filter_size is None and plain.pad_type is None and "filter_size" not in str(plain)
    lpf = antialias(copy.deepcopy(net), method="aps-lpf", filter_size=3, circular=True).antialias_summary
    assert str(lpf).splitlines()[0].startswith("antialias(method='aps-lpf', filter_size=3, circular=True, ")
    blur = antialias(copy.deepcopy(net), filter_size=5, pad_type="zero").antialias_summary
    assert str(blur).splitlines()[0].startswith("antialias(method='blurpool', filter_size=5, pad_type='zero'): ")


def test_multi_line_module_descriptions_stay_on_one_line():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 1, 1), nn.MaxPool2d(2),
                        nn.AdaptiveAvgPool2d(1))
    summary = antialias(net, method="aps", circular=True).antialias_summary
    padded = [c for c in summary.changed if c.kind == "padding" and "CircularPool2d" in c.after]
    assert padded and all("\n" not in c.before + c.after for c in summary.changed)
    assert padded[0].after.startswith("CircularPool2d(pads=[1, 1, 1, 1], (pool): MaxPool2d(kernel_size=3, stride=1")
    text = str(summary)
    assert all(line.startswith(("antialias(", "changed ", "left ", "[")) for line in text.splitlines())
    assert len(_site_lines(text)) == len(summary)


def test_dilated_convs_of_deeplab_are_not_said_to_have_lost_a_stride():
    model = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, aux_loss=False)
    atrous = {f"classifier.0.convs.{i}.0": rate for i, rate in ((1, 12), (2, 24), (3, 36))}
    assert all(model.get_submodule(p).dilation == (r, r) and model.get_submodule(p).stride == (1, 1)
               for p, r in atrous.items())  # ASPP's branches: dilated from the start, never strided
    left = {s.path: s for s in antialias(model).antialias_summary.left_alone}
    for path in atrous:
        assert left[path].kind == "dilated_conv" and "ASPP" in left[path].reason
        assert "its stride was replaced" not in left[path].reason and "no subsampling" in left[path].reason
    assert "backbone.layer4.1.conv2" in left  # the backbone's dilated stages are listed alike
