"""Kill anywhere (issue 13): SIGKILL a CPU training run at chosen or random moments, resume, compare.

Each training process is a fork of the test process (torch already imported: a process costs
milliseconds, not an interpreter start). A hook armed in the child SIGKILLs it at the N-th call of
one phase: reading an image, backward, the optimizer step, writing a checkpoint (mid-file), writing
log.jsonl or another file, a rename, validation (after its first batch). The next
process runs the same command with ``--resume auto``; after the last one the weights must equal an
uninterrupted run's bit for bit, and at every point each line of log.jsonl must parse.

The default suite kills once in each phase (one chain of kills over a three-epoch run); the soak
(``pytest -m soak tests/test_training_kill.py``) kills at 24 random moments per seed, with a data
loader worker process, and prints a table of the faults injected, survived and lost.
"""
from __future__ import annotations

import io
import json
import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path

import pytest
import torch

from test_training_fixtures import cifar_subset, load, tiny_args, train_cli  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")

if not hasattr(os, "fork"):
    pytest.skip("the kill harness forks training processes (POSIX only)", allow_module_level=True)

PHASES = ("data", "backward", "step", "checkpoint", "file", "rename", "validation")


def _kill(main_pid: int) -> None:
    sys.stdout.flush()
    os.kill(main_pid, signal.SIGKILL)
    os._exit(1)  # reached only in a data-loader worker, whose parent just died


def _countdown(n: int, main_pid: int):
    calls = {"n": 0}

    def tick() -> None:
        calls["n"] += 1
        if calls["n"] == n:
            _kill(main_pid)
    return tick


def _arm(phase: str, n: int) -> None:
    """Patch this (child) process so that it SIGKILLs itself at the ``n``-th call of ``phase``."""
    from antialiased.data import ImageFolderDataset
    from antialiased.support import files
    from antialiased.training import epoch

    tick = _countdown(n, os.getpid())

    def before(owner, name):
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            tick()
            return real(*args, **kwargs)
        setattr(owner, name, wrapper)

    if phase == "data":
        before(ImageFolderDataset, "__getitem__")
    elif phase == "backward":
        before(torch.autograd, "backward")
    elif phase == "rename":
        before(os, "replace")
    elif phase == "step":
        real_step = torch.optim.SGD.step

        def step(self, *args, **kwargs):  # after the update, before the gradients are cleared
            out = real_step(self, *args, **kwargs)
            tick()
            return out
        torch.optim.SGD.step = step
    elif phase == "checkpoint":
        real_save = torch.save

        def save(obj, f, *args, **kwargs):
            buffer = io.BytesIO()
            real_save(obj, buffer, *args, **kwargs)
            data = buffer.getvalue()
            f.write(data[: len(data) // 2])  # half a file on disk, then the kill
            f.flush()
            tick()
            f.write(data[len(data) // 2:])
        torch.save = save
    elif phase == "file":  # log.jsonl, skipped_images.json: killed while the temporary file is written
        before(files, "_write_temporary")
    elif phase == "validation":
        real_evaluate = epoch.evaluate

        def evaluate(model, loader, *args, **kwargs):
            def batches():
                for i, batch in enumerate(loader):
                    if i == 1:
                        tick()
                    yield batch
            return real_evaluate(model, list(batches()), *args, **kwargs)
        epoch.evaluate = evaluate
    else:
        raise ValueError(phase)


def _run(argv: list[str], phase: str | None = None, n: int = 0, timeout: float = 300) -> str:
    """One training process: 'done', 'killed' or 'failed (...)'."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 3
        try:
            if phase is not None:
                _arm(phase, n)
            code = train_cli(*argv)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "failed (timed out)"
        time.sleep(0.02)
    if os.WIFSIGNALED(status):
        return "killed" if os.WTERMSIG(status) == signal.SIGKILL else f"failed (signal {os.WTERMSIG(status)})"
    return "done" if os.WEXITSTATUS(status) == 0 else f"failed (exit {os.WEXITSTATUS(status)})"


def _log_parses(out: Path) -> list[dict]:
    path = out / "log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]  # a torn line raises here


def _same_weights(a: Path, b: Path) -> list[str]:
    sa, sb = load(a)["state_dict"], load(b)["state_dict"]
    return [k for k in sa if not torch.equal(sa[k], sb[k])]


def _kill_chain(data: Path, root: Path, kills: list[tuple[str, int]], epochs: int, extra: tuple[str, ...] = (),
                straight: Path | None = None):
    """The run killed at each of ``kills`` in turn, until one run finishes; returns (outcomes, straight, out).

    ``straight`` is the uninterrupted run to compare with (made here when not given).
    """
    argv = ("-ep", str(epochs), "--seed", "2", "--resume", "auto", *extra)
    if straight is None:
        straight = root / "straight"
        assert _run(tiny_args(data, straight, *argv)) == "done"
    out = root / "killed"
    outcomes = []
    for phase, n in kills:
        result = _run(tiny_args(data, out, *argv), phase, n)
        _log_parses(out)
        outcomes.append((phase, n, result))
        assert result in ("killed", "done"), outcomes
        if result == "done":
            return outcomes, straight, out
    for _ in range(3):  # the last resume runs to the end (a final kill may have cut a later one short)
        if _run(tiny_args(data, out, *argv)) == "done":
            break
    return outcomes, straight, out


def test_killed_in_every_phase_resumes_to_the_same_weights(cifar_subset, tmp_path):
    # calls per epoch here: 160 image reads, 7 backward passes and steps, 1 checkpoint, 1-2 log/file
    # writes, about 5 renames, 1 validation (3 epochs in all)
    kills = [("data", 100), ("backward", 5), ("step", 9), ("checkpoint", 1), ("file", 1), ("rename", 3),
             ("validation", 1), ("rename", 2), ("checkpoint", 1)]
    outcomes, straight, out = _kill_chain(cifar_subset, tmp_path, kills, epochs=3)
    assert sum(r == "killed" for _, _, r in outcomes) >= 8, outcomes
    assert load(out / "checkpoint.pth.tar")["epoch"] == 3
    assert _same_weights(straight / "checkpoint.pth.tar", out / "checkpoint.pth.tar") == []
    assert [r["train_loss"] for r in _log_parses(out)] == [r["train_loss"] for r in _log_parses(straight)]
    assert [r["epoch"] for r in _log_parses(out)] == [1, 2, 3]


@pytest.mark.soak
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_soak_random_kills(cifar_subset, tmp_path, seed):
    """24+ random kills per seed, in chains: each chain resumes until its run finishes, then is compared."""
    rng = random.Random(seed)
    epochs, extra = 4, ("-j", "1")  # a data-loader worker process too
    per_epoch = {"data": 160, "backward": 7, "step": 7, "checkpoint": 1, "file": 2, "rename": 5, "validation": 1}
    straight = tmp_path / "straight"
    assert _run(tiny_args(cifar_subset, straight, "-ep", str(epochs), "--seed", "2", *extra)) == "done"
    table = {phase: [0, 0] for phase in PHASES}
    chain = 0
    while sum(v[0] for v in table.values()) < 24:
        phases = rng.choices(PHASES, k=12)
        # within the next two epochs of work, so that most kills land before the run finishes
        kills = [(p, rng.randint(1, 2 * per_epoch[p] if p != "data" else per_epoch[p] // 2)) for p in phases]
        outcomes, _, out = _kill_chain(cifar_subset, tmp_path / f"chain{chain}", kills, epochs, extra, straight)
        same = _same_weights(straight / "checkpoint.pth.tar", out / "checkpoint.pth.tar") == [] and \
            [r["train_loss"] for r in _log_parses(out)] == [r["train_loss"] for r in _log_parses(straight)]
        for phase, _, result in outcomes:
            table[phase][0] += result == "killed"
            table[phase][1] += result == "killed" and same
        chain += 1
    print(f"\nseed {seed}, {chain} chain(s): phase, kills injected, survived (same weights and log), lost")
    for phase, (injected, survived) in table.items():
        print(f"  {phase:<11} {injected:>3} {survived:>3} {injected - survived:>3}")
    assert all(injected == survived for injected, survived in table.values()), table


# A torchrun entry script (format with tests=<this folder>): rank 1 SIGKILLs itself at its
# $KILL_RANK1_AT_BACKWARD-th backward pass, in the group's first attempt only (an elastic restart runs on).
KILL_RANK1_ENTRY = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import torch
import test_training_fixtures
test_training_fixtures.register_tiny_models()
kill_at = int(os.environ.get("KILL_RANK1_AT_BACKWARD", "0"))
if kill_at and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0" and os.environ.get("RANK") == "1":
    real, calls = torch.autograd.backward, [0]

    def backward(*args, **kwargs):  # rank 1 dies in the middle of epoch 2 of the first attempt
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    torch.autograd.backward = backward
from antialiased.cli.paper import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.soak
def test_elastic_ddp_restart_after_a_rank_is_killed_resumes_to_the_same_weights(cifar_subset, tmp_path):
    """``torchrun --max-restarts 1 ... --resume auto`` with 2 CPU processes (gloo): one rank is
    SIGKILLed mid-epoch, torchrun restarts the group, which resumes and ends with the weights of an
    uninterrupted run."""
    import subprocess

    from test_training_fixtures import ROOT

    script = tmp_path / "elastic_entry.py"
    script.write_text(KILL_RANK1_ENTRY.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    args = ("-b", "8", "-ep", "2", "--seed", "0", "--no-progress", "--resume", "auto")

    def torchrun(out: Path, *launcher: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *launcher,
               str(script), *tiny_args(cifar_subset, out, *args)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=ROOT)

    straight = torchrun(tmp_path / "straight", "--max-restarts", "0")
    env["KILL_RANK1_AT_BACKWARD"] = "10"  # 7 steps per epoch: in the middle of epoch 2
    elastic = torchrun(tmp_path / "elastic", "--max-restarts", "1")
    for result in (straight, elastic):
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-12000:]
    assert "resumed" in elastic.stdout and elastic.stdout.count("Epoch 1/2:") == 1  # epoch 1 not trained twice
    assert _same_weights(tmp_path / "straight" / "checkpoint.pth.tar", tmp_path / "elastic" / "checkpoint.pth.tar") \
        == []
    assert [r["train_loss"] for r in _log_parses(tmp_path / "elastic")] == \
        [r["train_loss"] for r in _log_parses(tmp_path / "straight")]
