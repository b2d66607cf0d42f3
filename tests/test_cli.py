"""The command-line front door: sub-command dispatch and clear errors instead of tracebacks."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from antialiased.cli import COMMANDS, main
from antialiased.cli.paper import get_args_parser

ROOT = Path(__file__).resolve().parents[1]


def test_usage_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command_suggests_the_closest(capsys):
    assert main(["evl"]) == 2
    assert "Did you mean: eval" in capsys.readouterr().err


def _run(args, tmp_path, **env):
    import os

    environ = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"), **env}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env=environ)


@pytest.fixture
def tiny_val(tmp_path, imagenet_sample_dir):
    photo = sorted(imagenet_sample_dir.glob("n01440764_*.JPEG"))[0]
    (tmp_path / "val" / "n01440764").mkdir(parents=True)
    (tmp_path / "val" / "n01440764" / photo.name).symlink_to(photo)
    return tmp_path


def test_unknown_model_is_one_clear_line(tiny_val):
    result = _run(["--data", str(tiny_val), "-a", "resnet50_lpf44", "-e"], tiny_val)
    assert result.returncode != 0
    assert "out of range: use _lpf1 to _lpf7" in result.stderr
    assert "Traceback" not in result.stderr


def test_download_failure_is_one_clear_message(tiny_val):
    # Port 9 on loopback refuses connections: the offline path, for real.
    mirror = {"ANTIALIASED_WEIGHTS_URL": "http://127.0.0.1:9/"}
    result = _run(["--data", str(tiny_val), "-a", "resnet18_lpf3", "--pretrained", "-e"], tiny_val, **mirror)
    assert result.returncode == 2
    assert "main.py: error: Could not download the published weights 'resnet18_lpf3'" in result.stderr
    assert "--weights PATH" in result.stderr and "Traceback" not in result.stderr
    shown = _run(["--data", str(tiny_val), "-a", "resnet18_lpf3", "--pretrained", "-e"], tiny_val,
                 ANTIALIASED_TRACEBACK="1", **mirror)
    assert "Traceback" in shown.stderr and "WeightsDownloadError" in shown.stderr


@pytest.mark.parametrize("command, expected", [
    # The seed's commands, verbatim but for the data path; '--ep' and '--ba' must not be ambiguous prefixes.
    ("-a mobilenet_v2_lpf4 --out-dir m --lr .05 --cos_lr --wd 4e-5 --ep 150",
     {"epochs": 150, "cos_lr": True, "weight_decay": 4e-5, "lr": 0.05}),
    ("-a vgg16_lpf4 --out-dir v --lr .01 -b 128 -ba 2", {"batch_size": 128, "batch_accum": 2}),
    ("-a vgg16_lpf4 --out-dir v --lr .01 -b 128 --ba 2", {"batch_accum": 2}),
    ("-a resnet50_lpf4 --out-dir r --lr .01 -ep 60 --finetune", {"epochs": 60, "finetune": True}),
    ("-a alexnet_lpf4 --pretrained -es -b 8 --gpu 0", {"evaluate_shift": True, "batch_size": 8, "gpu": 0}),
    ("-e -ens 5 -ens_sm -a resnet34_lpf4 --weights ./w.pth.tar", {"ens": 5, "ens_sm": True, "evaluate": True}),
])
def test_seed_flags_parse(command, expected):
    args = get_args_parser().parse_args(["--data", "/data", *command.split()])
    for key, value in expected.items():
        assert getattr(args, key) == value, key


def test_main_py_help_runs_as_a_script():
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), "--help"], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0
    assert "--evaluate-shift" in result.stdout and "--batch-accum" in result.stdout


# --- messages (issue 17 item 8) ------------------------------------------------------------------------


def _parsers():
    """(command, parser) for main.py and every sub-command."""
    import importlib

    yield "main.py", get_args_parser()
    for name, (module, _) in COMMANDS.items():
        parser = importlib.import_module(module).get_args_parser()
        yield name, parser


def _transposed(flag: str) -> str:
    """A typo: two letters in the middle of the flag's name swapped (``--epochs`` -> ``--epcohs``)."""
    i = 2 + (len(flag) - 2) // 2 - 1
    return flag[:i] + flag[i + 1] + flag[i] + flag[i + 2:]


@pytest.mark.parametrize("command", ["main.py", *COMMANDS])
def test_every_command_answers_a_mistyped_flag_with_the_close_matches(command, capsys):
    parser = dict(_parsers())[command]
    flags = sorted((f for f in parser._option_string_actions if f.startswith("--") and len(f) > 7
                    and f not in ("--help", "--version")), key=lambda f: (len(f), f))
    flag = flags[-1]
    typo = _transposed(flag)
    assert typo not in parser._option_string_actions
    with pytest.raises(SystemExit) as info:  # what argparse calls for a flag it does not know
        parser.error(f"unrecognized arguments: {typo} 1")
    assert info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"{parser.prog}: error: unrecognized arguments: {typo} 1 (did you mean ") and flag in last


def test_help_texts_show_no_doubled_percent_signs():
    for command, parser in _parsers():
        assert "%%" not in parser.format_help(), command


def test_a_mistyped_flag_names_the_flag_it_was_meant_to_be(capsys):
    with pytest.raises(SystemExit) as info:
        get_args_parser().parse_args(["--data", "d", "--epohcs", "3"])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == ("main.py: error: unrecognized arguments: --epohcs 3 "
                                                        "(did you mean --epochs?)")


def test_a_sub_command_names_the_flags_meant_too(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--data", "d", "--out-dir", "o", "--lr_stpe", "5", "--momentun", "0.8"])
    assert capsys.readouterr().err.splitlines()[-1] == (
        "antialiased train: error: unrecognized arguments: --lr_stpe 5 --momentun 0.8 (--lr_stpe: did you mean "
        "--lr_step?; --momentun: did you mean --momentum?)")


def test_version(capsys):
    from antialiased import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"antialiased {__version__}\n"
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), "--version"], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0 and result.stdout == f"antialiased {__version__}\n"


def test_weights_download_error_is_in_the_package_errors():
    from antialiased import errors
    from antialiased.models import weights

    assert weights.WeightsDownloadError is errors.WeightsDownloadError
    assert issubclass(errors.WeightsDownloadError, errors.DownloadError)
    assert "WeightsDownloadError" in errors.__all__
