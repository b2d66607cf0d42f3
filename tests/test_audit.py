"""The shift protocols' flags (``-ec -ef -ea -eq``), the ``antialiased audit`` command and its report."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import antialiased
from antialiased.cli import main as antialiased_main
from antialiased.cli.paper import main as paper_main
from antialiased.evaluation import adversarial_accuracy, circular_consistency
from antialiased.evaluation.invariance import InvarianceOptions
from tests._evalutil import make_val_folder, read_result, sample_files

N = 4
SMALL = ["-j", "0", "--no-progress", "-b", "2", "--seed", "3", "--forward-batch", "64"]
SIZE = ["--crop-size", "64", "--max-shift", "8"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, imagenet_sample_dir):
    return make_val_folder(tmp_path_factory.mktemp("ilsvrc"), sample_files(imagenet_sample_dir, N, step=211))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Weights files with N classes for a baseline and an anti-aliased ResNet-18."""
    folder = tmp_path_factory.mktemp("w")
    paths = {}
    for name in ("resnet18", "resnet18_lpf2"):
        torch.manual_seed(1)
        paths[name] = folder / f"{name}.pth"
        torch.save({"state_dict": antialiased.create_model(name, num_classes=N).state_dict()}, paths[name])
    return paths


def test_eval_flags_run_the_new_protocols_in_one_command(data_root, weights, tmp_path, capsys):
    argv = ["--data", str(data_root), "-a", "resnet18_lpf2", "--weights", str(weights["resnet18_lpf2"]), "-e",
            "-ec", "-ef", "-ea", "-eq", "--shift-grid", "3", "--epochs-shift", "2", "--bootstrap", "300",
            "--evaluate-save", "--out-dir", str(tmp_path), *SIZE, *SMALL]
    assert paper_main(argv) == 0
    out = capsys.readouterr().out
    acc, ec, ef = (read_result(tmp_path, p) for p in ("accuracy", "circular_consistency", "fractional_consistency"))
    ea, eq = read_result(tmp_path, "adversarial"), read_result(tmp_path, "equivariance")
    assert f"Circular consistency {ec['metrics']['circular_consistency']:.3f}" in out
    assert f"Fractional consistency {ef['metrics']['fractional_consistency']:.3f}" in out
    assert f"Adversarial accuracy {ea['metrics']['adversarial_acc1']:.3f} (grid 3x3, crop)" in out
    assert "Equivariance error" in out and "bootstrap over 4 images: Acc@1 95% CI" in out
    # the center crop of the shared 72-pixel decode is -e's crop: the same Acc@1
    assert ea["metrics"]["center_acc1"] == acc["metrics"]["acc1"]
    for record, key in ((acc, "acc1"), (ec, "circular_consistency"), (ef, "fractional_consistency"),
                        (ea, "adversarial_acc1"), (ea, "grid_consistency")):
        low, high = record["metrics"][f"{key}_ci95"]
        assert low <= record["metrics"][key] <= high
    assert ec["metrics"]["pairs"] == 2 * N and ec["settings"]["bootstrap"] == {
        "unit": "image", "units": N, "resamples": 300, "seed": 3}
    layers = eq["metrics"]["layers"]
    assert [layer["stride"][0] for layer in layers if layer["stage"]][-1] == 32
    assert Path(eq["settings"]["files"]["plot"]).is_file()
    # --evaluate-save: what each protocol fed the model (first pass), one PNG per image and copy
    saved = {p: len(list((tmp_path / "images" / p).glob("*.png"))) for p in ("circular", "adversarial", "equivariance")}
    assert saved == {"circular": 2 * N, "adversarial": N * (9 + 1), "equivariance": N * 11}
    # the same figure as the library function on the same images, shifts and seed
    from antialiased.data import ImageFolderDataset, uint8_transform
    model = antialiased.create_model("resnet18_lpf2", weights=weights["resnet18_lpf2"])
    data = ImageFolderDataset(data_root / "val", transform=uint8_transform(72, 64), return_index=True)
    batches = list(torch.utils.data.DataLoader(data, batch_size=2))
    lib = circular_consistency(model, batches, "cpu", crop_size=64, max_shift=8, epochs=2, seed=3, progress=False,
                               channels_last=True, resamples=300, min_forward=64)
    assert (lib["agree"], lib["consistency_ci95"]) == (ec["metrics"]["pairs"] * ec["metrics"][
        "circular_consistency"] / 100, ec["metrics"]["circular_consistency_ci95"])


@pytest.mark.parametrize("extra, message", [
    (["-ea", "--shift-grid", "10"], "--shift-grid 10 in crop mode needs crops at offsets up to 9"),
    (["-eq", "--layers", "layer9"], "'layer9' is not a module of the model.*Valid names: conv1, bn1, relu"),
    (["-e", "--layers", "layer1"], "--layers names feature maps for -eq"),
    (["-e", "--shift-grid", "4"], "--shift-grid and --shift-mode set the adversarial-shift protocol; add -ea"),
])
def test_bad_flags_fail_with_one_line_before_any_work(data_root, weights, tmp_path, capsys, extra, message):
    argv = ["--data", str(data_root), "-a", "resnet18", "--weights", str(weights["resnet18"]), *extra,
            "--out-dir", str(tmp_path), *SIZE, *SMALL]
    assert paper_main(argv) == 2
    err = capsys.readouterr().err
    assert pytest.importorskip("re").search(message, err), err
    assert not list(tmp_path.glob("results_*"))


def test_audit_writes_a_report_that_antialiased_report_merges(data_root, weights, tmp_path, capsys):
    out = tmp_path / "audit"
    argv = ["audit", "-a", f"resnet18={weights['resnet18']}", "-a", f"resnet18_lpf2={weights['resnet18_lpf2']}",
            "--data", str(data_root), "--out-dir", str(out), "--epochs-shift", "1", "--shift-grid", "2",
            "--bootstrap", "200", "--crop-size", "32", "--max-shift", "4", *SMALL]
    assert antialiased_main(argv) == 0
    printed = capsys.readouterr().out
    assert "== resnet18" in printed and "== resnet18_lpf2" in printed and "Audit report written" in printed
    summary = json.loads((out / "report.json").read_text())
    assert summary["schema"] == "antialiased.audit/1" and [m["label"] for m in summary["models"]] == [
        "resnet18", "resnet18_lpf2"]
    assert {r["protocol"] for r in summary["results"]} == {
        "accuracy", "shift_consistency", "diagonal", "circular_consistency", "fractional_consistency",
        "adversarial", "equivariance", "shift_distance"}
    for model in summary["models"]:
        records = {r["protocol"]: r for r in summary["results"] if r["model"] == model["model"]}
        assert model["figures"]["accuracy.acc1"]["value"] == records["accuracy"]["metrics"]["acc1"]
        assert model["curves"]["distance"]["distances"] == list(range(1, 5))
        assert len(model["curves"]["diagonal"]["mean_true_prob"]) == 5 and model["layers"]
        assert model["figures"]["adversarial.adversarial_acc1"]["ci95"] is not None
        # each interval's method, as its result record gives it; the weights file, named
        assert {f["method"] for f in model["figures"].values() if f["ci95"]} <= {"bootstrap", "wilson", "none"}
        assert records["accuracy"]["metrics"]["acc1_ci95_method"] == model["figures"]["accuracy.acc1"]["method"]
        assert model["weights_text"] == f"file {Path(weights[model['model']]).parent.name}/{model['model']}.pth"
    text = (out / "report.md").read_text()
    assert "| Circular consistency (-ec) (%) |" in text and "## Per-layer equivariance" in text
    assert "| Metric (95% interval) | resnet18 (file " in text and "\n95% intervals: bootstrap = " in text
    for name in ("metrics", "distance", "diagonal", "equivariance"):
        assert (out / f"{name}.png").stat().st_size > 1000
    assert antialiased_main(["report", str(out), "--out-dir", str(tmp_path / "merged"), "--no-plots"]) == 0
    merged = capsys.readouterr().out
    acc = summary["models"][1]["figures"]["accuracy.acc1"]["value"]
    assert f"{acc:.2f}" in merged and "**Shift invariance" in merged and "Circular consistency (-ec)" in merged


def test_audit_refuses_bad_input_before_any_model_runs(data_root, tmp_path, capsys):
    base = ["audit", "--data", str(data_root), "--out-dir", str(tmp_path / "a"), *SIZE, *SMALL]
    assert antialiased_main([*base, "-a", "resnet18", "-a", "resnet81"]) == 2
    assert "resnet81" in capsys.readouterr().err
    assert antialiased_main([*base, "-a", "resnet18", "--protocols", "es", "bogus"]) == 2
    assert "unknown protocol(s) bogus" in capsys.readouterr().err
    assert antialiased_main([*base, "-a", "resnet18=missing.pth"]) == 2
    assert "missing.pth" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


def test_invariance_options_validate():
    InvarianceOptions(grid=33).validate(32, 224)
    with pytest.raises(ValueError, match="--bootstrap must be >= 100"):
        InvarianceOptions(resamples=10).validate(32, 224)
    with pytest.raises(ValueError, match="exceeds the 16 crop"):
        adversarial_accuracy(torch.nn.Identity(), [], "cpu", crop_size=16, grid=17, mode="circular")


@pytest.mark.slow  # three fresh interpreters: about a minute on a busy 2-core machine
def test_torchrun_two_processes_give_the_single_process_figures(data_root, weights, tmp_path, capsys):
    """Under torchrun (2 CPU processes, gloo) each rank scores its shard; the sums and the per-image
    outcomes behind the intervals are reduced over ranks: the grid and layer figures equal one process's."""
    root = Path(__file__).resolve().parents[1]
    args = ["--data", str(data_root), "-a", "resnet18", "--weights", str(weights["resnet18"]), "-ea", "-eq", "-ec",
            "--shift-grid", "2", "--epochs-shift", "1", "--bootstrap", "200", "--crop-size", "32", "--max-shift", "4",
            "-j", "0", "--no-progress", "-b", "1", "--seed", "3"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(root / "main.py"), *args, "--out-dir", str(tmp_path / "ddp")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env, cwd=root)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.count("Adversarial accuracy") == 1  # printed by rank 0 only
    assert paper_main([*args, "--out-dir", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    ddp = {p: read_result(tmp_path / "ddp", p)["metrics"] for p in ("adversarial", "equivariance", "circular_consistency")}
    one = {p: read_result(tmp_path / "one", p)["metrics"] for p in ("adversarial", "equivariance", "circular_consistency")}
    for key in ("adversarial_acc1", "adversarial_acc1_ci95", "center_acc1", "grid_consistency", "images"):
        assert ddp["adversarial"][key] == one["adversarial"][key], key
    assert [layer["name"] for layer in ddp["equivariance"]["layers"]] == [
        layer["name"] for layer in one["equivariance"]["layers"]]
    for a, b in zip(ddp["equivariance"]["layers"], one["equivariance"]["layers"]):
        assert a["error"] == pytest.approx(b["error"], rel=1e-4) and a["error_ci95"] == pytest.approx(b["error_ci95"],
                                                                                                       rel=1e-4)
    assert ddp["circular_consistency"]["pairs"] == one["circular_consistency"]["pairs"] == N


def _summary_of_two_models():
    """An audit summary as summarize_audit writes it: a trained and an untrained model, one Wilson interval."""
    def model(label, weights, text, random, cons, ci, method):
        return {"label": label, "model": label, "weights": weights, "weights_text": text, "random_weights": random,
                "images": 8, "skipped": 0, "lines": [], "layers": [], "curves": {
                    "distance": {"distances": [1, 2], "consistency": [cons, cons], "ci95": [ci, ci],
                                 "methods": [method, "bootstrap"]}},
                "figures": {"accuracy.acc1": {"value": 50.0, "ci95": [20.0, 80.0], "method": "bootstrap"},
                            "circular_consistency.circular_consistency": {"value": cons, "ci95": ci, "method": method}}}
    return {"dataset": "/data/val", "device": "cpu", "protocols": ["accuracy", "circular_consistency"],
            "settings": {"crop_size": 64, "max_shift": 8, "epochs_shift": 1, "shift_grid": 2, "shift_mode": "crop",
                         "seed": 0, "bootstrap_resamples": 200},
            "figures": [{"id": "accuracy.acc1", "label": "Acc@1, center crop (-e)", "unit": "%"},
                        {"id": "circular_consistency.circular_consistency", "label": "Circular consistency (-ec)",
                         "unit": "%"}],
            "models": [model("resnet18_lpf4", "published:resnet18_lpf4", "published", False, 100.0, [67.6, 100.0],
                             "wilson"),
                       model("resnet18", "random", "random (untrained)", True, 62.5, [25.0, 87.5], "bootstrap")]}


def test_audit_report_names_weights_and_the_method_of_each_interval():
    from antialiased.reporting.audit import audit_markdown

    lines = audit_markdown(_summary_of_two_models()).splitlines()
    header = next(line for line in lines if line.startswith("| Metric (95% interval) |"))
    assert header == "| Metric (95% interval) | resnet18_lpf4 (published) | resnet18 (random (untrained)) |"
    row = next(line for line in lines if line.startswith("| Circular consistency (-ec) (%) |"))
    assert "| 100.00 [67.60, 100.00] (W) | 62.50 [25.00, 87.50] |" in row
    legend = lines[lines.index(next(line for line in lines if line.startswith("| Circular"))) + 2]
    assert legend.startswith("95% intervals: bootstrap = ") and "(W) = Wilson score interval over units" in legend
    assert any(line.startswith("random (untrained): measured with randomly initialized weights") for line in lines)
    distance = next(line for line in lines if line.startswith("| d = 1 |"))
    assert distance.endswith("| 100.00 [67.60, 100.00] (W) | 62.50 [25.00, 87.50] |")
    assert "Weights: resnet18_lpf4 (published); resnet18 (random (untrained))." in lines


def test_audit_plots_label_weights_and_interval_methods(monkeypatch, tmp_path):
    from antialiased.reporting import audit_plots

    figures = []
    monkeypatch.setattr(audit_plots, "save_figure", lambda fig, path: figures.append(fig) or path)
    summary = _summary_of_two_models()
    audit_plots.plot_metrics(summary, tmp_path / "m.png")
    audit_plots.plot_distance(summary, tmp_path / "d.png")
    metrics, distance = (fig.axes[0] for fig in figures)
    assert metrics.get_xlabel() == "% (95% intervals: bootstrap; W: Wilson)"  # not "bootstrap" for all
    assert [t.get_text() for t in metrics.texts] == ["W"]  # on the Wilson interval's bar only
    assert [t.get_text() for t in metrics.get_legend().get_texts()] == [
        "resnet18_lpf4 (published)", "resnet18 (random (untrained))"]
    assert distance.get_title().endswith("(bands: 95% intervals: bootstrap; W: Wilson)")
