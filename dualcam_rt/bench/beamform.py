"""Beamforming speed: frames/s single-frame and batched per backend, against Acoular on the same map.

One run measures, on the same simulated blocks: the steering build time (and the start-up from
its on-disk cache); NumPy (and CuPy when a
GPU is present) frames/s one frame per call and ``BATCH`` frames per call; the naive method (dense
precomputed steering, ~0.9 GB re-read per frame) as a second baseline; Acoular's
``BeamformerBase`` (classic steering, full CSM) for the same 512-bin map, run in a fresh process
that imports Acoular before NumPy so its numba kernels may run in parallel; and this machine's
roofline ceilings for the factored algorithm (see ``_roofline``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import report
from ..dsp.beamform import Beamformer, array_module, steering_matrices
from ..geometry import GRID_COLS, GRID_ROWS, N_BINS

BATCH = 32
SINGLE_SECONDS = 4.0  # time budget of the single-frame loop per backend

_ACOULAR_SCRIPT = """
import sys, time
import acoular  # first, so numba may run in parallel
import numpy as np
acoular.config.global_caching = "none"
d = np.load(sys.argv[1])
mics = acoular.MicGeom(pos_total=d["mics"], invalid_channels=[int(c) for c in d["dead"]])
steer = acoular.SteeringVector(grid=acoular.ImportGrid(pos=d["grid"]), mics=mics, steer_type="classic",
                               env=acoular.Environment(c=float(d["c"])))
def run(csm, freqs):
    bf = acoular.BeamformerBase(freq_data=acoular.PowerSpectraImport(csm=csm, frequencies=freqs), steer=steer,
                                r_diag=False)
    return np.asarray(bf.result[:])
run(d["csm"][:2], d["freqs"][:2])  # numba compilation, not counted
t = time.perf_counter()
run(d["csm"], d["freqs"])
print(time.perf_counter() - t)
"""


def _blocks(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 128, 1024)).astype(np.float32) * 0.05


def _sync(xp) -> None:
    if xp is not np:
        xp.cuda.Stream.null.synchronize()


def _backend_figures(backend: str) -> tuple[dict, Beamformer]:
    xp = array_module(backend)
    t, cpu = time.perf_counter(), time.process_time()
    bf = Beamformer(backend=backend, cache=False)  # the build itself, whatever the cache holds
    _sync(xp)
    build_s, build_cpu_s = time.perf_counter() - t, time.process_time() - cpu
    with tempfile.TemporaryDirectory() as tmp:  # and the start-up from the on-disk cache
        Beamformer(backend=backend, cache_dir=tmp)
        t = time.perf_counter()
        Beamformer(backend=backend, cache_dir=tmp)
        _sync(xp)
        cached_s = time.perf_counter() - t
    single = xp.asarray(_blocks(1)[0])
    bf.images(single, to_numpy=False)  # warm-up (FFT plans, page faults)
    _sync(xp)
    n, t, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t < SINGLE_SECONDS and n < 2000:
        bf.images(single, to_numpy=False)
        _sync(xp)
        n += 1
    single_fps = n / (time.perf_counter() - t)
    single_cpu_ms = (time.process_time() - cpu) / n * 1e3
    batch = xp.asarray(_blocks(BATCH, seed=1))
    out = bf.images(batch, to_numpy=False)  # then reused, as a pipeline recycling its buffers would
    _sync(xp)
    reps, t, cpu = 2, time.perf_counter(), time.process_time()
    for _ in range(reps):
        bf.images(batch, to_numpy=False, out=out)
    _sync(xp)
    batched_fps = reps * BATCH / (time.perf_counter() - t)
    batched_cpu_ms = (time.process_time() - cpu) / (reps * BATCH) * 1e3
    figures = {}
    if xp is np and (os.cpu_count() or 1) > 1:  # the same batch with BLAS on every core
        one_thread, bf.threads = bf.threads, os.cpu_count()
        t = time.perf_counter()
        bf.images(batch, out=out)
        figures["batched_fps_all_threads"] = BATCH / (time.perf_counter() - t)
        bf.threads = one_thread
    # CPU time per frame (all threads): a shared machine inflates wall time far more than this
    return {"steering_build_s": build_s, "steering_build_cpu_s": build_cpu_s, "steering_cached_s": cached_s,
            "single_fps": single_fps,
            "batched_fps": batched_fps, "single_cpu_ms_per_frame": single_cpu_ms,
            "batched_cpu_ms_per_frame": batched_cpu_ms, **figures}, bf


def _dense_baseline(bf: Beamformer, blocks: np.ndarray) -> dict:
    """The naive method on the same frames: dense precomputed steering, one (1728 x M) product per bin."""
    steering = steering_matrices(bf.geometry)
    spec = np.ascontiguousarray(bf.spectra(blocks).transpose(1, 2, 0))  # (512, M, frames)

    def maps(x):
        y = np.einsum("kpm,kmf->kpf", steering, x) if x.shape[2] == 1 else np.matmul(steering, x)
        return y.real * y.real + y.imag * y.imag

    maps(spec[:, :, :1])
    t = time.perf_counter()
    for i in range(2):
        maps(spec[:, :, i:i + 1])
    single_fps = 2 / (time.perf_counter() - t)
    t = time.perf_counter()
    maps(spec)
    return {"single_fps": single_fps, "batched_fps": spec.shape[2] / (time.perf_counter() - t)}


def _roofline(bf: Beamformer) -> dict:
    """This machine's ceilings for the factored algorithm: stream bandwidth and complex64 GEMM rate.

    Single frame: every band's core steering is read once per frame (memory-bound). Batched: the
    core products (8 flops per core point, mic and bin) plus the two real expansions (columns, then
    rows; 2 flops per multiply-add, on re and im) per frame (compute-bound), or the complex
    intermediate and the float32 output streamed through memory, whichever is slower.
    """
    n_mics = bf.bands[0].core.shape[2]
    cores = np.concatenate([band.core.reshape(-1) for band in bf.bands])
    t = time.perf_counter()
    cores.view(np.float32).sum(dtype=np.float32)
    bandwidth = cores.nbytes / (time.perf_counter() - t)
    top = bf.bands[-1].core
    spec = np.ones((len(top), n_mics, 64), np.complex64)
    np.matmul(top, spec)
    t = time.perf_counter()
    np.matmul(top, spec)
    gemm_flops = top.size * 64 * 8 / (time.perf_counter() - t)
    flops = 0
    for band in bf.bands:
        qr, qc, n_bins = band.rows.shape[1], band.cols.shape[1], band.stop - band.start
        flops += n_bins * (qr * qc * n_mics * 8 + 2 * 2 * (GRID_COLS * qc * qr + GRID_ROWS * qr * GRID_COLS))
    dense_flops = N_BINS * GRID_ROWS * GRID_COLS * n_mics * 8
    stream_bytes = GRID_ROWS * GRID_COLS * N_BINS * (8 + 8 + 4)  # complex written and read, float32 written
    return {"core_steering_gb": cores.nbytes / 1e9, "dense_steering_gb": dense_flops / 1e9,
            "core_grids": [[band.rows.shape[1], band.cols.shape[1]] for band in bf.bands],
            "gflop_per_frame": flops / 1e9, "dense_gflop_per_frame": dense_flops / 1e9,
            "stream_gb_s": bandwidth / 1e9, "gemm_gflop_s": gemm_flops / 1e9,
            "single_fps_ceiling": bandwidth / cores.nbytes,
            "batched_fps_ceiling": min(gemm_flops / flops, bandwidth / stream_bytes)}


def _acoular_seconds_per_map(bf: Beamformer) -> float | None:
    """Acoular's time for one 512-bin map of the same geometry, or None if Acoular is not installed."""
    geometry = bf.geometry
    spectra = bf.spectra(_blocks(1)[0])[0].astype(np.complex128)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "map.npz"
        np.savez(data, mics=geometry.mics.T, dead=np.array(geometry.dead_channels), grid=geometry.grid_points.T,
                 freqs=geometry.frequencies, c=343.0, csm=spectra[:, :, None] * spectra[:, None, :].conj())
        done = subprocess.run([sys.executable, "-c", _ACOULAR_SCRIPT, str(data)], capture_output=True, text=True,
                              cwd=tmp, timeout=600)
    if done.returncode != 0:
        return None
    return float(done.stdout.strip().splitlines()[-1])


def run(as_json: bool = False) -> dict:
    """Figures of one run: {"numpy": {...}, "cupy": {...} (GPU only), "acoular": {...}, "roofline": {...}}."""
    figures: dict = {"machine": {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}}
    figures["numpy"], bf = _backend_figures("numpy")
    if array_module("auto") is not np:
        figures["cupy"] = _backend_figures("cupy")[0]
    figures["numpy"]["blas_threads"] = bf.threads
    with bf._blas_limit():  # the baseline and the ceilings under the same thread budget
        dense = figures["numpy_dense"] = _dense_baseline(bf, _blocks(BATCH, seed=1))
        figures["roofline"] = _roofline(bf)
    # the factored method against the dense one, both measured above in this run
    dense["factored_speedup_single"] = figures["numpy"]["single_fps"] / dense["single_fps"]
    dense["factored_speedup_batched"] = figures["numpy"]["batched_fps"] / dense["batched_fps"]
    seconds = _acoular_seconds_per_map(bf)
    if seconds is not None:
        figures["acoular"] = {"seconds_per_map": seconds, "speedup": seconds * figures["numpy"]["single_fps"],
                              "speedup_batched": seconds * figures["numpy"]["batched_fps"]}
    return report(figures, as_json, _print_table)


def _print_table(figures: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="beamforming: 128 mics -> 36 x 48 x 512 power map per 1024-sample block")
    for column in ("backend", "steering build / cached (s)", "single-frame fps", "batched fps",
                   "x dense (single / batched)", "x Acoular (single / batched)"):
        table.add_column(column, justify="right")
    acoular = figures.get("acoular", {}).get("seconds_per_map")
    dense = figures["numpy_dense"]
    for name in ("numpy", "cupy", "numpy_dense"):
        if name in figures:
            f = figures[name]
            versus_dense = (f"{f['single_fps'] / dense['single_fps']:.1f} / "
                            f"{f['batched_fps'] / dense['batched_fps']:.1f}")
            ratio = f"{acoular * f['single_fps']:,.0f} / {acoular * f['batched_fps']:,.0f}" if acoular else "n/a"
            build = (f"{f['steering_build_s']:.2f} / {f['steering_cached_s']:.2f}"
                     if "steering_cached_s" in f else "")
            table.add_row(name, build, f"{f['single_fps']:.1f}", f"{f['batched_fps']:.1f}", versus_dense, ratio)
    if acoular:
        table.add_row("acoular", "", f"{1 / acoular:.3f}", "", "", "1")
    console = Console()
    console.print(table)
    n = figures["numpy"]
    console.print(f"numpy CPU time per frame (less sensitive to other processes): {n['single_cpu_ms_per_frame']:.1f} ms "
                  f"single, {n['batched_cpu_ms_per_frame']:.1f} ms batched; steering build "
                  f"{n['steering_build_cpu_s']:.2f} s CPU")
    r = figures["roofline"]
    console.print(f"roofline: single-frame reads {r['core_steering_gb']:.2f} GB of core steering (dense: "
                  f"{r['dense_steering_gb']:.2f}) at {r['stream_gb_s']:.1f} GB/s -> <= {r['single_fps_ceiling']:.0f} fps; "
                  f"batched needs {r['gflop_per_frame']:.2f} GFLOP/frame (dense: {r['dense_gflop_per_frame']:.2f}) at "
                  f"{r['gemm_gflop_s']:.0f} GFLOP/s -> <= {r['batched_fps_ceiling']:.0f} fps; "
                  f"load average {figures['machine']['load_avg_1m']:.1f} on {figures['machine']['cpus']} CPUs")
