"""Beamforming speed: frames/s single-frame and batched per backend, against Acoular on the same map.

One run measures, on the same simulated blocks, per backend (the NumPy reference, the compiled
numba kernel, CuPy when a GPU is present, timed there with CUDA events): the steering build time
(and the start-up from its on-disk cache), frames/s one frame per call and ``BATCH`` frames per
call with one thread, and the batch again on every thread the CPU budget allows; the naive method
(dense precomputed steering, ~0.9 GB re-read per frame) as a second baseline; Acoular's
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

from ..dsp.beamform import Beamformer, array_module, resolve_backend, steering_matrices
from ..errors import BadInput
from ..geometry import FPS, GRID_COLS, GRID_ROWS, N_BINS, load_geometry
from ..threads import cpu_budget, limit_threads
from . import report

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


class _Clock:
    """Seconds of a timed stretch: CUDA events on the GPU's own stream (no host-side guesswork), else
    perf_counter; plus the process's CPU seconds over it."""

    def __init__(self, xp):
        self.xp = xp

    def __enter__(self) -> _Clock:
        if self.xp is not np:
            self._events = (self.xp.cuda.Event(), self.xp.cuda.Event())
            self._events[0].record()
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        if self.xp is not np:
            self._events[1].record()
            self._events[1].synchronize()
            self.seconds = self.xp.cuda.get_elapsed_time(*self._events) / 1e3  # milliseconds
        else:
            self.seconds = time.perf_counter() - self._wall
        self.cpu_seconds = time.process_time() - self._cpu


def _backend_figures(backend: str, cache_dir: str, single_seconds: float = SINGLE_SECONDS) -> tuple[dict, Beamformer]:
    xp = array_module(backend)
    with _Clock(xp) as build:
        bf = Beamformer(backend=backend)  # no cache_dir: the build itself, whatever the cache holds
    Beamformer(backend=backend, cache_dir=cache_dir)  # stores (or finds) this geometry's steering
    with _Clock(xp) as cached:  # and the start-up from the on-disk cache
        Beamformer(backend=backend, cache_dir=cache_dir)
    single = xp.asarray(_blocks(1)[0])
    bf.images(single, to_numpy=False)  # warm-up (compilation, FFT plans, page faults)
    n, t = 0, time.perf_counter()
    with _Clock(xp) as clock:
        while time.perf_counter() - t < single_seconds and n < 5000:
            bf.images(single, to_numpy=False)
            n += 1
    batch = xp.asarray(_blocks(BATCH, seed=1))
    out = bf.images(batch, to_numpy=False)  # then reused, as a pipeline recycling its buffers would
    reps = 2 if xp is np else 20
    with _Clock(xp) as batched:
        for _ in range(reps):
            bf.images(batch, to_numpy=False, out=out)
    figures = {
        "steering_build_s": build.seconds,
        "steering_build_cpu_s": build.cpu_seconds,
        "steering_cached_s": cached.seconds,
        "single_fps": n / clock.seconds,
        "batched_fps": reps * BATCH / batched.seconds,
        # CPU time per frame (all threads): a shared machine inflates wall time far more than this
        "single_cpu_ms_per_frame": clock.cpu_seconds / n * 1e3,
        "batched_cpu_ms_per_frame": batched.cpu_seconds / (reps * BATCH) * 1e3,
        "timer": "cuda events" if xp is not np else "perf_counter",
    }
    if xp is np:  # the same batch on every thread the budget allows (one thread when pinned to one CPU)
        one_thread, bf.threads = bf.threads, None
        with limit_threads(None) as threads, _Clock(xp) as every:
            bf.images(batch, out=out)
        figures.update(threads=one_thread, all_threads=threads, batched_fps_all_threads=BATCH / every.seconds)
        bf.threads = one_thread
    return figures, bf


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
        maps(spec[:, :, i : i + 1])
    single_fps = 2 / (time.perf_counter() - t)
    t = time.perf_counter()
    maps(spec)
    return {"single_fps": single_fps, "batched_fps": spec.shape[2] / (time.perf_counter() - t)}


def _roofline(bf: Beamformer) -> dict:
    """This machine's ceilings for the factored algorithm: stream bandwidth and complex64 GEMM rate.

    Single frame: every band's core steering is read once per frame (memory-bound). Batched: the
    core products (8 flops per core point, mic and bin) plus the two real expansions (columns, then
    rows; 2 flops per multiply-add, on re and im) per frame (compute-bound), or the complex
    intermediate and the float32 output streamed through memory, whichever is slower. Each ceiling
    comes per wall second and per CPU second (``*_cpu``: what a process sharing its core still gets
    per second of its own), the best of three tries.
    """
    n_mics = bf.bands[0].core.shape[2]
    cores = np.concatenate([band.core.reshape(-1) for band in bf.bands])
    wall, cpu = _best(lambda: cores.view(np.float32).sum(dtype=np.float32))
    bandwidth, bandwidth_cpu = cores.nbytes / wall, cores.nbytes / cpu
    top = bf.bands[-1].core
    spec = np.ones((len(top), n_mics, 64), np.complex64)
    np.matmul(top, spec)
    wall, cpu = _best(lambda: np.matmul(top, spec))
    gemm_flops, gemm_flops_cpu = top.size * 64 * 8 / wall, top.size * 64 * 8 / cpu
    flops = 0
    for band in bf.bands:
        qr, qc, n_bins = band.rows.shape[1], band.cols.shape[1], band.stop - band.start
        flops += n_bins * (qr * qc * n_mics * 8 + 2 * 2 * (GRID_COLS * qc * qr + GRID_ROWS * qr * GRID_COLS))
    dense_flops = N_BINS * GRID_ROWS * GRID_COLS * n_mics * 8
    stream_bytes = GRID_ROWS * GRID_COLS * N_BINS * (8 + 8 + 4)  # complex written and read, float32 written
    return {
        "core_steering_gb": cores.nbytes / 1e9,
        "dense_steering_gb": dense_flops / 1e9,
        "core_grids": [[band.rows.shape[1], band.cols.shape[1]] for band in bf.bands],
        "gflop_per_frame": flops / 1e9,
        "dense_gflop_per_frame": dense_flops / 1e9,
        "stream_gb_s": bandwidth / 1e9,
        "gemm_gflop_s": gemm_flops / 1e9,
        "stream_gb_per_cpu_s": bandwidth_cpu / 1e9,
        "gemm_gflop_per_cpu_s": gemm_flops_cpu / 1e9,
        "single_fps_ceiling": bandwidth / cores.nbytes,
        "batched_fps_ceiling": min(gemm_flops / flops, bandwidth / stream_bytes),
        "single_fps_ceiling_cpu": bandwidth_cpu / cores.nbytes,
        "batched_fps_ceiling_cpu": min(gemm_flops_cpu / flops, bandwidth_cpu / stream_bytes),
    }


def _best(step, tries: int = 3) -> tuple[float, float]:
    """The shortest wall and CPU seconds of ``step`` over ``tries`` runs."""
    walls, cpus = [], []
    for _ in range(tries):
        with _Clock(np) as clock:
            step()
        walls.append(clock.seconds)
        cpus.append(clock.cpu_seconds)
    return min(walls), max(min(cpus), 1e-9)


def _acoular_seconds_per_map(bf: Beamformer) -> float | None:
    """Acoular's time for one 512-bin map of the same geometry, or None if Acoular is not installed."""
    geometry = bf.geometry
    spectra = bf.spectra(_blocks(1)[0])[0].astype(np.complex128)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "map.npz"
        np.savez(
            data,
            mics=geometry.mics.T,
            dead=np.array(geometry.dead_channels),
            grid=geometry.grid_points.T,
            freqs=geometry.frequencies,
            c=343.0,
            csm=spectra[:, :, None] * spectra[:, None, :].conj(),
        )
        done = subprocess.run(
            [sys.executable, "-c", _ACOULAR_SCRIPT, str(data)], capture_output=True, text=True, cwd=tmp, timeout=600
        )
    if done.returncode != 0:
        return None
    return float(done.stdout.strip().splitlines()[-1])


def _runs_here(backend: str) -> bool:
    try:
        return resolve_backend(backend) == backend
    except BadInput:  # numba that does not import, CuPy without a GPU
        return False


def run(
    as_json: bool = False,
    backends: list[str] | None = None,
    baselines: bool = True,
    single_seconds: float = SINGLE_SECONDS,
    arrays: bool = True,
) -> dict:
    """Figures of one run: {backend: {...}} for each backend ("numpy", "numba", "cupy"; default: all that run
    here), "roofline" (this machine's CPU ceilings), "ratios" and, with ``baselines``, "numpy_dense" and
    "acoular", and with ``arrays`` "arrays" (the UMA-16 and a 64-mic array at 48 kHz, ``_array_figures``)."""
    backends = backends or [b for b in ("numpy", "numba", "cupy") if _runs_here(b)]
    figures: dict = {"machine": {"cpus": os.cpu_count(), "cpu_budget": cpu_budget(), "load_avg_1m": os.getloadavg()[0]}}
    bfs = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        for backend in backends:
            figures[backend], bfs[backend] = _backend_figures(backend, cache_dir, single_seconds)
        if arrays and _runs_here("numba"):
            figures["arrays"] = _array_figures(cache_dir, figures.get("numba", {}).get("single_fps"), single_seconds)
    cpu = [b for b in backends if b != "cupy"]
    if cpu:
        bf = bfs[cpu[0]]
        with limit_threads(bf.threads):  # the ceilings and the baseline under the same thread budget
            figures["roofline"] = _roofline(bf)
            if baselines:
                figures["numpy_dense"] = _dense_baseline(bf, _blocks(BATCH, seed=1))
    seconds = _acoular_seconds_per_map(bfs[backends[0]]) if baselines else None
    if seconds is not None:
        figures["acoular"] = {"seconds_per_map": seconds}
    figures["ratios"] = _ratios(figures, backends)
    return report(figures, as_json, _print_table)


def _ratios(figures: dict, backends: list[str]) -> dict:
    """Each backend's frames/s against this run's ceilings (CPU backends), the dense method and Acoular."""
    ratios = {}
    roof, dense, acoular = figures.get("roofline"), figures.get("numpy_dense"), figures.get("acoular")
    for backend in backends:
        f, r = figures[backend], {}
        if roof and backend != "cupy":
            r["single_of_ceiling"] = f["single_fps"] / roof["single_fps_ceiling"]
            r["batched_of_ceiling"] = f["batched_fps"] / roof["batched_fps_ceiling"]
            # per CPU second on both sides: what other processes on the core change least
            r["single_of_ceiling_cpu"] = 1e3 / f["single_cpu_ms_per_frame"] / roof["single_fps_ceiling_cpu"]
            r["batched_of_ceiling_cpu"] = 1e3 / f["batched_cpu_ms_per_frame"] / roof["batched_fps_ceiling_cpu"]
            r["all_threads_of_one_thread"] = f["batched_fps_all_threads"] / f["batched_fps"]
        if dense:
            r["x_dense_single"] = f["single_fps"] / dense["single_fps"]
            r["x_dense_batched"] = f["batched_fps"] / dense["batched_fps"]
        if acoular:
            r["x_acoular_single"] = f["single_fps"] * acoular["seconds_per_map"]
            r["x_acoular_batched"] = f["batched_fps"] * acoular["seconds_per_map"]
        ratios[backend] = r
    return ratios


def _print_table(figures: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="beamforming: 128 mics -> 36 x 48 x 512 power map per 1024-sample block")
    for column in (
        "backend",
        "build / cached (s)",
        "single fps",
        "batched fps (1 thread / all)",
        "single / ceiling (wall, CPU)",
        "batched / ceiling (wall, CPU)",
        "x dense (single / batched)",
        "x Acoular (single / batched)",
    ):
        table.add_column(column, justify="right")
    for name, r in figures["ratios"].items():
        f = figures[name]
        every = f" / {f['batched_fps_all_threads']:.1f} ({f['all_threads']})" if "all_threads" in f else ""
        pct = lambda key: f"{r[key]:.0%}, {r[key + '_cpu']:.0%}" if key in r else "n/a"  # noqa: E731
        pair = lambda a, b, fmt: f"{r[a]:{fmt}} / {r[b]:{fmt}}" if a in r else "n/a"  # noqa: E731
        table.add_row(
            name,
            f"{f['steering_build_s']:.2f} / {f['steering_cached_s']:.2f}",
            f"{f['single_fps']:.1f}",
            f"{f['batched_fps']:.1f}{every}",
            pct("single_of_ceiling"),
            pct("batched_of_ceiling"),
            pair("x_dense_single", "x_dense_batched", ".1f"),
            pair("x_acoular_single", "x_acoular_batched", ",.0f"),
        )
    if "numpy_dense" in figures:
        d = figures["numpy_dense"]
        table.add_row("numpy_dense", "", f"{d['single_fps']:.1f}", f"{d['batched_fps']:.1f}", "", "", "1", "")
    console = Console()
    console.print(table)
    if "acoular" in figures:
        console.print(f"Acoular BeamformerBase: {figures['acoular']['seconds_per_map']:.2f} s per 512-bin map")
    for name, f in figures.items():
        if isinstance(f, dict) and "single_cpu_ms_per_frame" in f:
            console.print(
                f"{name}: CPU time per frame (less sensitive to other processes) "
                f"{f['single_cpu_ms_per_frame']:.2f} ms single, {f['batched_cpu_ms_per_frame']:.2f} ms "
                f"batched; steering build {f['steering_build_cpu_s']:.2f} s CPU ({f['timer']})"
            )
    if "roofline" in figures:
        r = figures["roofline"]
        console.print(
            f"roofline: single-frame reads {r['core_steering_gb']:.2f} GB of core steering (dense: "
            f"{r['dense_steering_gb']:.2f}) at {r['stream_gb_s']:.1f} GB/s -> <= "
            f"{r['single_fps_ceiling']:.0f} fps ({r['single_fps_ceiling_cpu']:.0f} per CPU second); batched "
            f"needs {r['gflop_per_frame']:.2f} GFLOP/frame (dense: {r['dense_gflop_per_frame']:.2f}) at "
            f"{r['gemm_gflop_s']:.0f} GFLOP/s -> <= {r['batched_fps_ceiling']:.0f} fps "
            f"({r['batched_fps_ceiling_cpu']:.0f} per CPU second)"
        )
    for name, a in figures.get("arrays", {}).items():
        console.print(
            f"{name}: {a['mics']} mics at {a['sample_rate']} Hz ({a['block_samples']}-sample blocks, "
            f"{a['bins']} bins), numba: {a['single_fps']:.1f} fps single ({a['x_real_time']:.1f}x real time"
            + (f", {a['x_dualcam_single']:.2f}x the DualCam's" if "x_dualcam_single" in a else "")
            + f"), {a['batched_fps']:.1f} batched, {a['single_cpu_ms_per_frame']:.1f} CPU-ms/frame, "
            f"core steering {a['core_mb']:.0f} MB, build {a['steering_build_s']:.1f} s"
        )
    m = figures["machine"]
    console.print(f"load average {m['load_avg_1m']:.1f} on {m['cpus']} CPUs, {m['cpu_budget']} usable by this process")


# Acoular's MicGeom files: the UMA-16 (0.13 m), a 64-mic spiral as wide as the DualCam (0.37 m) and one 1.4 m wide
ARRAYS = {
    "uma16_48k": ("minidsp_uma-16.xml", 48_000),
    "array64_48k": ("array_64.xml", 48_000),
    "vogel64_48k": ("tub_vogel64.xml", 48_000),
}


def _array_figures(cache_dir: str, dualcam_single_fps: float | None, single_seconds: float) -> dict:
    """The compiled kernel on other arrays (Acoular's MicGeom files) at 48 kHz in 1/12-s blocks (4000
    samples; the 534 bins of 12 Hz up to 6400 Hz): build time, frames/s single and batched, CPU ms per
    frame, and ratios against real time (12 maps/s) and against the DualCam's single-frame rate of the
    same run. A wide aperture compresses less (larger core grids), so it costs more per frame."""
    out = {}
    for name, (file, rate) in ARRAYS.items():
        array = load_geometry(file)
        geometry = array.for_device(array.n_mics, rate, rate // FPS)
        with _Clock(np) as build:
            bf = Beamformer(geometry, backend="numba", cache_dir=cache_dir)
        block = np.random.default_rng(2).standard_normal((BATCH, geometry.n_mics, geometry.nfft)).astype(np.float32)
        bf.images(block[0])  # warm-up
        n, t = 0, time.perf_counter()
        with _Clock(np) as clock:
            while time.perf_counter() - t < single_seconds and n < 2000:
                bf.images(block[0])
                n += 1
        out_maps = bf.images(block[:8])
        with _Clock(np) as batched:
            bf.images(block[:8], out=out_maps)
        single_fps = n / clock.seconds
        out[name] = {
            "mics": geometry.n_mics,
            "sample_rate": rate,
            "block_samples": geometry.nfft,
            "bins": geometry.n_bins,
            "core_mb": bf.core_bytes / 1e6,
            "steering_build_s": build.seconds,
            "single_fps": single_fps,
            "batched_fps": 8 / batched.seconds,
            "single_cpu_ms_per_frame": clock.cpu_seconds / n * 1e3,
            "x_real_time": single_fps / FPS,
            **({"x_dualcam_single": single_fps / dualcam_single_fps} if dualcam_single_fps else {}),
        }
    return out
