"""Model names beyond the paper's (issue 10 item 4): torchvision's and timm's models, methods, weights, specs.

``<arch>_lpf<N>`` for a torchvision classifier and ``timm/<name>_lpf<N>`` are the baseline converted
by ``antialias(filter_size=N, method=aa_method)``; checked against ``antialias()`` applied by hand to
the same baseline. Pretrained weights are downloaded for real from a local HTTP server.
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import sys
import threading
import warnings
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from antialiased.errors import CheckpointError, MissingDependencyError, ModelError, WeightsError
from antialiased.layers import BlurPool
from antialiased.models import ModelSpec, create_model, get_model_spec, init_from_baseline, list_models
from antialiased.models.antialias import METHODS, antialias
from antialiased.models.converted import NOT_CONVERTIBLE
from antialiased.models.weights import WeightsDownloadError
from test_training_fixtures import cifar_subset  # noqa: F401  (a pytest fixture)

METHOD_NAMES = ("blurpool", "blur-first", "aps", "aps-lpf")


def _timm():
    return pytest.importorskip("timm", reason="timm is an optional dependency (pip install timm)")


# --- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,method,expected", [
    ("resnet18_lpf4", None, ("resnet18", 4, "paper", "blurpool")),
    ("resnet18_lpf4", "blurpool", ("resnet18", 4, "paper", "blurpool")),
    ("resnet18_lpf4", "aps", ("resnet18", 4, "paper", "aps")),  # one owner whatever the method
    ("resnet18", None, ("resnet18", None, "paper", None)),
    ("efficientnet_b0_lpf3", None, ("efficientnet_b0", 3, "torchvision", "blurpool")),
    ("efficientnet_b0_lpf3", "blur-first", ("efficientnet_b0", 3, "torchvision", "blur-first")),
    ("regnet_x_400mf_lpf1", "aps-lpf", ("regnet_x_400mf", 1, "torchvision", "aps-lpf")),
    ("efficientnet_b0", None, ("efficientnet_b0", None, "torchvision", None)),
    ("maxvit_t_lpf7", None, ("maxvit_t", 7, "torchvision", "blurpool")),
    ("vit_b_16", None, ("vit_b_16", None, "torchvision", None)),  # the baseline of a transformer is a name
])
def test_names_resolve_to_specs(name, method, expected):
    spec = get_model_spec(name, method=method)
    assert (spec.name, (spec.arch, spec.filter_size, spec.family, spec.method)) == (name, expected)
    assert get_model_spec(spec) is spec and get_model_spec(spec, method=method) == spec


def test_timm_names_resolve_to_specs():
    _timm()
    assert get_model_spec("timm/resnet18_lpf4") == ModelSpec("timm", "resnet18", 4, "blurpool")
    assert get_model_spec("timm/resnet18") == ModelSpec("timm", "resnet18")
    assert str(get_model_spec("timm/resnet18_lpf4")) == "timm/resnet18_lpf4"
    spec = get_model_spec("timm/resnet18.a1_in1k_lpf2", method="aps")  # timm's pretrained tag is part of the arch
    assert (spec.arch, spec.filter_size, spec.method) == ("resnet18.a1_in1k", 2, "aps")


@pytest.mark.parametrize("name,method,message", [
    ("efficientnet_b9_lpf3", None, r"unknown model 'efficientnet_b9_lpf3'\. Closest names: efficientnet_b"),
    ("efficientnet_b0_lpf8", None, r"filter size 8 in 'efficientnet_b0_lpf8' is out of range: use _lpf1 to _lpf7"),
    ("efficientnet_b0_lpf0", None, "filter size 0"),
    ("vit_b_16_lpf4", None, r"'vit_b_16_lpf4' cannot be made: vit_b_16 is a vision transformer.*patch embedding"
                            r".*Use the baseline 'vit_b_16'"),
    ("swin_t_lpf2", "aps", "'swin_t_lpf2' cannot be made: swin_t is a Swin transformer"),
    ("efficientnet_b0", "aps", r"aa_method='aps' applies to anti-aliased names.*use 'efficientnet_b0_lpf4'"),
    ("resnet18", "blurpool", "'resnet18' is the baseline"),
    ("resnet18_lpf4", "bilinear", "cannot be made with method 'bilinear': choose one of adaptive, aps, aps-lpf, "
                                  "asap, blur-first, blurpool"),
    ("timmm/resnet18_lpf4", None, "unknown model 'timmm/resnet18_lpf4'.*'timm/<name>_lpf<N>'"),
])
def test_bad_names_are_clear_errors(name, method, message):
    with pytest.raises(ModelError, match=message):
        get_model_spec(name, method=method)
    with pytest.raises(ModelError, match=message):
        create_model(name, aa_method=method)


def test_bad_timm_names():
    _timm()
    with pytest.raises(ModelError, match=r"unknown model 'timm/resnt18_lpf4'\. Closest names: timm/resnet18"):
        get_model_spec("timm/resnt18_lpf4")
    with pytest.raises(ModelError, match="timm has no pretrained tag 'zzz' for 'resnet18'; its tags: a1_in1k"):
        get_model_spec("timm/resnet18.zzz_lpf4")
    with pytest.raises(ModelError, match="filter size 9"):
        get_model_spec("timm/resnet18_lpf9")
    with pytest.raises(ModelError, match=r"cannot make 'timm/vit_tiny_patch16_224_lpf4': patch_embed\.proj .*"
                                         r"patch embedding.*baseline 'timm/vit_tiny_patch16_224'"):
        create_model("timm/vit_tiny_patch16_224_lpf4", depth=1)


def test_without_timm_timm_names_say_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"timm/ model names need timm.*pip install timm"):
        get_model_spec("timm/resnet18_lpf4")
    with pytest.raises(MissingDependencyError, match="pip install timm"):
        create_model("timm/resnet18")
    with pytest.raises(MissingDependencyError, match="pip install timm"):
        list_models("timm/*")
    assert "efficientnet_b0_lpf4" in list_models()  # everything else works without timm
    with pytest.raises(ModelError, match="unknown model"):
        get_model_spec("resnet19")  # unknown names are not mistaken for timm's


# --- list_models ----------------------------------------------------------------------------------


def test_list_models_shows_torchvision_names():
    names = list_models()
    assert names == sorted(names) and len(names) == len(set(names))
    assert {"efficientnet_b0", "efficientnet_b0_lpf4", "regnet_y_400mf_lpf7", "convnext_tiny_lpf2",
            "inception_v3_lpf3", "mobilenet_v3_small_lpf1"} <= set(names)
    assert "vit_b_16" in names and not any(n.startswith(("vit_", "swin_")) and "_lpf" in n for n in names)
    assert not any(n.startswith("timm/") for n in names)
    assert list_models("mobilenet_v3_*", exclude=["*_lpf[2-7]", "*large*"]) == ["mobilenet_v3_small",
                                                                                 "mobilenet_v3_small_lpf1"]
    assert list_models(["mnasnet0_5*", "resnet18"], exclude="*_lpf[1-6]") == ["mnasnet0_5", "mnasnet0_5_lpf7",
                                                                              "resnet18"]


def test_list_models_shows_timm_names_only_when_asked():
    timm = _timm()
    names = list_models("timm/resnet1*")
    expected = {f"timm/{a}{suffix}" for a in timm.list_models("resnet1*")
                for suffix in ["", *(f"_lpf{n}" for n in range(1, 8))]}
    assert names == sorted(expected) and "timm/resnet18_lpf4" in names
    assert list_models(["timm/resnet18", "efficientnet_b0"]) == ["efficientnet_b0", "timm/resnet18"]
    assert list_models("*resnet18") == ["resnet18"]  # a pattern without the prefix does not pull in ~11000 names


@pytest.mark.parametrize("prefix", sorted(NOT_CONVERTIBLE))
def test_names_left_out_are_those_antialias_refuses(prefix):
    """The table of unconvertible torchvision models says what antialias() really does (checked on meta)."""
    archs = [a for a in torchvision.models.list_models(module=torchvision.models) if a.startswith(prefix)]
    assert archs
    for arch in archs:
        with torch.device("meta"):
            model = torchvision.models.get_model(arch)
        with pytest.raises(ModelError, match="patch embedding"):
            antialias(model)


@pytest.mark.sweep
@pytest.mark.parametrize("arch", sorted({n for n in list_models("*_lpf4")} - {n for n in list_models("*_lpf4")
                                                                               if get_model_spec(n).family == "paper"}))
def test_every_listed_torchvision_name_converts(arch):
    spec = get_model_spec(arch)
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = torchvision.models.get_model(spec.arch)
        except NotImplementedError:  # RegNet computes its widths on tensors
            model = None
    model = model if model is not None else torchvision.models.get_model(spec.arch)
    assert antialias(model, filter_size=4).antialias_summary.changed


# --- create_model: what each name and method builds --------------------------------------------------


def _tiny_timm_resnet(**kwargs):
    return {"layers": [1, 1, 1, 1], **kwargs}


CASES = [  # (name, builder kwargs, baseline builder, input size)
    ("mobilenet_v3_small_lpf3", {"num_classes": 7}, lambda: torchvision.models.mobilenet_v3_small(num_classes=7), 64),
    ("efficientnet_b0_lpf2", {"num_classes": 7}, lambda: torchvision.models.efficientnet_b0(num_classes=7), 64),
    ("regnet_x_400mf_lpf4", {"num_classes": 7}, lambda: torchvision.models.regnet_x_400mf(num_classes=7), 64),
]
CASE_METHODS = {"mobilenet_v3_small_lpf3": METHOD_NAMES, "efficientnet_b0_lpf2": ("aps",),
                "regnet_x_400mf_lpf4": ("aps-lpf",)}


def _check_converted(model, reference, baseline, method, size):
    """``model`` computes ``reference``'s function (antialias by hand), keeps the baseline's keys and outputs."""
    assert list(model.state_dict()) == list(baseline.state_dict())
    model.load_state_dict(baseline.state_dict(), strict=True)  # the baseline's weights load strictly
    reference.load_state_dict(baseline.state_dict(), strict=True)
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        out, expected, base = model.eval()(x), reference.eval()(x), baseline.eval()(x)
    assert out.shape == base.shape
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    summary = model.antialias_summary
    assert summary.method == method and summary.changed
    inserted = [m for m in model.modules() if isinstance(m, BlurPool) or type(m).__name__.startswith("Adaptive")]
    assert inserted, "nothing was inserted"


@pytest.mark.parametrize("name,method", [(c[0], m) for c in CASES for m in CASE_METHODS[c[0]]])
def test_create_model_is_antialias_of_the_baseline(name, method):
    _, kwargs, build_baseline, size = next(c for c in CASES if c[0] == name)
    model = create_model(name, aa_method=method, **kwargs)
    spec = model.model_spec
    assert (spec.name, spec.family, spec.method, spec.filter_size) == (name, "torchvision", method,
                                                                       int(name.rsplit("lpf", 1)[1]))
    baseline = build_baseline()
    reference = antialias(copy.deepcopy(baseline), filter_size=spec.filter_size, method=method)
    _check_converted(model, reference, baseline, method, size)
    info = model.weights_info
    assert (info.kind, info.label, info.num_classes) == ("random", "random", 7)
    assert json.loads(json.dumps(spec.to_dict())) == {"name": name, "family": "torchvision", "arch": spec.arch,
                                                      "filter_size": spec.filter_size, "method": method, "options": {},
                                                      "task": "classification"}


def test_baseline_names_are_the_plain_models():
    model = create_model("efficientnet_b0", num_classes=5)
    assert type(model) is torchvision.models.EfficientNet and not hasattr(model, "antialias_summary")
    assert model.model_spec == ModelSpec("torchvision", "efficientnet_b0")
    assert not any(isinstance(m, BlurPool) for m in model.modules())


def test_paper_names_with_another_method_are_the_same_architecture_converted():
    model = create_model("resnet18_lpf2", aa_method="blur-first", num_classes=3)
    assert model.model_spec.family == "paper" and model.antialias_summary.method == "blur-first"
    paper = create_model("resnet18_lpf2", aa_method="blurpool", num_classes=3)
    assert paper.model_spec.family == "paper" and paper.antialias_summary.method == "blurpool"
    assert list(model.state_dict()) == list(paper.state_dict()) == list(torchvision.models.resnet18().state_dict())
    assert model.model_spec != paper.model_spec  # what tells their checkpoints apart


@pytest.mark.parametrize("method", ["blurpool", "aps"])
def test_timm_names_are_antialias_of_timms_model(method):
    timm = _timm()
    torch.manual_seed(0)
    model = create_model("timm/resnet18_lpf3", aa_method=method, **_tiny_timm_resnet(num_classes=4))
    assert model.model_spec == ModelSpec("timm", "resnet18", 3, method)
    baseline = timm.create_model("resnet18", **_tiny_timm_resnet(num_classes=4))
    reference = antialias(copy.deepcopy(baseline), filter_size=3, method=method)
    _check_converted(model, reference, baseline, method, 64)
    assert model.weights_info.label == "random"
    baseline = create_model("timm/resnet18", **_tiny_timm_resnet(num_classes=4))
    assert type(baseline) is type(reference) and baseline.model_spec.method is None


def test_list_of_methods_is_the_engines():
    # a new method of the engine is a new aa_method, nothing else to do (issue 19's learned and Fourier
    # methods through create_model: tests/test_methods_registered.py)
    assert set(METHOD_NAMES) <= set(METHODS)


# --- the spec is recorded, and checked on load ------------------------------------------------------


def _checkpoint(tmp_path: Path, model: nn.Module, name: str) -> Path:
    """A checkpoint as training writes it: its identity records from the one model_identity."""
    from antialiased.models import model_identity

    path = tmp_path / name
    torch.save({"epoch": 1, "arch": model.model_spec.name, "state_dict": model.state_dict(),
                **model_identity(model)}, path)
    return path


def _assert_same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_result_files_and_checkpoints_record_family_filter_size_and_method():
    from antialiased.evaluation.model_setup import result_identity
    from antialiased.models import model_identity
    from antialiased.training import model_setup

    assert model_setup.model_identity is model_identity  # training's checkpoints: the same one
    model = create_model("mobilenet_v3_small_lpf5", aa_method="aps-lpf", aa_options={"pad_type": "zero"},
                         num_classes=3)
    expected = {"name": "mobilenet_v3_small_lpf5", "family": "torchvision", "arch": "mobilenet_v3_small",
                "filter_size": 5, "method": "aps-lpf", "options": {"pad_type": "zero"}, "task": "classification"}
    assert result_identity(model)["model_spec"] == expected == model_identity(model)["model_spec"]
    assert result_identity(model)["model"] == "mobilenet_v3_small_lpf5"


def test_loading_refuses_a_checkpoint_of_another_spec(tmp_path):
    torch.manual_seed(0)
    lpf2 = create_model("mobilenet_v3_small_lpf2", num_classes=3)
    aps = create_model("mobilenet_v3_small_lpf2", aa_method="aps", num_classes=3)
    assert list(lpf2.state_dict()) == list(aps.state_dict()) == list(
        create_model("mobilenet_v3_small_lpf4", num_classes=3).state_dict())  # only the record tells them apart
    saved_lpf2, saved_aps = _checkpoint(tmp_path, lpf2, "lpf2.pth.tar"), _checkpoint(tmp_path, aps, "aps.pth.tar")

    _assert_same(create_model("mobilenet_v3_small_lpf2", weights=saved_lpf2).state_dict(), lpf2.state_dict())
    loaded = create_model("mobilenet_v3_small_lpf2", aa_method="aps", weights=saved_aps)
    assert loaded.model_spec.method == "aps" and loaded.weights_info.num_classes == 3
    with pytest.raises(CheckpointError, match=(
            r"lpf2\.pth\.tar was saved from 'mobilenet_v3_small_lpf2' \(torchvision, filter size 2, method blurpool\), "
            r"but the model asked for is 'mobilenet_v3_small_lpf4' \(torchvision, filter size 4, method blurpool\)\. "
            r"Load it as create_model\('mobilenet_v3_small_lpf2'\) \(-a mobilenet_v3_small_lpf2 on the command line\)")):
        create_model("mobilenet_v3_small_lpf4", weights=saved_lpf2)
    with pytest.raises(CheckpointError, match=(
            r"method aps\), but the model asked for is 'mobilenet_v3_small_lpf2' \(torchvision, filter size 2, method "
            r"blurpool\)\. Load it as create_model\('mobilenet_v3_small_lpf2', aa_method='aps'\) "
            r"\(-a mobilenet_v3_small_lpf2 --aa-method aps on the command line\)")):
        create_model("mobilenet_v3_small_lpf2", weights=saved_aps)
    baseline = _checkpoint(tmp_path, create_model("mobilenet_v3_small", num_classes=3), "base.pth.tar")
    with pytest.raises(CheckpointError, match=r"saved from 'mobilenet_v3_small' \(torchvision, baseline without blur"):
        create_model("mobilenet_v3_small_lpf2", weights=baseline)

    # files without a record (torchvision's, exported weights, bare state dicts) load into any spec
    torch.save(lpf2.state_dict(), tmp_path / "plain.pth")
    for method in ("blurpool", "aps"):
        model = create_model("mobilenet_v3_small_lpf4", aa_method=method, weights=tmp_path / "plain.pth")
        _assert_same(model.state_dict(), lpf2.state_dict())


def test_paper_checkpoints_are_checked_too(tmp_path):
    converted = _checkpoint(tmp_path, create_model("resnet18_lpf4", aa_method="aps", num_classes=2), "aps.pth.tar")
    with pytest.raises(CheckpointError, match=r"saved from 'resnet18_lpf4' \(paper, method aps\), "
                                              r"but the model asked for is 'resnet18_lpf4' \(paper, filter size 4"):
        create_model("resnet18_lpf4", weights=converted)  # the same keys: the record tells them apart
    paper = _checkpoint(tmp_path, create_model("resnet18_lpf2", num_classes=2), "paper.pth.tar")
    with pytest.raises(CheckpointError, match=r"'resnet18_lpf2' \(paper, filter size 2.*create_model\('resnet18_lpf2'\)"):
        create_model("resnet18_lpf3", weights=paper)
    assert create_model("resnet18_lpf2", weights=paper).model_spec.family == "paper"
    # a record written before families (resnet18 with another method was then 'torchvision''s) is read by name
    old = torch.load(converted, weights_only=True)
    old["model_spec"] = {"name": "resnet18_lpf4", "arch": "resnet18", "filter_size": 4, "source": "torchvision",
                         "method": "aps"}
    torch.save(old, tmp_path / "old.pth.tar")
    assert create_model("resnet18_lpf4", aa_method="aps", weights=tmp_path / "old.pth.tar").model_spec.method == "aps"
    with pytest.raises(CheckpointError, match=r"\(torchvision, method aps\).*aa_method='aps'"):
        create_model("resnet18_lpf4", weights=tmp_path / "old.pth.tar")


# --- pretrained: the baseline's weights, downloaded for real from a local server ---------------------


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A real HTTP server on 127.0.0.1 serving tmp_path/served; torch hub's cache in tmp_path."""
    root = tmp_path / "served"
    root.mkdir()
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            return super().do_GET()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    yield {"root": root, "url": f"http://127.0.0.1:{httpd.server_address[1]}", "requests": requests}
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _serve(server: dict, stem: str, state_dict: dict) -> str:
    """Serve ``state_dict`` as ``<stem>-<sha256[:8]>.pth`` (torch hub checks that prefix); its URL."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    sha = hashlib.sha256(buffer.getvalue()).hexdigest()[:8]
    (server["root"] / f"{stem}-{sha}.pth").write_bytes(buffer.getvalue())
    return f"{server['url']}/{stem}-{sha}.pth"


def _closed_url(file_name: str) -> str:
    import socket

    with socket.socket() as sock:  # a port nobody listens on: connection refused, as offline
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{file_name}"


def test_pretrained_converted_name_starts_from_torchvisions_weights(server, monkeypatch):
    weights = torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1
    torch.manual_seed(1)
    state = torchvision.models.mobilenet_v3_small().state_dict()
    url = _serve(server, "mobilenet_v3_small", state)
    monkeypatch.setattr(weights.value, "url", url)  # torchvision's own download, from the local server

    model = create_model("mobilenet_v3_small_lpf3", pretrained=True, progress=False)
    assert server["requests"] == ["/" + url.rsplit("/", 1)[1]]
    _assert_same(model.state_dict(), state)
    info = model.weights_info
    assert (info.kind, info.label, info.num_classes) == ("baseline", "baseline:torchvision:IMAGENET1K_V1", 1000)
    assert info.baseline.torchvision is weights and info.categories == tuple(weights.meta["categories"])
    assert model.model_spec.family == "torchvision" and model.antialias_summary.changed
    reference = antialias(torchvision.models.mobilenet_v3_small(weights=weights), filter_size=3)
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference.eval()(x), rtol=0, atol=0)

    # the baseline, another method and --finetune's path all use the same file (now in torch hub's cache)
    assert create_model("mobilenet_v3_small", pretrained=True).weights_info.label == "torchvision:IMAGENET1K_V1"
    aps = create_model("mobilenet_v3_small_lpf3", pretrained=True, aa_method="aps", progress=False)
    fine = init_from_baseline("mobilenet_v3_small_lpf3", aa_method="aps", progress=False)
    for m in (aps, fine):
        _assert_same(m.state_dict(), state)
        assert m.weights_info.label == "baseline:torchvision:IMAGENET1K_V1" and m.model_spec.method == "aps"
    assert len(server["requests"]) == 1
    with pytest.raises(WeightsError, match="have 1000 classes, not num_classes=10"):
        create_model("mobilenet_v3_small_lpf3", pretrained=True, num_classes=10)


def test_segmentation_weights_are_named_by_their_own_dataset(server, monkeypatch):
    # torchvision's segmentation weights are COCO's (VOC labels), not ImageNet's: the message says what they are
    from torchvision.models.segmentation import FCN_ResNet50_Weights

    weights = FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1
    monkeypatch.setattr(weights.value, "url", _closed_url("fcn_resnet50_coco-1167a1af.pth"))
    with pytest.raises(WeightsDownloadError) as info:
        create_model("fcn_resnet50", pretrained=True, progress=False)
    message = str(info.value)
    assert message.startswith("Could not download torchvision's COCO-val2017-VOC-labels weights "
                              "COCO_WITH_VOC_LABELS_V1 for 'fcn_resnet50'"), message
    assert "ImageNet" not in message.split(" from ")[0]


def test_pretrained_offline_and_corrupt_downloads_are_clear_errors(server, monkeypatch):
    weights = torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1
    monkeypatch.setattr(weights.value, "url", _closed_url("mobilenet_v3_small-047dcff4.pth"))
    with pytest.raises(WeightsDownloadError, match=r"Could not download torchvision's ImageNet-1K weights "
                                                   r"IMAGENET1K_V1 for 'mobilenet_v3_small'.*"
                                                   r"weights='path/to/mobilenet_v3_small\.pth'"):
        create_model("mobilenet_v3_small_lpf2", pretrained=True, progress=False)
    with pytest.raises(WeightsDownloadError, match="baseline_weights='path/to/mobilenet_v3_small.pth'"):
        init_from_baseline("mobilenet_v3_small_lpf2", progress=False)
    good = _serve(server, "mobilenet_v3_small", torchvision.models.mobilenet_v3_small().state_dict())
    bad = good.rsplit("-", 1)[0] + "-00000000.pth"  # the served file does not match the name's hash
    Path(server["root"] / bad.rsplit("/", 1)[1]).write_bytes(Path(server["root"] / good.rsplit("/", 1)[1]).read_bytes())
    monkeypatch.setattr(weights.value, "url", bad)
    with pytest.raises(WeightsDownloadError, match=r"is not the published mobilenet_v3_small-00000000\.pth: its SHA-256 "
                                                   r"does not start with 00000000"):
        create_model("mobilenet_v3_small_lpf2", pretrained=True, progress=False)
    assert os.listdir(Path(torch.hub.get_dir()) / "checkpoints") == []  # neither the bad file nor a temporary


def test_paper_names_with_another_method_start_from_torchvisions_v1():
    from antialiased.models import get_family

    spec = get_model_spec("resnet50_lpf4", method="aps")
    weights = get_family(spec.family).weights
    assert weights.resolve(spec) is None  # no weights of its own: it starts from its baseline's
    info = weights.resolve(spec.baseline())
    assert (info.kind, info.label) == ("torchvision", "torchvision:IMAGENET1K_V1")
    assert info.torchvision is torchvision.models.ResNet50_Weights.IMAGENET1K_V1  # the paper's baseline
    assert weights.resolve(get_model_spec("resnet50_lpf4")).label == "published:resnet50_lpf4_finetune"


def test_timm_pretrained_downloads_into_the_converted_model(server, tmp_path):
    timm = _timm()
    torch.manual_seed(2)
    state = timm.create_model("mobilenetv3_small_050").state_dict()
    overlay = {"url": _serve(server, "mobilenetv3_small_050", state), "hf_hub_id": None}  # timm's URL loader

    model = create_model("timm/mobilenetv3_small_050_lpf2", pretrained=True, pretrained_cfg_overlay=overlay)
    assert len(server["requests"]) == 1
    _assert_same(model.state_dict(), state)
    info = model.weights_info
    assert (info.kind, info.label) == ("baseline", "baseline:timm:mobilenetv3_small_050.lamb_in1k")
    assert info.num_classes == 1000 and info.categories[0] == "tench"
    preprocess = info.transforms()
    assert (preprocess.crop_size, preprocess.resize_size, preprocess.interpolation.value) == ([224], [256], "bicubic")
    base = create_model("timm/mobilenetv3_small_050", pretrained=True, pretrained_cfg_overlay=overlay)
    assert base.weights_info.label == "timm:mobilenetv3_small_050.lamb_in1k" and len(server["requests"]) == 1

    torch.save(state, tmp_path / "timm.pth")  # a local file: the way in without network
    fine = init_from_baseline("timm/mobilenetv3_small_050_lpf2", aa_method="aps", baseline_weights=tmp_path / "timm.pth")
    _assert_same(fine.state_dict(), state)
    assert fine.weights_info.label == f"baseline:file:{tmp_path / 'timm.pth'}" and fine.model_spec.method == "aps"
    local = create_model("timm/mobilenetv3_small_050_lpf2", weights=tmp_path / "timm.pth")
    _assert_same(local.state_dict(), state)

    offline = {"url": _closed_url("mobilenetv3_small_050.pth"), "hf_hub_id": None}
    with pytest.raises(WeightsDownloadError, match=r"Could not download timm's pretrained weights for "
                                                   r"'mobilenetv3_small_050'.*weights='path/to/mobilenetv3_small_050"):
        create_model("timm/mobilenetv3_small_050_lpf2", pretrained=True, pretrained_cfg_overlay=offline)
    with pytest.raises(WeightsError, match="timm's mobilenetv3_small_050 weights have 1000 classes, not num_classes=5"):
        create_model("timm/mobilenetv3_small_050_lpf2", pretrained=True, num_classes=5)
    with pytest.raises(WeightsError, match="timm has no pretrained weights for 'cs3darknet_s'"):
        create_model("timm/cs3darknet_s_lpf3", pretrained=True)


# --- init_from_baseline, options, the command line --------------------------------------------------


def test_init_from_a_baseline_module_leaves_it_alone():
    torch.manual_seed(3)
    baseline = torchvision.models.mobilenet_v3_small(num_classes=4)
    before = {k: v.clone() for k, v in baseline.state_dict().items()}
    model = init_from_baseline("mobilenet_v3_small_lpf4", baseline_weights=baseline, aa_method="blur-first")
    assert model is not baseline and not hasattr(baseline, "antialias_summary")
    _assert_same(baseline.state_dict(), before)
    _assert_same(model.state_dict(), before)
    assert (model.weights_info.label, model.model_spec.method) == ("baseline:memory:module", "blur-first")
    with pytest.raises(ModelError, match="'mobilenet_v3_small' is the baseline itself"):
        init_from_baseline("mobilenet_v3_small", baseline_weights=baseline)


def test_force_nonfinetuned_does_not_apply_to_converted_names(server, monkeypatch):
    weights = torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1
    monkeypatch.setattr(weights.value, "url", _serve(server, "mobilenet_v3_small",
                                                     torchvision.models.mobilenet_v3_small().state_dict()))
    with pytest.warns(UserWarning, match="force_nonfinetuned chooses among the paper's published files"):
        create_model("mobilenet_v3_small_lpf2", pretrained=True, force_nonfinetuned=True, progress=False)


def test_cli_models_lists_converted_names(capsys):
    from antialiased.cli.models import main

    assert main(["efficientnet_b0*", "vit_b_16*", "--exclude", "*_lpf[2-7]"]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows == {"efficientnet_b0": ["torchvision"], "efficientnet_b0_lpf1": ["baseline:torchvision"],
                    "vit_b_16": ["torchvision"]}


def test_cli_models_lists_timm_names_when_asked(capsys):
    _timm()
    from antialiased.cli.models import main

    assert main(["timm/resnet18", "timm/resnet18_lpf3", "timm/cs3darknet_s_lpf3"]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows == {"timm/resnet18": ["timm"], "timm/resnet18_lpf3": ["baseline:timm"], "timm/cs3darknet_s_lpf3": ["-"]}


def test_command_line_aa_method_trains_records_resumes_and_evaluates(cifar_subset, tmp_path, capsys):
    """--aa-method end to end (main.py): the checkpoint and the result file record the method; a resume or an
    evaluation that would build another method from the same keys is refused with the flag that fits."""
    from test_training_fixtures import load, tiny_args, train_cli, train_fails

    out = tmp_path / "train"
    name = "mobilenet_v3_small_lpf2"
    common = ["-ep", "1", "-mti", "1", "-b", "8"]
    assert train_cli(*tiny_args(cifar_subset, out, *common, arch=name), "--aa-method", "aps") == 0
    checkpoint = out / "checkpoint.pth.tar"
    assert load(checkpoint)["model_spec"] == {"name": name, "family": "torchvision", "arch": "mobilenet_v3_small",
                                              "filter_size": 2, "method": "aps", "options": {},
                                              "task": "classification"}
    train_fails(CheckpointError, r"method aps\), but the model asked for is .*method blurpool.*--aa-method aps",
                *tiny_args(cifar_subset, out, "-ep", "2", "-b", "8", "--resume", str(checkpoint), arch=name))

    results = tmp_path / "results"
    assert train_cli("--data", str(cifar_subset), "-a", name, "--aa-method", "aps", "-e", "--resume",
                     str(checkpoint), "--crop-size", "32", "-b", "8", "-j", "0", "--out-dir", str(results)) == 0
    (result_file,) = results.rglob("*.json")
    assert json.loads(result_file.read_text())["model_spec"]["method"] == "aps"
    capsys.readouterr()
    assert train_cli("--data", str(cifar_subset), "-a", name, "-e", "--resume", str(checkpoint), "--crop-size", "32",
                     "-j", "0", "--out-dir", str(results)) == 2
    assert "aa_method='aps'" in capsys.readouterr().err
    assert train_cli("--data", str(cifar_subset), "-a", "mobilenet_v3_small", "--aa-method", "aps", "-e",
                     "--out-dir", str(results)) == 2
    assert "applies to anti-aliased names" in capsys.readouterr().err
