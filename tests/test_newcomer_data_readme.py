"""Issue 17 item 1: the README's CIFAR-10 commands run as written on CIFAR-10's usual layout.

Every command of README.md that names ``../shared/data/cifar10`` (in a code block or inline) is run
in a fresh process with only the data path substituted. A full run takes hours (90 epochs of
ResNet-18 on 50,000 images), so each command gets the smallest budget its own flags allow appended
(:data:`BUDGET`: one training iteration and 32 validation images; the demo's ``--quick`` with one
filter size); nothing else changes. Before issue 17 the training command stopped at "no 'val' folder"
(CIFAR-10 has ``train/`` and ``test/``).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
README_DATA = "../shared/data/cifar10"

# the budget appended to each kind of command (only flags that shorten the run)
BUDGET = {
    "train": ["--epochs", "1", "--max-train-iters", "1", "--max-val-images", "32", "-b", "32"],
    "demo": ["--quick", "--filter-sizes", "2", "--no-plot", "--no-progress"],
}


def readme_cifar_commands(text: str) -> list[str]:
    """The commands of the README that run on ``../shared/data/cifar10``, as written."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    prose = re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.S)
    lines = [line for block in blocks for line in block.splitlines()] + re.findall(r"`([^`\n]+)`", prose)
    commands = []
    for line in lines:
        command = line.split(" #", 1)[0].strip()
        if README_DATA in command and command.startswith(("antialiased ", "python main.py ")):
            commands.append(command)
    return commands


def _kind(argv: list[str]) -> str:
    return "train" if argv[0] == "python" else argv[1]  # main.py with --data and no -e trains


def _entry() -> list[str]:
    script = Path(sys.executable).with_name("antialiased")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from antialiased.cli import main; sys.exit(main())"]


COMMANDS = readme_cifar_commands((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_readme_has_cifar_commands_and_a_budget_for_each():
    assert len(COMMANDS) >= 2, COMMANDS  # the demo's and training's
    for command in COMMANDS:
        assert _kind(shlex.split(command)) in BUDGET, f"add a budget for: {command}"


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_cifar_command_runs_as_written(command, cifar10_dir, tmp_path):
    argv = shlex.split(command.replace(README_DATA, str(cifar10_dir)))
    kind = _kind(argv)
    if argv[0] == "python":  # python main.py ...: the same parser as 'antialiased' without a sub-command
        argv = [sys.executable, str(ROOT / "main.py"), *argv[2:]]
    else:
        argv = [*_entry(), *argv[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([*argv, *BUDGET[kind]], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert "prepare-imagenet" not in proc.stderr + proc.stdout
    if kind == "train":
        out = tmp_path / argv[argv.index("--out-dir") + 1]
        record = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
        assert (record["val_split"], record["val_images"]) == ("test", 32)
        checkpoint = torch.load(out / "checkpoint.pth.tar", map_location="cpu", weights_only=True)
        assert checkpoint["preprocessing"]["crop_size"] == int(argv[argv.index("--crop-size") + 1])
    else:
        assert list((tmp_path / "demo_out").glob("results_*.json")), proc.stdout[-2000:]
