"""Models: registry and names, the 23 architectures against the published golden outputs, API errors."""
from __future__ import annotations

import dataclasses
import json
import urllib.error
from collections import defaultdict

import pytest
import torch
import torchvision
from torch import nn

import antialiased
from antialiased.errors import ModelError
from antialiased.layers import BlurPool, binomial_filter
from antialiased.models import create_model, get_model_spec, list_archs, list_models, register_model
from antialiased.models import registry
from antialiased.models.antialias import antialias

# tests/test_training_fixtures.py registers two tiny test-only architectures when it is imported
# (collection imports it for the whole session); the registry's other names are the paper's.
TEST_ONLY_ARCHS = ("aa_tinynet", "aa_tinynet_nobn")


def registered_archs() -> list[str]:
    return list_archs("paper")


PAPER_ARCHS = [
    "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
    "wide_resnet50_2", "wide_resnet101_2", "densenet121", "densenet161", "densenet169", "densenet201",
    "mobilenet_v2",
]


def layout(model: nn.Module) -> list[tuple[str, list[int], str]]:
    return [(k, list(v.shape), str(v.dtype).replace("torch.", "")) for k, v in model.state_dict().items()]


def torchvision_layout(arch: str) -> list[tuple[str, list[int], str]]:
    """torchvision's keys, with the published MobileNet-v2's single-Linear classifier (no dropout layer)."""
    with torch.device("meta"):
        model = torchvision.models.get_model(arch)
    if arch == "mobilenet_v2":
        model.classifier = nn.Sequential(model.classifier[-1])
    return layout(model)


@pytest.fixture(scope="module")
def reference(reference_dir):
    specs = json.loads((reference_dir / "models.json").read_text())
    golden = torch.load(reference_dir / "golden_models.pt", weights_only=True)
    return specs, golden


def published_state(spec: list, shared: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference's deterministic weights in the published key layout (``*.filt`` saved)."""
    from deterministic_weights import deterministic_tensor

    return {key: shared[key] if key in shared else deterministic_tensor(key, shape, dtype)
            for key, shape, dtype in spec}


def assert_golden(model: nn.Module, name: str, golden: dict) -> None:
    model.eval()
    with torch.no_grad():
        for input_name, x in golden["inputs"].items():
            torch.testing.assert_close(model(x), golden["outputs"][name][input_name], rtol=1e-4, atol=1e-4,
                                       msg=lambda m: f"{name} on input {input_name!r}: {m}")


# --- the acceptance test: the published key layout loads, and the outputs are the published, all 119 ------


def test_reference_covers_every_registered_arch(reference):
    specs, golden = reference
    assert sorted({entry["arch"] for entry in specs.values()}) == sorted(PAPER_ARCHS) == registered_archs()
    assert len(specs) == 119 and set(golden["outputs"]) == set(specs)


def assert_maps_exactly(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Every published key is consumed (learned ones onto one model key each, filters by the blur layers)
    and every model key is filled, each by the published tensor of the same role."""
    mapped = model.key_remap.apply(model, dict(state))
    assert list(mapped) == list(model.state_dict())  # every model key, in order
    learned = [key for key in state if not key.endswith(".filt")]
    assert [id(v) for v in mapped.values()] == [id(state[key]) for key in learned]  # each published entry once
    filters = [key for key in state if key.endswith(".filt")]
    blurs = [m for m in model.modules() if isinstance(m, BlurPool)]
    assert len(filters) == len(blurs) and sorted(tuple(state[k].shape) for k in filters) == sorted(
        tuple(m.filt.shape) for m in blurs)


@pytest.mark.parametrize("arch", PAPER_ARCHS)
def test_matches_published_model(arch, reference):
    """Every ``<arch>_lpfN`` of the reference: the published state-dict layout maps exactly onto the
    model's (torchvision's) keys, plain ``load_state_dict(strict=True)`` takes it, and the logits are
    the published model's. Built on the meta device and loaded with ``assign=True`` (the blur layers
    adopt the published filters); weights are generated once per arch (they depend only on key and
    shape, and only the blur filters change with N)."""
    from deterministic_weights import deterministic_state_dict

    specs, golden = reference
    names = sorted(name for name, entry in specs.items() if entry["arch"] == arch)
    assert names, f"no reference entries for {arch}"
    shared: dict[str, torch.Tensor] = {}
    for name in names:
        spec = [(key, shape, dtype) for key, shape, dtype in specs[name]["spec"]]
        assert specs[name]["filter_size"] == get_model_spec(name).filter_size
        with torch.device("meta"):
            model = create_model(name)
        assert layout(model) == torchvision_layout(arch), f"{name}: not torchvision's keys"
        if not shared:
            shared = deterministic_state_dict([s for s in spec if not s[0].endswith(".filt")])
        state = published_state(spec, shared)
        assert_maps_exactly(model, state)
        model.load_state_dict(state, strict=True, assign=True)
        assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
        assert_golden(model, name, golden)


@pytest.mark.parametrize("name", ["resnet18_lpf3", "mobilenet_v2_lpf7", "densenet121_lpf2"])
def test_normal_build_loads_the_published_layout_and_round_trips(name, reference):
    specs, golden = reference
    model = create_model(name)  # the real (not meta) path: torchvision init, real blur filters
    filter_size = get_model_spec(name).filter_size
    for module in model.modules():
        if isinstance(module, BlurPool):
            assert module.filt.shape[1:] == (1, filter_size, filter_size)
            torch.testing.assert_close(module.filt[0, 0], binomial_filter(filter_size))
    spec = specs[name]["spec"]
    from deterministic_weights import deterministic_state_dict

    model.load_state_dict(published_state(spec, deterministic_state_dict(spec)), strict=True)  # plain torch
    assert_golden(model, name, golden)
    again = create_model(name)
    again.load_state_dict(model.state_dict(), strict=True)  # the model's own state dict: torchvision's keys
    assert_golden(again, name, golden)


def test_old_checkpoints_in_the_published_layout_still_load(reference, tmp_path):
    """A training checkpoint written by earlier versions of this package: published keys (filters saved),
    DataParallel prefixes, and a spec recorded as 'source'."""
    from deterministic_weights import deterministic_state_dict

    specs, golden = reference
    name = "resnet18_lpf3"
    state = deterministic_state_dict(specs[name]["spec"])
    old = {"epoch": 3, "arch": name, "state_dict": {f"module.{k}": v for k, v in state.items()},
           "model_spec": {"name": name, "arch": "resnet18", "filter_size": 3, "source": "paper", "method": "blurpool"}}
    torch.save(old, tmp_path / "checkpoint.pth.tar")
    model = create_model(name, weights=tmp_path / "checkpoint.pth.tar")
    assert model.weights_info.kind == "checkpoint" and model.weights_info.recorded["epoch"] == 3
    assert_golden(model, name, golden)
    from antialiased.support.checkpoints import load_into

    resumed = create_model(name)
    load_into(resumed, old["state_dict"], "an old run's checkpoint")  # how training resumes a run
    assert_golden(resumed, name, golden)
    with pytest.raises(antialiased.errors.CheckpointError, match=r"saved from 'resnet18_lpf3' \(paper, filter size 3"):
        create_model("resnet18_lpf4", weights=tmp_path / "checkpoint.pth.tar")  # its record, read the old way
    torch.save(state, tmp_path / "published.pth")  # a published file: no record, its filters tell
    with pytest.raises(antialiased.errors.WeightsError, match=r"another filter size \(_lpf3 instead of _lpf4\)"):
        create_model("resnet18_lpf4", weights=tmp_path / "published.pth")
    with pytest.raises(RuntimeError, match=r"another filter size \(_lpf3 instead of _lpf2\)"):
        create_model("resnet18_lpf2").load_state_dict(state)


# --- the normal build path ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet18_lpf4", "mobilenet_v2_lpf3", "vgg11_bn_lpf2", "alexnet_lpf5"])
def test_builds_and_trains(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5)
    size = 67 if name.startswith("alexnet") else 40
    x = torch.rand(2, 3, size, size + 3)
    out = model(x)
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    # Blur filters are fixed buffers: not parameters, no gradients.
    params = dict(model.named_parameters())
    assert not any(k.endswith("filt") for k in params)
    assert all(p.grad is not None for p in params.values())
    assert not any(k.endswith("filt") for k in model.state_dict())  # not saved: torchvision's keys
    assert any(isinstance(m, BlurPool) for m in model.modules())


def test_initialization_like_torchvision():
    torch.manual_seed(0)
    model = create_model("resnet50_lpf4")
    bn = model.layer2[0].bn2
    assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(bn.bias, torch.zeros_like(bn.bias))
    # kaiming_normal_(mode='fan_out', relu): std = sqrt(2 / (out_channels * k * k))
    conv = model.layer3[0].conv2  # now stride 1, 256 -> 256 3x3
    assert conv.stride == (1, 1)
    expected = (2.0 / (conv.out_channels * 9)) ** 0.5
    assert abs(conv.weight.std().item() - expected) / expected < 0.05
    blur = next(m for m in model.layer3[0].modules() if isinstance(m, BlurPool))
    assert torch.equal(blur.filt[0, 0], binomial_filter(4))


def test_zero_init_residual_passes_to_torchvision():
    model = create_model("resnet18_lpf2", zero_init_residual=True)
    assert torch.count_nonzero(model.layer2[0].bn2.weight) == 0


@pytest.mark.parametrize("name,first_blur", [
    ("resnet18_lpf4", "maxpool.1"), ("alexnet_lpf4", "features.1.1"),
    ("densenet121_lpf4", "features.pool0.1"), ("vgg11_lpf4", "features.2.1")])
def test_paper_placement(name, first_blur):
    with torch.device("meta"):
        model = create_model(name)
    modules = dict(model.named_modules())
    assert isinstance(modules[first_blur], BlurPool)
    # No strided conv or pooling is left anywhere except the stems the paper keeps (ResNet/DenseNet conv1,
    # AlexNet's conv at half its stride): every other subsampling goes through a blur.
    kept = {"conv1", "features.conv0", "features.0"}
    for key, module in modules.items():
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)) and key not in kept:
            stride = module.stride if isinstance(module.stride, tuple) else (module.stride,)
            assert set(stride) == {1}, f"{name}: {key} still subsamples"


def _strided_layers(model: nn.Module) -> set[str]:
    """Every conv and pool of ``model`` that subsamples (computed here, not by antialias())."""
    def stride(module):
        return max(module.stride) if isinstance(module.stride, tuple) else module.stride
    return {path for path, module in model.named_modules()
            if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)) and stride(module) > 1}


@pytest.mark.parametrize("arch,stem", [
    ("resnet18", "conv1"), ("resnext50_32x4d", "conv1"), ("densenet121", "features.conv0"),
    ("mobilenet_v2", "features.0.0"), ("alexnet", None), ("vgg11_bn", None)])
def test_paper_builders_are_antialias_of_torchvisions_model(arch, stem):
    """The paper's builders are antialias(): each of torchvision's subsampling layers is converted,
    except the stem the paper keeps strided (AlexNet's conv1 is converted, at half its stride),
    with one blur per site, and torchvision's keys."""
    with torch.device("meta"):
        baseline = torchvision.models.get_model(arch)
        model = create_model(f"{arch}_lpf3")
    summary = model.antialias_summary
    assert (summary.method, summary.filter_size, summary.include_stem) == ("blurpool", 3, False)
    changed = [change.path for change in summary.changed]
    assert set(changed) == _strided_layers(baseline) - {stem} and len(changed) == len(set(changed))
    assert [s.path for s in summary.left_alone if s.kind == "conv"] == ([stem] if stem else [])
    assert all("stem" in s.reason for s in summary.left_alone if s.kind == "conv")
    assert sum(isinstance(m, BlurPool) for m in model.modules()) == len(changed)
    assert isinstance(model, type(baseline)) and layout(model) == torchvision_layout(arch)
    assert getattr(antialiased, arch).__doc__
    if arch != "mobilenet_v2":  # (its published classifier has no dropout layer)
        with torch.device("meta"):
            assert layout(antialias(torchvision.models.get_model(arch), filter_size=3)) == layout(model)


def test_baseline_is_torchvision():
    model = create_model("resnet18", num_classes=7)
    reference = torchvision.models.resnet18(num_classes=7)
    assert type(model) is type(reference)
    assert layout(model) == layout(reference)
    assert not any(isinstance(m, BlurPool) for m in model.modules())


def test_the_top_level_is_the_users_api():
    import antialiased.layers as layers

    # the layers a user inserts by hand: every method's down- and upsampling modules (issue 16: "the layers")
    inserted = {"BlurPool", "BlurPool1D", "BlurPool3D", "AdaptivePolyphaseSampling", "PolyphaseUpsampling",
                "PolyphaseConvTranspose2d", "AdaptiveBlurPool", "LearnablePolyphaseSampling",
                "LearnablePolyphaseUpsampling", "FLCPool", "ASAPPool", "HaarPool",
                "TranslationInvariantPolyphaseSampling"}
    api = {"create_model", "list_models", "get_model_spec", "ModelSpec", "antialias", "AntialiasSummary",
           "load_baseline", "evaluate", "train", "export_model", "errors", "binomial_filter", "blur_pool1d",
           "blur_pool2d", "blur_pool3d", *inserted}
    assert set(antialiased.__all__) == api | set(PAPER_ARCHS) and len(antialiased.__all__) == len(api) + 23
    assert all(getattr(antialiased, name) is getattr(layers, name) for name in inserted)
    assert {name for name in layers.__all__ if isinstance(getattr(layers, name), type)
            and issubclass(getattr(layers, name), torch.nn.Module)} == inserted  # no layer module left out
    for name in antialiased.__all__:
        assert getattr(antialiased, name) is not None, name
    for helper in ("get_model", "parse_model_name", "register_model", "copy_params_buffers", "PAPER_ARCHS"):
        assert not hasattr(antialiased, helper), helper  # helpers live in antialiased.models
    from antialiased.evaluation import evaluate
    from antialiased.export import export_model
    from antialiased.training import train

    assert (antialiased.evaluate, antialiased.train, antialiased.export_model) == (evaluate, train, export_model)
    model = antialiased.resnet18(filter_size=2, num_classes=3)
    assert model.maxpool[1].filt.shape == (64, 1, 2, 2) and model.fc.out_features == 3
    assert model.model_spec == get_model_spec("resnet18_lpf2")


def test_paper_constructors_are_plain_definitions():
    """Visible to static tools: assignments in antialiased/models/constructors.py, one per architecture."""
    import ast
    import inspect

    from antialiased.models import constructors

    tree = ast.parse(inspect.getsource(constructors))
    assigned = [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if t.id != "__all__"]
    assert sorted(assigned) == sorted(PAPER_ARCHS) == registered_archs() == sorted(constructors.__all__)


# --- names and the registry -----------------------------------------------------------------------


def test_list_models():
    names = list_models()
    assert names == sorted(set(names))
    names = [n for n in names if get_model_spec(n).arch not in TEST_ONLY_ARCHS
             and get_model_spec(n).task == "classification"]  # the segmentation names: tests/test_seg_models.py
    paper = [n for n in names if get_model_spec(n).family == "paper"]  # the paper's names keep their meaning
    assert len(paper) == 23 * 8 and {get_model_spec(n).arch for n in paper} == set(PAPER_ARCHS)
    # every torchvision classifier, anti-aliased except the transformers antialias() refuses; no timm names
    tv = torchvision.models.list_models(module=torchvision.models)
    converted = [a for a in tv if not a.startswith(("vit_", "swin_"))]
    assert set(names) == set(paper) | set(tv) | {f"{a}_lpf{n}" for a in converted for n in range(1, 8)}
    assert len(converted) == len(tv) - 11 and "maxvit_t_lpf4" in names
    assert "resnet50" in names and "resnet50_lpf4" in names and "mobilenet_v2_lpf7" in names
    assert list_models("densenet1[26]1") == ["densenet121", "densenet161"]
    assert list_models(["alexnet*", "vgg11"], exclude="*_lpf[2-7]") == ["alexnet", "alexnet_lpf1", "vgg11"]
    assert list_models("nothing*") == []


@pytest.mark.parametrize("name,expected", [
    ("resnet50_lpf4", ("resnet50", 4)), ("wide_resnet50_2", ("wide_resnet50_2", None)),
    ("wide_resnet50_2_lpf7", ("wide_resnet50_2", 7)), ("vgg16_bn_lpf1", ("vgg16_bn", 1))])
def test_parse_model_name(name, expected):
    spec = get_model_spec(name)
    assert (spec.arch, spec.filter_size) == expected and spec.name == str(spec) == name


def test_unknown_name_suggests_close_names():
    with pytest.raises(ValueError, match=r"unknown model 'resnet51_lpf4'.*resnet50_lpf4"):
        create_model("resnet51_lpf4")
    with pytest.raises(ValueError, match="list_models"):
        create_model("transformer")


@pytest.mark.parametrize("name", ["resnet18_lpf0", "resnet18_lpf8", "vgg11_lpf12"])
def test_filter_size_out_of_range(name):
    with pytest.raises(ValueError, match=r"filter size \d+ .* out of range: use _lpf1 to _lpf7"):
        create_model(name)


@pytest.mark.parametrize("filter_size", [0, 8, 2.0, True])
def test_paper_constructor_rejects_filter_size(filter_size):
    with pytest.raises(ValueError, match="filter_size must be an integer from 1 to 7"):
        antialiased.vgg11(filter_size=filter_size)


def test_register_model_refuses_duplicates():
    with pytest.raises(ValueError, match="'resnet18' is already registered"):
        register_model("resnet18")(lambda **kw: nn.Identity())


def test_mobilenet_has_no_dropout():
    with pytest.raises(ValueError, match="no dropout"):
        create_model("mobilenet_v2_lpf4", dropout=0.2)


# --- pretrained / weights wiring ------------------------------------------------------------------


def test_pretrained_and_weights_together(tmp_path):
    with pytest.raises(ValueError, match="either pretrained=True .* or weights=PATH"):
        create_model("resnet18_lpf4", pretrained=True, weights=tmp_path / "w.pth")


def test_weights_path_roundtrip(tmp_path):
    source = create_model("resnet18_lpf3", num_classes=4)
    path = tmp_path / "model.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    loaded = create_model("resnet18_lpf3", num_classes=4, weights=path)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    # Baselines take local files too.
    base = create_model("resnet18", num_classes=4)
    torch.save(base.state_dict(), path)
    assert torch.equal(create_model("resnet18", num_classes=4, weights=path).fc.weight, base.fc.weight)


def test_pretrained_uses_published_weights(monkeypatch):
    """The paper-style constructor resolves the paper's file once, loads it, and records it on the model."""
    from antialiased.models import weights

    calls = []
    fake_state = create_model("resnet18_lpf5").state_dict()

    def load(entry, *, progress=True, model_dir=None):  # stands in for the download only
        calls.append((entry, progress))
        return fake_state

    monkeypatch.setattr(weights, "load_published", load)
    model = antialiased.resnet18(pretrained=True, filter_size=5, _force_nonfinetuned=True, progress=False)
    assert calls == [(weights.PUBLISHED_WEIGHTS["resnet18_lpf5"], False)]
    assert torch.equal(model.fc.weight, fake_state["fc.weight"])
    assert model.weights_info.published is weights.PUBLISHED_WEIGHTS["resnet18_lpf5"]
    assert model.weights_info.label == "published:resnet18_lpf5" and model.weights_info.kind == "published"


def test_pretrained_without_published_file_is_a_clear_error():
    # VGG-11 was only published fine-tuned with filter size 4: nothing to download for N=3.
    with pytest.raises(ValueError, match="vgg11"):
        create_model("vgg11_lpf3", pretrained=True)


def test_pretrained_baseline_offline_error(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models, "get_model", offline)
    with pytest.raises(RuntimeError, match=r"weights='path/to/resnet18.pth'"):
        create_model("resnet18", pretrained=True)


def test_force_nonfinetuned_without_pretrained_warns():
    with pytest.warns(UserWarning, match="force_nonfinetuned only matters with pretrained=True"):
        create_model("resnet18_lpf2", force_nonfinetuned=True)


# --- the `antialiased models` command -------------------------------------------------------------


def test_cli_models_lists_names_and_weights(capsys):
    from antialiased.cli.models import main

    assert main(["resnet18*"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in out[1:] if line.strip()}
    assert set(rows) == set(list_models("resnet18*"))
    assert rows["resnet18"] == ["torchvision"]
    assert rows["resnet18_lpf7"] == ["-"]
    assert "resnet18_lpf4_finetune" in " ".join(rows["resnet18_lpf4"])

    assert main(["vgg16*", "--pretrained", "--exclude", "vgg16_bn*"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:] if line.strip()]
    assert names == ["vgg16", "vgg16_lpf2", "vgg16_lpf3", "vgg16_lpf4", "vgg16_lpf5"]
    assert main(["nothing*"]) == 1


def test_densenet_weights_with_legacy_keys_load(tmp_path):
    source = create_model("densenet121_lpf2", num_classes=3)
    # torchvision's first DenseNet files: 'norm.1.weight' for 'norm1.weight', no num_batches_tracked
    legacy = {k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2."): v for k, v in source.state_dict().items()
              if not k.endswith("num_batches_tracked")}
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    path = tmp_path / "densenet.pth"
    torch.save({"state_dict": legacy}, path)
    loaded = create_model("densenet121_lpf2", num_classes=3, weights=path)
    assert torch.equal(loaded.features.denseblock4.denselayer16.conv2.weight,
                       source.features.denseblock4.denselayer16.conv2.weight)


# --- one spec per name, one table of families, one way to register ---------------------------------


def test_model_spec_is_resolved_once_from_the_name():
    from antialiased.models import ModelSpec

    spec = get_model_spec("wide_resnet50_2_lpf3")
    assert spec == ModelSpec("paper", "wide_resnet50_2", 3, "blurpool")
    assert spec.antialiased and spec.to_dict() == {"name": "wide_resnet50_2_lpf3", "family": "paper",
                                                   "arch": "wide_resnet50_2", "filter_size": 3, "method": "blurpool",
                                                   "options": {}, "task": "classification"}
    base = get_model_spec("vgg16_bn")
    assert (base.arch, base.filter_size, base.method, base.antialiased) == ("vgg16_bn", None, None, False)
    assert get_model_spec(spec) is spec
    model = create_model(spec, num_classes=3)  # a spec is accepted wherever a name is
    assert model.model_spec is spec and model.fc.out_features == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.filter_size = 5


@pytest.mark.parametrize("name,message", [
    ("resnet51_lpf4", "unknown model 'resnet51_lpf4'.*resnet50_lpf4"), ("", "unknown model ''"),
    ("_lpf4", "unknown model"), ("resnet18_lpf", "unknown model 'resnet18_lpf'"),
    ("resnet18_lpf9", r"filter size 9 .* out of range: use _lpf1 to _lpf7 \(e.g. resnet18_lpf4\)"),
    ("resnet18_lpf04", "unknown model 'resnet18_lpf04'.*resnet18_lpf4"),
    ("RESNET18", "unknown model"), ("resnet18_lpf4 ", "unknown model")])
def test_bad_names_are_model_errors(name, message):
    with pytest.raises(ModelError, match=message) as info:
        get_model_spec(name)
    assert isinstance(info.value, ValueError)
    with pytest.raises(TypeError, match="must be a string, got int"):
        get_model_spec(50)


@pytest.fixture
def own_table(monkeypatch):
    """Registrations in the test stay in the test."""
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))


def test_a_new_family_is_one_registration(own_table):
    """A segmentation family with a prefix and '-' in its architectures (as segmentation_models_pytorch's
    smp/<Arch>-<encoder> will be): names, listing, specs, building, weights all follow from one record."""
    from antialiased.models import ArchNames, Family, ModelSpec, register_family
    from antialiased.models.converted import convert
    from antialiased.models.weights_info import random_info

    archs = ["Unet-tiny", "FPN-tiny"]

    def build(spec, num_classes=2):
        model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(4, num_classes, 1))
        return convert(model, spec) if spec.antialiased else model

    class NoWeights:
        def resolve(self, spec, force_nonfinetuned=False):
            return None if spec.antialiased else random_info()

        def load(self, spec, info, *, progress=True, **kwargs):
            return build(spec, **kwargs)

    register_family(Family("segtoy", ArchNames(archs=lambda: archs, listed_by_default=False), build, NoWeights(),
                           prefix="segtoy/", task="segmentation"))
    spec = get_model_spec("segtoy/Unet-tiny_lpf3", method="blur-first", options={"include_stem": True})
    assert spec == ModelSpec("segtoy", "Unet-tiny", 3, "blur-first", (("include_stem", True),), "segmentation")
    assert str(spec) == "segtoy/Unet-tiny_lpf3" and str(dataclasses.replace(spec, filter_size=5)) == "segtoy/Unet-tiny_lpf5"
    assert spec.baseline() == get_model_spec("segtoy/Unet-tiny") and spec.baseline().options == ()
    assert list_models("segtoy/FPN*", exclude="*_lpf[2-7]") == ["segtoy/FPN-tiny", "segtoy/FPN-tiny_lpf1"]
    assert "segtoy/Unet-tiny" not in list_models()  # not listed by default
    model = create_model(spec, num_classes=5)
    assert model.model_spec is spec and model.antialias_summary.method == "blur-first"
    assert model.antialias_summary.include_stem and model(torch.rand(1, 3, 16, 16)).shape == (1, 5, 8, 8)
    pretrained = create_model("segtoy/Unet-tiny_lpf2", pretrained=True)  # its baseline's weights, loaded
    assert pretrained.weights_info.label == "baseline:random"
    with pytest.raises(ModelError, match="unknown model 'segtoy/Unet-tiyn'.*segtoy/Unet-tiny"):
        get_model_spec("segtoy/Unet-tiyn")
    with pytest.raises(ModelError, match="unknown aa_options 'colour'.*pad_type"):
        get_model_spec("segtoy/Unet-tiny_lpf3", options={"colour": 1})
    with pytest.raises(ModelError, match="'paper' is already registered"):
        register_family(Family("paper", ArchNames(archs=list), build))


def test_register_model_is_a_family_of_one(own_table):
    with pytest.raises(ModelError, match="'vgg11' is already registered"):
        register_model("vgg11")(lambda **kw: nn.Identity())

    @register_model("tinynet")
    def tinynet(*, filter_size, num_classes=4):
        return nn.Sequential(BlurPool(3, filt_size=filter_size), nn.Flatten(), nn.LazyLinear(num_classes))

    assert list_models("tinynet*") == [f"tinynet_lpf{n}" for n in range(1, 8)]  # no baseline was given
    assert create_model("tinynet_lpf3").model_spec == get_model_spec("tinynet_lpf3")
    with pytest.raises(ModelError, match="'tinynet' has no baseline model.*tinynet_lpf4"):
        create_model("tinynet")
    with pytest.raises(ModelError, match="'tinynet_lpf3' cannot be made with method 'aps': choose one of blurpool"):
        get_model_spec("tinynet_lpf3", method="aps")
    with pytest.raises(ModelError, match="built by its own code, which takes no antialias\\(\\) options"):
        get_model_spec("tinynet_lpf3", options={"pad_type": "zero"})
    with pytest.raises(ModelError, match="'tinynet' is already registered"):
        register_model("tinynet")(tinynet)


def test_lookup_order_is_the_tables():
    from antialiased.models.families import FAMILIES

    assert registry.list_families()[:5] == [f.name for f in FAMILIES] == ["paper", "torchvision", "timm",
                                                                          "torchvision-segmentation", "smp"]
    # the built-in families answer disjoint names: resnet18 is the paper's whatever the method
    assert {get_model_spec("resnet18_lpf4", method=m).family for m in ("blurpool", "aps")} == {"paper"}
    assert "resnet18" not in list_archs("torchvision") and "efficientnet_b0" in list_archs("torchvision")


def test_architecture_names_are_listed_once():
    """models/paper.py's family is the paper's table (antialias/_paper.py); the constructors follow it."""
    from antialiased.models import PAPER_ARCHS as registered
    from antialiased.models.antialias._paper import PAPER_TABLE

    assert sorted(registered) == sorted(PAPER_ARCHS)
    for arch in PAPER_ARCHS:
        assert getattr(antialiased, arch).__name__ == arch
    assert set(PAPER_ARCHS) <= set(antialiased.models.__all__)
    assert registered_archs() == sorted(arch for family in PAPER_TABLE for arch in family.archs)


# --- weights_info: what a model holds, recorded on it ---------------------------------------------


def test_random_model_records_random_weights():
    model = create_model("mobilenet_v2_lpf3", num_classes=6)
    info = model.weights_info
    assert (info.kind, info.label, info.num_classes, info.classes, info.categories) == ("random", "random", 6, None,
                                                                                      None)
    assert info.transforms().crop_size == [224]
    assert json.loads(json.dumps(info.to_dict()))["label"] == "random"


@pytest.mark.parametrize("name,num_classes", [("resnet18_lpf2", 7), ("mobilenet_v2_lpf3", 3), ("resnet18", 5)])
def test_num_classes_comes_from_the_file(tmp_path, monkeypatch, name, num_classes):
    torch.manual_seed(0)
    source = create_model(name, num_classes=num_classes)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "w.pth")
    monkeypatch.chdir(tmp_path)
    model = create_model(name, weights="w.pth")  # no num_classes: the file's
    assert model.weights_info.num_classes == num_classes
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    info = model.weights_info
    assert (info.kind, info.label, info.path) == ("file", f"file:{tmp_path / 'w.pth'}", tmp_path / "w.pth")
    assert info.path.is_absolute() and info.classes is None and dict(info.recorded) == {}
    # an explicit num_classes that disagrees with the file is an error that names the fix
    with pytest.raises(antialiased.errors.WeightsError, match=f"num_classes={num_classes}"):
        create_model(name, weights="w.pth", num_classes=num_classes + 1)


def test_checkpoint_records_its_classes(tmp_path):
    source = create_model("resnet18_lpf2", num_classes=2)
    checkpoint = {"epoch": 4, "arch": "resnet18_lpf2", "best_acc1": torch.tensor(62.5), "classes": ["cat", "dog"],
                  "num_classes": 2, "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()},
                  "optimizer": torch.optim.SGD(source.parameters(), lr=0.1).state_dict(), "rng_state": [None]}
    torch.save(checkpoint, tmp_path / "checkpoint.pth.tar")
    info = create_model("resnet18_lpf2", weights=tmp_path / "checkpoint.pth.tar").weights_info
    assert (info.kind, info.label) == ("checkpoint", f"checkpoint:{tmp_path / 'checkpoint.pth.tar'}")
    assert info.classes == info.categories == ("cat", "dog") and info.num_classes == 2
    assert dict(info.recorded) == {"epoch": 4, "arch": "resnet18_lpf2", "best_acc1": 62.5,
                                   "classes": ["cat", "dog"], "num_classes": 2}
    assert info.to_dict()["classes"] == ["cat", "dog"]
    json.dumps(info.to_dict())

    # a checkpoint whose layout fits but that records another model is refused
    torch.save({**checkpoint, "arch": "resnet18_lpf2_other"}, tmp_path / "other.pth.tar")
    with pytest.raises(antialiased.errors.CheckpointError, match="trained as 'resnet18_lpf2_other'"):
        create_model("resnet18_lpf2", weights=tmp_path / "other.pth.tar")
    torch.save({**checkpoint, "classes": "cat,dog"}, tmp_path / "bad.pth.tar")
    with pytest.raises(antialiased.errors.WeightsError, match="records 'classes' as str"):
        create_model("resnet18_lpf2", weights=tmp_path / "bad.pth.tar")


def test_library_errors_are_the_packages_own(tmp_path):
    errors = antialiased.errors
    with pytest.raises(errors.ConfigError):
        create_model("resnet18_lpf4", pretrained=True, weights=tmp_path / "w.pth")
    with pytest.raises(errors.MissingFileError, match="not found"):
        create_model("resnet18_lpf4", weights=tmp_path / "missing.pth")
    with pytest.raises(errors.WeightsError, match="No published weights for vgg11_lpf3"):
        create_model("vgg11_lpf3", pretrained=True)
    with pytest.raises(errors.ModelError, match="no dropout"):
        create_model("mobilenet_v2_lpf4", dropout=0.2)
    with pytest.raises(errors.ModelError, match="filter_size must be an integer"):
        antialiased.resnet18(filter_size=9)
