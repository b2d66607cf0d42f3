"""Export: ONNX (torch's torch.export-based exporter) and torch.export programs, checked in
onnxruntime against PyTorch and against the published models' golden outputs.

The default suite exports one architecture of each family; the full sweep (the 23 paper
architectures at filter size 4, ResNet-18 at 2, 3 and 5, both golden inputs) runs with
``pytest tests/test_export.py -m sweep``.
"""
from __future__ import annotations

import builtins
import io
import itertools
import json
import os
import stat
import sys

import pytest
import torch
from PIL import Image
from torch import nn

import antialiased.cli
from antialiased.data import eval_transform
from antialiased.errors import ConfigError, MissingDependencyError, ModelError, OutputError
from antialiased.export import (EXTRA_FILE, ExportMetadata, VerificationError, VerifySettings, default_opset,
                                export_model, exported_program_bytes, exporter_opsets, onnx_bytes, onnx_session,
                                onnxruntime_max_opset, resolve_opset, trace_model, verify_onnx)
from antialiased.export import opsets as opsets_module
from antialiased.export.metadata import NOT_RECORDED, antialiasing_of, blur_filter_sizes
from antialiased.export.samples import find_images, generated_samples, photo_samples, photo_transform
from antialiased.layers import BlurPool, binomial_filter
from antialiased.models import create_model
from torchvision.transforms._presets import ImageClassification

PAPER_ARCHS = [
    "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
    "wide_resnet50_2", "wide_resnet101_2", "densenet121", "densenet161", "densenet169", "densenet201",
    "mobilenet_v2",
]
FAMILIES = ["alexnet_lpf4", "vgg11_lpf4", "resnet18_lpf4", "densenet121_lpf4", "mobilenet_v2_lpf4"]
SWEEP = [f"{arch}_lpf4" for arch in PAPER_ARCHS] + ["resnet18_lpf2", "resnet18_lpf3", "resnet18_lpf5"]
PAD_TYPES = ("reflect", "replicate", "zero", "circular")
ONNX_PAD_MODES = {"reflect", "edge", "wrap", "constant"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ort():
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    return pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def reference(reference_dir):
    specs = json.loads((reference_dir / "models.json").read_text())
    golden = torch.load(reference_dir / "golden_models.pt", weights_only=True)
    return specs, golden


class TinyNet(nn.Module):
    """Conv, ReLU, BlurPool, conv, global pool, linear: a fast stand-in with the paper's recipe."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), BlurPool(8, filt_size=3),
                                          nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                          nn.Flatten())
            self.fc = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def golden_model(name: str, specs: dict) -> nn.Module:
    """The model with the reference's deterministic weights (as tests/test_models.py builds it)."""
    from deterministic_weights import deterministic_state_dict

    with torch.device("meta"):
        model = create_model(name)
    model.load_state_dict(deterministic_state_dict(specs[name]["spec"]), strict=True, assign=True)
    return model.eval()


def run_onnx(session, x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


def assert_same(got: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4, msg=lambda m: f"{what}: {m}")
    assert torch.equal(got.argmax(1), ref.argmax(1)), f"{what}: top-1 differs"


def depthwise_initializers(proto) -> dict[str, torch.Tensor]:
    """The (C, 1, k, k) weights only: converting VGG's 500 MB of classifier weights would cost seconds."""
    from onnx import numpy_helper

    return {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in proto.graph.initializer
            if len(i.dims) == 4 and i.dims[1] == 1}


def attributes(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def blur_convs(proto) -> list:
    """Conv nodes whose weight is a binomial filter repeated per channel, with group = channels."""
    weights, found = depthwise_initializers(proto), []
    for node in proto.graph.node:
        w = weights.get(node.input[1]) if node.op_type == "Conv" else None
        if w is None or w.dim() != 4 or w.shape[1] != 1 or w.shape[2] != w.shape[3]:
            continue
        if attributes(node).get("group") == w.shape[0] and torch.allclose(
                w, binomial_filter(w.shape[-1]).expand_as(w), atol=1e-7):
            found.append(node)
    return found


# --- the paper's architectures: golden inputs and photos, ONNX and torch.export ---------------------


def check_architecture(name: str, input_name: str, reference, photos_dir, roundtrip: bool = False) -> None:
    """ONNX in onnxruntime and the torch.export program (saved and loaded when ``roundtrip``; the
    round trip itself is tested on small models below) against the golden outputs and PyTorch."""
    specs, golden = reference
    model = golden_model(name, specs)
    x, expected = golden["inputs"][input_name], golden["outputs"][name][input_name]
    hw = tuple(x.shape[2:])
    program = trace_model(model, torch.randn(2, 3, *hw), name=name)  # batch 2: dynamic, not specialized to 1
    meta = ExportMetadata(name, "4", "deterministic test weights", hw, 1000)
    data, proto = onnx_bytes(program, default_opset(), meta)
    session = onnx_session(data)
    exported = (torch.export.load(io.BytesIO(exported_program_bytes(program, meta))) if roundtrip else program).module()
    photos = photo_samples(photos_dir, 4, hw).inputs
    with torch.no_grad():
        eager_x, eager_photos = model(x), model(photos)
        assert_same(eager_x, expected, f"{name} eager vs golden")  # the reference itself
        assert_same(run_onnx(session, x), expected, f"{name} onnxruntime vs golden ({input_name})")
        assert_same(run_onnx(session, photos), eager_photos, f"{name} onnxruntime on photos, batch 4")
        assert_same(run_onnx(session, photos[:1]), eager_photos[:1], f"{name} onnxruntime on a photo, batch 1")
        assert_same(exported(x), expected, f"{name} torch.export vs golden ({input_name})")
        assert_same(exported(photos), eager_photos, f"{name} torch.export on photos")
    assert {n.domain for n in proto.graph.node} <= {"", "ai.onnx"} and not proto.functions
    blurs = [m for m in model.modules() if isinstance(m, BlurPool) and m.filt_size > 1]
    assert len(blur_convs(proto)) == len(blurs), f"{name}: each blur layer should be one depthwise binomial Conv"


@pytest.mark.parametrize("name", FAMILIES)
def test_family_matches_golden_and_pytorch(name, ort, reference, imagenet_sample_dir):
    check_architecture(name, "square", reference, imagenet_sample_dir)


@pytest.mark.sweep
@pytest.mark.parametrize("input_name", ["square", "odd"])
@pytest.mark.parametrize("name", SWEEP)
def test_sweep_matches_golden_and_pytorch(name, input_name, ort, reference, imagenet_sample_dir):
    check_architecture(name, input_name, reference, imagenet_sample_dir, roundtrip=True)


# --- the blur layer: every pad type, filter sizes 1-7, odd sizes, batch 1 and several -------------


class AllBlurs(nn.Module):
    """One BlurPool per (pad type, filter size 1-7), strides 1-3, on an odd-sized input; and reflect
    blurs on a 3x7 corner of it, where reflect padding falls back to replicate. Outputs side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.pools = nn.ModuleList(BlurPool(3, pad_type=p, filt_size=f, stride=1 + f % 3)
                                   for p, f in itertools.product(PAD_TYPES, range(1, 8)))
        self.small = nn.ModuleList(BlurPool(3, filt_size=f) for f in range(2, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        corner = x[:, :, :3, :7]
        return torch.cat([pool(x).flatten(1) for pool in self.pools]
                         + [pool(corner).flatten(1) for pool in self.small], 1)


def test_blur_exports_as_pad_and_depthwise_conv(ort, tmp_path):
    model, hw = AllBlurs(), (13, 11)
    result = export_model(model, tmp_path / "blur.onnx", input_size=hw,
                          verify=VerifySettings(num_images=2, random_batches=(1, 4)))
    assert result.verification.passed and result.verification.max_abs_diff < 1e-5
    assert [c.count for c in result.verification.comparisons] == [2, 1, 4]
    import onnx

    proto = onnx.load(result.path)
    assert {n.op_type for n in proto.graph.node} <= {"Pad", "Conv", "Reshape", "Flatten", "Concat", "Slice"}
    assert len([n for n in proto.graph.node if n.op_type == "Slice"]) <= 2  # the corner, nothing per blur
    assert {n.domain for n in proto.graph.node} <= {"", "ai.onnx"}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert convs and len(blur_convs(proto)) == len(convs)  # every Conv is a depthwise binomial blur
    assert set(range(2, 8)) <= {attributes(n)["kernel_shape"][0] for n in convs}
    modes = {attributes(n).get("mode", b"constant").decode() for n in proto.graph.node if n.op_type == "Pad"}
    assert {"reflect", "edge", "wrap"} <= modes <= ONNX_PAD_MODES
    session = onnx_session(result.path)
    for batch in (1, 6):
        x = torch.randn(batch, 3, *hw)
        torch.testing.assert_close(run_onnx(session, x), model(x), rtol=1e-5, atol=1e-5)


# --- export_model: the file's contract, metadata, formats, batches ----------------------------------


def test_onnx_contract_metadata_and_permissions(ort, tmp_path):
    import onnx

    model = TinyNet()
    path = tmp_path / "tiny.onnx"
    result = export_model(model, path, name="tiny", weights_source="test weights", input_size=(33, 17),
                          verify=VerifySettings(random_batches=(1, 5)))
    proto = onnx.load(path)
    (inp,), (out,) = proto.graph.input, proto.graph.output
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert (inp.name, dims(inp), inp.type.tensor_type.elem_type) == ("input", ["batch", 3, 33, 17], onnx.TensorProto.FLOAT)
    assert (out.name, dims(out)) == ("logits", ["batch", 10])
    assert not {"Softmax", "LogSoftmax", "Sub", "Div"} & {n.op_type for n in proto.graph.node}  # no pre/post-processing
    props = {p.key: p.value for p in proto.metadata_props}
    assert props == ExportMetadata("tiny", "3", "test weights", (33, 17), 10).to_props()
    assert props["mean"] == "0.485,0.456,0.406" and props["filter_size"] == "3" and props["num_classes"] == "10"
    assert [o.version for o in proto.opset_import if o.domain == ""] == [default_opset()] == [result.opset]
    assert result.verification.passed and result.input_shape == ("batch", 3, 33, 17)
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o044, "a deployed file should be readable like any other"
    assert os.listdir(tmp_path) == ["tiny.onnx"]  # no temporary files left
    x = torch.randn(7, 3, 33, 17)
    torch.testing.assert_close(run_onnx(onnx_session(path), x), model(x), rtol=1e-5, atol=1e-5)
    assert not verify_onnx(path, TinyNet(classes=10).apply(_perturb)).passed  # another model: caught


def _perturb(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        with torch.no_grad():
            module.bias.add_(0.5)


def test_static_batch_and_explicit_opset(ort, tmp_path):
    import onnx

    model, low = TinyNet(), exporter_opsets().start
    result = export_model(model, tmp_path / "s.onnx", input_size=24, static_batch=3, opset=low,
                          verify=VerifySettings())
    assert result.input_shape == (3, 3, 24, 24) and result.verification.passed  # 8 images: chunks of 3, padded
    assert result.opset == low and [o.version for o in onnx.load(result.path).opset_import if o.domain == ""] == [low]
    session = onnx_session(result.path)
    assert session.get_inputs()[0].shape == [3, 3, 24, 24]
    x = torch.randn(3, 3, 24, 24)
    torch.testing.assert_close(run_onnx(session, x), model(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        run_onnx(session, torch.randn(2, 3, 24, 24))


class WeightsRecord:
    """The record the registry attaches as ``model.weights_info`` (label, eval transforms)."""

    label = "file:/weights/tiny.pth"

    @staticmethod
    def transforms():
        return ImageClassification(crop_size=224, resize_size=232, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def test_exported_program_format_and_recorded_preprocessing(tmp_path):
    model = TinyNet()
    model.weights_info = WeightsRecord()
    path = tmp_path / "tiny.pt2"
    result = export_model(model, path, format="exported-program", name="tiny", input_size=20,
                          verify=VerifySettings(random_batches=(1, 4)))
    assert result.verification.passed and result.opset is None and not result.op_counts
    extra = {EXTRA_FILE: ""}
    program = torch.export.load(path, extra_files=extra)
    props = json.loads(extra[EXTRA_FILE])
    assert ExportMetadata.from_props(props) == result.metadata
    # what the model's weights expect, scaled to the input size: 232/224 * 20 -> 21, mean/std 0.5/0.25
    assert (props["weights"], props["mean"], props["std"], props["resize"]) == (WeightsRecord.label, "0.5,0.5,0.5",
                                                                               "0.25,0.25,0.25", "21")
    for batch in (1, 4):
        x = torch.randn(batch, 3, 20, 20)
        torch.testing.assert_close(program.module()(x), model(x), rtol=1e-6, atol=1e-6)


class Drifts(TinyNet):
    """Computes something else when exported: what verification is there to catch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return y * 1.1 if torch.compiler.is_exporting() else y


def test_tolerance_scales_with_each_samples_largest_logit():
    """A logit near 0 beside logits of 1e3 may be off by rtol * 1e3 (rounding error follows the
    sample's activations); checked against a plain loop over samples and logits."""
    from antialiased.export.verify import _compare

    ref = torch.tensor([[1000.0, 0.001, -3.0], [0.5, 0.25, 0.0]])
    atol, rtol = 1e-4, 1e-4

    def loop_passes(got):
        return all(abs(got[i][j] - ref[i][j]) <= atol + rtol * max(abs(v) for v in ref[i])
                   for i in range(2) for j in range(3))

    cases = {"small error on the near-0 logit of the large sample": ((0, 1), 0.05),
             "error beyond the large sample's scale": ((0, 1), 0.2),
             "the small sample keeps its own tight scale": ((1, 2), 0.001)}
    expected = {"small error on the near-0 logit of the large sample": True,
                "error beyond the large sample's scale": False, "the small sample keeps its own tight scale": False}
    for name, ((i, j), error) in cases.items():
        got = ref.clone()
        got[i, j] += error
        assert _compare(name, got, ref, atol, rtol).within_tolerance is loop_passes(got.tolist()) is expected[name], name


@pytest.mark.parametrize("format", ["onnx", "exported-program"])
def test_verification_failure_leaves_old_file(format, ort, tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"old")
    with pytest.raises(VerificationError, match="not written") as info:
        export_model(Drifts(), path, format=format, input_size=16, force=True, verify=VerifySettings())
    assert not info.value.report.passed and info.value.report.max_abs_diff > 1e-3
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.bin"]


def test_existing_output_refused_before_export(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"keep")
    with pytest.raises(OutputError, match="exists; pass --force"):
        export_model(Drifts(), path)
    with pytest.raises(OutputError, match="is a folder"):
        export_model(Drifts(), tmp_path)
    assert path.read_bytes() == b"keep"


def test_model_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="larger --input-size"):
        export_model(nn.Sequential(nn.Conv2d(3, 4, 7), nn.Flatten()), tmp_path / "a.pt2",
                     format="exported-program", input_size=5)
    with pytest.raises(ModelError, match="one tensor of logits"):
        export_model(nn.Sequential(nn.Conv2d(3, 4, 3)), tmp_path / "b.pt2", format="exported-program", input_size=8)

    class FixedBatch(TinyNet):
        def forward(self, x):
            return super().forward(x).reshape(2, -1)

    with pytest.raises(ModelError, match="--static-batch"):
        export_model(FixedBatch(), tmp_path / "c.pt2", format="exported-program", input_size=8)
    assert export_model(FixedBatch(), tmp_path / "c.pt2", format="exported-program", input_size=8,
                        static_batch=2).input_shape[0] == 2
    with pytest.raises(ConfigError, match="--opset applies to --format onnx only"):
        export_model(TinyNet(), tmp_path / "d.pt2", format="exported-program", opset=18)
    with pytest.raises(ConfigError, match="--static-batch must be a positive integer"):
        export_model(TinyNet(), tmp_path / "e.onnx", static_batch=0)
    assert sorted(os.listdir(tmp_path)) == ["c.pt2"]


# --- opsets -------------------------------------------------------------------------------------------


def test_default_opset_is_newest_of_exporter_and_runtime(ort):
    import onnx
    from onnxscript.version_converter import _version_converter
    from torch.onnx._internal.exporter import _constants

    exporter = exporter_opsets()
    assert exporter.start == max(_constants.TORCHLIB_OPSET, _version_converter.SUPPORTED_MIN_ONNX_OPSET)
    assert exporter.stop - 1 == min(_version_converter.SUPPORTED_MAX_ONNX_OPSET, onnx.defs.onnx_opset_version())
    runtime = onnxruntime_max_opset()
    assert opsets_module._runtime_accepts(ort, onnx, runtime)
    if runtime < onnx.defs.onnx_opset_version():
        assert not opsets_module._runtime_accepts(ort, onnx, runtime + 1)
    assert default_opset() == min(exporter.stop - 1, runtime)
    assert resolve_opset(None) == default_opset() and resolve_opset(exporter.start) == exporter.start


# --- verification inputs ---------------------------------------------------------------------------


def test_verification_inputs(tmp_path, imagenet_sample_dir):
    img = Image.new("RGB", (500, 375), (10, 200, 30))
    paper = ExportMetadata("m", "4", "w", (224, 224), 1000)
    assert torch.equal(photo_transform(paper)(img), eval_transform()(img))  # the paper's resize 256 / crop 224
    assert photo_transform(ExportMetadata("m", "4", "w", (97, 131), 10)).transforms[0].size == 150
    assert photo_transform(ExportMetadata("m", "4", "w", (97, 131), 10))(img).shape == (3, 97, 131)
    for cls, color in (("a", (200, 0, 0)), ("b", (0, 200, 0))):
        (tmp_path / "ds" / "val" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (30, 20), color).save(tmp_path / "ds" / "val" / cls / f"{i}.png")
    (tmp_path / "ds" / "val" / "a" / "notes.txt").write_text("not an image")
    assert len(find_images(tmp_path / "ds")) == 6  # ImageFolder layout: val/ split, recursive
    sample = photo_samples(tmp_path / "ds", 2, (16, 16))
    assert sample.inputs.shape == (2, 3, 16, 16)
    assert sample.inputs[0, 0].mean() > sample.inputs[1, 0].mean()  # spread over the folder: both classes
    assert photo_samples(imagenet_sample_dir, 3, (32, 32)).inputs.shape == (3, 3, 32, 32)  # a flat folder
    with pytest.raises(OSError, match="no such folder"):
        find_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        VerifySettings(data=tmp_path / "empty")
    a, b = generated_samples(3, (40, 40)), generated_samples(3, (40, 40))
    assert torch.equal(a.inputs, b.inputs) and a.inputs.std() > 0.5  # deterministic, varied


def test_blur_filter_sizes_recorded():
    assert blur_filter_sizes(TinyNet()) == [3] and blur_filter_sizes(create_model("resnet18")) == []


@pytest.mark.parametrize("method, expected", [("lps", []), ("aps", []), ("flc", []), ("lps-lpf", [3]),
                                              ("adaptive", [3]), ("blur-first", [3])])
def test_blur_filter_sizes_are_the_methods_not_any_filt_size(method, expected):
    # an LPS model's samplers hold filt_size 1 (no blur): it has no filter, as the summary and describe() say
    import torchvision

    from antialiased.layers import LearnablePolyphaseSampling
    from antialiased.models import antialias

    assert blur_filter_sizes(create_model("resnet18_lpf3", aa_method=method, num_classes=2)) == expected
    by_hand = antialias(torchvision.models.resnet18(num_classes=2), method=method, filter_size=3)
    assert blur_filter_sizes(by_hand) == expected
    assert blur_filter_sizes(nn.Sequential(nn.Conv2d(3, 4, 3), LearnablePolyphaseSampling(4))) == []


def test_source_and_method_recorded():
    """The spec the registry attaches says how a model was anti-aliased; antialias() by hand gives the method."""
    import torchvision

    from antialiased.models import antialias

    aps = create_model("mobilenet_v3_small_lpf3", aa_method="aps", num_classes=5)
    by_hand = antialias(torchvision.models.mobilenet_v3_small(num_classes=5), filter_size=2, method="blur-first")
    assert antialiasing_of(aps) == ("torchvision", "aps")
    assert antialiasing_of(create_model("mobilenet_v3_small", num_classes=5)) == ("torchvision", "none")
    assert antialiasing_of(by_hand) == (NOT_RECORDED, "blur-first")
    assert antialiasing_of(TinyNet()) == (NOT_RECORDED, NOT_RECORDED)
    # files written before source/method were recorded read back as "not recorded"
    old = {k: v for k, v in ExportMetadata("m", "4", "w", (224, 224), 10, source="paper", method="blurpool")
           .to_props().items() if k not in ("source", "method")}
    assert (ExportMetadata.from_props(old).source, ExportMetadata.from_props(old).method) == (NOT_RECORDED,) * 2


# --- the command line ---------------------------------------------------------------------------------


def cli(*argv: str) -> int:
    return antialiased.cli.main(["export", *map(str, argv)])


def test_cli_onnx_end_to_end(ort, tmp_path, capsys, imagenet_sample_dir):
    weights = tmp_path / "w.pth"
    torch.save({"state_dict": create_model("resnet18_lpf2", num_classes=10).state_dict()}, weights)
    out = tmp_path / "deploy" / "r18.onnx"
    assert cli("-a", "resnet18_lpf2", "--weights", weights, "--num-classes", 10, "--input-size", 32,
               "--out", out, "--data", imagenet_sample_dir, "--images", 3) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "3 photos from" in printed and "\npassed: max |diff|" in printed
    assert "top-1 agreement 7/7" in printed  # 3 photos + random batches 1 and 3
    session = onnx_session(out)
    meta = session.get_modelmeta().custom_metadata_map
    assert (meta["model_name"], meta["filter_size"], meta["weights"]) == ("resnet18_lpf2", "2", f"file {weights}")
    assert (meta["input_size"], meta["num_classes"]) == ("32x32", "10")
    assert (meta["source"], meta["method"]) == ("paper", "blurpool")


def test_cli_records_how_the_model_was_antialiased(ort, tmp_path, capsys):
    out = tmp_path / "mnv3.onnx"
    assert cli("-a", "mobilenet_v3_small_lpf2", "--aa-method", "blur-first", "--num-classes", 10, "--input-size", 32,
               "--out", out, "--no-verify") == 0
    assert "blur filter size: 2; anti-aliasing method: blur-first (source: torchvision)" in capsys.readouterr().out
    meta = onnx_session(out).get_modelmeta().custom_metadata_map
    assert (meta["model_name"], meta["filter_size"], meta["source"], meta["method"]) == (
        "mobilenet_v3_small_lpf2", "2", "torchvision", "blur-first")


def test_cli_exported_program_from_checkpoint_without_onnx(tmp_path, capsys, monkeypatch):
    for name in ("onnx", "onnxscript", "onnxruntime"):  # not needed for this format
        _no_module(monkeypatch, name, "sys.modules")
    state = create_model("resnet18_lpf2", num_classes=10).state_dict()
    checkpoint = tmp_path / "checkpoint.pth.tar"
    torch.save({"epoch": 3, "arch": "resnet18_lpf2", "state_dict": {f"module.{k}": v for k, v in state.items()}},
               checkpoint)
    out = tmp_path / "r18.pt2"
    assert cli("-a", "resnet18_lpf2", "--resume", checkpoint, "--num-classes", 10, "--format", "exported-program",
               "--static-batch", 2, "--input-size", 40, "--out", out) == 0
    printed = capsys.readouterr().out
    assert "torch.export.load" in printed and "\npassed:" in printed and "(epoch 3)" in printed
    model = create_model("resnet18_lpf2", num_classes=10).eval()
    model.load_state_dict(state)
    x = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(torch.export.load(out).module()(x), model(x), rtol=1e-5, atol=1e-5)


def test_a_mid_epoch_recovery_checkpoint_is_described_by_its_place_in_the_epoch(tmp_path):
    from antialiased.export.loading import load_model
    from antialiased.training.checkpoint import RECOVERY_NAME

    state = create_model("resnet18_lpf2", num_classes=10).state_dict()
    recovery = tmp_path / RECOVERY_NAME  # epoch 3 done, written 1200 batches into epoch 4
    torch.save({"epoch": 3, "arch": "resnet18_lpf2", "state_dict": state,
                "mid_epoch": {"epoch": 4, "batches_done": 1200, "batches": 5005}}, recovery)
    loaded = load_model("resnet18_lpf2", checkpoint=recovery, num_classes=10)
    assert loaded.weights_source == f"checkpoint {recovery.resolve()} (epoch 4, batch 1200 of 5005)"


def _no_module(monkeypatch, name: str, how: str) -> None:
    if how == "sys.modules":
        monkeypatch.setitem(sys.modules, name, None)
        return
    real = builtins.__import__

    def refuse(module, *args, **kwargs):
        if module == name or module.startswith(name + "."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(module, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)


@pytest.mark.parametrize("name,how", [("onnxruntime", "sys.modules"), ("onnx", "import"),
                                      ("onnxscript", "sys.modules")])
def test_cli_missing_dependency(name, how, tmp_path, capsys, monkeypatch):
    _no_module(monkeypatch, name, how)
    assert cli("-a", "resnet18_lpf4", "--out", tmp_path / "m.onnx") == 2
    err = capsys.readouterr().err
    assert f"error: {name} is not installed" in err and "pip install 'antialiased[export]'" in err
    assert "Traceback" not in err and not os.listdir(tmp_path)


def _bad_weights(tmp_path):
    path = tmp_path / "mobilenet.pth"
    torch.save(create_model("mobilenet_v2_lpf4").state_dict(), path)
    return path


BAD_INPUT = {
    "unknown model": (lambda t: ["-a", "resnet19_lpf4"], "unknown model 'resnet19_lpf4'"),
    "weights that do not fit": (lambda t: ["-a", "resnet18_lpf4", "--weights", _bad_weights(t)],
                                "do not fit"),
    "missing weights file": (lambda t: ["-a", "resnet18_lpf4", "--weights", t / "nope.pth"], "not found"),
    "checkpoint of another arch": (lambda t: ["-a", "resnet34_lpf4", "--resume", _checkpoint(t)], "pass -a resnet18_lpf4"),
    "output exists": (lambda t: ["-a", "resnet18_lpf4", "--out", _existing(t)], "exists; pass --force"),
    "opset too new": (lambda t: ["-a", "resnet18_lpf4", "--opset", 99], "--opset 99: the installed exporter"),
    "opset too old": (lambda t: ["-a", "resnet18_lpf4", "--opset", 7], "choose one of those"),
    "opset for exported-program": (lambda t: ["-a", "resnet18_lpf4", "--opset", 18, "--format", "exported-program"],
                                   "--opset applies to --format onnx only"),
    "no data folder": (lambda t: ["-a", "resnet18_lpf4", "--data", t / "nowhere"], "no such folder"),
    "data without verification": (lambda t: ["-a", "resnet18_lpf4", "--data", t, "--no-verify"],
                                  "--data only matter"),
    "bad static batch": (lambda t: ["-a", "resnet18_lpf4", "--static-batch", 0], "--static-batch must be"),
    "bad input size": (lambda t: ["-a", "resnet18_lpf4", "--input-size", -3], "--input-size must be"),
}


def _checkpoint(tmp_path):
    path = tmp_path / "ck.pth.tar"
    torch.save({"epoch": 1, "arch": "resnet18_lpf4", "state_dict": {}}, path)
    return path


def _existing(tmp_path):
    path = tmp_path / "there.onnx"
    path.write_bytes(b"previous")
    return path


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_cli_bad_input(case, tmp_path, capsys):
    make_args, expected = BAD_INPUT[case]
    args = make_args(tmp_path)
    if "--out" not in args:
        args += ["--out", tmp_path / "out.onnx"]
    before = sorted(os.listdir(tmp_path))
    assert cli(*args) == 2
    err = capsys.readouterr().err
    assert err.startswith("antialiased export: error: ") and expected in err and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, nothing replaced
    if case == "output exists":
        assert (tmp_path / "there.onnx").read_bytes() == b"previous"


def test_cli_opset_runtime_cannot_run(ort, tmp_path, capsys, monkeypatch):
    low = exporter_opsets().start
    if len(exporter_opsets()) < 2:
        pytest.skip("the exporter writes a single opset")
    monkeypatch.setattr(opsets_module, "onnxruntime_max_opset", lambda: low)
    assert cli("-a", "resnet18_lpf4", "--opset", low + 1, "--out", tmp_path / "m.onnx") == 2
    err = capsys.readouterr().err
    assert f"runs opsets up to {low}" in err and "--no-verify" in err and not os.listdir(tmp_path)


def test_cli_pretrained_offline(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty cache
    monkeypatch.setenv("ANTIALIASED_WEIGHTS_URL", (tmp_path / "mirror").as_uri() + "/")  # a mirror without the file
    assert cli("-a", "resnet18_lpf4", "--pretrained", "--out", tmp_path / "m.onnx") == 2
    err = capsys.readouterr().err
    assert "error: Could not download the published weights 'resnet18_lpf4_finetune'" in err
    assert "--weights PATH" in err and not (tmp_path / "m.onnx").exists()


def test_cli_two_weight_sources_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli("-a", "resnet18_lpf4", "--pretrained", "--weights", tmp_path / "w.pth", "--out", tmp_path / "m.onnx")
    assert info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_missing_dependency_error_is_an_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    from antialiased.export._optional import require

    with pytest.raises(MissingDependencyError) as info:
        require("onnxruntime")
    assert isinstance(info.value, ImportError) and "pip install 'antialiased[export]'" in str(info.value)


def test_exported_files_record_the_class_list_and_data_folder(tmp_path):
    """Identity travels with the exported file (issue 13): the classes in output order where the weights know
    them (a checkpoint's recorded list, ImageNet's categories) and the data folder a checkpoint recorded."""
    from torchvision.models import ResNet18_Weights

    from antialiased.export.metadata import identity_of
    from antialiased.models.weights_info import attach, torchvision_info

    checkpoint = tmp_path / "checkpoint.pth.tar"
    torch.save({"epoch": 1, "arch": "resnet18_lpf2", "classes": ["airplane", "cat"], "data": "/data/cifar2",
                "state_dict": create_model("resnet18_lpf2", num_classes=2).state_dict()}, checkpoint)
    out = tmp_path / "r18.pt2"
    assert cli("-a", "resnet18_lpf2", "--resume", checkpoint, "--num-classes", 2, "--format", "exported-program",
               "--input-size", 32, "--out", out, "--no-verify") == 0
    extra = {EXTRA_FILE: ""}
    torch.export.load(out, extra_files=extra)
    props = json.loads(extra[EXTRA_FILE])
    assert json.loads(props["classes"]) == ["airplane", "cat"] and props["data"] == "/data/cifar2"
    assert ExportMetadata.from_props(props).to_props() == props
    imagenet = attach(create_model("resnet18"), create_model("resnet18").model_spec,
                      torchvision_info(ResNet18_Weights.IMAGENET1K_V1))
    classes, data = identity_of(imagenet, 1000)
    assert json.loads(classes)[:2] == ["tench", "goldfish"] and len(json.loads(classes)) == 1000
    assert data == NOT_RECORDED
    assert identity_of(imagenet, 10) == (NOT_RECORDED, NOT_RECORDED)  # a new head: the categories no longer apply
    assert identity_of(TinyNet(), 10) == (NOT_RECORDED, NOT_RECORDED)
    # files written before the class list was recorded read back as "not recorded"
    old = {k: v for k, v in props.items() if k not in ("classes", "data")}
    assert (ExportMetadata.from_props(old).classes, ExportMetadata.from_props(old).data) == (NOT_RECORDED,) * 2
