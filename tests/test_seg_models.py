"""Segmentation models by name (issue 18 item 2): torchvision's FCN / DeepLabV3 / LR-ASPP and
segmentation_models_pytorch's ``smp/<Arch>-<encoder>``, baseline and ``_lpf<N>``.

Checked against the libraries themselves: the baseline is torchvision's (smp's) model, outputs equal
for equal weights; a converted name is ``antialias()`` of it, loading the unconverted state dict
strictly; the auxiliary head follows the weights' keys; pretrained files are downloaded for real
from a server on 127.0.0.1 (torch hub's cache and ``$HF_ENDPOINT`` pointed there).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torchvision

from antialiased.errors import MissingDependencyError, ModelError, WeightsDownloadError, WeightsError
from antialiased.models import create_model, get_family, get_model_spec, list_models
from antialiased.models.antialias import antialias
from _upsample_nets import calibrated
from test_model_names import _closed_url, _serve, server  # noqa: F401  (server: a pytest fixture)

TV_ARCHS = ("deeplabv3_mobilenet_v3_large", "deeplabv3_resnet101", "deeplabv3_resnet50", "fcn_resnet101",
            "fcn_resnet50", "lraspp_mobilenet_v3_large")
smp = pytest.importorskip("segmentation_models_pytorch", reason="smp/ names need the 'segmentation' extra")


def _tv(arch: str, **kwargs) -> torch.nn.Module:
    return torchvision.models.get_model(arch, weights=None, weights_backbone=None, **kwargs)


def _same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


# --- names ------------------------------------------------------------------------------------------


def test_every_listed_segmentation_name_parses_and_formats_back():
    tv = [n for n in list_models() if n.split("_lpf")[0] in TV_ARCHS]
    assert len(tv) == 6 * 8 and "fcn_resnet50_lpf4" in tv and "lraspp_mobilenet_v3_large" in tv
    smp_names = list_models("smp/*")
    assert not any(n.startswith("smp/") for n in list_models())  # listed for smp/ patterns only, as timm's
    assert len(smp_names) == len(smp.MODEL_ARCHITECTURES_MAPPING) * len(smp.encoders.get_encoder_names()) * 8
    for name in tv + smp_names:
        spec = get_model_spec(name)
        assert spec.name == name and spec.task == "segmentation"
        assert spec.family == ("smp" if name.startswith("smp/") else "torchvision-segmentation")


@pytest.mark.parametrize("name,arch,encoder,size", [
    ("smp/Unet-resnet34_lpf4", "Unet", "resnet34", 4),
    ("smp/DeepLabV3Plus-resnet50", "DeepLabV3Plus", "resnet50", None),
    ("smp/FPN-timm-efficientnet-b0_lpf2", "FPN", "timm-efficientnet-b0", 2),  # the encoder keeps its dashes
    ("smp/Unet-tu-resnet18", "Unet", "tu-resnet18", None),  # timm's encoders: smp's tu- names
])
def test_smp_names_split_at_the_first_dash(name, arch, encoder, size):
    spec = get_model_spec(name)
    assert spec.arch == f"{arch}-{encoder}" and spec.filter_size == size and spec.name == name
    from antialiased.models._smp import smp_parts
    assert smp_parts(spec.arch) == (arch, encoder)


@pytest.mark.parametrize("name,needle", [
    ("smp/unet-resnet34", "Closest names: smp/Unet-resnet34"),  # smp's class names, as spelled
    ("smp/Unet", "unknown model 'smp/Unet'"),  # no encoder
    ("smp/Unet-resnet35", "smp/Unet-resnet34"),
    ("smp/Unet-tu-nosuchmodel", "unknown model"),
    ("smp/Unet-resnet34_lpf9", "filter size 9"),
])
def test_bad_smp_names_are_refused_with_close_matches(name, needle):
    with pytest.raises(ModelError, match=needle):
        get_model_spec(name)


def test_without_smp_smp_names_say_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", None)  # import now raises ImportError
    for call in (lambda: get_model_spec("smp/Unet-resnet34_lpf4"), lambda: create_model("smp/Unet-resnet18"),
                 lambda: list_models("smp/*")):
        with pytest.raises(MissingDependencyError, match=r"smp/ model names need segmentation_models_pytorch.*"
                                                         r"pip install 'antialiased\[segmentation\]'"):
            call()
    assert "fcn_resnet50_lpf4" in list_models()  # everything else works without smp
    from antialiased.cli.paper import main

    # the command line: one line, exit status 2, the name checked before any folder is read or made
    assert main(["--data", str(tmp_path / "nowhere"), "-a", "smp/Unet-resnet18", "--out-dir", str(tmp_path / "o")],
                mode="train") == 2
    assert "pip install 'antialiased[segmentation]'" in capsys.readouterr().err and not (tmp_path / "o").exists()


# --- torchvision's segmentation models ----------------------------------------------------------------


@pytest.mark.parametrize("arch", TV_ARCHS)
def test_each_torchvision_segmentation_model_builds_and_converts(arch, one_thread):
    torch.manual_seed(0)
    reference = calibrated(_tv(arch, num_classes=3), size=64)  # batch-norm statistics of real features
    baseline = create_model(arch, num_classes=3).eval()
    assert type(baseline) is type(reference) and baseline.model_spec.task == "segmentation"
    baseline.load_state_dict(reference.state_dict())  # the same keys as torchvision's
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(baseline(x)["out"], reference(x)["out"], rtol=0, atol=0)
    converted = create_model(f"{arch}_lpf2", num_classes=3).eval()
    converted.load_state_dict(reference.state_dict(), strict=True)  # an unconverted state dict, strictly
    by_hand = antialias(_tv(arch, num_classes=3), filter_size=2).eval()
    by_hand.load_state_dict(reference.state_dict())
    with torch.no_grad():
        out = converted(x)["out"]
        assert out.shape == (1, 3, 64, 64)
        torch.testing.assert_close(out, by_hand(x)["out"], rtol=0, atol=0)
        assert not torch.allclose(out, reference(x)["out"])  # blurred: another function
    assert converted.antialias_summary.changed


def test_default_classes_are_torchvisions_21_and_a_files_count_wins(tmp_path):
    assert create_model("lraspp_mobilenet_v3_large").weights_info.num_classes == 21
    torch.save(_tv("lraspp_mobilenet_v3_large", num_classes=7).state_dict(), tmp_path / "w.pth")
    model = create_model("lraspp_mobilenet_v3_large_lpf3", weights=tmp_path / "w.pth", aa_method="aps")
    assert model.weights_info.num_classes == 7 and model.classifier.high_classifier.out_channels == 7


@pytest.mark.parametrize("aux", [True, False])
def test_the_auxiliary_head_is_built_exactly_when_the_weights_hold_it(tmp_path, aux, one_thread):
    torch.manual_seed(1)
    source = _tv("deeplabv3_mobilenet_v3_large", num_classes=5, aux_loss=aux)
    state = source.state_dict()
    assert any(k.startswith("aux_classifier.") for k in state) == aux
    torch.save(state, tmp_path / "w.pth")
    for name in ("deeplabv3_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large_lpf4"):
        model = create_model(name, weights=tmp_path / "w.pth").eval()
        assert (model.aux_classifier is not None) == aux
        _same(model.state_dict(), state)  # every key, strictly (the blur layers save nothing)
        with torch.no_grad():
            assert set(model(torch.randn(1, 3, 64, 64))) == ({"out", "aux"} if aux else {"out"})
    assert create_model("fcn_resnet50", aux_loss=True).aux_classifier is not None  # asked for by hand
    assert create_model("fcn_resnet50").aux_classifier is None


def test_weights_of_another_model_name_the_keys_that_do_not_fit(tmp_path):
    torch.save(_tv("lraspp_mobilenet_v3_large").state_dict(), tmp_path / "w.pth")
    with pytest.raises(WeightsError, match=r"classifier\.(cbr|scale|low|high)|aspp|Missing|Unexpected|missing|unexpected"):
        create_model("deeplabv3_mobilenet_v3_large_lpf2", weights=tmp_path / "w.pth")


def test_bad_builder_arguments_are_clear():
    with pytest.raises(ModelError, match="no auxiliary head"):
        create_model("lraspp_mobilenet_v3_large", aux_loss=True)
    with pytest.raises(ModelError, match="weights_backbone=None.*--pretrained"):
        create_model("fcn_resnet50", weights_backbone="DEFAULT")


def test_pretrained_is_torchvisions_coco_voc_weights_downloaded_for_real(server, monkeypatch, one_thread):
    weights = torchvision.models.segmentation.DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1
    torch.manual_seed(2)
    state = _tv("deeplabv3_mobilenet_v3_large", num_classes=21, aux_loss=True).state_dict()
    url = _serve(server, "deeplabv3_mobilenet_v3_large-coco", state)
    monkeypatch.setattr(weights.value, "url", url)
    model = create_model("deeplabv3_mobilenet_v3_large", pretrained=True, progress=False)
    _same(model.state_dict(), state)
    assert (model.weights_info.label, model.weights_info.num_classes) == ("torchvision:COCO_WITH_VOC_LABELS_V1", 21)
    assert model.weights_info.categories[15] == "person"
    converted = create_model("deeplabv3_mobilenet_v3_large_lpf3", pretrained=True, progress=False)
    _same(converted.state_dict(), state)  # the converted model starts from them, auxiliary head included
    assert converted.weights_info.label == "baseline:torchvision:COCO_WITH_VOC_LABELS_V1"
    assert server["requests"] == ["/" + url.rsplit("/", 1)[1]]  # downloaded once, then from the cache

    monkeypatch.setattr(weights.value, "url", _closed_url("deeplabv3_mobilenet_v3_large-00000000.pth"))
    monkeypatch.setenv("TORCH_HOME", str(Path(torch.hub.get_dir()).parent / "empty"))
    with pytest.raises(WeightsDownloadError, match=r"Could not download.*'deeplabv3_mobilenet_v3_large'.*"
                                                   r"weights='path/to/deeplabv3_mobilenet_v3_large\.pth'"):
        create_model("deeplabv3_mobilenet_v3_large_lpf2", pretrained=True, progress=False)


# --- segmentation_models_pytorch -----------------------------------------------------------------------


def test_smp_models_are_smps_and_convert_with_the_same_keys(one_thread):
    torch.manual_seed(3)
    reference = smp.Unet("resnet18", encoder_weights=None, classes=4).eval()
    baseline = create_model("smp/Unet-resnet18", num_classes=4).eval()
    assert type(baseline) is smp.Unet and baseline.weights_info.num_classes == 4
    baseline.load_state_dict(reference.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(baseline(x), reference(x), rtol=0, atol=0)
    converted = create_model("smp/Unet-resnet18_lpf3", num_classes=4, aa_method="aps").eval()
    converted.load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():
        assert converted(x).shape == (1, 4, 64, 64) and not torch.allclose(converted(x), reference(x))
    assert converted.model_spec.method == "aps" and converted.antialias_summary.changed
    assert create_model("smp/FPN-resnet18").weights_info.num_classes == 1  # smp's own default class count
    with pytest.raises(ModelError, match="give num_classes or smp's classes"):
        create_model("smp/Unet-resnet18", num_classes=3, classes=3)
    with pytest.raises(ModelError, match="pretrained=True"):
        create_model("smp/Unet-resnet18", encoder_weights="imagenet")


def _serve_encoder(server: dict, encoder: str, state: dict) -> None:
    from safetensors.torch import save

    settings = smp.encoders.encoders[encoder]["pretrained_settings"]["imagenet"]
    folder = server["root"] / settings["repo_id"] / "resolve" / settings["revision"]
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(save({k: v.contiguous() for k, v in state.items()}))


def test_smp_pretrained_is_the_encoders_imagenet_weights_downloaded_for_real(server, monkeypatch, one_thread):
    torch.manual_seed(4)
    encoder_state = smp.Unet("resnet18", encoder_weights=None).encoder.state_dict()
    _serve_encoder(server, "resnet18", encoder_state)
    monkeypatch.setenv("HF_ENDPOINT", server["url"])
    model = create_model("smp/Unet-resnet18", pretrained=True, num_classes=6, progress=False)
    _same(model.encoder.state_dict(), encoder_state)
    assert model.weights_info.label == "smp:smp-hub/resnet18.imagenet" and model.weights_info.num_classes == 6
    converted = create_model("smp/Unet-resnet18_lpf2", pretrained=True, num_classes=6, progress=False)
    _same(converted.encoder.state_dict(), encoder_state)
    assert converted.weights_info.label == "baseline:smp:smp-hub/resnet18.imagenet"
    assert len(server["requests"]) == 1 and server["requests"][0].endswith("/model.safetensors")

    monkeypatch.setenv("TORCH_HOME", str(Path(torch.hub.get_dir()).parent / "empty"))
    monkeypatch.setenv("HF_ENDPOINT", _closed_url("").rstrip("/"))
    with pytest.raises(WeightsDownloadError, match=r"resnet18.*smp-hub/resnet18\.imagenet.*weights='path/to/model\.pth'"
                                                   r".*HF_ENDPOINT"):
        create_model("smp/Unet-resnet18_lpf2", pretrained=True, progress=False)
    with pytest.raises(WeightsError, match="no ImageNet weights for the encoder 'resnext101_32x4d'"):
        create_model("smp/Unet-resnext101_32x4d", pretrained=True)


def test_cli_models_lists_segmentation_names_with_their_weights(capsys):
    from antialiased.cli.models import main

    assert main(["fcn_resnet50*", "--exclude", "*_lpf[2-7]"]) == 0
    rows = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines()[1:])
    assert rows == {"fcn_resnet50": "torchvision", "fcn_resnet50_lpf1": "baseline:torchvision"}
    assert main(["smp/Unet-resnet18*", "--exclude", "*_lpf[2-7]"]) == 0
    rows = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines()[1:])
    assert rows == {"smp/Unet-resnet18": "smp", "smp/Unet-resnet18_lpf1": "baseline:smp"}
    assert get_family("smp").task == get_family("torchvision-segmentation").task == "segmentation"
