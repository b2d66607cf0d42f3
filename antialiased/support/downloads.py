"""Downloads into a cache folder: one atomic rename of a verified file, a timeout on stalled transfers.

:func:`fetch_to_cache` is the one downloader of the package (the published weights, torchvision's and
timm's URL-hosted baselines). torch hub's ``download_url_to_file`` has no timeout and leaves a
``.partial`` behind when killed; here a transfer that sends no data for
``$ANTIALIASED_DOWNLOAD_TIMEOUT`` seconds (default 60) gives up with a
:class:`~antialiased.errors.DownloadError`, and temporaries of killed downloads are removed by the next.

Files on the Hugging Face hub are ``huggingface_hub``'s to download, and without network it retries
for most of a minute before failing. :func:`hugging_face_hub_access` first tries one TCP connection
to the hub (or the proxy that reaches it); when that fails, the download runs in the hub library's
offline mode: a file in its cache still loads, a missing one fails at once, with the probe's result
in the message.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import http.client
import math
import os
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from tqdm import tqdm

from antialiased.errors import AntialiasedError, ConfigError, DownloadError
from antialiased.support.checkpoints import remove_stale_temporaries
from antialiased.support.files import fsync_dir, output_error

__all__ = ["DEFAULT_DOWNLOAD_TIMEOUT", "DOWNLOAD_TIMEOUT_ENV", "HUB_PROBE_TIMEOUT", "download_timeout",
           "fetch_to_cache", "unreachable", "hugging_face_hub_access"]

DOWNLOAD_TIMEOUT_ENV = "ANTIALIASED_DOWNLOAD_TIMEOUT"
DEFAULT_DOWNLOAD_TIMEOUT = 60.0
_CHUNK_BYTES = 1 << 16
HUB_PROBE_TIMEOUT = 5.0  # seconds the one connection to the Hugging Face hub may take
# torch hub's own temporaries (``<file>.<hex>.partial``, written by earlier versions) carry no process id:
# one untouched this long is taken as abandoned.
_ABANDONED_PARTIAL_S = 3600.0


def download_timeout(timeout: float | None = None) -> float:
    """Seconds without data after which a download gives up: ``timeout``, else ``$ANTIALIASED_DOWNLOAD_TIMEOUT``, else 60.

    Raises:
        ConfigError: not a finite number of seconds above 0.

    Example:
        >>> download_timeout(5)
        5.0
    """
    if timeout is None:
        raw = os.environ.get(DOWNLOAD_TIMEOUT_ENV, "").strip()
        if not raw:
            return DEFAULT_DOWNLOAD_TIMEOUT
        given = f"{DOWNLOAD_TIMEOUT_ENV}={raw!r}"
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
    else:
        given = f"timeout={timeout!r}"
        value = math.nan if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) else timeout
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{given} is not a download timeout: give the seconds without data after which a download "
                          f"gives up, a number above 0 (e.g. export {DOWNLOAD_TIMEOUT_ENV}=300)")
    return float(value)


def _timeout_origin(timeout: float | None) -> str:
    if timeout is not None:
        return f"timeout={timeout!r}"
    if os.environ.get(DOWNLOAD_TIMEOUT_ENV, "").strip():
        return f"{DOWNLOAD_TIMEOUT_ENV}={os.environ[DOWNLOAD_TIMEOUT_ENV].strip()}"
    return f"the default; {DOWNLOAD_TIMEOUT_ENV} changes it"


@dataclass(frozen=True)
class _Transfer:
    """One download as its error messages describe it."""

    url: str
    dest: Path
    what: str  # the file as messages name it
    advice: str  # appended to every error: alternatives to this download
    timeout: float
    timeout_origin: str

    def error(self, problem: str) -> DownloadError:
        return DownloadError(f"{problem} {self.advice}".rstrip(), self.url)


def _is_timeout(exc: BaseException) -> bool:
    # A stalled connect arrives wrapped in URLError; a stalled response or body as the bare TimeoutError.
    return isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError)


def _network_error(exc: Exception, t: _Transfer) -> DownloadError:
    if isinstance(exc, urllib.error.HTTPError) and exc.code >= 500:
        problem = f"{t.url} answered HTTP {exc.code} ({exc.reason}): the server failed to send {t.what}; retry later."
    elif isinstance(exc, urllib.error.HTTPError):
        problem = f"{t.url} answered HTTP {exc.code} ({exc.reason}): {t.what} is not available there."
    elif isinstance(exc, http.client.IncompleteRead):  # a chunked body that ends early
        problem = (f"The download of {t.what} from {t.url} was cut short ({exc!r}): retry. Nothing was saved in "
                   f"{t.dest.parent}.")
    elif _is_timeout(exc):
        problem = (f"Downloading {t.what} from {t.url} stalled: no data for {t.timeout:g} s ({t.timeout_origin}). "
                   f"The host may be busy or the connection stuck: retry, or wait longer "
                   f"(export {DOWNLOAD_TIMEOUT_ENV}=600, or timeout=600 in Python).")
    elif isinstance(exc, ValueError):  # urllib's "unknown url type"
        problem = f"{t.url} cannot be downloaded ({exc}): give a URL starting with https://, http:// or file://."
    else:
        reason = getattr(exc, "reason", None) or exc
        problem = (f"Could not download {t.what} from {t.url} ({reason}). You may be offline, "
                   f"or the host may be down.")
    return t.error(problem)


def _remove_leftovers(dest: Path) -> None:
    """Best effort: temporaries of downloads killed before they finished (never those of live processes)."""
    try:
        remove_stale_temporaries(dest.parent)
        cutoff = time.time() - _ABANDONED_PARTIAL_S
        for partial in dest.parent.glob(f"{glob.escape(dest.name)}.*.partial"):
            if partial.stat().st_mtime < cutoff:
                partial.unlink(missing_ok=True)
    except OSError:  # someone else's files in a shared cache: not this download's business
        pass


def _new_temporary(dest: Path) -> tuple[int, Path]:
    """A fresh ``.<name>.<random>.tmp-<pid>`` beside ``dest``: unique per download, its writer recognisable."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(dest)
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=f".tmp-{os.getpid()}")
    except OSError as exc:
        raise output_error(exc, dest, "downloaded file") from exc
    return fd, Path(name)


def _content_length(response: Any) -> int | None:
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, TypeError, ValueError):
        return None


def _copy(response: Any, out: BinaryIO, t: _Transfer, progress: bool) -> str:
    """Stream the body into ``out``; return its SHA-256 (hex). A body shorter than announced is an error."""
    total = _content_length(response)
    digest = hashlib.sha256()
    received = 0
    read = getattr(response, "read1", response.read)  # whatever has arrived, so the bar moves on slow links
    with tqdm(total=total, disable=not progress, unit="B", unit_scale=True, unit_divisor=1024) as bar:
        while chunk := read(_CHUNK_BYTES):
            try:
                out.write(chunk)
            except OSError as exc:
                raise output_error(exc, t.dest, "downloaded file") from exc
            digest.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    if total is not None and received != total:
        raise t.error(f"The download of {t.what} from {t.url} stopped after {received} of {total} bytes (the "
                      f"connection closed early): it was cut short or corrupted (retry). Nothing was saved in "
                      f"{t.dest.parent}.")
    return digest.hexdigest()


def _receive(t: _Transfer, out: BinaryIO, progress: bool) -> str:
    try:
        with urllib.request.urlopen(t.url, timeout=t.timeout) as response:
            return _copy(response, out, t, progress)
    except AntialiasedError:
        raise
    except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError, TimeoutError, ConnectionError
        raise _network_error(exc, t) from exc


def _check_hash(t: _Transfer, digest: str, prefix: str) -> None:
    if not digest.startswith(prefix):
        raise t.error(f"The file downloaded from {t.url} is not the published {t.dest.name}: its SHA-256 does not "
                      f"start with {prefix} (it starts with {digest[:len(prefix)]}). It was discarded, nothing was "
                      f"saved in {t.dest.parent}. The download may have been cut short or corrupted (retry), or the "
                      f"server holds a different file.")


def _install(t: _Transfer, out: BinaryIO, tmp: Path) -> None:
    """Move the verified temporary into place in one rename (a concurrent download may have done so already)."""
    try:
        out.flush()
        os.fsync(out.fileno())
        os.replace(tmp, t.dest)
    except FileNotFoundError:
        if not t.dest.is_file():  # only a cleanup on another machine sharing the folder removes a live temporary
            raise t.error(f"The temporary {tmp} of the download of {t.what} disappeared before it was complete "
                          f"(is {t.dest.parent} shared with other machines?): retry.") from None
    except OSError as exc:
        raise output_error(exc, t.dest, "downloaded file") from exc
    fsync_dir(t.dest.parent)


def fetch_to_cache(url: str, dest: str | os.PathLike, *, sha256_prefix: str = "", timeout: float | None = None,
                   progress: bool = True, what: str | None = None, advice: str = "") -> Path:
    """Download ``url`` to ``dest`` unless ``dest`` exists; return ``dest``.

    The body streams into a temporary ``.<name>.<random>.tmp-<pid>`` beside ``dest`` while its
    SHA-256 is computed, and only a complete file with the expected hash is renamed into place: ``dest``
    never holds a partial or wrong file, and concurrent downloads of one file each rename a whole copy.
    Temporaries of downloads killed half-way (their process gone) are removed first; those of running
    processes are left alone.

    Args:
        url: anything urllib opens (``https://``, ``http://``, ``file://``).
        dest: where the file goes, e.g. in torch hub's cache.
        sha256_prefix: leading hex digits of the file's SHA-256 ('' checks nothing).
        timeout: seconds without data before giving up (see :func:`download_timeout`).
        progress: a tqdm progress bar on stderr.
        what: the file as error messages name it (default: its name).
        advice: appended to every download error (alternatives to downloading).

    Raises:
        DownloadError: HTTP error, host unreachable, no data for ``timeout`` seconds, body cut short, hash mismatch.
        OutputError: the folder of ``dest`` cannot be written (full disk, permissions).
        ConfigError: a bad ``timeout`` (or ``$ANTIALIASED_DOWNLOAD_TIMEOUT``).
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    t = _Transfer(url, dest, what or dest.name, advice, download_timeout(timeout), _timeout_origin(timeout))
    fd, tmp = _new_temporary(dest)
    try:
        if progress:
            sys.stderr.write(f'Downloading: "{url}" to {dest}\n')
        with os.fdopen(fd, "wb") as out:
            digest = _receive(t, out, progress)
            _check_hash(t, digest, sha256_prefix)
            _install(t, out, tmp)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def unreachable(url: str, timeout: float = HUB_PROBE_TIMEOUT) -> str | None:
    """Why ``url``'s host cannot be reached in one TCP connection (through the proxy that serves it), or None.

    Example:
        >>> import socket
        >>> closed = socket.socket(); closed.bind(("127.0.0.1", 0)); port = closed.getsockname()[1]; closed.close()
        >>> unreachable(f"http://127.0.0.1:{port}/x", timeout=1).startswith(f"connecting to 127.0.0.1:{port} failed")
        True
    """
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        via = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = via.hostname or host, via.port or 80
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else str(exc)
        return f"connecting to {host}:{port} failed: {reason}"
    return None


@contextlib.contextmanager
def hugging_face_hub_access(timeout: float = HUB_PROBE_TIMEOUT) -> Iterator[None]:
    """Run Hugging Face hub downloads (e.g. timm's ``pretrained=True``) without a minute of retries offline.

    One connection to the hub decides: reachable, the body runs as usual; not, it runs in
    ``huggingface_hub``'s offline mode (files in its cache load, others fail at once) and a failure is
    re-raised as a :class:`ConnectionError` naming the hub, the probe's result and the cache. Nothing
    changes when ``huggingface_hub`` is absent or already offline (``HF_HUB_OFFLINE=1``).
    """
    try:
        from huggingface_hub import constants  # optional: timm's dependency
    except ImportError:
        yield
        return
    if constants.HF_HUB_OFFLINE:
        yield
        return
    reason = unreachable(constants.ENDPOINT, timeout)
    if reason is None:
        yield
        return
    constants.HF_HUB_OFFLINE = True  # read at each request (huggingface_hub's is_offline_mode)
    try:
        yield
    except OSError as exc:
        raise ConnectionError(f"the Hugging Face hub at {constants.ENDPOINT} cannot be reached ({reason}, one probe of "
                              f"{timeout:g} s) and the file is not in its cache, {constants.HF_HUB_CACHE}") from exc
    finally:
        constants.HF_HUB_OFFLINE = False
