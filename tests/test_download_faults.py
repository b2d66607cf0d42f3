"""Download faults (issue 13, item 6), injected through a real HTTP server on 127.0.0.1 (urllib unmocked).

Stalled servers (silent, headers only, half a body) end in a DownloadError after the timeout; a download
SIGKILLed half-way leaves a recognisable temporary that the next download removes (never one of a live
downloader, never mistaken for the weights); concurrent downloads of one file all end with the valid file.
"""
from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from antialiased.errors import ConfigError, DownloadError
from antialiased.models import weights as W
from test_weights import _assert_same, _cache_dir, _publish

RELEASE_AFTER_S = 30  # a stalled handler gives up on its own after this, so a hanging client fails instead of hanging


pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="forks downloaders and SIGKILLs them (POSIX only)")


@pytest.fixture
def fault_server(tmp_path, monkeypatch):
    """Serves tmp_path/served; ``modes[file_name]`` picks how each transfer misbehaves.

    ``error500``: HTTP 500; ``chunked-cut``: a chunked body that ends after half the file;
    ``silent``: accepts and sends nothing; ``headers``: a 200 with its Content-Length, then nothing;
    ``half``: half the body, then waits for ``release``, then the rest; ``together``: waits until two
    requests arrived, sends half, waits until both got it, then the rest (two downloads at once).
    """
    root = tmp_path / "served"
    root.mkdir()
    modes: dict[str, str] = {}
    requests: list[str] = []
    release = threading.Event()
    together = threading.Barrier(2, timeout=RELEASE_AFTER_S)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            name = self.path.rsplit("/", 1)[-1]
            requests.append(name)
            mode = modes.get(name, "normal")
            if not (root / name).is_file():
                return self.send_error(404)
            data = (root / name).read_bytes()
            if mode == "silent":
                return release.wait(RELEASE_AFTER_S)
            if mode == "error500":
                return self.send_error(500)
            if mode == "chunked-cut":  # no Content-Length: only the chunk framing shows the body is incomplete
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data) // 2, data[: len(data) // 2]))
                self.close_connection = True
                return None
            if mode == "together":
                together.wait()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.flush()
            if mode == "headers":
                return release.wait(RELEASE_AFTER_S)
            try:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                if mode == "half":
                    release.wait(RELEASE_AFTER_S)
                elif mode == "together":
                    together.wait()
                self.wfile.write(data[len(data) // 2:])
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout, SIGKILL)
                pass

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(W.WEIGHTS_URL_ENV, f"http://127.0.0.1:{httpd.server_address[1]}/mirror")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv(W.DOWNLOAD_TIMEOUT_ENV, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    yield SimpleNamespace(root=root, modes=modes, requests=requests, release=release)
    release.set()
    together.abort()
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _state_dict(seed: int = 0, size: int = 1 << 16) -> dict[str, torch.Tensor]:
    """Large enough (256 KiB) that half a transfer reaches the disk through the file buffer."""
    torch.manual_seed(seed)
    return {"weight": torch.randn(size), "bias": torch.randn(3)}


def _download_in_child(record: W.PublishedWeights, report: Path) -> None:
    try:
        W.load_published(record, progress=False)
    except BaseException as exc:  # noqa: BLE001 - the parent reads it
        report.write_text(f"{type(exc).__name__}: {exc}")
        os._exit(1)
    os._exit(0)


def _start_child(record: W.PublishedWeights, report: Path) -> multiprocessing.Process:
    """A separate process downloading ``record``, forked (torch is imported already: no interpreter start)."""
    child = multiprocessing.get_context("fork").Process(target=_download_in_child, args=(record, report))
    child.start()
    return child


def _check_child(child: multiprocessing.Process, report: Path) -> None:
    child.join(timeout=120)
    assert child.exitcode == 0, report.read_text() if report.exists() else f"exit code {child.exitcode}"


def _temporaries(pid: int | None = None) -> list[Path]:
    if not _cache_dir().is_dir():
        return []
    return sorted(p for p in _cache_dir().iterdir()
                  if p.name.startswith(".") and (pid is None or p.name.endswith(f".tmp-{pid}")))


def _wait_for(condition, what: str, child: multiprocessing.Process, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if not child.is_alive():
            pytest.fail(f"the download ended before {what}: exit code {child.exitcode}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _kill_half_way(child: multiprocessing.Process) -> None:
    """SIGKILL ``child`` once part of the file has reached its temporary."""
    try:
        _wait_for(lambda: any(p.stat().st_size > 0 for p in _temporaries(child.pid)),
                  "half the file to reach the temporary", child)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join()


# --------------------------------------------------------------------------- stalled servers time out


@pytest.mark.parametrize("mode", ["silent", "headers", "half"])
def test_a_stalled_server_times_out_with_the_fixes(fault_server, mode):
    record = _publish(fault_server.root, "tiny_lpf2", _state_dict())
    fault_server.modes[record.file_name] = mode
    with pytest.raises(W.WeightsDownloadError) as info:
        W.load_published(record, progress=False, timeout=0.5)
    message = str(info.value)
    assert isinstance(info.value, DownloadError) and info.value.url == record.url
    for needle in (record.url, "no data for 0.5 s", W.DOWNLOAD_TIMEOUT_ENV, "retry", f"export {W.WEIGHTS_URL_ENV}=",
                   f"create_model('resnet18_lpf2', weights=", "--weights PATH", str(_cache_dir() / record.file_name)):
        assert needle in message, needle
    assert os.listdir(_cache_dir()) == []  # neither the weights nor a temporary
    # Once the server answers, the same call succeeds.
    fault_server.modes.clear()
    _assert_same(W.load_published(record, progress=False, timeout=0.5), _state_dict())


def test_the_timeout_comes_from_the_environment(fault_server, monkeypatch):
    record = _publish(fault_server.root, "tiny_lpf3", _state_dict(1))
    fault_server.modes[record.file_name] = "headers"
    monkeypatch.setenv(W.DOWNLOAD_TIMEOUT_ENV, "0.25")
    with pytest.raises(W.WeightsDownloadError, match=rf"no data for 0.25 s \({W.DOWNLOAD_TIMEOUT_ENV}="):
        W.load_published(record, progress=False)
    with pytest.raises(W.WeightsDownloadError, match=r"no data for 0.5 s \(timeout="):  # the argument wins
        W.load_published(record, progress=False, timeout=0.5)


def test_timeout_values(monkeypatch):
    monkeypatch.delenv(W.DOWNLOAD_TIMEOUT_ENV, raising=False)
    assert W.download_timeout() == W.DEFAULT_DOWNLOAD_TIMEOUT == 60.0
    assert W.download_timeout(2) == 2.0
    monkeypatch.setenv(W.DOWNLOAD_TIMEOUT_ENV, " 300 ")
    assert W.download_timeout() == 300.0 and W.download_timeout(1.5) == 1.5
    for bad in ("abc", "0", "-1", "nan", "inf"):
        monkeypatch.setenv(W.DOWNLOAD_TIMEOUT_ENV, bad)
        with pytest.raises(ConfigError, match=f"{W.DOWNLOAD_TIMEOUT_ENV}={bad!r} is not a download timeout"):
            W.download_timeout()
    for bad in (0, -2.0, float("nan"), True, "10"):
        with pytest.raises(ConfigError, match="timeout=.* is not a download timeout.*seconds"):
            W.download_timeout(bad)


@pytest.mark.parametrize("mode, expected", [
    ("error500", r"answered HTTP 500 \(Internal Server Error\): the server failed to send the published weights "
                 r"'tiny_lpf2'; retry later"),
    ("chunked-cut", r"The download of the published weights 'tiny_lpf2' from \S+ was cut short \(IncompleteRead"),
], ids=["http-500", "chunked-body-cut-short"])
def test_server_errors_leave_nothing(fault_server, mode, expected):
    record = _publish(fault_server.root, "tiny_lpf2", _state_dict(8))
    fault_server.modes[record.file_name] = mode
    with pytest.raises(W.WeightsDownloadError, match=expected) as info:
        W.load_published(record, progress=False)
    assert "retry" in str(info.value) and f"export {W.WEIGHTS_URL_ENV}=" in str(info.value)
    assert os.listdir(_cache_dir()) == []


# --------------------------------------------------------------------------- SIGKILL half-way


def test_a_download_killed_half_way_is_cleaned_up_by_the_next(fault_server, tmp_path):
    state_dict = _state_dict(2)
    record = _publish(fault_server.root, "tiny_lpf4", state_dict)
    fault_server.modes[record.file_name] = "half"
    child = _start_child(record, tmp_path / "child.txt")
    _kill_half_way(child)
    assert child.exitcode == -signal.SIGKILL
    partial, = _temporaries(child.pid)
    assert partial.name.startswith(f".{record.file_name}.") and 0 < partial.stat().st_size
    assert os.listdir(_cache_dir()) == [partial.name]  # the weights themselves were never written

    fault_server.release.set()  # the next transfer runs to the end
    _assert_same(W.load_published(record, progress=False), state_dict)
    assert fault_server.requests == [record.file_name] * 2  # the partial file was not taken for the weights
    assert os.listdir(_cache_dir()) == [record.file_name]  # and it is gone


def test_temporaries_of_live_downloaders_are_kept(fault_server):
    """Only temporaries whose process is gone are removed: a concurrent download keeps its file."""
    record = _publish(fault_server.root, "tiny_lpf5", _state_dict(3))
    _cache_dir().mkdir(parents=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        kept = _cache_dir() / f".{record.file_name}.x1y2.tmp-{live.pid}"
        stale = _cache_dir() / f".{record.file_name}.z3w4.tmp-{dead.pid}"
        for path in (kept, stale):
            path.write_bytes(b"half a file")
        _assert_same(W.load_published(record, progress=False), _state_dict(3))
        assert sorted(os.listdir(_cache_dir())) == sorted([record.file_name, kept.name])
    finally:
        live.kill()
        live.wait()


def test_torch_hub_partials_of_the_file_are_removed_when_abandoned(fault_server):
    """``<file>.<hex>.partial`` left by the torch hub download that earlier versions used: removed once untouched
    for an hour (torch hub's names carry no process id), kept while recent; those of other files are left alone."""
    record = _publish(fault_server.root, "tiny_lpf2", _state_dict(4))
    _cache_dir().mkdir(parents=True)
    old = _cache_dir() / f"{record.file_name}.0123456789abcdef0123456789abcdef.partial"
    recent = _cache_dir() / f"{record.file_name}.fedcba9876543210fedcba9876543210.partial"
    other = _cache_dir() / "resnet50-0676ba61.pth.0123456789abcdef0123456789abcdef.partial"
    for path in (old, recent, other):
        path.write_bytes(b"abandoned")
    hours_ago = time.time() - 2 * 3600
    for path in (old, other):
        os.utime(path, (hours_ago, hours_ago))
    _assert_same(W.load_published(record, progress=False), _state_dict(4))
    assert sorted(os.listdir(_cache_dir())) == sorted([record.file_name, recent.name, other.name])


# --------------------------------------------------------------------------- concurrent downloads


def test_two_processes_download_the_same_file_at_once(fault_server, tmp_path):
    state_dict = _state_dict(5)
    record = _publish(fault_server.root, "tiny_lpf3", state_dict)
    fault_server.modes[record.file_name] = "together"  # both transfers are half-way at the same moment
    reports = [tmp_path / f"child{i}.txt" for i in range(2)]
    children = [_start_child(record, report) for report in reports]
    for child, report in zip(children, reports):
        _check_child(child, report)
    assert fault_server.requests == [record.file_name] * 2
    assert os.listdir(_cache_dir()) == [record.file_name]
    assert (_cache_dir() / record.file_name).read_bytes() == (fault_server.root / record.file_name).read_bytes()
    _assert_same(W.load_published(record, progress=False), state_dict)


def test_two_threads_download_the_same_file_at_once(fault_server):
    """Same process id: the temporaries must still be distinct."""
    state_dict = _state_dict(6)
    record = _publish(fault_server.root, "tiny_lpf5", state_dict)
    fault_server.modes[record.file_name] = "together"
    results: list = [None, None]

    def download(i: int) -> None:
        try:
            results[i] = W.load_published(record, progress=False)
        except BaseException as exc:  # noqa: BLE001 - reported below
            results[i] = exc

    threads = [threading.Thread(target=download, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for result in results:
        assert isinstance(result, dict), result
        _assert_same(result, state_dict)
    assert os.listdir(_cache_dir()) == [record.file_name]


# --------------------------------------------------------------------------- a failing write


def _download_with_a_small_file_limit(record: W.PublishedWeights, report: Path) -> None:
    # Writes past 64 KiB fail with EFBIG (SIGXFSZ ignored): a real failing write into the cache, like a full disk.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    _download_in_child(record, report)


def test_a_failing_write_is_one_clear_error_and_leaves_nothing(fault_server, tmp_path):
    record = _publish(fault_server.root, "tiny_lpf2", _state_dict(7))
    report = tmp_path / "child.txt"
    child = multiprocessing.get_context("fork").Process(target=_download_with_a_small_file_limit,
                                                         args=(record, report))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 1
    message = report.read_text()
    assert message.startswith(f"OutputError: cannot write the downloaded file {_cache_dir() / record.file_name} "
                              f"(File too large)"), message
    assert os.listdir(_cache_dir()) == []
    _assert_same(W.load_published(record, progress=False), _state_dict(7))  # without the limit it works


# --------------------------------------------------------------------------- torchvision's and timm's baselines
# create_model("<torchvision arch>", pretrained=True), converted names (their baseline's weights) and --finetune
# fetch torchvision's file through the same download; timm's URL-hosted files too.


def _serve_file(root: Path, stem: str, state_dict: dict) -> str:
    """Serve ``state_dict`` as ``<stem>-<sha256[:8]>.pth`` (the hash torch hub reads from the name); its URL."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    name = f"{stem}-{hashlib.sha256(buffer.getvalue()).hexdigest()[:8]}.pth"
    (root / name).write_bytes(buffer.getvalue())
    return f"{os.environ[W.WEIGHTS_URL_ENV]}/{name}"  # the server answers by file name, whatever the folder


@pytest.fixture
def torchvision_baseline(fault_server, monkeypatch):
    """torchvision's MobileNet-v3-small IMAGENET1K_V1 served (random values) by the fault server: (url, state dict)."""
    import torchvision

    torch.manual_seed(9)
    state_dict = torchvision.models.mobilenet_v3_small().state_dict()
    url = _serve_file(fault_server.root, "mobilenet_v3_small", state_dict)
    monkeypatch.setattr(torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1.value, "url", url)
    return url, state_dict


@pytest.mark.parametrize("mode", ["silent", "headers", "half"])
def test_a_stalled_torchvision_download_times_out(fault_server, torchvision_baseline, monkeypatch, mode):
    from antialiased.models import create_model

    url, state_dict = torchvision_baseline
    name = url.rsplit("/", 1)[1]
    fault_server.modes[name] = mode
    monkeypatch.setenv(W.DOWNLOAD_TIMEOUT_ENV, "0.5")
    with pytest.raises(W.WeightsDownloadError) as info:
        create_model("mobilenet_v3_small_lpf2", pretrained=True, progress=False)  # a converted name: its baseline's
    message = str(info.value)
    assert info.value.url == url and message.startswith(
        f"Downloading torchvision's ImageNet-1K weights IMAGENET1K_V1 for 'mobilenet_v3_small' from {url} stalled: no data for 0.5 s "
        f"({W.DOWNLOAD_TIMEOUT_ENV}=0.5)")
    for needle in ("retry", "weights='path/to/mobilenet_v3_small.pth'", "--baseline-weights PATH",
                   f"put it at {_cache_dir() / name} (torch hub's cache)"):
        assert needle in message, needle
    assert os.listdir(_cache_dir()) == []  # neither the weights nor a temporary (torch hub's .partial included)
    fault_server.modes.clear()  # once the server answers, the same call works
    model = create_model("mobilenet_v3_small_lpf2", pretrained=True, progress=False)
    _assert_same(model.state_dict(), state_dict)
    assert os.listdir(_cache_dir()) == [name]


def _build_in_child(name: str, report: Path) -> None:
    from antialiased.models import create_model

    try:
        create_model(name, pretrained=True, progress=False)
    except BaseException as exc:  # noqa: BLE001 - the parent reads it
        report.write_text(f"{type(exc).__name__}: {exc}")
        os._exit(1)
    os._exit(0)


def test_a_torchvision_download_killed_half_way_is_cleaned_up_by_the_next(fault_server, torchvision_baseline,
                                                                           tmp_path):
    from antialiased.models import create_model, init_from_baseline

    url, state_dict = torchvision_baseline
    name = url.rsplit("/", 1)[1]
    fault_server.modes[name] = "half"
    child = multiprocessing.get_context("fork").Process(target=_build_in_child,
                                                         args=("mobilenet_v3_small", tmp_path / "child.txt"))
    child.start()
    _kill_half_way(child)
    partial, = _temporaries(child.pid)
    assert os.listdir(_cache_dir()) == [partial.name] and partial.name.startswith(f".{name}.")

    fault_server.release.set()
    model = init_from_baseline("mobilenet_v3_small_lpf3", progress=False)  # --finetune's way in
    _assert_same(model.state_dict(), state_dict)
    assert fault_server.requests == [name] * 2  # the killed download's temporary was not taken for the weights
    assert os.listdir(_cache_dir()) == [name]  # and it is gone
    _assert_same(create_model("mobilenet_v3_small", pretrained=True).state_dict(), state_dict)  # from the cache
    assert fault_server.requests == [name] * 2


def test_a_stalled_timm_url_download_times_out(fault_server, monkeypatch):
    timm = pytest.importorskip("timm", reason="timm is an optional dependency (pip install timm)")
    from antialiased.models import create_model

    torch.manual_seed(10)
    state_dict = timm.create_model("mobilenetv3_small_050").state_dict()
    url = _serve_file(fault_server.root, "mobilenetv3_small_050", state_dict)
    name = url.rsplit("/", 1)[1]
    overlay = {"url": url, "hf_hub_id": None}  # timm's URL loader (torch hub), not the Hugging Face hub
    fault_server.modes[name] = "headers"
    monkeypatch.setenv(W.DOWNLOAD_TIMEOUT_ENV, "0.5")
    with pytest.raises(W.WeightsDownloadError) as info:
        create_model("timm/mobilenetv3_small_050_lpf2", pretrained=True, pretrained_cfg_overlay=overlay)
    message = str(info.value)
    assert info.value.url == url and message.startswith(
        f"Downloading timm's pretrained weights for 'mobilenetv3_small_050' from {url} stalled: no data for 0.5 s")
    assert "weights='path/to/mobilenetv3_small_050.pth'" in message and f"put it at {_cache_dir() / name}" in message
    assert os.listdir(_cache_dir()) == []
    fault_server.modes.clear()
    model = create_model("timm/mobilenetv3_small_050_lpf2", pretrained=True, pretrained_cfg_overlay=overlay)
    _assert_same(model.state_dict(), state_dict)
    assert os.listdir(_cache_dir()) == [name] and fault_server.requests == [name] * 2


# --------------------------------------------------------------- the Hugging Face hub: one probe offline
# (issue 17 item 7). huggingface_hub reads HF_ENDPOINT when imported, so each case runs in a fresh
# interpreter pointed at 127.0.0.1: a closed port (offline), or a server that answers (online).

_HUB_SCRIPT = """
import sys, torch, antialiased
from antialiased.errors import WeightsDownloadError
try:
    model = antialiased.create_model("timm/resnet18", pretrained=True)
except WeightsDownloadError as exc:
    print(f"ERROR {exc}")
    sys.exit(3)
torch.save(model.state_dict(), sys.argv[1])
"""


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def _timm_resnet18(tmp_path: Path, endpoint: str) -> subprocess.CompletedProcess:
    pytest.importorskip("timm")
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf"), "NO_PROXY": "*",
           "no_proxy": "*", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("HF_HUB_OFFLINE", None)
    return subprocess.run([sys.executable, "-c", _HUB_SCRIPT, str(tmp_path / "loaded.pt")], capture_output=True,
                          text=True, timeout=300, env=env)


def test_an_unreachable_hub_fails_after_one_probe_without_retries(tmp_path):
    port = _closed_port()
    result = _timm_resnet18(tmp_path, f"http://127.0.0.1:{port}")
    assert result.returncode == 3, result.stderr[-3000:]
    assert result.stdout.startswith(f"ERROR Could not download timm's pretrained weights for 'resnet18' (the Hugging "
                                    f"Face hub at http://127.0.0.1:{port} cannot be reached (connecting to "
                                    f"127.0.0.1:{port} failed: ")
    assert f"not in its cache, {tmp_path / 'hf' / 'hub'}" in result.stdout and "--weights PATH" in result.stdout
    # before: ~20 lines of "'[Errno 111] Connection refused' thrown while requesting HEAD ... Retrying in 8s"
    assert "Retry" not in result.stderr and "thrown while requesting" not in result.stderr, result.stderr[-3000:]


def test_an_unreachable_hub_still_loads_what_its_cache_holds(tmp_path):
    timm = pytest.importorskip("timm")
    safetensors = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    state = timm.create_model("resnet18").state_dict()
    snapshot = tmp_path / "hf" / "hub" / "models--timm--resnet18.a1_in1k" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    safetensors.save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    result = _timm_resnet18(tmp_path, f"http://127.0.0.1:{_closed_port()}")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    loaded = torch.load(tmp_path / "loaded.pt", weights_only=True)
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)


def test_a_reachable_hub_is_asked_as_usual(tmp_path):
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self):
            seen.append(self.path)
            self.send_error(404)

        do_GET = do_HEAD

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        result = _timm_resnet18(tmp_path, f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.returncode == 3 and "cannot be reached" not in result.stdout, result.stdout + result.stderr[-3000:]
    assert "/timm/resnet18.a1_in1k/resolve/main/model.safetensors" in seen  # online: the hub library asked it
