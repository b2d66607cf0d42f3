"""Signals and pipes (issue 17 item 5), with real processes: a reader that stops early, Ctrl-C, a second Ctrl-C.

Ctrl-C in a terminal sends SIGINT to the whole foreground process group (data-loader workers
included), so the processes here start in their own session and get the signal with ``killpg``.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from test_training_fixtures import ROOT, cifar_subset, tiny_args  # noqa: F401

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX signals and process groups")

ANTIALIASED = [sys.executable, "-c", "import sys; from antialiased.cli import main; sys.exit(main())"]

# main.py with the tests' tiny models; SLOW_DATA makes every image read take 0.1 s and leave a marker
# file (so a test knows the loop is running), SLOW_CLEANUP makes the end of training hang in cleanup.
ENTRY = f"""
import os, sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
import test_training_fixtures
test_training_fixtures.register_tiny_models()
from antialiased.data import ImageFolderDataset
from antialiased.training import metrics_log
if os.environ.get("SLOW_DATA"):
    real_getitem = ImageFolderDataset.__getitem__
    def getitem(self, index):
        open(os.environ["SLOW_DATA"], "a").close()
        time.sleep(0.1)
        return real_getitem(self, index)
    ImageFolderDataset.__getitem__ = getitem
if os.environ.get("SLOW_CLEANUP"):
    def close(self):
        print("cleaning up", flush=True)
        time.sleep(300)
    metrics_log.EpochLogger.close = close
from antialiased.cli.paper import main
sys.exit(main(sys.argv[1:]))
"""


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}


def _start(cmd: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=_env(**env), start_new_session=True)


def _entry(tmp_path: Path) -> list[str]:
    script = tmp_path / "entry.py"
    script.write_text(ENTRY)
    return [sys.executable, str(script)]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"ended before {path.name} appeared: {proc.returncode}\n{proc.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear")
        time.sleep(0.05)


def _quiet(stderr: str) -> None:
    for noise in ("Traceback", "Exception ignored", "BrokenPipeError", "KeyboardInterrupt"):
        assert noise not in stderr, stderr


# --- a reader that stops early: `antialiased models | head` ------------------------------------------


@pytest.mark.parametrize("args", [["models"], ["models", "resnet*_lpf4"], ["--help"], ["--version"]])
def test_output_into_a_pipe_closed_before_reading_ends_quietly(args):
    proc = _start([*ANTIALIASED, *args])
    proc.stdout.close()  # the reader is gone before the first write: every write fails
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, stderr
    _quiet(stderr)
    assert stderr == ""


def test_head_dash_1_on_a_long_listing_ends_quietly():
    pytest.importorskip("timm")
    proc = _start([*ANTIALIASED, "models", "timm/*"])  # about 100 kB: more than a pipe holds
    first = proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert first.split() == ["model", "pretrained", "weights"]
    assert proc.wait(timeout=300) == 0, stderr
    _quiet(stderr)


def test_evaluation_piped_into_a_closed_reader_ends_quietly(cifar_subset, tmp_path):
    proc = _start([*_entry(tmp_path), "--data", str(cifar_subset), "-a", "aa_tinynet_lpf2", "--crop-size", "32",
                   "-b", "16", "-j", "0", "-e", "--no-progress"])
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, stderr
    _quiet(stderr)


# --- warnings: one line, no source line -------------------------------------------------------------


def test_library_warnings_print_as_one_clean_line(cifar_subset, tmp_path):
    result = subprocess.run([*_entry(tmp_path), "--data", str(cifar_subset), "-a", "aa_tinynet_lpf2", "--crop-size",
                             "32", "-b", "16", "-j", "0", "-e", "--no-progress"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT, env=_env())
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    warned = [line for line in lines if "no weights given" in line]
    assert len(warned) == 1 and warned[0].startswith("main.py: warning: no weights given"), lines
    assert "UserWarning" not in result.stderr and "warnings.warn(" not in result.stderr


# --- Ctrl-C -----------------------------------------------------------------------------------------


def _resume_hint(line: str) -> list[str]:
    assert "Continue with: " in line, line
    return shlex.split(line.split("Continue with: ", 1)[1])


def test_ctrl_c_in_training_ends_with_one_line_naming_the_checkpoint_and_resume_auto(cifar_subset, tmp_path):
    out = tmp_path / "run"
    args = tiny_args(cifar_subset, out, "-ep", "500", "--seed", "1", "-j", "1", "--no-progress")
    proc = _start([*_entry(tmp_path), *args])
    _wait_for(out / "checkpoint.pth.tar", proc)
    os.killpg(proc.pid, signal.SIGINT)  # the whole group, as a terminal does: the loader's worker too
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    _quiet(stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("main.py: interrupted; the newest checkpoint is ") and "--resume auto" in line
    assert str(out / "checkpoint.pth.tar") in line or str(out / "checkpoint_recovery.pth.tar") in line
    hint = _resume_hint(line)
    assert hint[:2] == ["python", str(Path(proc.args[1]))] and hint[2:] == [*args, "--resume", "auto"]

    # the hinted command continues the run (here one more epoch than were done)
    named = Path(line.split("the newest checkpoint is ", 1)[1].split(" (", 1)[0])
    done = torch.load(named, weights_only=True)["epoch"]
    hint[hint.index("-ep") + 1] = str(done + 1)
    resumed = subprocess.run([sys.executable, *hint[1:]], capture_output=True, text=True, timeout=300, cwd=ROOT, env=_env())
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stdout and f"Epoch {done + 1}/{done + 1}:" in resumed.stdout


def test_ctrl_c_before_the_first_checkpoint_says_there_is_nothing_to_resume(cifar_subset, tmp_path):
    out, marker = tmp_path / "run", tmp_path / "reading"
    proc = _start([*_entry(tmp_path), *tiny_args(cifar_subset, out, "-ep", "2", "--no-progress")],
                  SLOW_DATA=str(marker))
    _wait_for(marker, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    _quiet(stderr)
    (line,) = stderr.strip().splitlines()
    assert "interrupted before the first checkpoint was written" in line and line.endswith("--resume auto")


def test_a_second_ctrl_c_ends_the_process_at_once(cifar_subset, tmp_path):
    out = tmp_path / "run"
    proc = _start([*_entry(tmp_path), *tiny_args(cifar_subset, out, "-ep", "500", "--no-progress")],
                  SLOW_CLEANUP="1")
    _wait_for(out / "checkpoint.pth.tar", proc)
    os.killpg(proc.pid, signal.SIGINT)
    for line in proc.stdout:  # the first Ctrl-C unwinds into the (here hanging) cleanup
        if line.strip() == "cleaning up":
            break
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=60)  # the cleanup would hang for 300 s
    assert proc.returncode == -signal.SIGINT  # ended by the signal itself: the shell shows status 130
    _quiet(proc.stderr.read())


def test_ctrl_c_in_evaluation_is_one_line(cifar_subset, tmp_path):
    marker = tmp_path / "reading"
    proc = _start([*_entry(tmp_path), "--data", str(cifar_subset), "-a", "aa_tinynet_lpf2", "--crop-size", "32",
                   "-b", "4", "-j", "0", "-e", "--no-progress"], SLOW_DATA=str(marker))
    _wait_for(marker, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    _quiet(stderr)
    lines = stderr.strip().splitlines()  # evaluation's progress lines, then the one line of the interrupt
    assert lines[-1] == "main.py: interrupted" and sum("interrupted" in line for line in lines) == 1, lines


def test_every_command_turns_ctrl_c_into_one_line(capsys):
    from antialiased.cli._errors import user_errors

    def audit(argv):
        raise KeyboardInterrupt

    assert user_errors("antialiased audit")(audit)([]) == 130
    assert capsys.readouterr().err == "antialiased audit: interrupted\n"
