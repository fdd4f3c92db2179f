"""Frequency-domain delay-and-sum beamforming of sensor blocks into acoustic images.

For one block ``x`` (channels, 1024) the map is, per focus point p and FFT bin k,

    power[p, k] = | sum_m conj(h[k, p, m]) X[m, k] |^2,   h[k, p, m] = exp(-j w_k (r_pm - r_p0) / c) / M

where ``X = rfft(tukey(1024, 0.75) * x)[:, :512] * scale`` over the M working microphones,
``r_pm`` is the distance from focus point p (on the plane at the focus distance) to microphone m,
``r_p0`` its distance to the array centre, and ``w_k = 2 pi k 12288 / 1024``. This is Acoular's
``BeamformerBase(steer_type="classic", r_diag=False)`` applied to the rank-one cross-spectral
matrix ``X X^H`` of the block. ``scale`` is ``sqrt(2) / sum(window)`` (``1 / sum(window)`` for
bin 0), so a sine of amplitude A (Pa) at a bin centre, focused on its source, reads A^2 / 2 (Pa^2).

The same array code runs on NumPy and CuPy (``xp``). Steering is precomputed once as complex64
(512 x 1728 x M, ~0.9 GB) and frames are batched so that each bin's steering matrix is read once
per batch: the map of a batch is one matrix product per bin, (1728 x M) @ (M x frames).
"""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np
from scipy.signal.windows import tukey

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
        raise BadInput("backend 'cupy' needs CuPy and a CUDA device; neither is usable here")
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


def steering_matrices(geometry: Geometry | None = None, xp: ModuleType = np, group: int = 32) -> object:
    """conj(h): (512, points, working mics) complex64 on ``xp``, so that map_k = |S_k @ X_k|^2.

    Built as exp(j k phi) = exp(j (group q) phi) * exp(j r phi) for k = group q + r: only
    (512 / group + group) complex exponentials per element pair instead of 512, so the build is
    one broadcast multiply per group of bins (about 10x faster than exponentiating 111 M phases).
    """
    geometry = geometry or get_geometry()
    bin_hz = geometry.sample_rate / geometry.nfft
    phase = xp.asarray(2 * np.pi * bin_hz * focus_path_differences(geometry) / SPEED_OF_SOUND)  # rad per bin
    n_points, n_mics = phase.shape
    fine = (xp.exp(1j * xp.arange(group, dtype=xp.float64)[:, None, None] * phase) / n_mics).astype(xp.complex64)
    steering = xp.empty((N_BINS, n_points, n_mics), dtype=xp.complex64)
    for k0 in range(0, N_BINS, group):
        coarse = xp.exp(1j * k0 * phase).astype(xp.complex64)
        xp.multiply(fine[: N_BINS - k0], coarse, out=steering[k0:k0 + group])
    return steering


class Beamformer:
    """Acoustic images of (128, 1024) blocks: holds the steering for one geometry on one backend."""

    def __init__(self, geometry: Geometry | None = None, backend: str = "auto", batch_frames: int = 64,
                 bins_per_step: int = 16):
        self.geometry = geometry or get_geometry()
        self.xp = array_module(backend)
        self.backend = "numpy" if self.xp is np else "cupy"
        self.batch_frames = batch_frames  # frames sharing one read of the steering
        self.bins_per_step = bins_per_step  # bins per matmul call: bounds the complex intermediate
        window = block_window(self.geometry.nfft)
        self.active = self.xp.asarray(np.flatnonzero(self.geometry.active))
        self.window = self.xp.asarray(window, dtype=self.xp.float32)
        self.scale = self.xp.asarray(spectrum_scale(window), dtype=self.xp.complex64)
        self.steering = steering_matrices(self.geometry, self.xp)

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
        spec = xp.fft.rfft(x[:, self.active, :] * self.window, axis=-1)[..., :N_BINS]
        return (spec * self.scale).astype(xp.complex64).transpose(0, 2, 1)

    def _apply_steering(self, steering, spec):
        """S_k @ X_k per bin: (bins, points, mics) x (bins, mics, frames) -> (bins, points, frames)."""
        if spec.shape[2] == 1:
            # one frame is memory-bound (each steering element is used once): a plain
            # single-threaded loop streams as fast as BLAS gemv and avoids BLAS threads spinning
            # against each other when the cores are shared
            return self.xp.einsum("kpm,kmf->kpf", steering, spec)
        return self.xp.matmul(steering, spec)

    def images(self, blocks, to_numpy: bool = True):
        """Power maps (36, 48, 512) or (frames, 36, 48, 512) float32 in Pa^2; NumPy unless to_numpy=False."""
        x, single = self._as_blocks(blocks)
        xp = self.xp
        n_frames, n_points = x.shape[0], self.steering.shape[1]
        out = xp.empty((n_frames, n_points, N_BINS), dtype=xp.float32)
        for f0 in range(0, n_frames, self.batch_frames):
            spec = xp.ascontiguousarray(self.spectra(x[f0:f0 + self.batch_frames]).transpose(1, 2, 0))  # (512, M, b)
            for k0 in range(0, N_BINS, self.bins_per_step):
                k1 = k0 + self.bins_per_step
                y = self._apply_steering(self.steering[k0:k1], spec[k0:k1])  # (bins, points, b)
                out[f0:f0 + spec.shape[2], :, k0:k1] = (y.real * y.real + y.imag * y.imag).transpose(2, 1, 0)
        out = out.reshape(n_frames, GRID_ROWS, GRID_COLS, N_BINS)
        out = out[0] if single else out
        return xp.asnumpy(out) if to_numpy and xp is not np else out
