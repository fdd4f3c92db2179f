"""Compiled (numba) kernels of the factored beamformer on the CPU: the core product of a few frames, and
the expansion from the core grid to 36 x 48 fused with the squaring and the bin-last write.

Shapes (one band of ``nb`` bins, core grid ``qr`` x ``qc``, ``Q = qr qc``, M working mics, F frames):

- core ``(nb, Q, 2M)`` float32: the complex64 core viewed as interleaved (re, im) pairs;
- spectra ``(nb, F, M)`` complex64, core fields ``z`` ``(nb, F, Q)`` complex64 (``z = spec @ core^T``);
- maps ``out`` ``(F, 36, 48, 512)`` float32 (any strides), written in bins ``start .. start + nb``.

The expansion is two small real products with long contiguous inner loops (what LLVM vectorises
well here; short loops over one band's 32 bins, or scalar accumulators, ran 5-10x slower): columns
first, over rows of ``qr x 2 x nb`` values, then rows, over rows of ``48 x nb`` values, four output
rows at a time, squared and summed straight into the map. Every work item (one
frame of one band) keeps its scratch (under 0.4 MB) in L2.
"""

from __future__ import annotations

import numpy as np
from numba import get_thread_id, njit, prange

# reassociation (vectorised sums) and FMA contraction only: no assumptions about NaN or infinities
FASTMATH = {"reassoc", "contract"}


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def core_product(core, spec, z):
    """z[k, f, q] = sum_m core[k, q, m] spec[k, f, m] for a few frames, streaming the core once (parallel over bins).

    A complex dot product is two real ones over the interleaved core: with x = (re, im) pairs,
    Re = x . (s_re, -s_im) and Im = x . (s_im, s_re), which vectorise without shuffles.
    """
    n_bins, n_q, n = core.shape
    n_frames = spec.shape[1]
    for k in prange(n_bins):
        u = np.empty((n_frames, 2, n), np.float32)
        for f in range(n_frames):
            for m in range(n // 2):
                s = spec[k, f, m]
                u[f, 0, 2 * m] = s.real
                u[f, 0, 2 * m + 1] = -s.imag
                u[f, 1, 2 * m] = s.imag
                u[f, 1, 2 * m + 1] = s.real
        for q in range(n_q):
            x = core[k, q]
            for f in range(n_frames):
                ur, ui = u[f, 0], u[f, 1]
                re = np.float32(0.0)
                im = np.float32(0.0)
                for j in range(n):
                    re += x[j] * ur[j]
                    im += x[j] * ui[j]
                z[k, f, q] = complex(re, im)


@njit(cache=True, fastmath=FASTMATH)
def _product4(weights, x, p0, acc):
    """acc[i] = sum_a weights[p0 + i, a] x[a] for i < 4 (rows past the end repeat the last one): four output
    rows and four terms per pass over long rows of x (A, L), so each store carries 16 multiply-adds."""
    n_out, n_terms = weights.shape
    p = (p0, min(p0 + 1, n_out - 1), min(p0 + 2, n_out - 1), min(p0 + 3, n_out - 1))
    y0, y1, y2, y3 = acc[0], acc[1], acc[2], acc[3]
    y0[:] = 0
    y1[:] = 0
    y2[:] = 0
    y3[:] = 0
    for a in range(0, n_terms, 4):
        # terms past the end: weight 0 on a repeated row, so no remainder loop
        a1, a2, a3 = min(a + 1, n_terms - 1), min(a + 2, n_terms - 1), min(a + 3, n_terms - 1)
        m1, m2, m3 = np.float32(a + 1 < n_terms), np.float32(a + 2 < n_terms), np.float32(a + 3 < n_terms)
        w00, w01, w02, w03 = weights[p[0], a], weights[p[0], a1] * m1, weights[p[0], a2] * m2, weights[p[0], a3] * m3
        w10, w11, w12, w13 = weights[p[1], a], weights[p[1], a1] * m1, weights[p[1], a2] * m2, weights[p[1], a3] * m3
        w20, w21, w22, w23 = weights[p[2], a], weights[p[2], a1] * m1, weights[p[2], a2] * m2, weights[p[2], a3] * m3
        w30, w31, w32, w33 = weights[p[3], a], weights[p[3], a1] * m1, weights[p[3], a2] * m2, weights[p[3], a3] * m3
        x0, x1, x2, x3 = x[a], x[a1], x[a2], x[a3]
        for j in range(x.shape[1]):
            v0, v1, v2, v3 = x0[j], x1[j], x2[j], x3[j]
            y0[j] += w00 * v0 + w01 * v1 + w02 * v2 + w03 * v3
            y1[j] += w10 * v0 + w11 * v1 + w12 * v2 + w13 * v3
            y2[j] += w20 * v0 + w21 * v1 + w22 * v2 + w23 * v3
            y3[j] += w30 * v0 + w31 * v1 + w32 * v2 + w33 * v3
    return p


@njit(cache=True, fastmath=FASTMATH)
def _columns(cols, zt, t, n_bins):
    """t[(c, a), pc nb + k] = sum_b cols[pc, b] zt[b, (c, a, k)]."""
    acc = np.empty((4, zt.shape[1]), np.float32)
    for p0 in range(0, cols.shape[0], 4):
        p = _product4(cols, zt, p0, acc)
        for i in range(4):
            y, pc = acc[i], p[i]
            for ca in range(t.shape[0]):  # a transposing store, nb values at a time
                for k in range(n_bins):
                    t[ca, pc * n_bins + k] = y[ca * n_bins + k]


@njit(cache=True, fastmath=FASTMATH)
def _rows_power(rows, t, out, start, n_bins):
    """out[pr, pc, start + k] = |sum_a rows[pr, a] t[:, a, pc nb + k]|^2 of t (re/im, qr, 48 nb)."""
    width = t.shape[2]
    acc = np.empty((2, 4, width), np.float32)
    for p0 in range(0, rows.shape[0], 4):
        p = _product4(rows, t[0], p0, acc[0])  # contiguous rows: a strided view ran 3x slower
        _product4(rows, t[1], p0, acc[1])
        for i in range(4):
            re, im = acc[0, i], acc[1, i]
            for pc in range(width // n_bins):
                row = out[p[i], pc]
                for k in range(n_bins):
                    j = pc * n_bins + k
                    row[start + k] = re[j] * re[j] + im[j] * im[j]


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def expand_power(z, z_offsets, rows, rows_offsets, cols, cols_offsets, grids, bins, out, scratch):
    """Write every band's maps into out (F, 36, 48, 512) from its core fields, parallel over frames.

    Band b: core fields ``z[z_offsets[b]:]`` as (nb, F, Q) complex64, bases ``rows[rows_offsets[b]:]``
    (36, qr) and ``cols[cols_offsets[b]:]`` (48, qc) float32, ``grids[b] = (qr, qc)``,
    ``bins[b] = (start, stop)``. ``scratch``: (threads, 36, 48, 512) float32 maps that stay in the
    cache while a frame is filled band by band (128-byte runs 2 KB apart), then copied to ``out`` in
    one sequential pass (writing the runs straight into a large ``out`` cost ~0.8 ms per frame more
    here); an empty one writes into ``out`` directly (one frame, whose map stays in the cache anyway).
    """
    n_frames = out.shape[0]
    for f in prange(n_frames):
        target = scratch[get_thread_id()] if scratch.shape[0] else out[f]
        for b in range(len(bins)):
            _band_power(z, z_offsets, rows, rows_offsets, cols, cols_offsets, grids, bins, f, n_frames, b, target)
        if scratch.shape[0]:
            out[f] = target


@njit(cache=True, fastmath=FASTMATH)
def _band_power(z, z_offsets, rows, rows_offsets, cols, cols_offsets, grids, bins, f, n_frames, b, out):
    """One band's maps of frame f into out (36, 48, 512)."""
    n_rows, n_cols = out.shape[0], out.shape[1]
    qr, qc = grids[b, 0], grids[b, 1]
    start, n_bins = bins[b, 0], bins[b, 1] - bins[b, 0]
    n_q = qr * qc
    zb = z[z_offsets[b]:z_offsets[b] + n_bins * n_frames * n_q].reshape(n_bins, n_frames, n_q)
    band_rows = rows[rows_offsets[b]:rows_offsets[b] + n_rows * qr].reshape(n_rows, qr)
    band_cols = cols[cols_offsets[b]:cols_offsets[b] + n_cols * qc].reshape(n_cols, qc)
    zt = np.empty((qc, 2, qr, n_bins), np.float32)  # (b, re/im, a, k): long rows for the columns product
    for k in range(n_bins):
        for a in range(qr):
            for bb in range(qc):
                v = zb[k, f, a * qc + bb]
                zt[bb, 0, a, k] = v.real
                zt[bb, 1, a, k] = v.imag
    t = np.empty((2, qr, n_cols * n_bins), np.float32)
    _columns(band_cols, zt.reshape(qc, 2 * qr * n_bins), t.reshape(2 * qr, n_cols * n_bins), n_bins)
    _rows_power(band_rows, t, out, start, n_bins)
