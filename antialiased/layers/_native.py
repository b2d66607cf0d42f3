"""The compiled CPU kernel: blur-subsample and its adjoint in one pass over the input, 2-D maps.

The separable kernel (``_separable``) runs each 1-D pass as a few whole-tensor ATen ops, so the
input and intermediate are swept several times; this kernel reads each input row once per output
row that needs it and combines all taps in one loop, which brings the blur close to the cost of
reading its input (``x.sum()``). It is a small C file (:data:`SOURCE`), built on first use with
the system's C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``; ``-O3 -march=native``, or
``$ANTIALIASED_KERNEL_CFLAGS``; about a second) into ``$ANTIALIASED_KERNEL_DIR`` (default
``~/.cache/antialiased/kernels``), loaded with ``ctypes``, and
run on ``torch.get_num_threads()`` threads (chunks of planes or rows; ctypes releases the GIL).

It takes float32 and float64 4-D inputs, contiguous or channels_last, and filters that factor
(``_taps``); anything else, or a machine without a C compiler, or ``ANTIALIASED_NATIVE=0``, runs
the separable kernel instead (:func:`status` says which and why). Both compute the same sums in
the same order per output tap up to rounding (float64: equal to 1e-12, checked by the tests).

Each 1-D pass is a sparse matrix given twice: ELL rows (per output, its (source, weight) pairs,
padding resolved by ``_padding.source_index``) and an interior *band* where the pattern repeats
(``out[P q + r] = sum_t w[r, t] in[Q q + off[r, t]]``; P = 1, Q = stride forward, P = stride,
Q = 1 for the adjoint), which the compiler vectorizes; the ELL rows cover the few borders. The
band is found by comparing it with the dense matrix, so it is used only where it is exact.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import _conv, _separable
from ._padding import source_index
from ._taps import taps_for

__all__ = ["SOURCE", "forward", "backward", "status", "supports"]

SOURCE = r"""/* Separable blur-subsample and its adjoint, one pass per spatial dimension (2-D maps).
 *
 * A 1-D pass is a sparse matrix (m x n) given twice:
 *   - as ELL rows: for output o, up to K (source, weight) entries (source -1: none);
 *   - as an interior band, where the pattern is periodic: for m0 <= q < m1 and phase r < P,
 *     out[P*q + r] = sum_t bw[r*BT + t] * in[Q*q + boff[r*BT + t]]   (bt[r] taps for phase r).
 *     The forward pass has P = 1, Q = stride; its adjoint P = stride, Q = 1.
 * Rows passes combine whole rows (vectors); column passes use the band (vectorizable strided
 * loops) and the ELL rows for the few outputs at the borders.
 */
#include <stdlib.h>
#include <string.h>

typedef struct {
  long n_in, n_out;      /* sizes along the dimension */
  int K;                 /* ELL entries per output */
  const int *idx;        /* n_out * K */
  const void *w;         /* n_out * K weights (T) */
  int P, Q, BT;          /* band: period of outputs, step of inputs, taps per phase (max) */
  long q0, q1;           /* band range of q */
  const int *bt;         /* P: taps of each phase */
  const int *boff;       /* P * BT offsets */
  const void *bw;        /* P * BT weights (T) */
} pass_t;

#define DEFINE(T, S)                                                                                   \
static void combine_##S(T *restrict o, const T **s, const T *w, int K, long n) {                       \
  switch (K) {                                                                                         \
  case 0: memset(o, 0, sizeof(T) * n); return;                                                         \
  case 1: { const T *a = s[0]; T wa = w[0]; for (long e = 0; e < n; e++) o[e] = wa * a[e]; return; }   \
  case 2: { const T *a = s[0], *b = s[1]; T wa = w[0], wb = w[1];                                      \
            for (long e = 0; e < n; e++) o[e] = wa * a[e] + wb * b[e]; return; }                       \
  case 3: { const T *a = s[0], *b = s[1], *c = s[2]; T wa = w[0], wb = w[1], wc = w[2];                \
            for (long e = 0; e < n; e++) o[e] = wa * a[e] + wb * b[e] + wc * c[e]; return; }           \
  default: { const T *a = s[0], *b = s[1], *c = s[2], *d = s[3]; T wa = w[0], wb = w[1], wc = w[2], wd = w[3]; \
            for (long e = 0; e < n; e++) o[e] = wa * a[e] + wb * b[e] + wc * c[e] + wd * d[e];        \
            for (int k = 4; k < K; k++) { const T *x = s[k]; T wk = w[k];                              \
              for (long e = 0; e < n; e++) o[e] += wk * x[e]; }                                        \
            return; }                                                                                  \
  }                                                                                                    \
}                                                                                                      \
/* out row o (vector of n) = sum of the ELL entries of output o over input rows of stride `stride` */  \
static void rows_##S(const T *in, long in_stride, T *out, long out_stride, const pass_t *p, long n) {  \
  const T *s[64]; T ws[64]; const T *w = (const T *)p->w;                                              \
  for (long o = 0; o < p->n_out; o++) {                                                                \
    int m = 0;                                                                                         \
    for (int k = 0; k < p->K && m < 64; k++) {                                                         \
      int r = p->idx[o * p->K + k]; if (r >= 0) { s[m] = in + r * in_stride; ws[m++] = w[o * p->K + k]; } \
    }                                                                                                  \
    combine_##S(out + o * out_stride, s, ws, m, n);                                                    \
  }                                                                                                    \
}                                                                                                      \
static inline T ell_##S(const T *in, const pass_t *p, long o) {                                        \
  const T *w = (const T *)p->w; T acc = 0;                                                             \
  for (int k = 0; k < p->K; k++) { int r = p->idx[o * p->K + k]; if (r >= 0) acc += w[o * p->K + k] * in[r]; } \
  return acc;                                                                                          \
}                                                                                                      \
static inline __attribute__((always_inline)) void band_pq_##S(const T *restrict in, T *restrict out,  \
    const pass_t *p, long qa, long qb, const int P, const int Q) {                                     \
  const T *bw = (const T *)p->bw; const int BT = p->BT;                                                \
  for (int r = 0; r < P; r++) {                                                                        \
    const int *off = p->boff + r * BT; const T *w = bw + r * BT; T *o = out + r;                       \
    switch (p->bt[r]) {                                                                                \
    case 1: { const T *a = in + off[0]; T wa = w[0];                                                   \
              for (long q = qa; q < qb; q++) o[P * q] = wa * a[Q * q]; break; }                        \
    case 2: { const T *a = in + off[0], *b = in + off[1]; T wa = w[0], wb = w[1];                      \
              for (long q = qa; q < qb; q++) o[P * q] = wa * a[Q * q] + wb * b[Q * q]; break; }        \
    case 3: { const T *a = in + off[0], *b = in + off[1], *c = in + off[2]; T wa = w[0], wb = w[1], wc = w[2]; \
              for (long q = qa; q < qb; q++) o[P * q] = wa * a[Q * q] + wb * b[Q * q] + wc * c[Q * q]; break; } \
    case 4: { const T *a = in + off[0], *b = in + off[1], *c = in + off[2], *d = in + off[3];          \
              T wa = w[0], wb = w[1], wc = w[2], wd = w[3];                                            \
              for (long q = qa; q < qb; q++)                                                           \
                o[P * q] = wa * a[Q * q] + wb * b[Q * q] + wc * c[Q * q] + wd * d[Q * q]; break; }      \
    default: for (long q = qa; q < qb; q++) { T acc = 0;                                               \
               for (int t = 0; t < p->bt[r]; t++) acc += w[t] * in[Q * q + off[t]]; o[P * q] = acc; }  \
    }                                                                                                  \
  }                                                                                                    \
}                                                                                                      \
/* the band over q in [qa, qb) of a flat row (rows may be concatenated: see cols_); P and Q are    \
   compile-time constants in the common cases so that the loops vectorize */                          \
static void band_##S(const T *restrict in, T *restrict out, const pass_t *p, long qa, long qb) {       \
  const int P = p->P, Q = p->Q;                                                                        \
  if (P == 1 && Q == 2) band_pq_##S(in, out, p, qa, qb, 1, 2);                                         \
  else if (P == 2 && Q == 1) band_pq_##S(in, out, p, qa, qb, 2, 1);                                    \
  else if (P == 1 && Q == 1) band_pq_##S(in, out, p, qa, qb, 1, 1);                                    \
  else band_pq_##S(in, out, p, qa, qb, P, Q);                                                          \
}                                                                                                      \
/* outputs [e0, e1) of every one of `rows` rows from their ELL entries, the entries read once */   \
static void borders_##S(const T *restrict in, T *restrict out, long rows, const pass_t *p, long e0, long e1) { \
  const long ni = p->n_in, no = p->n_out; const T *w = (const T *)p->w;                               \
  for (long e = e0; e < e1; e++) {                                                                     \
    int src[64]; T ws[64]; int m = 0;                                                                  \
    for (int k = 0; k < p->K && m < 64; k++) { int r = p->idx[e * p->K + k];                          \
      if (r >= 0) { src[m] = r; ws[m++] = w[e * p->K + k]; } }                                         \
    const T *i = in; T *o = out + e;                                                                   \
    switch (m) {                                                                                       \
    case 0: for (long h = 0; h < rows; h++) o[h * no] = 0; break;                                      \
    case 1: { const T *a = i + src[0]; T wa = ws[0];                                                   \
              for (long h = 0; h < rows; h++) o[h * no] = wa * a[h * ni]; break; }                     \
    case 2: { const T *a = i + src[0], *b = i + src[1]; T wa = ws[0], wb = ws[1];                      \
              for (long h = 0; h < rows; h++) o[h * no] = wa * a[h * ni] + wb * b[h * ni]; break; }    \
    case 3: { const T *a = i + src[0], *b = i + src[1], *c = i + src[2]; T wa = ws[0], wb = ws[1], wc = ws[2]; \
              for (long h = 0; h < rows; h++) o[h * no] = wa * a[h * ni] + wb * b[h * ni] + wc * c[h * ni]; break; } \
    case 4: { const T *a = i + src[0], *b = i + src[1], *c = i + src[2], *d = i + src[3];              \
              T wa = ws[0], wb = ws[1], wc = ws[2], wd = ws[3];                                        \
              for (long h = 0; h < rows; h++)                                                          \
                o[h * no] = wa * a[h * ni] + wb * b[h * ni] + wc * c[h * ni] + wd * d[h * ni]; break; } \
    default: for (long h = 0; h < rows; h++) { const T *r = in + h * ni; T acc = 0;                    \
               for (int k = 0; k < m; k++) acc += ws[k] * r[src[k]]; o[h * no] = acc; }                \
    }                                                                                                  \
  }                                                                                                    \
}                                                                                                      \
/* column pass over `rows` contiguous rows of n_in -> n_out; flat: one band loop over all of them */   \
static void cols_##S(const T *in, T *out, long rows, const pass_t *p, int flat) {                      \
  const long ni = p->n_in, no = p->n_out, L = (p->q1 > p->q0) ? 1 : 0;                                \
  if (flat && L && rows > 0) {                                                                         \
    band_##S(in, out, p, p->q0, (rows - 1) * (no / p->P) + p->q1);                                     \
    borders_##S(in, out, rows, p, 0, p->P * p->q0);                                                    \
    borders_##S(in, out, rows, p, p->P * p->q1, no);                                                   \
    return;                                                                                            \
  }                                                                                                    \
  for (long h = 0; h < rows; h++) {                                                                    \
    const T *i = in + h * ni; T *o = out + h * no;                                                     \
    if (L) {                                                                                           \
      band_##S(i, o, p, p->q0, p->q1);                                                                 \
      for (long e = 0; e < p->P * p->q0; e++) o[e] = ell_##S(i, p, e);                                 \
      for (long e = p->P * p->q1; e < no; e++) o[e] = ell_##S(i, p, e);                                \
    } else {                                                                                           \
      for (long e = 0; e < no; e++) o[e] = ell_##S(i, p, e);                                           \
    }                                                                                                  \
  }                                                                                                    \
}                                                                                                      \
/* the rows pass of `planes` planes at once: each output row's entries are read once for all planes */ \
static void rows_planes_##S(const T *in, long in_plane, long in_row, T *out, long out_plane, long out_row, \
                            long planes, const pass_t *p, long n) {                                    \
  const T *s[64]; T ws[64]; long off[64]; const T *w = (const T *)p->w;                                \
  for (long o = 0; o < p->n_out; o++) {                                                                \
    int m = 0;                                                                                         \
    for (int k = 0; k < p->K && m < 64; k++) { int r = p->idx[o * p->K + k];                           \
      if (r >= 0) { off[m] = r * in_row; ws[m++] = w[o * p->K + k]; } }                                \
    if (m >= 2 && m <= 4) {  /* the common cases (forward: 4 taps, adjoint: 2), without a call and a  \
                                pointer table per plane; absent taps weigh 0 on a valid row */          \
      for (int k = m; k < 4; k++) { off[k] = off[0]; ws[k] = 0; }                                      \
      const T wa = ws[0], wb = ws[1], wc = ws[2], wd = ws[3];                                          \
      for (long pl = 0; pl < planes; pl++) {                                                           \
        const T *restrict a = in + pl * in_plane + off[0], *restrict b = in + pl * in_plane + off[1];  \
        T *restrict q = out + pl * out_plane + o * out_row;                                            \
        if (m == 2) { for (long e = 0; e < n; e++) q[e] = wa * a[e] + wb * b[e]; continue; }           \
        const T *restrict c = in + pl * in_plane + off[2], *restrict d = in + pl * in_plane + off[3];  \
        if (m == 3) { for (long e = 0; e < n; e++) q[e] = wa * a[e] + wb * b[e] + wc * c[e]; continue; } \
        for (long e = 0; e < n; e++) q[e] = wa * a[e] + wb * b[e] + wc * c[e] + wd * d[e];             \
      }                                                                                                \
      continue;                                                                                        \
    }                                                                                                  \
    for (long pl = 0; pl < planes; pl++) {                                                             \
      for (int k = 0; k < m; k++) s[k] = in + pl * in_plane + off[k];                                  \
      combine_##S(out + pl * out_plane + o * out_row, s, ws, m, n);                                    \
    }                                                                                                  \
  }                                                                                                    \
}                                                                                                      \
/* NCHW planes: columns first (all rows of a plane), then rows. Used for the forward (H = rows pass \
   of the forward matrix) and, with the adjoint tables and rows_first = 1, for the backward. */         \
void planes_##S(const T *x, T *out, long planes, long H, long W, const pass_t *ph, const pass_t *pw,     \
                int rows_first, int flat) {                                                            \
  const long Ho = ph->n_out, Wo = pw->n_out;                                                           \
  const long tmp_plane = rows_first ? Ho * W : H * Wo;                                                 \
  long block = (32768 / (long)sizeof(T)) / (H * W > 0 ? H * W : 1);  /* about 128-256 KB of input */  \
  if (block < 1) block = 1;                                                                            \
  T *tmp = (T *)malloc(sizeof(T) * tmp_plane * block + 64);                                            \
  for (long p = 0; p < planes; p += block) {                                                           \
    const long b = (planes - p < block) ? planes - p : block;                                          \
    const T *xp = x + p * H * W; T *op = out + p * Ho * Wo;                                            \
    if (rows_first) {                                                                                  \
      rows_planes_##S(xp, H * W, W, tmp, tmp_plane, W, b, ph, W);                                      \
      cols_##S(tmp, op, b * Ho, pw, flat);                                                             \
    } else {                                                                                           \
      cols_##S(xp, tmp, b * H, pw, flat);                                                              \
      rows_planes_##S(tmp, tmp_plane, Wo, op, Ho * Wo, Wo, b, ph, Wo);                                 \
    }                                                                                                  \
  }                                                                                                    \
  free(tmp);                                                                                           \
}                                                                                                      \
/* NHWC samples, output rows [row0, row1): per output row, the rows pass into one row of W*C, then   \
   the columns as C-vectors. */                                                                        \
void nhwc_##S(const T *x, T *out, long samples, long H, long W, long C, const pass_t *ph, const pass_t *pw, \
              long row0, long row1) {                                                                  \
  const long Ho = ph->n_out, Wo = pw->n_out;                                                           \
  T *tmp = (T *)malloc(sizeof(T) * W * C + 64);                                                        \
  pass_t one = *ph;                                                                                    \
  for (long s = 0; s < samples; s++) {                                                                 \
    const T *xs = x + s * H * W * C; T *os = out + s * Ho * Wo * C;                                    \
    for (long i = row0; i < row1; i++) {                                                               \
      one.n_out = 1; one.idx = ph->idx + i * ph->K; one.w = (const T *)ph->w + i * ph->K;             \
      rows_##S(xs, W * C, tmp, 0, &one, W * C);                                                        \
      rows_##S(tmp, C, os + i * Wo * C, C, pw, C);                                                     \
    }                                                                                                  \
  }                                                                                                    \
  free(tmp);                                                                                           \
}

DEFINE(float, f32)
DEFINE(double, f64)
"""

# Tried in order; ANTIALIASED_KERNEL_CFLAGS replaces the optimization flags (e.g. "-O3 -mavx2 -mfma" for
# a kernel that valgrind can run: it does not emulate AVX-512).
_FLAGS = (["-O3", "-march=native"], ["-O3"])
_DTYPES = {torch.float32: ("f32", ctypes.c_float, np.float32), torch.float64: ("f64", ctypes.c_double, np.float64)}
_LOCK = threading.Lock()
_STATE: dict[str, object] = {}


class _Pass(ctypes.Structure):
    """The C ``pass_t``: one 1-D pass as ELL rows plus its interior band."""

    _fields_ = [("n_in", ctypes.c_long), ("n_out", ctypes.c_long), ("K", ctypes.c_int),
                ("idx", ctypes.c_void_p), ("w", ctypes.c_void_p), ("P", ctypes.c_int), ("Q", ctypes.c_int),
                ("BT", ctypes.c_int), ("q0", ctypes.c_long), ("q1", ctypes.c_long), ("bt", ctypes.c_void_p),
                ("boff", ctypes.c_void_p), ("bw", ctypes.c_void_p)]


def _cache_dir() -> Path:
    configured = os.environ.get("ANTIALIASED_KERNEL_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "antialiased" / "kernels"


def _compiler() -> str | None:
    configured = os.environ.get("CC")
    if configured:
        return configured
    return next((found for name in ("cc", "gcc", "clang") if (found := shutil.which(name))), None)


def _build() -> ctypes.CDLL:
    """Compile SOURCE once per source, compiler and machine; the .so is written atomically."""
    cc = _compiler()
    if cc is None:
        raise OSError("no C compiler found (set CC, or install cc/gcc/clang)")
    configured = os.environ.get("ANTIALIASED_KERNEL_CFLAGS")
    options = [configured.split()] if configured else [list(flags) for flags in _FLAGS]
    key = hashlib.sha256("|".join([SOURCE, cc, str(options), platform.machine(), platform.node()]).encode())
    key = key.hexdigest()[:16]
    folder = _cache_dir()
    target = folder / f"blur_{key}.so"
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            source = Path(scratch) / "blur.c"
            source.write_text(SOURCE)
            errors = []
            for flags in options:
                command = [cc, *flags, "-fPIC", "-shared", "-std=c99", "-o", str(Path(scratch) / "blur.so"), str(source)]
                try:
                    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
                except OSError as exc:
                    raise OSError(f"cannot run the C compiler {cc}: {exc}") from None
                if done.returncode == 0:
                    os.replace(Path(scratch) / "blur.so", target)
                    break
                errors.append(done.stderr.strip().splitlines()[-1:] or ["?"])
            else:
                raise OSError(f"{cc} could not build the kernel: {errors[-1][0]}")
    return ctypes.CDLL(str(target))


def _library() -> ctypes.CDLL | None:
    """The loaded kernel, built on first use; None (with the reason in :func:`status`) if unavailable."""
    if "lib" not in _STATE:
        with _LOCK:
            if "lib" not in _STATE:
                if os.environ.get("ANTIALIASED_NATIVE", "1") == "0":
                    _STATE["lib"], _STATE["why"] = None, "disabled by ANTIALIASED_NATIVE=0"
                else:
                    try:
                        _STATE["lib"], _STATE["why"] = _declare(_build()), "compiled"
                    except (OSError, subprocess.SubprocessError) as exc:
                        _STATE["lib"], _STATE["why"] = None, f"not available: {exc}"
    return _STATE["lib"]  # type: ignore[return-value]


def status() -> str:
    """Which CPU kernel runs 4-D float inputs: 'compiled', or why the separable one does."""
    _library()
    return str(_STATE["why"])


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    ptr, long_, int_ = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
    for suffix in ("f32", "f64"):
        getattr(lib, f"planes_{suffix}").argtypes = [ptr, ptr, long_, long_, long_, ptr, ptr, int_, int_]
        getattr(lib, f"nhwc_{suffix}").argtypes = [ptr, ptr, long_, long_, long_, long_, ptr, ptr, long_, long_]
    return lib


@dataclass
class _Tables:
    """One 1-D pass for the C kernel: the arrays (kept alive here) and the struct pointing at them."""

    arrays: tuple
    struct: _Pass
    flat: bool


def _ell(n_in: int, n_out: int, rows: list[dict[int, float]], np_dtype) -> tuple[np.ndarray, np.ndarray, int]:
    k = max(1, max((len(r) for r in rows), default=1))
    idx = np.full((n_out, k), -1, dtype=np.int32)
    w = np.zeros((n_out, k), dtype=np_dtype)
    for o, row in enumerate(rows):
        for j, (src, weight) in enumerate(sorted(row.items())):
            idx[o, j], w[o, j] = src, weight
    return idx, w, k


def _band_range(rows: list[dict[int, float]], n_in: int, period: int, step: int,
                phases: list[list[tuple[int, float]]]) -> tuple[int, int]:
    """The first run of q where every phase's row equals the band formula exactly (and reads inside)."""
    def exact(q: int) -> bool:
        for r, taps in enumerate(phases):
            o = period * q + r
            if o >= len(rows):
                return False
            predicted: dict[int, float] = {}
            for off, weight in taps:
                src = step * q + off
                if not 0 <= src < n_in:
                    return False
                predicted[src] = predicted.get(src, 0.0) + weight
            if {s: v for s, v in predicted.items() if v} != {s: v for s, v in rows[o].items() if v}:
                return False
        return True

    valid = [exact(q) for q in range(len(rows) // period + 1)]
    if True not in valid:
        return 0, 0
    q0 = valid.index(True)
    q1 = valid.index(False, q0) if False in valid[q0:] else len(valid)
    return q0, q1


@functools.lru_cache(maxsize=512)
def _tables(n: int, taps: tuple[float, ...], stride: int, before: int, after: int, mode: str, adjoint: bool,
            suffix: str) -> _Tables:
    """The forward pass of one dimension (or its adjoint) as ELL rows + interior band."""
    m = (n + before + after - len(taps)) // stride + 1
    forward_rows: list[dict[int, float]] = [{} for _ in range(m)]
    for o in range(m):
        for k, weight in enumerate(taps):
            src = source_index(stride * o + k - before, n, mode)
            if src is not None and weight:
                forward_rows[o][src] = forward_rows[o].get(src, 0.0) + weight
    if adjoint:
        rows: list[dict[int, float]] = [{} for _ in range(n)]
        for o, row in enumerate(forward_rows):
            for src, weight in row.items():
                rows[src][o] = weight
        n_in, n_out, period, step = m, n, stride, 1
        phases = [[((r + before - k) // stride, w) for k, w in enumerate(taps) if (r + before - k) % stride == 0 and w]
                  for r in range(stride)]
    else:
        rows, n_in, n_out, period, step = forward_rows, n, m, 1, stride
        phases = [[(k - before, w) for k, w in enumerate(taps) if w]]
    np_dtype = {"f32": np.float32, "f64": np.float64}[suffix]
    return _pack(rows, n_in, n_out, period, step, phases, np_dtype)


def _pack(rows, n_in: int, n_out: int, period: int, step: int, phases, np_dtype) -> _Tables:
    idx, w, k = _ell(n_in, n_out, rows, np_dtype)
    q0, q1 = _band_range(rows, n_in, period, step, phases)
    bt_max = max(1, max(len(p) for p in phases))
    bt = np.array([len(p) for p in phases], dtype=np.int32)
    boff = np.zeros((period, bt_max), dtype=np.int32)
    bw = np.zeros((period, bt_max), dtype=np_dtype)
    for r, taps in enumerate(phases):
        for t, (off, weight) in enumerate(taps):
            boff[r, t], bw[r, t] = off, weight
    arrays = (idx, w, bt, boff, bw)
    struct = _Pass(n_in, n_out, k, idx.ctypes.data, w.ctypes.data, period, step, bt_max, q0, q1, bt.ctypes.data,
                   boff.ctypes.data, bw.ctypes.data)
    flat = q1 > q0 and n_out % period == 0 and n_in == step * (n_out // period)
    return _Tables(arrays, struct, flat)


_POOL: dict[int, ThreadPoolExecutor] = {}
os.register_at_fork(after_in_child=_POOL.clear)  # a forked child (a DataLoader worker) has none of the threads


def _parallel(calls: list) -> None:
    """Run the chunk calls on torch's thread count (ctypes releases the GIL during each)."""
    if len(calls) == 1:
        calls[0]()
        return
    pool = _POOL.get(len(calls))
    if pool is None:
        _POOL.clear()
        pool = _POOL[len(calls)] = ThreadPoolExecutor(len(calls), thread_name_prefix="antialiased-blur")
    for future in [pool.submit(call) for call in calls]:
        future.result()


def _chunks(total: int, parts: int) -> list[tuple[int, int]]:
    parts = max(1, min(parts, total))
    bounds = [total * i // parts for i in range(parts + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def _threads(t: torch.Tensor) -> int:
    return 1 if t.numel() < (1 << 16) else torch.get_num_threads()


def _run(lib: ctypes.CDLL, x: torch.Tensor, out: torch.Tensor, ph: _Tables, pw: _Tables, rows_first: bool) -> None:
    suffix, _, _ = _DTYPES[x.dtype]
    n, c, h, w = x.shape
    item = x.element_size()
    threads = _threads(x)
    if _conv.memory_format(x) == torch.channels_last:
        run = getattr(lib, f"nhwc_{suffix}")
        ho = ph.struct.n_out
        if n >= threads:
            plan = [(a, b, 0, ho) for a, b in _chunks(n, threads)]
        else:
            plan = [(s, s + 1, r0, r1) for s in range(n) for r0, r1 in _chunks(ho, max(1, threads // n))]
        calls = [functools.partial(run, x.data_ptr() + a * h * w * c * item, out.data_ptr() + a * out[0].numel() * item,
                                   b - a, h, w, c, ctypes.byref(ph.struct), ctypes.byref(pw.struct), r0, r1)
                 for a, b, r0, r1 in plan]
    else:
        run = getattr(lib, f"planes_{suffix}")
        plane_in, plane_out = h * w, out.shape[2] * out.shape[3]
        calls = [functools.partial(run, x.data_ptr() + a * plane_in * item, out.data_ptr() + a * plane_out * item,
                                   b - a, h, w, ctypes.byref(ph.struct), ctypes.byref(pw.struct), int(rows_first),
                                   int(pw.flat))
                 for a, b in _chunks(n * c, threads)]
    _parallel(calls)


def supports(t: torch.Tensor) -> bool:
    """The inputs this kernel takes: 4-D float32/float64 CPU tensors with data."""
    return t.dim() == 4 and t.dtype in _DTYPES and t.device.type == "cpu" and t.numel() > 0


def _ready(t: torch.Tensor) -> torch.Tensor:
    """``t`` in the layout the kernel reads: as is when contiguous or channels_last, else a copy."""
    return t.contiguous(memory_format=_conv.memory_format(t))


def _taps2(filt: torch.Tensor | None, size: int, t: torch.Tensor) -> tuple | None:
    if not supports(t):
        return None
    taps = taps_for(filt, size, 2)
    return taps if taps is not None and _library() is not None else None


def forward(x: torch.Tensor, filt: torch.Tensor | None, size: int, stride: int, pads: Sequence[int],
            mode: str) -> torch.Tensor:
    """The operator's CPU forward: this kernel where it applies, else the separable one."""
    taps = _taps2(filt, size, x)
    if taps is None:
        return _separable.forward(x, filt, size, stride, pads, mode)
    suffix = _DTYPES[x.dtype][0]
    ph = _tables(x.shape[2], taps[0], stride, pads[2], pads[3], mode, False, suffix)
    pw = _tables(x.shape[3], taps[1], stride, pads[0], pads[1], mode, False, suffix)
    fmt = _conv.memory_format(x)
    out = torch.empty((x.shape[0], x.shape[1], ph.struct.n_out, pw.struct.n_out), dtype=x.dtype, memory_format=fmt)
    _run(_library(), _ready(x), out, ph, pw, rows_first=False)
    return out


def backward(grad: torch.Tensor, filt: torch.Tensor | None, size: int, stride: int, pads: Sequence[int],
             mode: str, spatial: Sequence[int]) -> torch.Tensor:
    """The adjoint of :func:`forward` (the input's gradient), on the same kernel."""
    taps = _taps2(filt, size, grad)
    if taps is None:
        return _separable.backward(grad, filt, size, stride, pads, mode, spatial)
    suffix = _DTYPES[grad.dtype][0]
    ph = _tables(spatial[0], taps[0], stride, pads[2], pads[3], mode, True, suffix)
    pw = _tables(spatial[1], taps[1], stride, pads[0], pads[1], mode, True, suffix)
    fmt = _conv.memory_format(grad)
    out = torch.empty((grad.shape[0], grad.shape[1], spatial[0], spatial[1]), dtype=grad.dtype, memory_format=fmt)
    # Columns first: the rows pass then runs on full-width rows (faster on ResNet-50's blur gradients).
    _run(_library(), _ready(grad), out, ph, pw, rows_first=False)
    return out
