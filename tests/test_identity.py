"""Identity travels with results (issue 13, item 5 and deliver 6), evaluation and report side.

Each test reproduces a fault of the old code: a checkpoint trained on airplane/cat evaluated on
dog/frog reported "Acc@1 50.0" with exit status 0; a reversed ``--class-list`` was accepted for an
ImageNet model; ``antialiased report`` merged runs of one model on different datasets into one row
("59.46 ± 34.41") and averaged identical re-runs as seeds. Weight files that record no classes
(the published files, torchvision/timm weights, plain state dicts) are still accepted.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import antialiased
from antialiased.cli import main as antialiased_main
from antialiased.cli.paper import main as paper_main
from antialiased.cli.report import main as report_main
from antialiased.errors import ConfigError, DataError
from antialiased.evaluation import DataSettings, EvalConfig, ModelSource, RunSettings
from antialiased.evaluation import runner as eval_runner
from antialiased.evaluation.model_setup import check_class_identity
from antialiased.evaluation.results import make_result, write_result
from antialiased.models import weights_info as wi
from antialiased.reporting import load_results, markdown_report, summarize
from antialiased.reporting.audit import invariance_markdown
from antialiased.support.checkpoints import export_weights, load_checkpoint
from tests._evalutil import make_val_folder, sample_files

PER_CLASS = 3
SMALL = ["--crop-size", "32", "--max-shift", "8", "-j", "0", "--no-progress", "-b", "4"]


# ----------------------------------------------------------------------------------- fixtures
def _cifar_folder(root: Path, cifar10_dir: Path, classes: tuple[str, ...]) -> Path:
    """ROOT/{train,val}/<class>/ with symlinks to the first CIFAR-10 test images of each class."""
    for split in ("train", "val"):
        for cls in classes:
            (root / split / cls).mkdir(parents=True)
            for image in sorted((cifar10_dir / "test" / cls).iterdir())[:PER_CLASS]:
                os.symlink(image, root / split / cls / image.name)
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory, cifar10_dir) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("identity")
    return {"ac": _cifar_folder(base / "ac", cifar10_dir, ("airplane", "cat")),
            "df": _cifar_folder(base / "df", cifar10_dir, ("dog", "frog"))}


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> Path:
    """A real training checkpoint of resnet18_lpf2 on airplane/cat (one step: only its records matter)."""
    out = tmp_path_factory.mktemp("run") / "run"
    threads = torch.get_num_threads()
    try:
        assert antialiased_main(["train", "--data", str(data["ac"]), "-a", "resnet18_lpf2", "--crop-size", "32",
                                 "-b", "4", "-j", "0", "-ep", "1", "-mti", "1", "--out-dir", str(out),
                                 "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    ckpt = out / "model_best.pth.tar"
    assert load_checkpoint(ckpt)["classes"] == ["airplane", "cat"]
    return ckpt


@pytest.fixture()
def no_work(monkeypatch):
    """Fail the test if any image is evaluated: the refusals must come before any work."""
    def refuse(*args, **kwargs):
        raise AssertionError("the evaluation loop ran: the identity check must come first")

    monkeypatch.setattr(eval_runner, "run_protocols", refuse)


def _results(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("results_*.json"))] if out.exists() else []


# ------------------------------------------------------------ evaluation refuses other classes
PROTOCOL_FLAGS = [["-e"], ["-es", "--epochs-shift", "1"], ["-ed"], ["-ec"], ["-ef"], ["-ea", "--shift-grid", "2"],
                  ["-eq"], ["-e", "-ens", "2"], ["-e", "-es", "-ec", "--epochs-shift", "1"]]


@pytest.mark.parametrize("flags", PROTOCOL_FLAGS, ids=lambda f: "".join(f[:3]))
def test_eval_refuses_a_checkpoint_trained_on_other_classes(flags, data, trained, tmp_path, capsys, no_work):
    # the old code: " * Acc@1 50.000" and exit status 0
    out = tmp_path / "out"
    argv = ["eval", "--data", str(data["df"]), "-a", "resnet18_lpf2", "--resume", str(trained), *flags,
            "--out-dir", str(out), *SMALL]
    assert antialiased_main(argv) == 2
    err = capsys.readouterr().err
    assert "['airplane', 'cat']" in err and "['dog', 'frog']" in err, err
    assert str(data["ac"]) in err  # the data folder the checkpoint was trained on
    assert "--data" in err and "--class-list" in err and "weights" in err
    said = [line for line in err.splitlines() if not line.startswith("antialiased eval: warning:")]  # e.g. a
    # --max-shift that differs from the checkpoint's recorded resize
    assert said[0].startswith("antialiased eval: error: the weights") and "Traceback" not in err and _results(out) == []


def test_main_py_refuses_and_the_library_raises_data_error(data, trained, tmp_path, capsys, no_work):
    assert paper_main(["--data", str(data["df"]), "-a", "resnet18_lpf2", "--resume", str(trained), "-e",
                       "--out-dir", str(tmp_path), *SMALL]) == 2
    assert "trained on 2 classes" in capsys.readouterr().err
    config = EvalConfig(model=ModelSource("resnet18_lpf2", checkpoint=str(trained)),
                        data=DataSettings(str(data["df"]), batch_size=4, workers=0, crop_size=32, max_shift=8),
                        protocols=("accuracy",), run=RunSettings(progress=False), out_dir=None)
    with pytest.raises(DataError, match=r"only in the data: \['dog', 'frog'\].*only in the model: "
                                        r"\['airplane', 'cat'\]"):
        eval_runner.evaluate(config)


def test_same_classes_in_another_order_are_refused(data, trained, tmp_path, capsys, no_work):
    listing = tmp_path / "classes.txt"
    listing.write_text("cat\nairplane\n")
    assert antialiased_main(["eval", "--data", str(data["ac"]), "-a", "resnet18_lpf2", "--resume", str(trained),
                             "-e", "--class-list", str(listing), "--out-dir", str(tmp_path / "o"), *SMALL]) == 2
    err = capsys.readouterr().err
    assert "the same classes in another order" in err and "output 0 is 'airplane'" in err, err


def test_matching_classes_are_evaluated_and_recorded(data, trained, tmp_path, capsys):
    out = tmp_path / "out"
    assert antialiased_main(["eval", "--data", str(data["ac"]), "-a", "resnet18_lpf2", "--resume", str(trained),
                             "-e", "-ec", "--out-dir", str(out), *SMALL]) == 0
    records = _results(out)
    assert {r["protocol"] for r in records} == {"accuracy", "circular_consistency"}
    for r in records:  # the class list and the data folder travel with every result file
        assert r["classes"] == ["airplane", "cat"] and r["dataset"] == str((data["ac"] / "val").resolve())
        assert r["weights_info"]["classes"] == ["airplane", "cat"] and r["counts"]["images"] == 2 * PER_CLASS


def test_a_class_list_naming_the_recorded_classes_evaluates_a_subset_of_folders(data, trained, tmp_path):
    root = tmp_path / "only_cat"
    (root / "val").mkdir(parents=True)
    os.symlink(data["ac"] / "val" / "cat", root / "val" / "cat")
    listing = tmp_path / "classes.txt"
    listing.write_text("airplane\ncat\n")
    out = tmp_path / "out"
    assert antialiased_main(["eval", "--data", str(root), "-a", "resnet18_lpf2", "--resume", str(trained), "-e",
                             "--class-list", str(listing), "--out-dir", str(out), *SMALL]) == 0
    assert _results(out)[0]["classes"] == ["airplane", "cat"]


def test_exported_weights_keep_their_classes_and_are_checked(data, trained, tmp_path, capsys, no_work):
    exported = export_weights(trained, tmp_path / "w.pth")
    assert load_checkpoint(exported)["classes"] == ["airplane", "cat"]
    assert antialiased_main(["eval", "--data", str(data["df"]), "-a", "resnet18_lpf2", "--weights", str(exported),
                             "-e", "--out-dir", str(tmp_path / "o"), *SMALL]) == 2
    assert "['airplane', 'cat']" in capsys.readouterr().err


def test_files_recording_no_classes_are_still_accepted(data, trained, tmp_path):
    plain = tmp_path / "plain.pth"  # a bare state dict: no class list to compare
    torch.save(load_checkpoint(trained)["state_dict"], plain)
    out = tmp_path / "out"
    assert antialiased_main(["eval", "--data", str(data["df"]), "-a", "resnet18_lpf2", "--weights", str(plain),
                             "-e", "--out-dir", str(out), *SMALL]) == 0
    record = _results(out)[0]
    assert record["classes"] == ["dog", "frog"] and record["weights_info"]["classes"] is None


def test_audit_refuses_before_any_model_runs(data, trained, tmp_path, capsys, no_work):
    plain = tmp_path / "plain.pth"
    torch.save(load_checkpoint(trained)["state_dict"], plain)
    out = tmp_path / "audit"
    # the plain file comes first and would be evaluated (no_work fails the test) if the check came late
    argv = ["audit", "-a", f"resnet18_lpf2={plain}", "-a", f"resnet18_lpf2={trained}", "--data", str(data["df"]),
            "--protocols", "e", "--out-dir", str(out), "--no-plots", *SMALL]
    assert antialiased_main(argv) == 2
    err = capsys.readouterr().err
    assert "['airplane', 'cat']" in err and str(trained) in err
    assert not out.exists() or not any(out.iterdir())


def test_audit_report_records_classes_and_data_folder(data, trained, tmp_path):
    out = tmp_path / "audit"
    assert antialiased_main(["audit", "-a", f"resnet18_lpf2={trained}", "--data", str(data["ac"]), "--protocols",
                             "e", "--out-dir", str(out), "--no-plots", *SMALL]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["classes"] == ["airplane", "cat"] and report["dataset"] == str((data["ac"] / "val").resolve())
    assert report["models"][0]["classes"] == ["airplane", "cat"]
    assert all(r["classes"] == ["airplane", "cat"] for r in report["results"])


# -------------------------------------------------------------- ImageNet output order and lists
@pytest.fixture(scope="module")
def wnids(imagenet_sample_dir) -> list[str]:
    """The 1000 WordNet ids in sorted order (the sample holds one photo of every class)."""
    ids = sorted({p.name.split("_")[0] for p in imagenet_sample_dir.glob("*.JPEG")})
    assert len(ids) == 1000
    return ids


@pytest.fixture()
def imagenet_weights(monkeypatch):
    """``--pretrained`` without a download: torchvision's ImageNet weights stand-in is a random resnet18 (the
    loader records them as torchvision's IMAGENET1K_V1, as it would the real file)."""
    import torchvision

    from antialiased.models import _torchvision

    def build_pretrained(arch, weights, *, progress=True, **kwargs):
        return torchvision.models.get_model(arch, num_classes=len(weights.meta["categories"]))

    monkeypatch.setattr(_torchvision, "build_pretrained", build_pretrained)


def _imagenet_eval(root: Path, listing: Path, out: Path) -> int:
    return antialiased_main(["eval", "--data", str(root), "-a", "resnet18", "--pretrained", "-e", "--class-list",
                             str(listing), "--out-dir", str(out), *SMALL])


@pytest.mark.parametrize("order", ["reversed", "two_swapped", "shuffled"])
def test_imagenet_weights_refuse_a_wnid_list_out_of_sorted_order(order, wnids, imagenet_sample_dir, tmp_path,
                                                                 capsys, imagenet_weights, no_work):
    root = make_val_folder(tmp_path / "in", sample_files(imagenet_sample_dir, 2, step=101))
    ids = list(wnids)
    if order == "reversed":
        ids.reverse()
    elif order == "two_swapped":
        ids[500], ids[501] = ids[501], ids[500]
    else:
        ids = ids[1::2] + ids[0::2]
    listing = tmp_path / "classes.txt"
    listing.write_text("\n".join(ids) + "\n")
    assert _imagenet_eval(root, listing, tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "sorted order of the WordNet ids" in err and "(sort FILE)" in err and "Traceback" not in err, err


def test_imagenet_weights_accept_the_sorted_wnid_list(wnids, imagenet_sample_dir, tmp_path, imagenet_weights):
    root = make_val_folder(tmp_path / "in", sample_files(imagenet_sample_dir, 2, step=101))
    listing = tmp_path / "classes.txt"
    listing.write_text("\n".join(wnids) + "\n")
    out = tmp_path / "out"
    assert _imagenet_eval(root, listing, out) == 0
    assert _results(out)[0]["classes"] == wnids


def test_the_order_rule_in_the_library():
    imagenet = [wi.timm_info("resnet18.a1_in1k", 1000, lambda: None), wi.baseline_info(
        wi.published_info(antialiased.models.weights.get_published("resnet18_lpf2")))]
    subset = ["n01440764", "n01443537", "n09999999"]
    for info in imagenet:
        check_class_identity(info, subset, where="DIR")  # a subset in sorted order is fine
        with pytest.raises(DataError, match="n01443537 comes before n01440764"):
            check_class_identity(info, [subset[1], subset[0], subset[2]], where="DIR")
        check_class_identity(info, ["zebra", "ant"], where="DIR")  # not wnids: no rule to apply
    check_class_identity(wi.random_info(), subset[::-1], where="DIR")  # other models: any order is theirs
    with pytest.raises(DataError, match="--class-list FILE"):
        check_class_identity(wi.timm_info("x", 1000, lambda: None), subset[::-1], where="DIR", class_list="FILE")


@pytest.mark.parametrize("text, message", [("cat\ndog\ncat\n", "lists 'cat' twice"),
                                           ("\n  \n", "is empty"),
                                           ("cat\ncat\ndog\ndog\n", "lists 'cat', 'dog' twice")])
def test_class_lists_repeating_a_folder_or_empty_are_refused(text, message, data, tmp_path, capsys, no_work):
    listing = tmp_path / "classes.txt"
    listing.write_text(text)
    with pytest.raises(ConfigError, match=message):
        eval_runner.read_class_list(listing)
    plain = tmp_path / "p.pth"
    torch.save(antialiased.create_model("resnet18_lpf2", num_classes=2).state_dict(), plain)
    assert antialiased_main(["eval", "--data", str(data["ac"]), "-a", "resnet18_lpf2", "--weights", str(plain), "-e",
                             "--class-list", str(listing), "--out-dir", str(tmp_path / "o"), *SMALL]) == 2
    assert message in capsys.readouterr().err


def test_class_list_help_states_the_rule(capsys):
    with pytest.raises(SystemExit):
        paper_main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "sorted order of the 1000 WordNet ids" in text and "recorded" in text


# ------------------------------------------------------------------------------------- report
def _record(model="resnet18_lpf4", dataset="/data/a/val", seed=0, acc=70.0, protocol="accuracy",
            weights="published:resnet18_lpf4", spec=None, settings=None, metrics=None):
    spec = spec or {"name": model, "arch": "resnet18", "filter_size": 4, "source": "paper", "method": "blurpool"}
    return make_result(model=model, arch="resnet18", filter_size=4, weights=weights, protocol=protocol,
                       dataset=dataset, seed=seed, device="cpu", metrics=metrics or {"acc1": acc},
                       counts={"images": 10, "skipped": 0}, skipped_files=[], settings=settings or {"batch_size": 8},
                       model_spec=spec)


def _write(records, folder: Path) -> Path:
    for r in records:
        write_result(r, folder)
    return folder


def test_report_keeps_datasets_apart(tmp_path, capsys):
    # the old code: one row "59.46 ± 34.41" for 83.78 on one dataset and 35.14 on another
    folder = _write([_record(dataset="/data/cifar10/val", acc=83.78),
                     _record(dataset="/data/imagenet/val", acc=35.14)], tmp_path / "res")
    tables = summarize(load_results([folder]))
    assert sorted(tables) == ["resnet18 @ cifar10/val", "resnet18 @ imagenet/val"]
    assert [[v.acc.mean for v in rows] for rows in tables.values()] == [[83.78], [35.14]]
    assert all(v.acc.n == 1 for rows in tables.values() for v in rows)
    assert report_main([str(folder), "--out-dir", str(tmp_path / "rep"), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "±" not in printed and "59.46" not in printed
    assert "**ResNet18** (data: /data/cifar10/val)" in printed and "**ResNet18** (data: /data/imagenet/val)" in printed
    csv_text = (tmp_path / "rep" / "report.csv").read_text()
    assert "/data/cifar10/val" in csv_text and "/data/imagenet/val" in csv_text


def test_report_counts_identical_reruns_once(tmp_path, capsys):
    same = [_record(seed=0, acc=70.0), _record(seed=0, acc=70.0), _record(seed=0, acc=70.0)]
    tables = summarize(same)
    (row,) = tables["resnet18"]
    assert (row.acc.mean, row.acc.n, row.duplicates) == (70.0, 1, 2)
    assert "2 duplicate runs ignored" in markdown_report(tables)
    folder = _write(same, tmp_path / "res")  # the same through files (different "created" and "source")
    assert report_main([str(folder), "--out-dir", str(tmp_path / "rep"), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "| Tri-4 | **70.00** | – |" in printed and "2 duplicate runs ignored" in printed


def test_report_averages_seeds_and_unseeded_runs(tmp_path):
    seeds = summarize([_record(seed=0, acc=70.0), _record(seed=1, acc=72.0), _record(seed=0, acc=70.0)])
    (row,) = seeds["resnet18"]
    assert (row.acc.mean, row.acc.n, row.duplicates) == (71.0, 2, 1)
    unseeded = summarize([_record(seed=None, acc=70.0), _record(seed=None, acc=72.0)])["resnet18"][0]
    assert (unseeded.acc.n, unseeded.duplicates) == (2, 0)  # seed None: independent random draws
    other_settings = summarize([_record(acc=70.0), _record(acc=71.0, settings={"batch_size": 16})])["resnet18"][0]
    assert other_settings.acc.n == 2 and "duplicate" not in markdown_report({"resnet18": [other_settings]})


def test_report_splits_the_papers_model_from_a_converted_one(tmp_path):
    paper = _record(acc=70.0)
    aps = _record(acc=68.0, weights="file:/runs/aps/model_best.pth.tar",
                  spec={"name": "resnet18_lpf4", "arch": "resnet18", "filter_size": 4, "source": "torchvision",
                        "method": "aps"})
    rows = summarize([paper, aps])["resnet18"]
    assert [v.acc.mean for v in rows] == [70.0, 68.0] or [v.acc.mean for v in rows] == [68.0, 70.0]
    labels = {v.acc.mean: v.label for v in rows}
    assert labels[70.0] != labels[68.0] and "aps" in labels[68.0] and "blurpool" in labels[70.0]
    # two trained checkpoints (seeds) of one recipe are one row: their weights kind is the same
    seeds = [_record(acc=a, seed=s, weights=f"checkpoint:/runs/seed{s}/model_best.pth.tar") for s, a in
             ((0, 60.0), (1, 62.0))]
    (row,) = summarize(seeds)["resnet18"]
    assert row.acc.n == 2 and row.label == "Tri-4"


def test_report_reads_results_written_before_the_identity_fields(tmp_path):
    old = []
    for seed, acc in ((0, 69.0), (1, 70.0)):
        r = _record(seed=seed, acc=acc)
        for key in ("model_spec", "classes", "weights_info", "dataset"):
            r.pop(key, None)
        old.append(r)
    folder = _write(old, tmp_path / "old")
    (row,) = summarize(load_results([folder]))["resnet18"]
    assert row.acc.n == 2 and row.acc.mean == pytest.approx(69.5) and row.dataset is None


def test_invariance_table_groups_by_data_and_ignores_reruns():
    def ec(dataset, value, seed=0):
        return _record(protocol="circular_consistency", dataset=dataset, seed=seed,
                       metrics={"circular_consistency": value, "circular_consistency_ci95": [value - 1, value + 1]})

    text = invariance_markdown([ec("/d/a/val", 90.0), ec("/d/a/val", 90.0), ec("/d/b/val", 50.0)])
    rows = [line for line in text.splitlines()[4:] if line.startswith("|")]  # the table's rows, not its notes
    assert len(rows) == 2 and not any("70.00" in row or "±" in row for row in rows), text
    assert "resnet18_lpf4 (a/val)" in text and "resnet18_lpf4 (b/val)" in text
    assert "90.00 [89.00, 91.00]" in text and "50.00 [49.00, 51.00]" in text
    seeds = invariance_markdown([ec("/d/a/val", 90.0, 0), ec("/d/a/val", 92.0, 1)])
    assert "91.00 ± 1.41 (2 runs)" in seeds
