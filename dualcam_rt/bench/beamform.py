"""Beamforming speed: frames/s single-frame and batched per backend, against Acoular on the same map.

One run measures, on the same simulated blocks: the steering build time; NumPy (and CuPy when a
GPU is present) frames/s one frame per call and ``BATCH`` frames per call; Acoular's
``BeamformerBase`` (classic steering, full CSM) for the same 512-bin map, run in a fresh process
that imports Acoular before NumPy so its numba kernels may run in parallel; and the two roofline
ceilings of this machine for the algorithm: single-frame is memory-bound (the whole complex64
steering, ~0.9 GB, is read per frame) and batched is compute-bound (8 real flops per point, mic
and bin).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..dsp.beamform import Beamformer, array_module, steering_matrices
from ..geometry import N_BINS, get_geometry

BATCH = 64
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


def _backend_figures(backend: str) -> dict:
    xp = array_module(backend)
    t = time.perf_counter()
    bf = Beamformer(backend=backend, batch_frames=BATCH)
    _sync(xp)
    build_s = time.perf_counter() - t
    single = xp.asarray(_blocks(1)[0])
    bf.images(single, to_numpy=False)  # warm-up (FFT plans, page faults)
    _sync(xp)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < SINGLE_SECONDS and n < 2000:
        bf.images(single, to_numpy=False)
        _sync(xp)
        n += 1
    single_fps = n / (time.perf_counter() - t)
    batch = xp.asarray(_blocks(BATCH, seed=1))
    bf.images(batch, to_numpy=False)
    _sync(xp)
    reps, t = 2, time.perf_counter()
    for _ in range(reps):
        bf.images(batch, to_numpy=False)
    _sync(xp)
    batched_fps = reps * BATCH / (time.perf_counter() - t)
    return {"steering_build_s": build_s, "single_fps": single_fps, "batched_fps": batched_fps}


def _roofline() -> dict:
    """Measured ceilings: stream bandwidth over the steering and complex64 GEMM throughput."""
    geometry = get_geometry()
    steering = steering_matrices(geometry)
    bytes_per_frame = steering.nbytes
    t = time.perf_counter()
    steering.view(np.float32).sum(dtype=np.float32)
    bandwidth = bytes_per_frame / (time.perf_counter() - t)
    spec = np.ones((16, steering.shape[2], 256), np.complex64)
    np.matmul(steering[:16], spec)
    t = time.perf_counter()
    np.matmul(steering[:16], spec)
    gemm_flops = 16 * steering.shape[1] * steering.shape[2] * 256 * 8 / (time.perf_counter() - t)
    flops_per_frame = N_BINS * steering.shape[1] * steering.shape[2] * 8
    return {"steering_gb": bytes_per_frame / 1e9, "gflop_per_frame": flops_per_frame / 1e9,
            "stream_gb_s": bandwidth / 1e9, "gemm_gflop_s": gemm_flops / 1e9,
            "single_fps_ceiling": bandwidth / bytes_per_frame, "batched_fps_ceiling": gemm_flops / flops_per_frame}


def _acoular_seconds_per_map() -> float | None:
    """Acoular's time for one 512-bin map of the same geometry, or None if Acoular is not installed."""
    geometry = get_geometry()
    bf = Beamformer(geometry, backend="numpy")
    spectra = bf.spectra(_blocks(1)[0])[0].astype(np.complex128)
    del bf
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
    figures["numpy"] = _backend_figures("numpy")
    if array_module("auto") is not np:
        figures["cupy"] = _backend_figures("cupy")
    figures["roofline"] = _roofline()
    seconds = _acoular_seconds_per_map()
    if seconds is not None:
        figures["acoular"] = {"seconds_per_map": seconds, "speedup": seconds * figures["numpy"]["single_fps"],
                              "speedup_batched": seconds * figures["numpy"]["batched_fps"]}
    if as_json:
        print(json.dumps(figures, indent=2))
    else:
        _print_table(figures)
    return figures


def _print_table(figures: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="beamforming: 128 mics -> 36 x 48 x 512 power map per 1024-sample block")
    for column in ("backend", "steering build (s)", "single-frame fps", "batched fps", "x Acoular (single)"):
        table.add_column(column, justify="right")
    acoular = figures.get("acoular", {}).get("seconds_per_map")
    for name in ("numpy", "cupy"):
        if name in figures:
            f = figures[name]
            ratio = f"{acoular * f['single_fps']:,.0f}" if acoular else "n/a"
            table.add_row(name, f"{f['steering_build_s']:.2f}", f"{f['single_fps']:.1f}", f"{f['batched_fps']:.1f}", ratio)
    if acoular:
        table.add_row("acoular", "", f"{1 / acoular:.3f}", "", "1")
    console = Console()
    console.print(table)
    r = figures["roofline"]
    console.print(f"roofline: single-frame reads {r['steering_gb']:.2f} GB of steering at {r['stream_gb_s']:.1f} GB/s "
                  f"-> <= {r['single_fps_ceiling']:.1f} fps; batched needs {r['gflop_per_frame']:.2f} GFLOP/frame at "
                  f"{r['gemm_gflop_s']:.0f} GFLOP/s (complex64 GEMM) -> <= {r['batched_fps_ceiling']:.0f} fps; "
                  f"load average {figures['machine']['load_avg_1m']:.1f} on {figures['machine']['cpus']} CPUs")
