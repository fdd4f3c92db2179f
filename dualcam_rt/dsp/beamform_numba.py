"""Compiled (numba) kernels of the factored beamformer on the CPU: the core product of a few frames, and
the expansion from the core grid to 36 x 48 fused with the squaring and the bin-last write.

Shapes (one band of ``nb`` bins, core grid ``qr`` x ``qc``, ``Q = qr qc``, M working mics, F frames):

- core ``(nb, Q, 2M)`` float32: the complex64 core viewed as interleaved (re, im) pairs;
- spectra ``(nb, F, M)`` complex64, core fields ``z`` ``(F, nb, Q)`` complex64 (``z[f] = spec[:, f] @ core^T``:
  frame-major, so that one frame's fields of a band are one block in the cache);
- maps ``out`` ``(F, 36, 48, 512)`` float32 (any strides), written in bins ``start .. start + nb``.

The expansion is two small real products with long contiguous inner loops (what LLVM vectorises
well here; short loops over one band's 32 bins, or scalar accumulators, ran 5-10x slower): columns
first, over rows of ``qr x 2 x nb`` values, then rows, over rows of ``48 x nb`` values, four output
rows and eight terms per pass, squared and summed straight into the map. Every work item (one
frame of one band) keeps its intermediates (under 0.4 MB) in L2, in per-thread room kept between
calls (one room per calling thread: the entry points release the GIL). Inner loops index views
from 0: an offset or computed index (which numba must check for wrap-around) kept LLVM from
vectorising them and cost ~0.5 ms per frame.
"""

from __future__ import annotations

import numpy as np
from numba import get_thread_id, njit, prange

# reassociation (vectorised sums) and FMA contraction only: no assumptions about NaN or infinities
FASTMATH = {"reassoc", "contract"}


@njit(cache=True, fastmath=FASTMATH, parallel=True, nogil=True)
def core_products(cores, core_offsets, grids, bins, spec, z, z_offsets):
    """Every band's core fields z (F, bins, Q) = spec @ core^T for a few frames, streaming the core once
    (parallel over bins).

    ``cores``: every band's (bins, Q, M) complex64 core as interleaved float32, band b from
    ``core_offsets[b]``; ``spec`` (512, F, M) complex64; ``z`` flat complex64, band b from ``z_offsets[b]``.
    A complex dot product is two real ones over the interleaved core: with x = (re, im) pairs,
    Re = x . (s_re, -s_im) and Im = x . (s_im, s_re), which vectorise without shuffles.
    """
    n_frames, n = spec.shape[1], 2 * spec.shape[2]
    for k in prange(bins[-1, 1]):
        b = np.searchsorted(bins[:, 1], k, side="right")
        n_q, i = grids[b, 0] * grids[b, 1], k - bins[b, 0]
        core = cores[core_offsets[b] + i * n_q * n : core_offsets[b] + (i + 1) * n_q * n].reshape(n_q, n)
        n_band = bins[b, 1] - bins[b, 0]
        fields = z[z_offsets[b] : z_offsets[b] + n_frames * n_band * n_q].reshape(n_frames, n_band, n_q)
        u = np.empty((n_frames, 2, n), np.float32)
        for f in range(n_frames):
            for m in range(n // 2):
                s = spec[k, f, m]
                u[f, 0, 2 * m] = s.real
                u[f, 0, 2 * m + 1] = -s.imag
                u[f, 1, 2 * m] = s.imag
                u[f, 1, 2 * m + 1] = s.real
        for q in range(n_q):
            x = core[q]
            for f in range(n_frames):
                ur, ui = u[f, 0], u[f, 1]
                re = np.float32(0.0)
                im = np.float32(0.0)
                for j in range(n):
                    re += x[j] * ur[j]
                    im += x[j] * ui[j]
                fields[f, i, q] = complex(re, im)


@njit(cache=True, fastmath=FASTMATH)
def _product(weights, x, p0, acc):
    """acc[i] = sum_a weights[p0 + i, a] x[a] for i < 4 (rows past the end repeat the last one); gives the four rows.

    Four output rows and eight terms per pass over long rows of x (A, L): each store of an
    accumulator carries eight multiply-adds (four terms per pass ran 25-40 % slower: store-bound).
    Terms past the end get weight 0 on a repeated row, so there is no remainder loop.
    """
    n_out, n_terms = weights.shape
    p = (p0, min(p0 + 1, n_out - 1), min(p0 + 2, n_out - 1), min(p0 + 3, n_out - 1))
    y0, y1, y2, y3 = acc[0], acc[1], acc[2], acc[3]
    y0[:] = 0
    y1[:] = 0
    y2[:] = 0
    y3[:] = 0
    w = np.empty((4, 8), np.float32)
    for a in range(0, n_terms, 8):
        terms = (
            a,
            min(a + 1, n_terms - 1),
            min(a + 2, n_terms - 1),
            min(a + 3, n_terms - 1),
            min(a + 4, n_terms - 1),
            min(a + 5, n_terms - 1),
            min(a + 6, n_terms - 1),
            min(a + 7, n_terms - 1),
        )
        for i in range(4):
            for t in range(8):
                w[i, t] = weights[p[i], terms[t]] if a + t < n_terms else np.float32(0)
        x0, x1, x2, x3 = x[terms[0]], x[terms[1]], x[terms[2]], x[terms[3]]
        x4, x5, x6, x7 = x[terms[4]], x[terms[5]], x[terms[6]], x[terms[7]]
        w00, w01, w02, w03, w04, w05, w06, w07 = w[0, 0], w[0, 1], w[0, 2], w[0, 3], w[0, 4], w[0, 5], w[0, 6], w[0, 7]
        w10, w11, w12, w13, w14, w15, w16, w17 = w[1, 0], w[1, 1], w[1, 2], w[1, 3], w[1, 4], w[1, 5], w[1, 6], w[1, 7]
        w20, w21, w22, w23, w24, w25, w26, w27 = w[2, 0], w[2, 1], w[2, 2], w[2, 3], w[2, 4], w[2, 5], w[2, 6], w[2, 7]
        w30, w31, w32, w33, w34, w35, w36, w37 = w[3, 0], w[3, 1], w[3, 2], w[3, 3], w[3, 4], w[3, 5], w[3, 6], w[3, 7]
        for j in range(x.shape[1]):
            v0, v1, v2, v3, v4, v5, v6, v7 = x0[j], x1[j], x2[j], x3[j], x4[j], x5[j], x6[j], x7[j]
            y0[j] += w00 * v0 + w01 * v1 + w02 * v2 + w03 * v3 + w04 * v4 + w05 * v5 + w06 * v6 + w07 * v7
            y1[j] += w10 * v0 + w11 * v1 + w12 * v2 + w13 * v3 + w14 * v4 + w15 * v5 + w16 * v6 + w17 * v7
            y2[j] += w20 * v0 + w21 * v1 + w22 * v2 + w23 * v3 + w24 * v4 + w25 * v5 + w26 * v6 + w27 * v7
            y3[j] += w30 * v0 + w31 * v1 + w32 * v2 + w33 * v3 + w34 * v4 + w35 * v5 + w36 * v6 + w37 * v7
    return p


@njit(cache=True, fastmath=FASTMATH)
def _columns(cols, zt, t, n_bins, acc):
    """t[(c, a), pc nb + k] = sum_b cols[pc, b] zt[b, (c, a, k)], through acc (4, 2 qr nb)."""
    for p0 in range(0, cols.shape[0], 4):
        p = _product(cols, zt, p0, acc)
        for i in range(4):
            y, pc = acc[i], p[i]
            for ca in range(t.shape[0]):  # a transposing store, nb values at a time
                dst, src = t[ca, pc * n_bins : (pc + 1) * n_bins], y[ca * n_bins : (ca + 1) * n_bins]
                for k in range(n_bins):  # views indexed from 0: vectorised (computed indices were not)
                    dst[k] = src[k]


@njit(cache=True, fastmath=FASTMATH)
def _rows_power(rows, t, out, start, n_bins, acc):
    """out[pr, pc, start + k] = |sum_a rows[pr, a] t[:, a, pc nb + k]|^2 of t (re/im, qr, 48 nb), through
    acc (2, 4, 48 nb)."""
    width = t.shape[2]
    for p0 in range(0, rows.shape[0], 4):
        p = _product(rows, t[0], p0, acc[0])  # contiguous rows: a strided view ran 3x slower
        _product(rows, t[1], p0, acc[1])
        for i in range(4):
            re, im = acc[0, i], acc[1, i]
            for pc in range(width // n_bins):
                dst = out[p[i], pc, start : start + n_bins]
                x, y = re[pc * n_bins : (pc + 1) * n_bins], im[pc * n_bins : (pc + 1) * n_bins]
                for k in range(n_bins):
                    dst[k] = x[k] * x[k] + y[k] * y[k]


@njit(cache=True, fastmath=FASTMATH, parallel=True, nogil=True)
def expand_power(z, z_offsets, rows, rows_offsets, cols, cols_offsets, grids, bins, out, work):
    """Write every band's maps into out (F, 36, 48, 512) from its core fields, parallel over frames.

    Band b: core fields ``z[z_offsets[b]:]`` as (F, nb, Q) complex64, bases ``rows[rows_offsets[b]:]``
    (36, qr) and ``cols[cols_offsets[b]:]`` (48, qc) float32, ``grids[b] = (qr, qc)``,
    ``bins[b] = (start, stop)``. ``work``: (threads, n) float32, per-thread room for a band's
    intermediates (``work_values``), kept between calls. A frame's map is filled band by band
    (nb-value runs 2 KB apart), which stays in the cache.
    """
    n_frames = out.shape[0]
    for f in prange(n_frames):
        for b in range(len(bins)):
            _band_power(
                z,
                z_offsets,
                rows,
                rows_offsets,
                cols,
                cols_offsets,
                grids,
                bins,
                f,
                n_frames,
                b,
                out[f],
                work[get_thread_id()],
            )


@njit(cache=True, fastmath=FASTMATH)
def _band_power(z, z_offsets, rows, rows_offsets, cols, cols_offsets, grids, bins, f, n_frames, b, out, work):
    """One band's maps of frame f into out (36, 48, 512)."""
    n_rows, n_cols = out.shape[0], out.shape[1]
    qr, qc = grids[b, 0], grids[b, 1]
    start, n_bins = bins[b, 0], bins[b, 1] - bins[b, 0]
    n_q = qr * qc
    zb = z[z_offsets[b] : z_offsets[b] + n_frames * n_bins * n_q].reshape(n_frames, n_bins, n_q)[f]
    band_rows = rows[rows_offsets[b] : rows_offsets[b] + n_rows * qr].reshape(n_rows, qr)
    band_cols = cols[cols_offsets[b] : cols_offsets[b] + n_cols * qc].reshape(n_cols, qc)
    sizes = _work_sizes(qr, qc, n_bins, n_cols)
    zt = work[: sizes[0]].reshape(qc, 2, qr, n_bins)  # (b, re/im, a, k): long rows for the columns product
    for bb in range(qc):  # written in order (gathered reads): scattered writes cost ~0.4 ms per frame more
        for a in range(qr):
            re, im = zt[bb, 0, a], zt[bb, 1, a]
            for k in range(n_bins):
                v = zb[k, a * qc + bb]
                re[k] = v.real
                im[k] = v.imag
    at = sizes[0]
    t = work[at : at + sizes[1]].reshape(2, qr, n_cols * n_bins)
    at += sizes[1]
    columns_acc = work[at : at + sizes[2]].reshape(4, 2 * qr * n_bins)
    at += sizes[2]
    _columns(band_cols, zt.reshape(qc, 2 * qr * n_bins), t.reshape(2 * qr, n_cols * n_bins), n_bins, columns_acc)
    _rows_power(band_rows, t, out, start, n_bins, work[at : at + sizes[3]].reshape(2, 4, n_cols * n_bins))


@njit(cache=True)
def _work_sizes(qr, qc, n_bins, n_cols):
    """float32 values of a band's intermediates: core fields as planes, columns product, the two accumulators."""
    return qc * 2 * qr * n_bins, 2 * qr * n_cols * n_bins, 4 * 2 * qr * n_bins, 2 * 4 * n_cols * n_bins


def work_values(grids, bins, n_cols) -> int:
    """Room (float32 values) that every band's intermediates fit in: the ``work`` row of ``expand_power``."""
    return max(sum(_work_sizes(qr, qc, stop - start, n_cols)) for (qr, qc), (start, stop) in zip(grids, bins))
