"""One loader (issue 16 item 4): eval, train, export and the audit build the same model from the same spec and weights.

Each path turns its own settings into a spec and a :class:`WeightsSpec` and calls
``antialiased.models.load_model``; the models they build compute the same outputs on a fixed input
as the model built independently here (torchvision's ResNet-18 converted by ``antialias()`` by
hand, the file loaded with plain ``load_state_dict``).
"""
from __future__ import annotations

import pytest
import torch
import torchvision

import antialiased.models.loading as loading
from antialiased.cli import main as antialiased_main
from antialiased.evaluation import ModelSource
from antialiased.evaluation.model_setup import load_model as eval_model
from antialiased.export import load_model as export_model
from antialiased.models import WeightsSpec, create_model, get_model_spec, load_model
from antialiased.models.antialias import antialias
from antialiased.training import ModelConfig
from antialiased.training.model_setup import build_model as train_model
from tests._evalutil import make_val_folder, sample_files

NAME, CLASSES = "resnet18_lpf2", 3


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    torch.manual_seed(5)
    model = create_model(NAME, num_classes=CLASSES)
    with torch.no_grad():  # BN statistics away from their defaults, so that eval mode uses them
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("weights") / "w.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    return path


def _independent(path) -> torch.nn.Module:
    model = antialias(torchvision.models.resnet18(num_classes=CLASSES), filter_size=2, method="blurpool")
    model.load_state_dict(torch.load(path, weights_only=True)["state_dict"], strict=True)
    return model.eval()


def _outputs(model: torch.nn.Module) -> torch.Tensor:
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model.eval()(x)


def test_eval_train_export_and_the_library_build_the_same_model(weights_file):
    expected = _outputs(_independent(weights_file))
    models = {
        "library": load_model(get_model_spec(NAME), WeightsSpec.file(weights_file)),
        "create_model": create_model(NAME, weights=weights_file),
        "eval": eval_model(ModelSource(NAME, weights=str(weights_file)), CLASSES),
        "train": train_model(ModelConfig(NAME, weights=str(weights_file)), CLASSES),
        "export": export_model(NAME, weights=weights_file).model,
    }
    for path, model in models.items():
        assert model.model_spec == get_model_spec(NAME), path
        assert model.weights_info.label == f"file:{weights_file}", path
        torch.testing.assert_close(_outputs(model), expected, rtol=0, atol=0, msg=path)


def test_the_audit_builds_it_through_the_same_loader(weights_file, tmp_path, imagenet_sample_dir, monkeypatch,
                                                     capsys):
    built = []
    attach = loading.attach

    def recording(model, spec, info):  # every model load_model makes passes here once
        built.append((spec, info.label, _outputs(model)))
        return attach(model, spec, info)

    monkeypatch.setattr(loading, "attach", recording)
    data = make_val_folder(tmp_path / "data", sample_files(imagenet_sample_dir, CLASSES, step=211))
    assert antialiased_main(["audit", "-a", f"{NAME}={weights_file}", "--data", str(data), "--out-dir",
                             str(tmp_path / "audit"), "--protocols", "e", "--crop-size", "64", "--max-shift", "16",
                             "-b", "3", "-j", "0", "--no-plots", "--no-progress"]) == 0, capsys.readouterr().err
    assert built, "the audit did not build its model through antialiased.models.load_model"
    expected = _outputs(_independent(weights_file))
    for spec, label, outputs in built:
        assert spec == get_model_spec(NAME) and label == f"file:{weights_file}"
        torch.testing.assert_close(outputs, expected, rtol=0, atol=0)
