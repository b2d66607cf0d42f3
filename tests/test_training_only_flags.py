"""Training flags given to an evaluation-only (or export-only) run: one warning naming them."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from antialiased.cli import main as antialiased_main
from antialiased.cli._training_only import TRAINING_ONLY, training_only_given, warn_training_only
from antialiased.cli.paper import get_args_parser
from test_training_fixtures import register_tiny_models

pytestmark = pytest.mark.usefixtures("one_thread")

# training-group flags that evaluation reads too (antialiased.cli.eval_args): never warned about
EVALUATION_READS = {"amp", "channels_last", "compile", "max_val_images"}


def _training_group_dests() -> set[str]:
    parser = get_args_parser()
    group = next(g for g in parser._action_groups if g.title == "training")
    return {action.dest for action in group._group_actions}


def test_table_holds_every_training_flag_evaluation_does_not_read():
    # a training flag added later must be sorted into one of the two: the table, or read by evaluation
    assert set(TRAINING_ONLY) == _training_group_dests() - EVALUATION_READS
    assert len(set(TRAINING_ONLY)) == len(TRAINING_ONLY)


def test_only_typed_training_flags_are_named_in_the_help_forms():
    parser = get_args_parser()
    argv = ["--data", "d", "-e", "--learning-rate=0.3", "--wd", "1e-3", "-ep", "5", "--momentum", "0.9", "--cos_lr",
            "-b", "8", "--seed", "1", "--amp", "bf16", "--compile", "--channels-last", "--max-val-images", "3",
            "--resume", "x.pth", "-j", "0", "--gpu", "0", "--crop-size", "32", "--mean", "0.5", "0.5", "0.5",
            "--std", "0.2", "0.2", "0.2", "--pretrained", "-p", "5", "--out-dir", "o"]
    # --momentum 0.9 is the default's value, but typed: named too
    assert training_only_given(parser, argv) == ["-ep/--epochs", "--lr", "--cos_lr", "--momentum", "--wd"]
    assert training_only_given(parser, ["--data", "d", "-e", "-b", "8", "--amp", "--compile"]) == []


def test_one_warning_unless_the_run_trains():
    parser = get_args_parser()
    argv = ["--data", "d", "--lr", "0.3", "-mti", "2"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_training_only(parser, argv, ["train"])
        warn_training_only(parser, ["--data", "d", "-e", "-b", "4"], ["evaluate"])
    assert caught == []
    with pytest.warns(UserWarning) as caught:
        warn_training_only(parser, argv, ["export"])
    assert [str(w.message) for w in caught] == [
        "--lr, -mti/--max-train-iters have no effect when only exporting weights (--resume with --save_weights): "
        "they are training flags; leave them out"]


@pytest.fixture(scope="module")
def small_val(cifar10_dir: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("small_val")
    for cls in ("airplane", "cat"):
        (root / "test" / cls).mkdir(parents=True)
        for image in sorted((cifar10_dir / "test" / cls).iterdir())[:2]:
            os.symlink(image, root / "test" / cls / image.name)
    return root


def test_eval_run_says_its_ignored_training_flags_once(small_val, tmp_path):
    register_tiny_models()
    argv = ["eval", "--data", str(small_val), "-a", "aa_tinynet_lpf2", "--crop-size", "32", "--max-shift", "5",
            "-e", "--lr", "0.3", "--wd", "0", "-b", "4", "-j", "0", "--no-progress", "--out-dir", str(tmp_path)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert antialiased_main(argv) == 0
    named = [str(w.message) for w in caught if "training flag" in str(w.message)]
    assert named == ["--lr, --wd have no effect when only evaluating (-e/-es/..., or 'antialiased eval'): they "
                     "are training flags; leave them out"]
    assert list(tmp_path.glob("results_*_accuracy_*.json"))  # the evaluation still ran
