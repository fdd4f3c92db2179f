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
(``separable_basis``): a frame is beamformed onto a core grid of at most 16 x 19 points (G_k,
87 MB in all, carrying the spectrum scale; one product per bin, batched over frames), then
expanded to 36 x 48 by two real matrix products per band shared by its bins and frames. Maps
equal the dense ones to ~2e-5 of each bin's peak.

Backends: ``numba`` (the CPU default) runs the expansion, squaring and bin-last write as one
compiled pass (``beamform_numba``); ``numpy`` is the reference, written against the array module
``xp`` so that the same code runs on CuPy (``cupy``). NumPy alone takes a few measured detours
(SciPy's FFT, ``vecdot`` for one frame).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import scipy.fft
from scipy.signal.windows import tukey

from ..errors import BadInput
from ..geometry import BLOCK_SAMPLES, N_BINS, SPEED_OF_SOUND, Geometry, get_geometry
from ..threads import limit_threads

# A NumPy or a CuPy array (the same code runs on both; CuPy has no type information).
XArray = Any

try:  # a core dependency; without it (a bare GPU image, say) "auto" falls back to the NumPy reference
    import numba

    from . import beamform_numba
except ImportError:
    numba = beamform_numba = None  # type: ignore[assignment]

TUKEY_ALPHA = 0.75  # the MFCC recipe's window (SPEC), shared so one FFT serves both
BACKENDS = ("auto", "numba", "numpy", "cupy")
CACHE_FORMAT = 1  # bump whenever the stored bases or cores change meaning
EXPAND_FRAMES = 2  # frames expanded together: their (frames, 36, 48, 512) intermediates stay in cache
FEW_FRAMES = 2  # numba: up to this many frames per pass stream the core with its own kernel, more use BLAS


def array_module(backend: str = "auto") -> ModuleType:
    """The array module (numpy or cupy) for a backend name; "auto" picks CuPy when a GPU is present."""
    if backend not in BACKENDS:
        raise BadInput(f"unknown beamforming backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend in ("numpy", "numba"):
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


def resolve_backend(backend: str = "auto") -> str:
    """The implementation a backend name runs here: "cupy" (a GPU), "numba" (compiled CPU) or "numpy" (reference).

    "auto" picks CuPy when it sees a CUDA device, else numba when it imports, else NumPy.
    """
    if array_module(backend) is not np:
        return "cupy"
    if backend == "numpy":
        return "numpy"
    if beamform_numba is None:
        if backend == "numba":
            raise BadInput("backend 'numba' needs numba, and it does not import here")
        return "numpy"
    return "numba"


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


def focus_phase(geometry: Geometry) -> np.ndarray:
    """Steering phase per bin, 2 pi f_1 (r_pm - r_p0) / c (points, working mics) in radians, float64."""
    return 2 * np.pi * (geometry.sample_rate / geometry.nfft) * focus_path_differences(geometry) / SPEED_OF_SOUND


def _cis(angle, xp: ModuleType) -> XArray:
    """exp(j angle) as complex64 from float32 cos and sin (SIMD, ~10x a complex128 exp); angle is reduced
    to [-pi, pi) in float64 first so float32 loses nothing for large bins."""
    angle = xp.remainder(angle + np.pi, 2 * np.pi).astype(xp.float32) - np.float32(np.pi)
    return (xp.cos(angle) + 1j * xp.sin(angle)).astype(xp.complex64, copy=False)


def steering_chunks(
    geometry: Geometry, xp: ModuleType = np, group: int = 32, phase: np.ndarray | None = None
) -> Iterator[tuple[int, XArray]]:
    """(first bin, conj(h) for bins first..first+group) as (group, points, working mics) complex64 on ``xp``.

    Built as exp(j k phi) = exp(j (group q) phi) * exp(j r phi) for k = group q + r: only
    (512 / group + group) complex exponentials per point-mic pair instead of 512, so the build is
    one broadcast multiply per group of bins (about 10x faster than exponentiating 111 M phases).
    """
    phase = xp.asarray(focus_phase(geometry) if phase is None else phase)  # rad per bin
    n_mics = phase.shape[1]
    fine = _cis(xp.arange(group, dtype=xp.float64)[:, None, None] * phase, xp) * np.float32(1 / n_mics)
    for k0 in range(0, geometry.n_bins, group):
        yield k0, fine[: geometry.n_bins - k0] * _cis(k0 * phase, xp)


def steering_matrices(geometry: Geometry | None = None, xp: ModuleType = np) -> XArray:
    """conj(h): (512, points, working mics) complex64 (~0.9 GB), so that map_k = |S_k @ X_k|^2 exactly."""
    return xp.concatenate([chunk for _, chunk in steering_chunks(geometry or get_geometry(), xp)])


def separable_basis(
    geometry: Geometry, bins: Iterable[int], tolerance: float = 1e-6, phase: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal real bases (36, Qr) over grid rows and (48, Qc) over grid columns for ``bins``, float64.

    Every steering column (one bin, one mic), seen as a 36 x 48 image, is smooth: with the
    phase referred to the array centre it turns by at most k |m| / z (~0.5 rad per acoustic pixel
    at the top bin, far less below). So the columns of a band of bins lie, to ``tolerance`` of
    their norm, in span(rows) x span(cols): the leading eigenvectors of the real Gram matrices
    Re(A A^H) of the row and column unfoldings of the given bins' steering, in float64.
    """
    phase = focus_phase(geometry) if phase is None else phase
    n_rows, n_cols = geometry.grid_shape
    images = phase.reshape(n_rows, n_cols, -1)
    gram_rows, gram_cols = np.zeros((n_rows, n_rows)), np.zeros((n_cols, n_cols))
    for k in bins:
        # exp(j k phi) as interleaved (re, im) float64 (SIMD cos and sin, ~3x a complex exp): Re(A A^H) is
        # the real Gram of this view
        a = np.empty(images.shape + (2,))
        np.cos(k * images, out=a[..., 0])
        np.sin(k * images, out=a[..., 1])
        a = a.reshape(n_rows, n_cols, -1)
        rows = a.reshape(n_rows, -1)
        gram_rows += rows @ rows.T
        gram_cols += np.matmul(a, a.transpose(0, 2, 1)).sum(axis=0)  # per grid row, so no transposed copy
    bases = []
    for gram in (gram_rows, gram_cols):
        values, vectors = np.linalg.eigh(gram)  # ascending
        keep = np.sqrt(np.maximum(values, 0) / values[-1]) > tolerance
        bases.append(vectors[:, keep][:, ::-1].copy())
    return bases[0], bases[1]


@dataclass(frozen=True)
class _KernelLayout:
    """Every band's bases and core-field offsets as flat arrays, the form the compiled kernels take."""

    rows: np.ndarray  # every band's (36, Qr) basis, flattened and concatenated, float32
    rows_offsets: np.ndarray
    cols: np.ndarray  # likewise (48, Qc)
    cols_offsets: np.ndarray
    grids: np.ndarray  # (bands, 2): Qr, Qc
    bins: np.ndarray  # (bands, 2): start, stop
    cores: np.ndarray  # every band's core, concatenated, as interleaved float32 (the bands hold views of it)
    cores_offsets: np.ndarray
    z_offsets: np.ndarray  # where each band's core fields (frames, bins, Qr Qc) start, per frame of the batch
    z_size: int  # core-field values per frame
    work_values: int  # float32 values of the largest band's intermediates in the expansion

    @classmethod
    def of(cls, bands: list[Band], n_cols: int) -> tuple[_KernelLayout, list[Band]]:
        """The layout, and the same bands with their cores moved into its one buffer (``n_cols``: grid columns)."""

        def offsets(sizes):
            return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

        def flat(arrays):
            return (
                np.concatenate([np.ascontiguousarray(a, np.float32).ravel() for a in arrays]),
                offsets([a.size for a in arrays]),
            )

        rows, rows_offsets = flat([band.rows for band in bands])
        cols, cols_offsets = flat([band.cols for band in bands])
        cores, cores_offsets = np.empty(sum(band.core.size for band in bands), np.complex64), []
        moved, at = [], 0
        for band in bands:
            view = cores[at : at + band.core.size].reshape(band.core.shape)
            view[...] = band.core
            moved.append(replace(band, core=view))
            cores_offsets.append(2 * at)  # in float32 values
            at += band.core.size
        sizes = [band.core.shape[0] * band.core.shape[1] for band in bands]
        layout = cls(
            rows,
            rows_offsets,
            cols,
            cols_offsets,
            np.array([[band.rows.shape[1], band.cols.shape[1]] for band in bands], np.int64),
            np.array([[band.start, band.stop] for band in bands], np.int64),
            cores.view(np.float32),
            np.array(cores_offsets, np.int64),
            offsets(sizes),
            int(sum(sizes)),
            beamform_numba.work_values(
                [(b.rows.shape[1], b.cols.shape[1]) for b in bands], [(b.start, b.stop) for b in bands], n_cols
            ),
        )
        return layout, moved


@dataclass(frozen=True)
class Band:
    """The factored steering of bins [start, stop): S_k = (rows (x) cols) core_k."""

    start: int
    stop: int
    rows: XArray  # (36, Qr) float32
    cols: XArray  # (48, Qc) float32
    core: XArray  # (bins, Qr * Qc, M) complex64, times the bins' spectrum scale


class Beamformer:
    """Acoustic images of (128, 1024) blocks: holds the factored steering for one geometry on one backend.

    Per band of ``band_bins`` bins (the last one shorter when they do not divide 512), the
    steering of bin k is kept as a core G_k (Qr Qc x M) with S_k = (U_rows (x) U_cols) G_k
    (``separable_basis``): a frame is beamformed onto the Qr x Qc core grid (from 6 x 7 points
    in the lowest 32-bin band to 16 x 19 in the top one, instead of 36 x 48), then expanded to
    36 x 48 by two real matrix products shared by the band's bins and by every frame.

    ``backend``: see ``resolve_backend`` (``.backend`` says which one runs). ``cache_dir``: where
    the factored steering is kept between start-ups (None: built every time; the edges pass
    their settings' cache directory).
    """

    def __init__(
        self,
        geometry: Geometry | None = None,
        backend: str = "auto",
        batch_frames: int = 32,
        tolerance: float = 1e-6,
        band_bins: int = 32,
        threads: int | None = 1,
        cache_dir: str | Path | None = None,
    ):
        self.geometry = geometry = geometry or get_geometry()
        self.backend = resolve_backend(backend)
        self.xp = xp = array_module(self.backend)
        # BLAS and numba threads on the CPU (None: the process's CPU budget; never more than it). One
        # by default: the products are small and many, and OpenBLAS threads spinning on cores shared
        # with the rest of the service (or other processes) made them 5-10x slower than one thread here.
        self.threads = threads
        self.batch_frames = batch_frames  # frames per core product: the core is read once per batch
        window = block_window(geometry.nfft)
        self.active = xp.asarray(np.flatnonzero(geometry.active))
        self.window = xp.asarray(window, dtype=xp.float32)
        self.scale = xp.asarray(spectrum_scale(window, geometry.n_bins), dtype=xp.complex64)
        # SciPy's float32 FFT is ~4x NumPy's here; CuPy has its own
        self._fft = scipy.fft if xp is np else xp.fft
        if not 1 <= band_bins <= geometry.n_bins:
            raise BadInput(f"band_bins must be 1 .. {geometry.n_bins}; got {band_bins}")
        path = self._cache_path(cache_dir, tolerance, band_bins) if cache_dir is not None else None
        # the factored steering, from the on-disk cache when this geometry and grid were built before
        self.bands: list[Band] = self._load(path) if path is not None and path.exists() else []
        if not self.bands:
            self._build(tolerance, band_bins)
            if path is not None:
                self._store(path)
        if self.backend == "numba":
            self._layout, self.bands = _KernelLayout.of(self.bands, geometry.grid_cols)
            self._work = threading.local()  # per calling thread: concurrent images() calls never share it

    def _build(self, tolerance: float, band_bins: int) -> None:
        geometry, xp = self.geometry, self.xp
        phase = focus_phase(geometry)
        n_mics = phase.shape[1]
        for k0 in range(0, geometry.n_bins, band_bins):
            k1 = min(k0 + band_bins, geometry.n_bins)
            rows, cols = separable_basis(geometry, sorted({k0, (k0 + k1) // 2, k1 - 1}), tolerance, phase)
            core = xp.empty((k1 - k0, rows.shape[1] * cols.shape[1], n_mics), xp.complex64)
            rows, cols = xp.asarray(rows, dtype=xp.float32), xp.asarray(cols, dtype=xp.float32)
            self.bands.append(Band(k0, k1, rows, cols, core))
        # the dense steering is generated 8 bins at a time (14 MB, a working set that stays in the
        # last-level cache) and projected at once; 8 bins never straddle a band (both start at multiples of 8)
        with self._thread_limit():
            for k0, steering in steering_chunks(geometry, xp, group=math.gcd(band_bins, 8), phase=phase):
                band = self.bands[k0 // band_bins]
                self._project(band, steering, band.core[k0 - band.start : k0 - band.start + len(steering)])
            for band in self.bands:  # the spectrum scale, folded in once instead of applied to every frame
                xp.multiply(band.core, self.scale[band.start : band.stop, None, None], out=band.core)

    def _cache_path(self, cache_dir: str | Path, tolerance: float, band_bins: int) -> Path:
        """Where the bases and cores of this geometry, grid and factorisation are kept (an 87 MB .npz)."""
        g = self.geometry
        key = hashlib.sha256()
        for array in (g.mics[g.active], g.grid_points):
            key.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        settings = (CACHE_FORMAT, g.sample_rate, g.nfft, SPEED_OF_SOUND, TUKEY_ALPHA, tolerance, band_bins)
        key.update(repr(settings).encode())
        return Path(cache_dir) / "beamform" / f"steering-{key.hexdigest()[:20]}.npz"

    def _load(self, path: Path) -> list[Band]:
        """The cached bands (~0.1 s instead of ~1 s of building), or [] if the file cannot be read."""
        xp = self.xp
        try:
            with np.load(path) as stored:
                return [
                    Band(
                        int(start),
                        int(start) + len(stored[f"core{i}"]),
                        xp.asarray(stored[f"rows{i}"]),
                        xp.asarray(stored[f"cols{i}"]),
                        xp.asarray(stored[f"core{i}"]),
                    )
                    for i, start in enumerate(stored["starts"])
                ]
        except Exception:  # torn or foreign file: build again (and overwrite it)
            return []

    def _store(self, path: Path) -> None:
        """Write the bands next to their final name, then rename: readers never see a partial file."""
        as_numpy = (lambda a: a) if self.xp is np else self.xp.asnumpy
        arrays: dict[str, Any] = {"starts": np.array([band.start for band in self.bands])}
        for i, band in enumerate(self.bands):
            arrays.update(
                {f"rows{i}": as_numpy(band.rows), f"cols{i}": as_numpy(band.cols), f"core{i}": as_numpy(band.core)}
            )
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        except OSError:  # a read-only or full disk only costs the next start-up its build
            tmp.unlink(missing_ok=True)

    def _thread_limit(self):
        """BLAS and numba held to ``self.threads`` (within the CPU budget) on the CPU; nothing to hold on a GPU."""
        return limit_threads(self.threads) if self.xp is np else contextlib.nullcontext()

    @property
    def core_bytes(self) -> int:
        return sum(band.core.nbytes for band in self.bands)

    def _project(self, band: Band, steering, out) -> None:
        """Write the core (bins, Qr Qc, M) of dense steering (bins, 1728, M): two batched real GEMMs on float views."""
        xp, (n_bins, _, n_mics) = self.xp, steering.shape
        qr, qc = band.rows.shape[1], band.cols.shape[1]
        n_rows, n_cols = self.geometry.grid_shape
        parts = steering.view(xp.float32).reshape(n_bins, n_rows, -1)  # (bins, 36, 48 x 2M)
        parts = xp.matmul(band.rows.T, parts).reshape(n_bins, qr, n_cols, 2 * n_mics)
        xp.matmul(band.cols.T, parts, out=out.view(xp.float32).reshape(n_bins, qr, qc, 2 * n_mics))

    def _as_blocks(self, blocks) -> tuple[XArray, bool]:
        x = self.xp.asarray(blocks, dtype=self.xp.float32)
        single = x.ndim == 2
        x = x[None] if single else x
        expected = (self.geometry.n_mics, self.geometry.nfft)
        if x.ndim != 3 or tuple(x.shape[1:]) != expected:
            raise BadInput(f"blocks must be {expected} or (frames, *{expected}); got {tuple(np.shape(blocks))}")
        return x, single

    def spectra(self, blocks) -> XArray:
        """Scaled spectra (frames, 512, working mics) complex64 on the backend, per the module formula."""
        x, _ = self._as_blocks(blocks)
        return self._spectra(x).transpose(2, 0, 1) * self.scale[:, None]

    def _spectra(self, x) -> XArray:
        """Unscaled spectra (512, M, frames) complex64, contiguous: the layout of the core products (which
        carry the per-bin scale)."""
        x = x[:, self.active, :]  # a copy (fancy index), windowed in place
        x *= self.window
        raw = self._fft.rfft(x, axis=-1)
        n_bins = self.geometry.n_bins
        spec = self.xp.empty((n_bins, raw.shape[1], raw.shape[0]), self.xp.complex64)
        spec[...] = raw[..., :n_bins].transpose(2, 1, 0)
        return spec

    def _core_planes(self, band: Band, spec) -> XArray:
        """Fields on the band's core grid as real and imaginary planes (Qc, frames, Qr, 2, bins) float32, of
        spectra (bins, M, frames): the layout in which both expansions are plain real GEMMs."""
        xp = self.xp
        n_bins, _, n_frames = spec.shape
        qr, qc = band.rows.shape[1], band.cols.shape[1]
        if n_frames == 1 and xp is np and hasattr(np, "vecdot"):
            # one frame: NumPy's matrix-vector matmul reads the core at ~8 GB/s here, vecdot
            # (sum of conj(a) b, hence the conj) at the stream rate (~20 GB/s)
            z = np.vecdot(spec[:, None, :, 0].conj(), band.core)
        else:
            z = xp.matmul(band.core, spec)  # a batch reads the core once
        z = z.view(xp.float32).reshape(n_bins, qr, qc, n_frames, 2)  # z is contiguous: (re, im) pairs last
        return xp.ascontiguousarray(z.transpose(2, 3, 1, 4, 0))

    def _band_power(self, band: Band, planes, out) -> None:
        """Write the band's maps into ``out`` (frames, 36, 48, bins) of core-grid planes (Qc, frames, Qr, 2, bins)."""
        xp = self.xp
        qc, n_frames, qr, _, n_bins = planes.shape
        y = xp.matmul(band.cols, planes.reshape(qc, -1)).reshape(band.cols.shape[0], n_frames, qr, 2, n_bins)
        y = xp.ascontiguousarray(y.transpose(1, 3, 2, 0, 4)).reshape(n_frames, 2, qr, -1)  # (frames, 2, Qr, 48 x bins)
        # one product per plane: OpenBLAS ran (36 x Qr) @ (Qr x 3072) at half the speed of two 1536-column halves
        y = xp.matmul(band.rows, y)  # (frames, 2, 36, 48 x bins)
        # plain operators, no out= into views: the same lines must run on CuPy
        out[...] = (y[:, 0] * y[:, 0] + y[:, 1] * y[:, 1]).reshape(out.shape)

    def images(self, blocks, to_numpy: bool = True, out=None):
        """Power maps (36, 48, 512) or (frames, 36, 48, 512) float32 in Pa^2; NumPy unless to_numpy=False.

        ``out``: a float32 array of the result's shape on the backend to write into (e.g. a reused
        buffer or a slice of a memory-mapped file), saving the allocation and its page faults.
        """
        x, single = self._as_blocks(blocks)
        xp = self.xp
        shape = (x.shape[0], *self.geometry.grid_shape, self.geometry.n_bins)
        if out is None:
            out = xp.empty(shape[1:] if single else shape, dtype=xp.float32)
        elif tuple(out.shape) != (shape[1:] if single else shape) or out.dtype != np.float32:
            raise BadInput(f"out must be float32 {shape[1:] if single else shape}; got {out.dtype} {tuple(out.shape)}")
        frames_out = out[None] if single else out
        with self._thread_limit():
            for f0 in range(0, x.shape[0], self.batch_frames):
                batch, maps = x[f0 : f0 + self.batch_frames], frames_out[f0 : f0 + self.batch_frames]
                if self.backend == "numba":
                    self._images_compiled(batch, maps)
                else:
                    self._images_reference(batch, maps)
        return xp.asnumpy(out) if to_numpy and xp is not np else out

    def _images_reference(self, x, maps) -> None:
        """NumPy / CuPy: maps (F, 36, 48, 512) of blocks (F, 128, 1024) through array operations."""
        spec = self._spectra(x)  # (512, M, F)
        planes = []  # per band (Qc, F, Qr, 2, bins): made on first use, while its core product is in cache
        for g0 in range(0, spec.shape[2], EXPAND_FRAMES):  # a few frames at a time: they stay in cache
            g = min(EXPAND_FRAMES, spec.shape[2] - g0)
            for b, band in enumerate(self.bands):
                if g0 == 0:
                    planes.append(self._core_planes(band, spec[band.start : band.stop]))
                self._band_power(band, planes[b][:, g0 : g0 + g], maps[g0 : g0 + g, :, :, band.start : band.stop])

    def _images_compiled(self, x, maps) -> None:
        """numba: maps (F, 36, 48, 512) of blocks (F, 128, 1024): the core products (a streaming kernel for a
        few frames, BLAS for more), then one fused pass per frame and band for expansion, square and write."""
        x = x[:, self.active, :]
        x *= self.window
        raw = self._fft.rfft(x, axis=-1)  # (F, M, 513)
        n_frames = raw.shape[0]
        n_bins = self.geometry.n_bins
        spec = np.empty((n_bins, n_frames, raw.shape[1]), np.complex64)  # (512, F, M): rows of spec @ core^T
        spec[...] = raw[..., :n_bins].transpose(2, 0, 1)
        layout = self._layout
        z = np.empty(layout.z_size * n_frames, np.complex64)
        if n_frames <= FEW_FRAMES:
            beamform_numba.core_products(
                layout.cores, layout.cores_offsets, layout.grids, layout.bins, spec, z, layout.z_offsets * n_frames
            )
        else:  # a batch reads each band's core once, at the complex GEMM rate
            for band, offset in zip(self.bands, layout.z_offsets):
                n_bins, n_q, _ = band.core.shape
                fields = z[offset * n_frames : (offset + n_bins * n_q) * n_frames].reshape(n_frames, n_bins, n_q)
                # frame-major fields (BLAS writes the strided view directly): the expansion reads one frame's block
                np.matmul(spec[band.start : band.stop], band.core.transpose(0, 2, 1), out=fields.transpose(1, 0, 2))
        work = getattr(self._work, "rows", None)  # a band's intermediates per kernel thread, kept between calls
        if work is None or len(work) < numba.get_num_threads():
            work = self._work.rows = np.empty((numba.get_num_threads(), layout.work_values), np.float32)
        beamform_numba.expand_power(
            z,
            layout.z_offsets * n_frames,
            layout.rows,
            layout.rows_offsets,
            layout.cols,
            layout.cols_offsets,
            layout.grids,
            layout.bins,
            maps,
            work,
        )
