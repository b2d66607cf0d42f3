"""Published weights: registry facts, real downloads from a local HTTP server, local files, strict loading."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torchvision
from PIL import Image
from torch import nn
from tqdm import tqdm

from antialiased.errors import DownloadError, WeightsError
from antialiased.layers import BlurPool
from antialiased.models import weights as W
from antialiased.support.checkpoints import load_into, load_weights_file

# --------------------------------------------------------------------------- registry facts


def test_registry_matches_the_published_list(reference_dir):
    published = json.loads((reference_dir / "published_weights.json").read_text())
    assert W.DEFAULT_BASE_URL == published["base_url"]
    assert {n: w.file_name for n, w in W.PUBLISHED_WEIGHTS.items()} == published["files"]


def test_records_are_consistent(monkeypatch):
    monkeypatch.delenv(W.WEIGHTS_URL_ENV, raising=False)
    records = W.PUBLISHED_WEIGHTS
    assert len(records) == 59
    assert sum(w.finetuned for w in records.values()) == 23
    for name, w in records.items():
        assert w.name == name
        assert w.file_name == f"{name}-{w.sha256}.pth" and re.fullmatch(r"[0-9a-f]{8}", w.sha256)
        assert name == (f"{w.model_name}_finetune" if w.finetuned else w.model_name)
        assert w.finetuned == (w.filter_size == 4 and name.endswith("_finetune"))
        assert 2 <= w.filter_size <= 5
        assert w.url == W.DEFAULT_BASE_URL + w.file_name
        assert set(w.metrics) == {"acc1", "consistency"} and 50 < w.metrics["acc1"] < w.metrics["consistency"] < 100
        assert w.num_classes == 1000 and w.categories[0] == "tench" and w.categories[-1] == "toilet tissue"
        assert w.recipe.startswith(f"python main.py --data /PTH/TO/ILSVRC2012 -a {w.model_name} ")
        assert ("--finetune" in w.recipe) == w.finetuned
        assert w.meta["_metrics"]["ImageNet-1K"]["acc@1"] == w.metrics["acc1"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        records["resnet50_lpf4"].sha256 = "00000000"
    assert records["resnet50_lpf4_finetune"].recipe.endswith("--lr .01 -ep 60 --finetune")
    assert records["mobilenet_v2_lpf3"].recipe.endswith("--lr .05 --cos_lr --wd 4e-5 --ep 150")


def _markdown_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not set(line) <= set("|:- "):
            rows.append([c.strip().strip("*") for c in line.strip().strip("|").split("|")])
    return rows


def test_metrics_match_the_paper_tables(shared_dir):
    """Every number in the registry is re-read from the seed's tables."""
    paper = (shared_dir / "seed" / "paper_results.md").read_text()
    finetuned = {r[0]: r for r in _markdown_rows(paper) if r[0] in W.PAPER_BASELINE_METRICS}
    assert len(finetuned) == 23
    for arch, (_, base_acc, acc, base_cons, cons) in finetuned.items():
        w = W.PUBLISHED_WEIGHTS[f"{arch}_lpf4_finetune"]
        assert dict(w.metrics) == {"acc1": float(acc), "consistency": float(cons)}
        assert dict(W.PAPER_BASELINE_METRICS[arch]) == {"acc1": float(base_acc), "consistency": float(base_cons)}

    readme = (shared_dir / "seed" / "README_IMAGENET.md").read_text()
    titles = {"AlexNet": "alexnet", "VGG16": "vgg16", "VGG16bn": "vgg16_bn", "ResNet18": "resnet18",
              "ResNet34": "resnet34", "ResNet50": "resnet50", "ResNet101": "resnet101",
              "DenseNet121": "densenet121", "MobileNet-v2": "mobilenet_v2"}
    sizes = {"Rect-2": 2, "Tri-3": 3, "Tri-4": 4, "Bin-5": 5}
    checked = 0
    for title, body in re.findall(r"\*\*([\w-]+) \[\(plot\)\][^\n]*\n(.*?)(?=\n\*\*|\Z)", readme, re.S):
        for label, acc, cons, *_ in _markdown_rows(body):
            arch = titles[title]
            if label == "Baseline":
                assert dict(W.PAPER_BASELINE_METRICS[arch]) == {"acc1": float(acc), "consistency": float(cons)}
            elif label in sizes:
                w = W.PUBLISHED_WEIGHTS[f"{arch}_lpf{sizes[label]}"]
                assert dict(w.metrics) == {"acc1": float(acc), "consistency": float(cons)}, w.name
                checked += 1
    assert checked == 36 == sum(not w.finetuned for w in W.PUBLISHED_WEIGHTS.values())


def test_url_follows_the_mirror_variable_at_call_time(monkeypatch):
    w = W.PUBLISHED_WEIGHTS["resnet50_lpf4_finetune"]
    monkeypatch.delenv(W.WEIGHTS_URL_ENV, raising=False)
    assert w.url == "https://antialiased-cnns.s3.us-east-2.amazonaws.com/weights_v0.1/resnet50_lpf4_finetune-cad66808.pth"
    monkeypatch.setenv(W.WEIGHTS_URL_ENV, "http://mirror.example/aa")
    assert w.url == "http://mirror.example/aa/resnet50_lpf4_finetune-cad66808.pth"
    monkeypatch.setenv(W.WEIGHTS_URL_ENV, "file:///srv/weights/")
    assert w.url == "file:///srv/weights/resnet50_lpf4_finetune-cad66808.pth"


def test_transforms_are_the_evaluation_preprocessing():
    image = Image.fromarray(torch.randint(0, 256, (300, 400, 3), dtype=torch.uint8).numpy())
    out = W.PUBLISHED_WEIGHTS["resnet18_lpf2"].transforms()(image)
    T = torchvision.transforms
    expected = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                          T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])(image)
    assert out.shape == (3, 224, 224)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


# --------------------------------------------------------------------------- resolving and listing


@pytest.mark.parametrize("arch, size, force, expected", [
    ("resnet50", 4, False, "resnet50_lpf4_finetune"),
    ("resnet50", 4, True, "resnet50_lpf4"),
    ("resnet50", 2, False, "resnet50_lpf2"),
    ("resnet50", 5, True, "resnet50_lpf5"),
    ("mobilenet_v2", 3, False, "mobilenet_v2_lpf3"),
    ("vgg16_bn", 4, False, "vgg16_bn_lpf4_finetune"),
    ("wide_resnet101_2", 4, False, "wide_resnet101_2_lpf4_finetune"),
])
def test_resolve_published_follows_the_papers_rule(arch, size, force, expected):
    assert W.resolve_published(arch, size, force_nonfinetuned=force) is W.PUBLISHED_WEIGHTS[expected]


def test_resolve_published_explains_what_exists():
    with pytest.raises(ValueError, match=r"resnet152_lpf3.*resnet152: filter size 4 \(fine-tuned"):
        W.resolve_published("resnet152", 3)
    with pytest.raises(ValueError, match="only the fine-tuned vgg11_lpf4_finetune.*force_nonfinetuned"):
        W.resolve_published("vgg11", 4, force_nonfinetuned=True)
    with pytest.raises(ValueError, match=r"resnet18_lpf6.*filter size 2 \(from scratch.*filter size 5"):
        W.resolve_published("resnet18", 6)
    with pytest.raises(ValueError, match="Did you mean resnet50"):
        W.resolve_published("resnet05", 4)
    with pytest.raises(ValueError, match="filter_size must be an integer"):
        W.resolve_published("resnet50", None)


def test_available_weights_and_lookup_by_name():
    assert [w.name for w in W.available_weights("alexnet")] == [
        "alexnet_lpf2", "alexnet_lpf3", "alexnet_lpf4", "alexnet_lpf4_finetune", "alexnet_lpf5"]
    assert len(W.available_weights(filter_size=3)) == 9
    assert len(W.available_weights(finetuned=False)) == 36
    assert {w.arch for w in W.available_weights(finetuned=True)} == set(W.PAPER_BASELINE_METRICS)
    with pytest.raises(ValueError, match="No published weights for architecture 'lenet'"):
        W.available_weights("lenet")
    assert W.get_published("densenet161_lpf4_finetune").sha256 == "a5e0f328"
    with pytest.raises(ValueError, match="Did you mean resnet50_lpf4_finetune"):
        W.get_published("resnet50_lpf4_finetuned")
    lines = W.format_weights_table().splitlines()
    assert len(lines) == 60 and lines[0].split() == ["weights", "model", "training", "acc1", "consistency", "file"]
    assert ["resnet50_lpf4_finetune", "resnet50_lpf4", "fine-tuned", "77.41", "91.32",
            "resnet50_lpf4_finetune-cad66808.pth"] in [line.split() for line in lines]
    assert lines[1].split()[:5] == ["alexnet_lpf2", "alexnet_lpf2", "scratch", "57.24", "81.33"]


# --------------------------------------------------------------------------- downloads from a local server


class _Server(SimpleNamespace):
    root: Path  # served folder; files under root / "mirror"
    base_url: str
    requests: list


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A real HTTP server on 127.0.0.1 serving tmp_path/served; the mirror variable and TORCH_HOME point at it."""
    root = tmp_path / "served"
    (root / "mirror").mkdir(parents=True)
    requests: list[str] = []
    cut_short: set[str] = set()  # file names whose transfer the server breaks off half-way

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            name = self.path.rsplit("/", 1)[-1]
            if name not in cut_short:
                return super().do_GET()
            data = (root / "mirror" / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{httpd.server_address[1]}/mirror"  # no trailing slash on purpose
    monkeypatch.setenv(W.WEIGHTS_URL_ENV, base_url)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    yield _Server(root=root / "mirror", base_url=base_url, requests=requests, httpd=httpd, cut_short=cut_short)
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _tiny_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2)).state_dict()


def _publish(folder: Path, stem: str, state_dict: dict) -> W.PublishedWeights:
    """Write ``{'state_dict': ...}`` as ``<stem>-<sha256[:8]>.pth``; return a record for it."""
    buffer = io.BytesIO()
    torch.save({"state_dict": state_dict}, buffer)
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()[:8]
    (folder / f"{stem}-{sha}.pth").write_bytes(data)
    return dataclasses.replace(W.PUBLISHED_WEIGHTS["resnet18_lpf2"], name=stem, file_name=f"{stem}-{sha}.pth",
                               sha256=sha)


def _cache_dir() -> Path:
    return Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"


def _assert_same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_download_verifies_loads_and_caches(server):
    state_dict = _tiny_state_dict()
    record = _publish(server.root, "tiny_lpf2", state_dict)
    loaded = W.load_published(record, progress=False)
    _assert_same(loaded, state_dict)
    assert server.requests == [f"/mirror/{record.file_name}"]
    assert sorted(os.listdir(_cache_dir())) == [record.file_name]  # in torch hub's cache, no leftovers

    _assert_same(W.load_published(record, progress=True), state_dict)
    assert len(server.requests) == 1  # second call: from the cache, no request


def test_download_into_an_explicit_model_dir(server, tmp_path):
    state_dict = _tiny_state_dict(1)
    record = _publish(server.root, "tiny_lpf3", state_dict)
    _assert_same(W.load_published(record, progress=False, model_dir=tmp_path / "cache"), state_dict)
    assert os.listdir(tmp_path / "cache") == [record.file_name]
    assert not _cache_dir().exists()


def test_corrupted_download_is_rejected_and_nothing_is_left(server):
    record = _publish(server.root, "tiny_lpf2", _tiny_state_dict())
    good = server.root / record.file_name
    good.write_bytes(good.read_bytes()[:-10] + b"0123456789")  # same name, different content
    with pytest.raises(W.WeightsDownloadError, match=f"not the published {record.file_name}.*SHA-256") as info:
        W.load_published(record, progress=False)
    assert record.url in str(info.value) and "nothing was saved" in str(info.value)
    assert len(server.requests) == 1
    assert os.listdir(_cache_dir()) == []  # no cached file and no .partial left by torch hub


def test_interrupted_download_leaves_nothing(server):
    record = _publish(server.root, "tiny_lpf2", _tiny_state_dict())
    server.cut_short.add(record.file_name)
    with pytest.raises(W.WeightsDownloadError) as info:
        W.load_published(record, progress=False)
    # urllib returns the short body without complaint; the hash check is what catches it
    assert record.url in str(info.value) and "cut short or corrupted (retry)" in str(info.value)
    assert os.listdir(_cache_dir()) == []
    server.cut_short.clear()  # a retry succeeds
    _assert_same(W.load_published(record, progress=False), _tiny_state_dict())


def test_missing_file_gives_a_clear_404(server):
    record = W.PUBLISHED_WEIGHTS["resnet18_lpf3"]
    with pytest.raises(W.WeightsDownloadError, match="HTTP 404") as info:
        W.load_published(record, progress=False)
    message = str(info.value)
    assert f"{server.base_url}/{record.file_name}" in message
    assert f"{W.WEIGHTS_URL_ENV}={server.base_url}" in message and "weights=" in message
    assert os.listdir(_cache_dir()) == []


def test_unreachable_host_gives_the_offline_advice(server):
    record = _publish(server.root, "tiny_lpf2", _tiny_state_dict())
    server.httpd.shutdown()
    server.httpd.server_close()  # the port now refuses connections
    with pytest.raises(W.WeightsDownloadError) as info:
        W.load_published(record, progress=False)
    message = str(info.value)
    for needle in (record.url, "offline", "host may be down", f"export {W.WEIGHTS_URL_ENV}=", "file:///",
                   "create_model('resnet18_lpf2', weights=", "--weights PATH",
                   str(_cache_dir() / record.file_name)):
        assert needle in message, needle
    assert info.value.url == record.url
    assert os.listdir(_cache_dir()) == []


def test_file_url_mirror(tmp_path, monkeypatch):
    state_dict = _tiny_state_dict(2)
    record = _publish(tmp_path, "tiny_lpf4", state_dict)
    monkeypatch.setenv(W.WEIGHTS_URL_ENV, tmp_path.as_uri())
    _assert_same(W.load_published(record, progress=False, model_dir=tmp_path / "cache"), state_dict)


def test_unreadable_cached_file_says_to_delete_it(server):
    record = W.PUBLISHED_WEIGHTS["resnet18_lpf4"]
    _cache_dir().mkdir(parents=True)
    (_cache_dir() / record.file_name).write_bytes(b"truncated")
    with pytest.raises(W.WeightsDownloadError, match="cannot be read.*Delete it"):
        W.load_published(record.name, progress=False)
    assert server.requests == []


def test_progress_bar_reports_the_transfer(server, capfd):
    record = _publish(server.root, "tiny_lpf2", _tiny_state_dict())
    size = (server.root / record.file_name).stat().st_size
    W.load_published(record, progress=True)
    err = capfd.readouterr().err
    assert f'Downloading: "{record.url}" to {_cache_dir() / record.file_name}' in err
    shown = tqdm.format_sizeof(size, divisor=1024)  # e.g. 2.07k
    assert "100%" in err and f"| {shown}/{shown} [" in err  # tqdm's bar: the whole file arrived
    W.load_published(record, progress=True)  # from the cache: no bar
    assert capfd.readouterr().err == ""
    W.load_published(record, progress=False, model_dir=_cache_dir().parent / "other")
    assert capfd.readouterr().err == ""


def test_a_transfer_cut_short_names_the_bytes_that_arrived(server):
    record = _publish(server.root, "tiny_lpf3", _tiny_state_dict(3))
    size = (server.root / record.file_name).stat().st_size
    server.cut_short.add(record.file_name)
    with pytest.raises(W.WeightsDownloadError, match=f"stopped after {size // 2} of {size} bytes"):
        W.load_published(record, progress=False)
    assert os.listdir(_cache_dir()) == []


def test_a_mirror_that_is_not_a_url_is_named(server, tmp_path, monkeypatch):
    record = W.PUBLISHED_WEIGHTS["resnet18_lpf2"]
    monkeypatch.setenv(W.WEIGHTS_URL_ENV, "mirror.example/weights")
    with pytest.raises(W.WeightsDownloadError, match=r"mirror.example/weights/resnet18_lpf2-6e2ee76f.pth cannot be "
                                                     r"downloaded .*https://, http:// or file://"):
        W.load_published(record, progress=False)
    monkeypatch.setenv(W.WEIGHTS_URL_ENV, (tmp_path / "empty").as_uri())
    with pytest.raises(W.WeightsDownloadError, match=r"Could not download the published weights 'resnet18_lpf2' "
                                                     r"from file://.*No such file"):
        W.load_published(record, progress=False)
    assert os.listdir(_cache_dir()) == []


def test_fetch_to_cache_alone(tmp_path):
    """The downloader under load_published: any URL, an optional hash prefix, package errors."""
    (tmp_path / "data.bin").write_bytes(b"0123456789" * 1000)
    digest = hashlib.sha256(b"0123456789" * 1000).hexdigest()
    url = (tmp_path / "data.bin").as_uri()
    dest = tmp_path / "cache" / "data.bin"
    with pytest.raises(DownloadError, match=r"is not the published data.bin: its SHA-256 does not start with 00 \(it starts with "
                                            + digest[:2]) as info:
        W.fetch_to_cache(url, dest, sha256_prefix="00", progress=False, advice="Ask the admin.")
    assert str(info.value).endswith("Ask the admin.") and info.value.url == url
    assert not isinstance(info.value, W.WeightsDownloadError) and os.listdir(dest.parent) == []
    assert W.fetch_to_cache(url, dest, sha256_prefix=digest[:12], progress=False) == dest
    assert dest.read_bytes() == b"0123456789" * 1000
    (tmp_path / "data.bin").write_bytes(b"changed")
    assert W.fetch_to_cache(url, dest, progress=False) == dest  # there already: no download
    assert dest.read_bytes() == b"0123456789" * 1000


# --------------------------------------------------------------------------- end to end through create_model


@pytest.fixture(scope="module")
def create_model():
    from antialiased.models import create_model

    return create_model


def test_create_model_pretrained_downloads_and_loads(server, create_model, monkeypatch):
    """The whole path: create_model -> resolve_published -> download + hash check -> strict load."""
    state_dict = create_model("resnet18_lpf2").state_dict()
    record = _publish(server.root, "resnet18_lpf2", state_dict)
    monkeypatch.setitem(W.PUBLISHED_WEIGHTS, "resnet18_lpf2", record)  # a generated file stands in for the real one
    model = create_model("resnet18_lpf2", pretrained=True, progress=False)
    _assert_same(model.state_dict(), state_dict)
    assert server.requests == [f"/mirror/{record.file_name}"]
    # The record resolved once travels with the model: label, record, categories, transforms.
    info = model.weights_info
    assert (info.kind, info.label, info.published) == ("published", "published:resnet18_lpf2", record)
    assert info.categories == record.categories and len(info.categories) == info.num_classes == 1000
    assert info.classes is None and info.path is None  # the published files record no class folders
    assert info.transforms is record.transforms
    assert info.to_dict() == {"label": "published:resnet18_lpf2", "kind": "published", "path": None,
                              "published": "resnet18_lpf2", "torchvision": None, "num_classes": 1000,
                              "classes": None, "baseline": None}
    assert model.model_spec.name == "resnet18_lpf2" and model.model_spec.filter_size == 2


def test_create_model_pretrained_finetuned_record(server, create_model, monkeypatch):
    """filter size 4 resolves to the fine-tuned file, and the model says so."""
    state_dict = create_model("resnet18_lpf4").state_dict()
    record = _publish(server.root, "resnet18_lpf4_finetune", state_dict)
    monkeypatch.setitem(W.PUBLISHED_WEIGHTS, "resnet18_lpf4_finetune", record)
    model = create_model("resnet18_lpf4", pretrained=True, progress=False)
    assert model.weights_info.label == "published:resnet18_lpf4_finetune"
    assert model.weights_info.published is record


def test_create_model_pretrained_baseline_is_torchvisions_v1(tmp_path, create_model, monkeypatch):
    """A baseline's pretrained weights are torchvision's IMAGENET1K_V1 (the paper's baselines), read here from
    torch hub's cache, where torchvision's download puts them (no network in tests)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    torch.manual_seed(3)
    state_dict = torchvision.models.resnet18().state_dict()
    _cache_dir().mkdir(parents=True)
    torch.save(state_dict, _cache_dir() / weights.url.rsplit("/", 1)[-1])
    model = create_model("resnet18", pretrained=True, progress=False)
    _assert_same(model.state_dict(), state_dict)
    info = model.weights_info
    assert (info.kind, info.label, info.torchvision) == ("torchvision", "torchvision:IMAGENET1K_V1", weights)
    assert info.categories == tuple(weights.meta["categories"]) and info.num_classes == 1000
    assert info.to_dict()["torchvision"] == "ResNet18_Weights.IMAGENET1K_V1"
    assert info.transforms().resize_size == [256]
    with pytest.raises(WeightsError, match="have 1000 classes, not num_classes=10"):
        create_model("resnet18", pretrained=True, num_classes=10)


def test_every_published_architecture_is_registered():
    from antialiased.models import list_archs

    assert {w.arch for w in W.PUBLISHED_WEIGHTS.values()} == set(W.PAPER_BASELINE_METRICS) <= set(list_archs())


def test_create_model_pretrained_rejects_a_corrupted_published_file(server, create_model):
    fake = W.PUBLISHED_WEIGHTS["resnet18_lpf2"]
    torch.save({"state_dict": create_model("resnet18_lpf2").state_dict()}, server.root / fake.file_name)
    with pytest.raises(W.WeightsDownloadError, match="SHA-256 does not start with 6e2ee76f"):
        create_model("resnet18_lpf2", pretrained=True, progress=False)
    assert os.listdir(_cache_dir()) == []


@pytest.mark.parametrize("name, force, expected", [
    ("resnet18_lpf4", False, "resnet18_lpf4_finetune-8cc58f59.pth"),
    ("resnet18_lpf4", True, "resnet18_lpf4-8c77af40.pth"),
    ("resnet18_lpf3", False, "resnet18_lpf3-449351b9.pth"),
])
def test_create_model_requests_the_papers_file(server, create_model, name, force, expected):
    with pytest.raises(W.WeightsDownloadError, match="HTTP 404"):
        create_model(name, pretrained=True, force_nonfinetuned=force, progress=False)
    assert server.requests == [f"/mirror/{expected}"]


def test_create_model_from_a_ddp_training_checkpoint(tmp_path, create_model):
    source = create_model("resnet18_lpf2")
    checkpoint = {"epoch": 7, "arch": "resnet18_lpf2", "best_acc1": torch.tensor(12.5),
                  "state_dict": nn.DataParallel(source).state_dict(),
                  "optimizer": torch.optim.SGD(source.parameters(), lr=0.1, momentum=0.9).state_dict()}
    torch.save(checkpoint, tmp_path / "checkpoint.pth.tar")
    model = create_model("resnet18_lpf2", weights=tmp_path / "checkpoint.pth.tar")
    _assert_same(model.state_dict(), source.state_dict())

    # the same keys for every filter size (torchvision's): the recorded name tells them apart
    with pytest.raises(ValueError, match=r"trained as 'resnet18_lpf2', but -a/--arch is 'resnet18_lpf3'") as info:
        create_model("resnet18_lpf3", weights=tmp_path / "checkpoint.pth.tar")
    assert str(tmp_path / "checkpoint.pth.tar") in str(info.value)


# --------------------------------------------------------------------------- local files


def _saved(tmp_path: Path, obj, name: str = "w.pth") -> Path:
    torch.save(obj, tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "model", "dataparallel_checkpoint", "both_prefixes"])
def test_load_weights_file_accepts_common_layouts(tmp_path, wrap):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    sd = model.state_dict()
    obj = {
        "bare": sd,
        "state_dict": {"state_dict": sd},
        "model": {"model": sd, "epoch": 3, "args": {"lr": 0.1}},  # torchvision references' layout
        "dataparallel_checkpoint": {"epoch": 2, "state_dict": nn.DataParallel(model).state_dict(),
                                    "optimizer": torch.optim.SGD(model.parameters(), lr=0.1).state_dict()},
        "both_prefixes": {f"module._orig_mod.{k}": v for k, v in sd.items()},
    }[wrap]
    loaded = load_weights_file(_saved(tmp_path, obj))
    _assert_same(loaded, sd)
    target = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    load_into(target, loaded, "test")
    _assert_same(target.state_dict(), sd)


def test_load_weights_file_strips_torch_compile_prefix(tmp_path):
    model = nn.Linear(3, 2)
    compiled = torch.compile(model)  # wrapping only: nothing is compiled until it runs
    assert next(iter(compiled.state_dict())).startswith("_orig_mod.")
    _assert_same(load_weights_file(_saved(tmp_path, compiled.state_dict())), model.state_dict())


def test_load_weights_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Weights file not found: .*nope.pth"):
        load_weights_file(tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="is a folder"):
        load_weights_file(tmp_path)
    (tmp_path / "notes.txt").write_text("these are not weights")
    with pytest.raises(ValueError, match="notes.txt is not a PyTorch weights file"):
        load_weights_file(tmp_path / "notes.txt")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.pth is not a PyTorch weights file"):
        load_weights_file(tmp_path / "empty.pth")
    with pytest.raises(ValueError, match="does not hold a state dict but a Tensor"):
        load_weights_file(_saved(tmp_path, torch.zeros(3)))
    with pytest.raises(ValueError, match=r"pickled Python objects.*state_dict\(\)"):
        load_weights_file(_saved(tmp_path, nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="is not a state dict.*'epoch'"):
        load_weights_file(_saved(tmp_path, {"epoch": 3, "best_acc1": 70.0}))
    with pytest.raises(ValueError, match="empty state dict"):
        load_weights_file(_saved(tmp_path, {"state_dict": {}}))


# --------------------------------------------------------------------------- strict loading


def test_load_into_names_the_keys_for_another_architecture(tmp_path):
    path = _saved(tmp_path, {"state_dict": torchvision.models.resnet18().state_dict()}, "resnet18.pth")
    model = torchvision.models.resnet34()
    with pytest.raises(ValueError) as info:
        load_into(model, load_weights_file(path), source=str(path))
    message = str(info.value)
    assert message.startswith(f"Weights from {path} do not fit ResNet (strict loading)")
    n_missing = len(set(model.state_dict()) - set(torchvision.models.resnet18().state_dict()))
    assert n_missing > 50
    assert f"{n_missing} missing keys (in the model, not in the file): layer1.2.conv1.weight" in message
    assert f"({n_missing - 5} more)" in message and "unexpected" not in message
    assert "Traceback" not in message and len(message) < 1500


def test_load_into_reports_unexpected_and_shape_mismatches():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 2, 1))
    state_dict = {"0.weight": torch.zeros(8, 3, 5, 5), "0.bias": torch.zeros(8), "2.weight": torch.zeros(2, 8, 1, 1),
                  "2.bias": torch.zeros(2), "3.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"1 unexpected key \(in the file, not in the model\): 3.weight\n"
                                         r"  1 shape mismatch: 0.weight: file \[8, 3, 5, 5\] vs model \[8, 3, 3, 3\]"):
        load_into(model, state_dict, "mixed.pth")
    before = model[0].weight.clone()
    torch.testing.assert_close(model[0].weight, before)  # nothing was loaded


def test_load_into_hints_at_num_classes_and_filter_size():
    file_sd = torchvision.models.resnet18().state_dict()
    with pytest.raises(ValueError, match="(?s)2 shape mismatches.*num_classes=1000"):
        load_into(torchvision.models.resnet18(num_classes=10), file_sd, "imagenet.pth")
    with pytest.raises(ValueError, match=r"(?s)filt: file \[4, 1, 3, 3\] vs model \[4, 1, 5, 5\].*_lpf3 instead of _lpf5"):
        load_into(BlurPool(4, filt_size=5), BlurPool(4, filt_size=3).state_dict(), "blur3.pth")


def test_load_into_accepts_wrapped_keys_unless_the_model_is_wrapped():
    source = nn.Linear(3, 2)
    target = nn.Linear(3, 2)
    load_into(target, {f"module.{k}": v for k, v in source.state_dict().items()}, "ddp")
    _assert_same(target.state_dict(), source.state_dict())
    wrapped = nn.DataParallel(nn.Linear(3, 2))
    load_into(wrapped, nn.DataParallel(source).state_dict(), "ddp")
    _assert_same(wrapped.module.state_dict(), source.state_dict())
    wrapped = nn.DataParallel(nn.Linear(3, 2))
    load_into(wrapped, source.state_dict(), "plain")
    _assert_same(wrapped.module.state_dict(), source.state_dict())
