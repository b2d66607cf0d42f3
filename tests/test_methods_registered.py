"""Issue 19's methods through ``antialias()`` and the registry: every family, keys, loading, bad input.

Each of ``adaptive``, ``lps``, ``lps-lpf``, ``flc``, ``asap``, ``wavelet``, ``tips`` converts
representative models of every family the coverage tests cover (torchvision classifiers of each
layer pattern, timm CNNs, a home-made U-Net with every kind of up site): the baseline's keys and
values are kept, the only new keys are those of the inserted layers (under the inserted module's
name), forward and backward run in training mode at 32 px, the output keeps the baseline's shape,
and the summary accounts for every subsampling the baseline really does (found independently by
``tests/test_antialias_coverage.py``'s recorder). Then: the placements the papers use, baseline
checkpoints (torchvision's, timm's) through ``load_baseline``, strict loading of converted
checkpoints, refusal of another method's checkpoint, the method's filter size and options, and
the bad-input rows of the issue.
"""
from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.convnext import CNBlockConfig
from torchvision.models.resnet import BasicBlock

from antialiased.errors import CheckpointError, ConfigError, ModelError, WeightsError
from antialiased.layers import (ASAPPool, FLCPool, HaarPool, LearnablePolyphaseSampling,
                                TranslationInvariantPolyphaseSampling)
from antialiased.layers.adaptive import AdaptiveBlurPool
from antialiased.models import create_model, get_model_spec
from antialiased.models.antialias import INSERTED, METHODS, antialias
from antialiased.models.transfer import inserted_keys, load_baseline
from tests._upsample_nets import TinyUNet
from tests.test_antialias_coverage import _fcn, _output, _vgg, real_subsampling

NEW_METHODS = ("adaptive", "lps", "lps-lpf", "flc", "asap", "wavelet", "tips")
LAYER = {"adaptive": AdaptiveBlurPool, "lps": LearnablePolyphaseSampling, "lps-lpf": LearnablePolyphaseSampling,
         "flc": FLCPool, "asap": ASAPPool, "wavelet": HaarPool, "tips": TranslationInvariantPolyphaseSampling}
TV = torchvision.models


def _timm():
    return pytest.importorskip("timm", reason="timm is an optional dependency (pip install timm)")


MODELS = {  # one of each layer pattern, narrow: a forward and backward at 32 px take milliseconds
    "resnet": lambda: TV.ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10, width_per_group=64),
    "mobilenet_v3": lambda: TV.mobilenet_v3_small(width_mult=0.25, num_classes=10),
    "convnext": lambda: TV.ConvNeXt([CNBlockConfig(8, 16, 1), CNBlockConfig(16, 32, 1), CNBlockConfig(32, 64, 1),
                                     CNBlockConfig(64, None, 1)], num_classes=10),
    "densenet": lambda: TV.DenseNet(8, (1, 1, 1, 1), 16, bn_size=2, num_classes=10),
    "vgg": _vgg,
    "timm_resnet": lambda: _timm().create_model("resnet10t", num_classes=10),
    "unet": TinyUNet,
    "fcn": _fcn,  # torchvision's segmentation model: a dilated backbone, the head's upsampling to the input size
}


def _summary_matches(summary, found: set) -> None:
    """Every real subsampling is listed; every rewrite (phase hand-offs and paddings aside) is at a real one."""
    entries = summary.changed + summary.left_alone

    def listed(path: str, entry) -> bool:
        return entry.path == path or (entry.before.startswith("F.") and entry.path.rpartition(".")[0] == path)

    missing = [(path, kind) for path, kind in found if not any(listed(path, e) for e in entries)]
    assert not missing, f"subsampling or upsampling not in the summary: {missing}"
    real = {path for path, _ in found}
    invented = [c.path for c in summary.changed if c.kind not in ("phase", "padding")
                and not any(listed(path, c) for path in real)]
    assert not invented, f"changed where nothing subsamples or upsamples: {invented}"


@pytest.mark.parametrize("family", sorted(MODELS))
@pytest.mark.parametrize("method", NEW_METHODS)
def test_every_method_converts_every_family(method, family, one_thread):
    torch.manual_seed(0)
    baseline = MODELS[family]().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LPS: 'sides not divisible' never at 32 px, but the probe's sizes vary
        model = antialias(copy.deepcopy(baseline), method=method)
    state, want = model.state_dict(), baseline.state_dict()
    assert all(torch.equal(state[key], value) for key, value in want.items())  # every baseline key, untouched
    assert set(state) - set(want) == inserted_keys(model)  # new keys: the inserted layers' only
    inserted = [m for m in model.modules() if getattr(m, INSERTED, False)]
    assert any(isinstance(m, LAYER[method]) for m in inserted)
    learned = method in ("adaptive", "lps", "lps-lpf", "tips")
    assert bool(inserted_keys(model)) == learned
    model.train()
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    out = _output(model(x))
    out.float().square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    new_params = [p for m in inserted for p in m.parameters() if p.requires_grad]  # LPS shortcuts: frozen scorers
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in new_params)  # the new layers learn
    model.eval()
    with torch.no_grad():
        y = _output(model(x.detach()))
    found, reference = real_subsampling(baseline, x.detach())
    assert y.shape == _output(reference).shape
    _summary_matches(model.antialias_summary, found)
    summary = model.antialias_summary
    assert summary.method == method and str(summary).startswith(f"antialias(method={method!r}")
    assert (summary.filter_size is not None) == (method in ("adaptive", "lps-lpf"))


# --- where each method puts its layer: its authors' placement -----------------------------------------


def _after(summary, path: str) -> str:
    return next(c.after for c in summary.changed if c.path == path)


def test_placements_follow_the_authors_resnets():
    nets = {m: antialias(TV.resnet18(num_classes=3), method=m) for m in NEW_METHODS}
    s = {m: net.antialias_summary for m, net in nets.items()}
    # DDAC: the blurpool recipe with the adaptive filter (stem strided; dense 2x2 max pool; conv, bn, relu, filter)
    assert "stem" in next(x.reason for x in s["adaptive"].left_alone if x.path == "conv1")
    assert _after(s["adaptive"], "maxpool").startswith("MaxPool2d(k=2, s=1) -> AdaptiveBlurPool(64, stride=2, "
                                                       "filt_size=3, groups=8")
    assert _after(s["adaptive"], "layer2.0.conv1").endswith("-> bn1 -> relu -> AdaptiveBlurPool(128, stride=2, "
                                                            "filt_size=3, groups=8, pad_type='reflect')")
    assert _after(s["adaptive"], "layer2.0.downsample.0").startswith("AdaptiveBlurPool(64,")  # 1x1: filter first
    # FLC / ASAP: the pool before every strided conv (stem too), the max pool replaced
    for method, pool in (("flc", "FLCPool(stride=(2, 2))"), ("asap", "ASAPPool(stride=(2, 2))")):
        assert _after(s[method], "conv1") == f"{pool} -> Conv2d(3->64, k=7, s=1, p=3)"
        assert _after(s[method], "maxpool") == pool
        assert _after(s[method], "layer3.0.conv1") == f"{pool} -> Conv2d(128->256, k=3, s=1, p=1)"
    # WaveCNet: stem kept, max pool replaced by the LL band, conv -> bn -> relu -> LL band
    assert _after(s["wavelet"], "maxpool") == "HaarPool(stride=2)"
    assert _after(s["wavelet"], "layer2.0.conv1").endswith("-> bn1 -> relu -> HaarPool(stride=2)")
    # LPS and TIPS: APS's placement, the stem converted
    for method in ("lps", "lps-lpf", "tips"):
        assert "-> bn1 -> relu -> " in _after(s[method], "conv1")
        assert _after(s[method], "maxpool").startswith("MaxPool2d(k=3, s=1, p=1) -> ")


def test_keys_of_learned_layers_are_readable_and_deterministic():
    keys = [k for k in antialias(TV.resnet18(), method="lps").state_dict() if "scorer" in k]
    again = [k for k in antialias(TV.resnet18(), method="lps").state_dict() if "scorer" in k]
    assert keys == again
    assert "layer2.0.blur_conv1.scorer.conv1.weight" in keys  # inserted by the block's edited graph
    assert "maxpool.1.scorer.conv1.weight" in keys  # the pool's Sequential(pool, sampler)
    assert "relu.1.scorer.conv1.weight" in keys  # next to the stem's ReLU (called once)
    timm_keys = antialias(_timm().create_model("resnet18", num_classes=3), method="tips").state_dict()
    assert "layer2.0.aa.conv1.weight" in timm_keys  # timm's empty 'aa' slot holds the layer


def test_a_conv_whose_size_would_change_gets_the_pool_after_it():
    """ConvNeXt's 2x2 stride-2 downsampling: a 2x2 conv on the pooled map would lose a row (n/2 - 1)."""
    net = antialias(TV.convnext_tiny(num_classes=3), method="flc")
    assert _after(net.antialias_summary, "features.2.1") == "Conv2d(96->192, k=2, s=1) -> FLCPool(stride=(2, 2))"
    assert _after(net.antialias_summary, "features.0.0").startswith("Conv2d(3->96, k=4, s=1) -> FLCPool(stride=(4, 4))")
    assert net.eval()(torch.rand(1, 3, 64, 64)).shape == (1, 3)


def test_methods_without_an_upsampling_rule_leave_up_sites_alone_and_say_why():
    for method in ("adaptive", "flc", "asap", "wavelet", "tips"):
        left = {s.path: s.reason for s in antialias(TinyUNet(), method=method).antialias_summary.left_alone}
        assert left["up3"] == f"method {method!r} has no upsampling rule; left as it is"


# --- baseline checkpoints, converted checkpoints, another method's checkpoint ----------------------------


@pytest.mark.parametrize("method", ["lps", "adaptive", "tips"])
def test_torchvision_baseline_checkpoint_loads_with_only_the_new_keys_missing(method):
    torch.manual_seed(0)
    baseline = TV.resnet18(num_classes=5)
    model = antialias(TV.resnet18(num_classes=5), method=method)
    layers = [m for m in model.modules() if isinstance(m, LAYER[method])]
    with torch.no_grad():  # disturb the new layers: load_baseline must start them the paper's way
        for p in (p for m in layers for p in m.parameters()):
            p.fill_(7.0)
        if method == "lps":
            layers[0].gumbel_tau.fill_(0.1)
    load_baseline(model, baseline.state_dict())
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in baseline.state_dict().items())
    assert all(not torch.all(p == 7.0) for m in layers for p in m.parameters())  # reset_parameters() ran
    if method == "lps":
        assert float(layers[0].gumbel_tau) == 1.0
    if method == "adaptive":  # init_from_baseline: the binomial blur at unit gain (BN weight 0, joint: gain G)
        assert all(torch.equal(m.bn.weight, torch.zeros_like(m.bn.weight)) and float(m.gain) == m.groups
                   for m in layers)
    strict = antialias(TV.resnet18(num_classes=5), method=method)
    strict.load_state_dict(state, strict=True)  # a converted model's checkpoint loads strictly
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(strict.eval()(x), model.eval()(x), rtol=0, atol=0)


def test_timm_baseline_checkpoint_loads_into_an_lps_model():
    timm = _timm()
    baseline = timm.create_model("resnet10t", num_classes=4)
    model = antialias(timm.create_model("resnet10t", num_classes=4), method="lps-lpf", filter_size=3)
    load_baseline(model, baseline.state_dict())
    missing = set(model.state_dict()) - set(baseline.state_dict())
    assert missing == inserted_keys(model) and all(".scorer." in k or k.endswith("gumbel_tau") for k in missing)


def test_baseline_loading_refuses_what_does_not_fit():
    model = antialias(TV.resnet18(num_classes=5), method="lps")
    extra = {**TV.resnet18(num_classes=5).state_dict(), "layer9.weight": torch.zeros(1)}
    with pytest.raises(WeightsError, match=r"1 unexpected key .*layer9\.weight"):
        load_baseline(model, extra)
    with pytest.raises(WeightsError, match=r"already holds entries of the layers antialias\(\) inserted \(.*scorer"):
        load_baseline(model, model.state_dict())  # a converted model's checkpoint is no baseline


def test_another_methods_checkpoint_is_refused_naming_both(tmp_path):
    lps = create_model("mobilenet_v3_small_lpf3", aa_method="lps", num_classes=3)
    path = tmp_path / "lps.pth.tar"
    torch.save({"state_dict": lps.state_dict(), "model_spec": lps.model_spec.to_dict()}, path)
    with pytest.raises(CheckpointError, match=r"saved from 'mobilenet_v3_small_lpf3' \(torchvision, method lps\), "
                                              r"but the model asked for is 'mobilenet_v3_small_lpf3' \(torchvision, "
                                              r"filter size 3, method adaptive\).*--aa-method lps"):
        create_model("mobilenet_v3_small_lpf3", aa_method="adaptive", weights=path)
    same = create_model("mobilenet_v3_small_lpf5", aa_method="lps", weights=path)  # LPS ignores N: the same model
    assert torch.equal(same.state_dict()["features.0.0.weight"], lps.state_dict()["features.0.0.weight"])
    with_options = create_model("mobilenet_v3_small_lpf3", aa_method="lps", aa_options={"hidden_channels": 4},
                                num_classes=3)
    path2 = tmp_path / "lps4.pth.tar"
    torch.save({"state_dict": with_options.state_dict(), "model_spec": with_options.model_spec.to_dict()}, path2)
    with pytest.raises(CheckpointError, match=r"hidden_channels=4.*--aa-option hidden_channels=4"):
        create_model("mobilenet_v3_small_lpf3", aa_method="lps", weights=path2)


# --- filter sizes and options ------------------------------------------------------------------------------


def test_filter_size_none_is_the_methods_default_and_filterless_methods_ignore_it():
    assert antialias(TV.resnet18(), method="adaptive").antialias_summary.filter_size == 3
    assert antialias(TV.resnet18(), method="blurpool").antialias_summary.filter_size == 4
    flc3, flc6 = (create_model(f"resnet18_lpf{n}", aa_method="flc", num_classes=3) for n in (3, 6))
    assert flc3.antialias_summary.filter_size is None and "filter_size" not in str(flc3.antialias_summary)
    assert str(flc3.antialias_summary) == str(flc6.antialias_summary)  # N is ignored
    assert get_model_spec("resnet18_lpf3", method="wavelet").describe() == "'resnet18_lpf3' (paper, method wavelet)"
    assert get_model_spec("resnet18_lpf5", method="adaptive").describe() == \
        "'resnet18_lpf5' (paper, filter size 5, method adaptive)"
    five = create_model("resnet18_lpf5", aa_method="adaptive", aa_options={"groups": 4}, num_classes=3)
    pools = [m for m in five.modules() if isinstance(m, AdaptiveBlurPool)]
    assert pools and {(m.filt_size, m.groups) for m in pools} == {(5, 4)}
    assert "groups=4" in str(five.antialias_summary).splitlines()[0]


def test_default_groups_adapt_to_layers_eight_does_not_divide():
    net = nn.Sequential(nn.Conv2d(3, 12, 3), nn.ReLU(), nn.Conv2d(12, 20, 3, 2, 1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(20, 64, 3, 2, 1))
    net = antialias(net, method="adaptive")
    groups = {m.channels: m.groups for m in net.modules() if isinstance(m, AdaptiveBlurPool)}
    assert groups == {20: 4, 64: 8} == {c: math.gcd(c, 8) for c in groups}


def test_method_options_reach_the_layers():
    lps = antialias(TV.resnet18(), method="lps", hidden_channels=0.125, scorer_padding="zeros")
    layer = lps.layer2[0].blur_conv1
    assert (layer.hidden_channels, layer.scorer.padding) == (16, "zeros")  # 128 channels / 8
    tips = antialias(TV.resnet18(), method="tips", kernel_size=5)
    assert {m.kernel_size for m in tips.modules() if isinstance(m, TranslationInvariantPolyphaseSampling)} == {5}
    flc = antialias(TV.resnet18(), method="flc", crop="authors")
    assert {m.crop for m in flc.modules() if isinstance(m, FLCPool)} == {"authors"}


BAD_INPUT = [
    (dict(method="adaptive", filter_size=4), r"filter_size must be one of 3, 5 or 7 for method 'adaptive', got 4"),
    (dict(method="adaptive", groups=0), r"groups must be a positive integer"),
    (dict(method="adaptive", groups=3), r"groups=3 does not divide the 64 channels at maxpool .*use groups=1"),
    (dict(method="adaptive", normalize="sum"), r"normalize must be one of"),
    (dict(method="flc", filter_size=9), r"filter_size must be an integer from 1 to 7 for method 'flc' \(method 'flc' "
                                        r"has no filter and ignores it\)"),
    (dict(method="flc", groups=4), r"method 'flc' has no option 'groups' \(it has crop\); 'groups' is an option of "
                                   r"adaptive"),
    (dict(method="blurpool", crop="authors"), r"method 'blurpool' has no option 'crop' \(it has none\)"),
    (dict(method="flc", crop="middle"), r"crop must be one of \('centered', 'authors'\)"),
    (dict(method="lps", hidden_channels=1.5), r"hidden_channels must be a positive integer"),
    (dict(method="tips", kernel_size=4), r"kernel_size must be a positive odd integer"),
    (dict(method="flc", circular=True), r"circular=True needs a method that supports it \(aps, aps-lpf, lps, "
                                        r"lps-lpf\)"),
]


@pytest.mark.parametrize("kwargs,message", BAD_INPUT)
def test_bad_input_is_one_line_naming_the_fix(kwargs, message):
    with pytest.raises(ConfigError, match=message) as info:
        antialias(TV.resnet18(), **kwargs)
    assert "\n" not in str(info.value)


def test_bad_names_and_options_fail_in_the_registry_first():
    with pytest.raises(ModelError, match=r"use _lpf3, _lpf5 or _lpf7 \(method adaptive\) \(e\.g\. resnet18_lpf3\)"):
        get_model_spec("resnet18_lpf4", method="adaptive")
    with pytest.raises(ModelError, match=r"unknown aa_options 'groups' .* method flc its own: crop"):
        get_model_spec("resnet18_lpf3", method="flc", options={"groups": 2})
    with pytest.raises(ModelError, match=r"aa_options for 'resnet18_lpf3': groups must be a positive integer"):
        get_model_spec("resnet18_lpf3", method="adaptive", options={"groups": -1})


def test_fourier_published_crop_on_a_side_it_does_not_fit_is_one_line():
    """ASAP's published indices with its one-pixel pad keep n/2 + 1 rows where n % 4 == 2 (14 -> 8, not 7)."""
    net = antialias(nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, 2, 1)), method="asap",
                    crop="authors", include_stem=True)
    assert net(torch.rand(1, 3, 32, 32)).shape == (1, 4, 8, 8)  # 32 -> 16 -> 8: sides divisible by 4
    with pytest.raises(ConfigError, match=r"maps a 14x14 map to 8x8, not the 7x7 .* use crop='centered'"):
        net(torch.rand(1, 3, 28, 28))  # 28 -> 14 -> (8)
    centered = antialias(nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1)), method="asap", include_stem=True)
    assert centered(torch.rand(1, 3, 7, 7)).shape == (1, 4, 4, 4)  # the centred band defines every size


def test_fourier_layers_compute_in_float32_under_half_precision():
    net = antialias(nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1)), method="flc", include_stem=True)
    x = torch.rand(1, 3, 16, 16)
    reference = net(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = net(x)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), reference, rtol=0.05, atol=0.05)


def test_fine_tuning_starts_from_the_baseline_with_the_new_layers_initialized():
    from antialiased.models import init_from_baseline

    torch.manual_seed(3)
    baseline = TV.mobilenet_v3_small(num_classes=4)
    model = init_from_baseline("mobilenet_v3_small_lpf3", baseline_weights=baseline.state_dict(), aa_method="lps",
                               aa_options={"hidden_channels": 4})
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in baseline.state_dict().items())
    assert set(state) - set(baseline.state_dict()) == inserted_keys(model)
    assert {m.hidden_channels for m in model.modules() if isinstance(m, LearnablePolyphaseSampling)} == {4}
    assert model.model_spec.options == (("hidden_channels", 4),) and model.weights_info.kind == "baseline"


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_registered_method_is_a_model_name_method(method, one_thread):
    model = create_model("mobilenet_v3_small_lpf3", aa_method=method, num_classes=3)
    assert (model.model_spec.method, model.antialias_summary.method) == (method, method)
    assert model.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 3)
