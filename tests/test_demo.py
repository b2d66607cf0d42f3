"""The demo: generated data, the small nets' anti-aliasing recipe, an end-to-end quick run, --data."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from antialiased.cli.demo import main as demo_main
from antialiased.demo import (DemoConfig, SHAPES, build_variant, generate_shapes, parse_variant, run_demo,
                              total_stride)
from antialiased.errors import ConfigError
from antialiased.layers import BlurPool
from antialiased.reporting import load_results, summarize


def test_generated_shapes_are_deterministic_and_balanced():
    x1, y1 = generate_shapes(64, image_size=40, crop_size=32, seed=3)
    x2, y2 = generate_shapes(64, image_size=40, crop_size=32, seed=3)
    x3, _ = generate_shapes(64, image_size=40, crop_size=32, seed=4)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(x1, x3)
    assert x1.shape == (64, 3, 40, 40) and x1.dtype == torch.uint8
    assert torch.bincount(y1, minlength=len(SHAPES)).tolist() == [64 // len(SHAPES)] * len(SHAPES)
    # textures are high-frequency: neighbouring pixels differ a lot, unlike smooth images
    assert (x1[..., 1:].float() - x1[..., :-1].float()).abs().mean() > 10


def test_shapes_reject_bad_arguments():
    with pytest.raises(ValueError, match="unknown shape classes"):
        generate_shapes(4, classes=("disk", "hexagon"))
    with pytest.raises(ValueError, match="image_size >= crop_size"):
        generate_shapes(4, image_size=20, crop_size=32)


def _layers(model, kind):
    return [m for m in model.modules() if isinstance(m, kind)]


def _build(net, spec, seed=0, width=4):
    torch.manual_seed(seed)
    model, built = build_variant(net, parse_variant(spec), num_classes=5, width=width, input_size=(3, 28, 28))
    return model, built, torch.get_rng_state()


@pytest.mark.parametrize("net", ["democnn", "smallresnet"])
def test_variants_are_the_baseline_converted_by_antialias(net):
    base, _, base_rng = _build(net, "baseline")
    aa, built, aa_rng = _build(net, "blurpool:3")
    assert not _layers(base, BlurPool)
    blurs = _layers(aa, BlurPool)
    assert blurs and all(b.filt_size == 3 and b.stride == 2 for b in blurs)
    # no strided conv or max-pool is left in the anti-aliased net: BlurPool does all subsampling
    assert all(m.stride in (1, (1, 1)) for m in _layers(aa, (nn.Conv2d, nn.MaxPool2d)))
    assert any(m.stride in (2, (2, 2)) for m in _layers(base, (nn.Conv2d, nn.MaxPool2d)))
    # same initial weights (no extra parameters) and the same random stream afterwards (crops, order)
    assert base.state_dict().keys() == aa.state_dict().keys()
    assert all(torch.equal(base.state_dict()[k], v) for k, v in aa.state_dict().items())
    assert torch.equal(base_rng, aa_rng)
    x = torch.rand(2, 3, 28, 28)
    assert base(x).shape == aa(x).shape == (2, 5)
    assert built["call"] == f"antialias({net}(), method='blurpool', filter_size=3)" and not built["circular"]
    assert len(built["antialias_summary"]["changed"]) == (3 if net == "democnn" else 4)


def _blur3(x):
    # the triangle filter [1, 2, 1] x [1, 2, 1] / 16 with reflect padding, every other pixel: by hand
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (torch.outer(k, k) / 16).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), k, stride=2, groups=x.shape[1])


def _paper_recipe_by_hand(net, x):
    # SmallResNet's strided blocks as the paper's ResNets: conv1 at stride 1, BN, ReLU, blur; the
    # shortcut blurs before its 1x1 projection
    x = net.stem(x)
    for block in net.layers:
        strided = block.conv1.stride[0] == 2
        out = F.relu(block.bn1(F.conv2d(x, block.conv1.weight, padding=1)))
        out = block.bn2(block.conv2(_blur3(out) if strided else out))
        if isinstance(block.shortcut, nn.Identity):
            short = x
        else:
            conv, bn = block.shortcut
            short = bn(F.conv2d(_blur3(x) if strided else x, conv.weight))
        x = F.relu(out + short)
    return net.head(x)


def test_blurpool_variant_computes_the_paper_recipe():
    base, _, _ = _build("smallresnet", "baseline", width=6)
    aa, _, _ = _build("smallresnet", "blurpool:3", width=6)
    base.eval(), aa.eval()
    x = torch.randn(3, 3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(aa(x), _paper_recipe_by_hand(base, x), rtol=1e-5, atol=1e-5)


def test_aps_variant_is_circular_and_exactly_invariant():
    base, _, _ = _build("smallresnet", "baseline")
    aps, built, _ = _build("smallresnet", "aps-lpf:3")
    assert built["circular"] and "circular=True" in built["call"]
    base.eval(), aps.eval()
    x = torch.randn(4, 3, 28, 28)
    with torch.no_grad():
        gaps = [((net(torch.roll(x, (dh, dw), (2, 3))) - net(x)).abs().max().item())
                for net in (aps, base) for dh, dw in [(1, 0), (3, 5), (13, 27)]]
    assert max(gaps[:3]) < 1e-4 < min(gaps[3:])  # 28 is a multiple of the total stride (4)


def test_variant_specs():
    assert [v.spec for v in DemoConfig(filter_sizes=(2, 4), methods=("aps", "blurpool:2", "aps-lpf:3")).variants()] \
        == ["baseline", "blurpool:2", "blurpool:4", "aps", "aps-lpf:3"]
    # the registry's names (format_model_name), the method as `antialiased audit -a NAME@METHOD` writes it
    assert [parse_variant(s).model_name("net") for s in ("baseline", "blurpool:5", "blur-first:4", "aps", "aps-lpf:3")] \
        == ["net", "net_lpf5", "net_lpf4@blur-first", "net_lpf1@aps", "net_lpf3@aps-lpf"]
    with pytest.raises(ConfigError, match="unknown anti-aliasing method 'apss'"):
        parse_variant("apss")
    with pytest.raises(ConfigError, match="from 1 to 7"):
        parse_variant("blurpool:9")
    with pytest.raises(ConfigError, match="'aps' applies no blur filter"):
        parse_variant("aps:3")  # refused when written, before anything is built
    with pytest.raises(ConfigError, match="'lps:2'.*applies no blur filter"):
        parse_variant("lps:2")
    with pytest.raises(ConfigError, match="variant 'adaptive:4': filter_size must be one of 3, 5 or 7"):
        parse_variant("adaptive:4")
    assert total_stride("smallresnet", 28) == 4 and total_stride("democnn", 32) == 8


def test_quick_demo_end_to_end(tmp_path, capsys, one_thread):  # the fixture restores the thread count
    out = tmp_path / "demo"
    assert demo_main(["--quick", "--out-dir", str(out), "--no-progress", "--threads", "1", "--methods", "aps"]) == 0
    printed = capsys.readouterr().out
    for label in ("Baseline", "Rect-2", "Tri-3", "Tri-4", "Bin-5", "APS"):
        assert f"| {label} |" in printed
    assert "antialias(democnn(), method='aps', circular=True)" in printed  # APS has no filter: no size shown
    assert "32 is a multiple of the net's total stride 8" in printed
    files = list(out.glob("results_*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    assert data["schema"] == "antialiased.result/1" and data["protocol"] == "demo"
    assert data["dataset"] == "generated:shapes" and data["seed"] == 0
    assert [(r["method"], r["filter_size"]) for r in data["results"]] == \
        [(None, None), ("blurpool", 2), ("blurpool", 3), ("blurpool", 4), ("blurpool", 5), ("aps", 1)]
    for r in data["results"]:
        m = r["metrics"]
        assert 0 <= m["acc1"] <= 100 and m["pairs"] == m["circular_pairs"] == 200
        for key in ("consistency", "circular_consistency"):
            assert m[f"{key}_ci95"][0] <= m[key] <= m[f"{key}_ci95"][1] <= 100
            # recorded, so reports label it: a consistency of 0 or 100 is so in every image (Wilson)
            assert m[f"{key}_ci95_method"] == ("wilson" if m[key] in (0.0, 100.0) else "bootstrap")
    # it learned something in the quick run: clearly better than chance (1/8, 200 test images)
    assert max(r["metrics"]["acc1"] for r in data["results"]) > 100 / len(SHAPES) + 7
    # APS with circular padding: every pair of circular shifts of the 32px crop gets the same class
    assert data["results"][-1]["metrics"]["circular_consistency"] == 100.0
    assert min(r["metrics"]["circular_consistency"] for r in data["results"][:-1]) < 100.0
    rows = summarize(load_results([files[0]]))["democnn"]  # `antialiased report` reads the file
    assert {v.model for v in rows} == {"democnn", "democnn_lpf2", "democnn_lpf3", "democnn_lpf4", "democnn_lpf5",
                                       "democnn_lpf1@aps"}
    assert (out / "demo_democnn_seed0.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "demo_democnn_seed0.md").read_text().startswith(
        "| | Accuracy | Crop-shift consistency | Circular consistency |")


def _tiny(tmp_path, **kw):
    base = dict(out_dir=str(tmp_path), epochs=1, train_size=128, test_size=64, width=4, epochs_shift=1,
                filter_sizes=(3,), progress=False, plot=False)
    return run_demo(DemoConfig(**{**base, **kw}))


def test_issue_19_methods_in_the_demo(tmp_path, one_thread, capsys):
    # one --methods item may hold several, separated by commas; labels and names follow the registry's methods
    specs = ("adaptive", "lps", "lps-lpf:3", "flc", "asap", "wavelet", "tips")
    assert [(v.label, v.model_name("net")) for v in DemoConfig(filter_sizes=(), methods=(",".join(specs),)).variants()] \
        == [("Baseline", "net"), ("Adaptive-3", "net_lpf3@adaptive"), ("LPS", "net_lpf1@lps"),
            ("LPS-LPF-3", "net_lpf3@lps-lpf"), ("FLC", "net_lpf1@flc"), ("ASAP", "net_lpf1@asap"),
            ("Wavelet", "net_lpf1@wavelet"), ("TIPS", "net_lpf1@tips")]
    out = tmp_path / "demo"
    assert demo_main(["--quick", "--methods", "adaptive,lps", "--filter-sizes", "3", "--steps", "2", "--epochs", "2",
                      "--out-dir", str(out), "--no-progress", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "| Adaptive-3 |" in printed and "| LPS |" in printed
    assert "antialias(democnn(), method='adaptive', filter_size=3)" in printed
    assert "antialias(democnn(), method='lps', circular=True)" in printed
    records = json.loads(next(out.glob("results_*.json")).read_text())["results"]
    assert [(r["model"], r["method"], r["filter_size"]) for r in records] == [
        ("democnn", None, None), ("democnn_lpf3", "blurpool", 3), ("democnn_lpf3@adaptive", "adaptive", 3),
        ("democnn_lpf1@lps", "lps", 1)]
    assert records[-1]["metrics"]["circular_consistency"] == 100.0  # LPS, circular: exactly invariant


def test_the_demo_trains_learned_layers_by_their_methods_rules(monkeypatch):
    # the optimizer groups and per-epoch schedules of `antialiased train` (training.method_rules), not its own:
    # LPS's scorer without weight decay, its Gumbel temperature x0.85 every 10 epochs (11 epochs: once)
    from antialiased.demo import run as demo_run
    from antialiased.layers import LearnablePolyphaseSampling

    model, _ = build_variant("democnn", parse_variant("lps"), num_classes=3, width=4, input_size=(3, 16, 16))
    layers = [m for m in model.modules() if isinstance(m, LearnablePolyphaseSampling)]
    start = [float(m.gumbel_tau) for m in layers]
    captured = {}
    real_sgd = torch.optim.SGD
    monkeypatch.setattr(torch.optim, "SGD", lambda groups, **kw: captured.setdefault("opt", real_sgd(groups, **kw)))
    data = [(torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0]))]
    demo_run._train(model, DemoConfig(epochs=11, steps=1, weight_decay=0.5), data, torch.device("cpu"), None, "lps")
    decays = {g["name"]: g["weight_decay"] for g in captured["opt"].param_groups}
    assert decays == {"default": 0.5, "LearnablePolyphaseSampling": 0.0}
    assert layers and [float(m.gumbel_tau) for m in layers] == pytest.approx([t * 0.85 for t in start])


def test_demo_is_deterministic_given_seed(tmp_path, one_thread):  # identical threads: identical float sums
    a = _tiny(tmp_path / "a", seed=5).records
    b = _tiny(tmp_path / "b", seed=5).records
    assert [r["metrics"]["train_loss"] for r in a] == [r["metrics"]["train_loss"] for r in b]
    keys = ("acc1", "consistency", "circular_consistency")
    assert [[r["metrics"][k] for k in keys] for r in a] == [[r["metrics"][k] for k in keys] for r in b]


def test_demo_on_an_imagefolder_dataset(tmp_path, cifar10_dir):
    result = _tiny(tmp_path, data=str(cifar10_dir), crop_size=28, max_shift=4, train_size=160, test_size=40)
    data = json.loads(result.results_path.read_text())
    assert data["dataset"] == str(cifar10_dir.resolve())
    assert data["counts"]["train"] == 160 and data["counts"]["test"] == 40
    assert data["settings"]["classes"][:2] == ["airplane", "automobile"] and data["settings"]["image_size"] == 32
    assert [r["model"] for r in data["results"]] == ["democnn", "democnn_lpf3"]


def test_demo_errors_are_clear(tmp_path, capsys):
    assert demo_main(["--data", str(tmp_path / "nope"), "--out-dir", str(tmp_path), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "flat").mkdir()
    assert demo_main(["--data", str(tmp_path / "flat"), "--out-dir", str(tmp_path), "--no-progress"]) == 2
    assert "train/ folder" in capsys.readouterr().err
    assert demo_main(["--filter-sizes", "9", "--out-dir", str(tmp_path), "--no-progress"]) == 2
    assert "--filter-sizes" in capsys.readouterr().err
    assert demo_main(["--device", "cuda:7" if not torch.cuda.is_available() else "nonsense",
                      "--out-dir", str(tmp_path), "--no-progress"]) == 2
    assert "--device" in capsys.readouterr().err
    assert demo_main(["--methods", "aps:3", "--out-dir", str(tmp_path), "--no-progress"]) == 2
    assert "'aps' applies no blur filter" in capsys.readouterr().err
    assert demo_main(["--methods", "nope:2", "--out-dir", str(tmp_path), "--no-progress"]) == 2
    assert "unknown anti-aliasing method 'nope'" in capsys.readouterr().err
