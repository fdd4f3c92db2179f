"""Frequency-domain delay-and-sum beamforming of sensor blocks into acoustic images.

For one block ``x`` (channels, 1024) the map is, per focus point p and FFT bin k,

    power[p, k] = | sum_m conj(h[k, p, m]) X[m, k] |^2,   h[k, p, m] = exp(-j w_k (r_pm - r_p0) / c) / M

where ``X = rfft(tukey(1024, 0.75) * x)[:, :512] * scale`` over the M working microphones,
``r_pm`` is the distance from focus point p (on the plane at the focus distance) to microphone m,
``r_p0`` its distance to the array centre, and ``w_k = 2 pi k 12288 / 1024``. This is Acoular's
``BeamformerBase(steer_type="classic", r_diag=False)`` applied to the rank-one cross-spectral
matrix ``X X^H`` of the block. ``scale`` is ``sqrt(2) / sum(window)`` (``1 / sum(window)`` for
bin 0), so a sine of amplitude A (Pa) at a bin centre, focused on its source, reads A^2 / 2 (Pa^2).

Speed: the dense steering (512 x 1728 x M complex64, ~0.9 GB) would be re-read for every frame.
Instead it is factored, to 1e-6 of each steering vector's norm, as S_k = (U_rows (x) U_cols) G_k
(``separable_basis``): a frame is beamformed onto a ~16 x 18 core grid (G_k, 0.14 GB in all, one
matrix product per bin, batched over frames), then expanded to 36 x 48 by two real matrix
products shared by every bin and frame. Maps equal the dense ones to ~1e-5 of each bin's peak.
The same array code runs on NumPy and CuPy (``xp``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType

import numpy as np
from scipy.signal.windows import tukey
from threadpoolctl import ThreadpoolController

from ..errors import BadInput
from ..geometry import BLOCK_SAMPLES, GRID_COLS, GRID_ROWS, N_BINS, SPEED_OF_SOUND, Geometry, get_geometry

TUKEY_ALPHA = 0.75  # the MFCC recipe's window (SPEC), shared so one FFT serves both
BACKENDS = ("auto", "numpy", "cupy")


def array_module(backend: str = "auto") -> ModuleType:
    """The array module (numpy or cupy) for a backend name; "auto" picks CuPy when a GPU is present."""
    if backend not in BACKENDS:
        raise BadInput(f"unknown beamforming backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend == "numpy":
        return np
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception:  # ImportError, or CuPy present but no driver/device (CUDARuntimeError)
        pass
    if backend == "cupy":
        raise BadInput("backend 'cupy' needs CuPy and a CUDA device, and they are not both usable here")
    return np


def block_window(n: int = BLOCK_SAMPLES) -> np.ndarray:
    """The analysis window (n,) float64: Tukey, alpha 0.75 (symmetric, as scipy builds it)."""
    return tukey(n, TUKEY_ALPHA)


def spectrum_scale(window: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Per-bin amplitude scale (n_bins,) making |X|^2 the mean square (Pa^2) of a bin-centred sine."""
    scale = np.full(n_bins, math.sqrt(2) / window.sum())
    scale[0] = 1 / window.sum()
    return scale


def focus_path_differences(geometry: Geometry) -> np.ndarray:
    """Path differences r_pm - r_p0 (points, working mics) in metres, float64."""
    mics = geometry.mics[geometry.active]
    points = geometry.grid_points
    r_pm = np.linalg.norm(points[:, None, :] - mics[None, :, :], axis=-1)
    return r_pm - np.linalg.norm(points, axis=1)[:, None]


def steering_chunks(geometry: Geometry, xp: ModuleType = np, group: int = 32) -> Iterator[tuple[int, object]]:
    """(first bin, conj(h) for bins first..first+group) as (group, points, working mics) complex64 on ``xp``.

    Built as exp(j k phi) = exp(j (group q) phi) * exp(j r phi) for k = group q + r: only
    (512 / group + group) complex exponentials per point-mic pair instead of 512, so the build is
    one broadcast multiply per group of bins (about 10x faster than exponentiating 111 M phases).
    """
    bin_hz = geometry.sample_rate / geometry.nfft
    phase = xp.asarray(2 * np.pi * bin_hz * focus_path_differences(geometry) / SPEED_OF_SOUND)  # rad per bin
    n_mics = phase.shape[1]
    fine = (xp.exp(1j * xp.arange(group, dtype=xp.float64)[:, None, None] * phase) / n_mics).astype(xp.complex64)
    for k0 in range(0, N_BINS, group):
        coarse = xp.exp(1j * k0 * phase).astype(xp.complex64)
        yield k0, fine[: N_BINS - k0] * coarse


def steering_matrices(geometry: Geometry | None = None, xp: ModuleType = np) -> object:
    """conj(h): (512, points, working mics) complex64 (~0.9 GB), so that map_k = |S_k @ X_k|^2 exactly."""
    return xp.concatenate([chunk for _, chunk in steering_chunks(geometry or get_geometry(), xp)])


def separable_basis(geometry: Geometry, bins: Iterable[int], tolerance: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal real bases (36, Qr) over grid rows and (48, Qc) over grid columns for ``bins``, float64.

    Every steering column (one bin, one mic), seen as a 36 x 48 image, is smooth: with the
    phase referred to the array centre it turns by at most k |m| / z (~0.5 rad per acoustic pixel
    at the top bin, far less below). So the columns of a band of bins lie, to ``tolerance`` of
    their norm, in span(rows) x span(cols): the leading eigenvectors of the real Gram matrices
    Re(A A^H) of the row and column unfoldings of the given bins' steering, in float64.
    """
    bin_hz = geometry.sample_rate / geometry.nfft
    phase = 2 * np.pi * bin_hz * focus_path_differences(geometry) / SPEED_OF_SOUND
    images = phase.reshape(GRID_ROWS, GRID_COLS, -1)
    gram_rows, gram_cols = np.zeros((GRID_ROWS, GRID_ROWS)), np.zeros((GRID_COLS, GRID_COLS))
    for k in bins:
        a = np.exp(1j * k * images)
        rows = a.reshape(GRID_ROWS, -1).view(np.float64)  # Re(A A^H) is the real Gram of the interleaved view
        cols = a.transpose(1, 0, 2).reshape(GRID_COLS, -1).view(np.float64)
        gram_rows += rows @ rows.T
        gram_cols += cols @ cols.T
    bases = []
    for gram in (gram_rows, gram_cols):
        values, vectors = np.linalg.eigh(gram)  # ascending
        keep = np.sqrt(np.maximum(values, 0) / values[-1]) > tolerance
        bases.append(vectors[:, keep][:, ::-1].copy())
    return bases[0], bases[1]


@lru_cache(maxsize=1)
def _blas_pools() -> ThreadpoolController:
    return ThreadpoolController()  # found once: limiting through it later costs ~50 us


@dataclass(frozen=True)
class Band:
    """The factored steering of bins [start, stop): S_k = (rows (x) cols) core_k."""

    start: int
    stop: int
    rows: object  # (36, Qr) float32
    cols: object  # (48, Qc) float32
    core: object  # (bins, Qr * Qc, M) complex64


class Beamformer:
    """Acoustic images of (128, 1024) blocks: holds the factored steering for one geometry on one backend.

    Per band of 32 bins, the steering of bin k is kept as a core G_k (Qr Qc x M) with
    S_k = (U_rows (x) U_cols) G_k (``separable_basis``): a frame is beamformed onto the
    Qr x Qc core grid (from 6 x 7 points in the lowest band to 16 x 19 in the top one, instead
    of 36 x 48), then expanded to 36 x 48 by two real matrix products shared by the band's
    bins and by every frame.
    """

    def __init__(self, geometry: Geometry | None = None, backend: str = "auto", batch_frames: int = 16,
                 tolerance: float = 1e-6, band_bins: int = 32, threads: int | None = 1):
        self.geometry = geometry or get_geometry()
        self.xp = xp = array_module(backend)
        self.backend = "numpy" if xp is np else "cupy"
        # BLAS threads for NumPy (None: BLAS's own default). One by default: the products are
        # small and many, and OpenBLAS threads spinning on cores shared with the rest of the
        # service (or other processes) made them 5-10x slower than one thread here.
        self.threads = threads
        self.batch_frames = batch_frames  # frames per pass: bounds the complex (36, 48, frames, band) intermediate
        window = block_window(self.geometry.nfft)
        self.active = xp.asarray(np.flatnonzero(self.geometry.active))
        self.window = xp.asarray(window, dtype=xp.float32)
        self.scale = xp.asarray(spectrum_scale(window), dtype=xp.complex64)
        self.bands: list[Band] = []
        with self._blas_limit():
            for k0, steering in steering_chunks(self.geometry, xp, group=band_bins):
                k1 = k0 + len(steering)
                rows, cols = separable_basis(self.geometry, sorted({k0, (k0 + k1) // 2, k1 - 1}), tolerance)
                rows, cols = xp.asarray(rows, dtype=xp.float32), xp.asarray(cols, dtype=xp.float32)
                self.bands.append(Band(k0, k1, rows, cols, self._project(rows, cols, steering)))

    def _blas_limit(self):
        if self.threads is None or self.xp is not np:
            return contextlib.nullcontext()
        return _blas_pools().limit(limits=self.threads, user_api="blas")

    @property
    def core_bytes(self) -> int:
        return sum(band.core.nbytes for band in self.bands)

    def _project(self, rows, cols, steering):
        """Core steering (bins, Qr Qc, M) of full steering (bins, 1728, M): two large real GEMMs on float views."""
        xp, (n_bins, _, n_mics) = self.xp, steering.shape
        qr, qc = rows.shape[1], cols.shape[1]
        parts = xp.ascontiguousarray(steering.reshape(n_bins, GRID_ROWS, -1).transpose(1, 0, 2))  # (36, bins, 48 M)
        parts = (rows.T @ parts.view(xp.float32).reshape(GRID_ROWS, -1)).reshape(qr, n_bins, GRID_COLS, -1)
        parts = xp.ascontiguousarray(parts.transpose(2, 0, 1, 3))  # (48, Qr, bins, 2M)
        parts = (cols.T @ parts.reshape(GRID_COLS, -1)).reshape(qc, qr, n_bins, 2 * n_mics)
        parts = xp.ascontiguousarray(parts.transpose(2, 1, 0, 3))  # (bins, Qr, Qc, 2M)
        return parts.view(xp.complex64).reshape(n_bins, qr * qc, n_mics)

    def _as_blocks(self, blocks) -> tuple[object, bool]:
        x = self.xp.asarray(blocks, dtype=self.xp.float32)
        single = x.ndim == 2
        x = x[None] if single else x
        expected = (self.geometry.n_mics, self.geometry.nfft)
        if x.ndim != 3 or tuple(x.shape[1:]) != expected:
            raise BadInput(f"blocks must be {expected} or (frames, *{expected}); got {tuple(np.shape(blocks))}")
        return x, single

    def spectra(self, blocks) -> object:
        """Scaled spectra (frames, 512, working mics) complex64 on the backend, per the module formula."""
        x, _ = self._as_blocks(blocks)
        xp = self.xp
        spec = xp.fft.rfft(x[:, self.active, :] * self.window, axis=-1)[..., :N_BINS].astype(xp.complex64, copy=False)
        spec *= self.scale
        return spec.transpose(0, 2, 1)

    def _band_power(self, band: Band, spec, out) -> None:
        """Write the power (frames, 36, 48, bins) of spectra (bins, M, frames) for ``band`` into ``out``."""
        xp = self.xp
        n_bins, _, n_frames = spec.shape
        qr, qc = band.rows.shape[1], band.cols.shape[1]
        z = xp.matmul(band.core, spec)  # (bins, Qr Qc, frames): the core is read once per batch of frames
        z = xp.ascontiguousarray(z.reshape(n_bins, qr, qc, n_frames).transpose(3, 1, 2, 0))  # (frames, Qr, Qc, bins)
        z = z.view(xp.float32).reshape(n_frames, qr, -1)  # the real expansions act on re and im alike
        z = xp.matmul(band.rows, z).reshape(n_frames, GRID_ROWS, qc, -1)  # (frames, 36, Qc, 2 bins)
        y = xp.matmul(band.cols, z).view(xp.complex64)  # (frames, 36, 48, bins), the layout of out
        xp.multiply(y.real, y.real, out=out)
        out += y.imag * y.imag

    def images(self, blocks, to_numpy: bool = True, out=None):
        """Power maps (36, 48, 512) or (frames, 36, 48, 512) float32 in Pa^2; NumPy unless to_numpy=False.

        ``out``: a float32 array of the result's shape on the backend to write into (e.g. a reused
        buffer or a slice of a memory-mapped file), saving the allocation and its page faults.
        """
        x, single = self._as_blocks(blocks)
        xp = self.xp
        shape = (x.shape[0], GRID_ROWS, GRID_COLS, N_BINS)
        if out is None:
            out = xp.empty(shape[1:] if single else shape, dtype=xp.float32)
        elif tuple(out.shape) != (shape[1:] if single else shape) or out.dtype != np.float32:
            raise BadInput(f"out must be float32 {shape[1:] if single else shape}; got {out.dtype} {tuple(out.shape)}")
        frames_out = out[None] if single else out
        with self._blas_limit():
            for f0 in range(0, x.shape[0], self.batch_frames):
                spec = xp.ascontiguousarray(self.spectra(x[f0:f0 + self.batch_frames]).transpose(1, 2, 0))  # (512, M, F)
                for band in self.bands:
                    self._band_power(band, spec[band.start:band.stop],
                                     frames_out[f0:f0 + spec.shape[2], ..., band.start:band.stop])
        return xp.asnumpy(out) if to_numpy and xp is not np else out
