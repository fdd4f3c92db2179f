"""Simulated-sensor throughput: seconds of 128-channel audio + video + truth per second, one core.

For each scenario, in a fresh temporary RIR cache, with the process pinned to one CPU:

- RIR for one source position (128 microphones): computed (cold) vs loaded from the disk cache;
- warm-up: ``rooms.warm_cache`` computes every RIR the scenario can use (15 subject positions,
  interferers, background);
- scene start-up with a warm cache (level calibration included);
- streaming: 10 s of ticks after a 1-s warm-up, as a multiple of real time (goal >= 5x), by wall
  clock and by this process's CPU time (on a shared machine the wall clock includes waiting for
  the core; the CPU figure is what one free core would give);
- baseline measured in the same run on the same work: the subject alone (``components=("subject",)``)
  through the scene, against the straightforward per-tick convolution of the same dry signal with
  the same 128 RIRs (``scipy.signal.oaconvolve`` on each 1024-sample block, tail carried over).
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import numpy as np
from scipy.signal import oaconvolve

from ..geometry import BLOCK_SAMPLES, FPS, get_geometry
from ..sim import Scene
from ..sim.rooms import get_scenario, room_impulse_responses, subject_positions, warm_cache
from . import pin_to_one_cpu, report

STREAM_S = 10
BASELINE_TICKS = 24
GOAL = 5.0


def _stream_x_realtime(scene: Scene, ticks: int) -> tuple[float, float]:
    """(wall-clock, CPU-time) multiples of real time for the next ticks of a scene."""
    for _ in range(FPS):  # warm-up: the next segment, spectra in memory
        scene.next_tick()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(ticks):
        scene.next_tick()
    return ticks / FPS / (time.perf_counter() - wall), ticks / FPS / (time.process_time() - cpu)


def _baseline_x_realtime(scene: Scene, rir: np.ndarray) -> float:
    """CPU-time multiple of real time of per-tick oaconvolve of the subject's dry signal."""
    dry = scene.dry_signal(0, BASELINE_TICKS * BLOCK_SAMPLES)
    tail = np.zeros((rir.shape[0], rir.shape[1] - 1))
    cpu = time.process_time()
    for k in range(BASELINE_TICKS):
        y = oaconvolve(dry[None, k * BLOCK_SAMPLES : (k + 1) * BLOCK_SAMPLES], rir, axes=1)
        y[:, : tail.shape[1]] += tail
        tail = y[:, BLOCK_SAMPLES:]
    return BASELINE_TICKS / FPS / (time.process_time() - cpu)


def run(as_json: bool = False) -> dict:
    """Measure, print a table (or JSON), and return the figures."""
    restore = pin_to_one_cpu()
    g = get_geometry()
    results: dict[str, Any] = {
        "pinned_to_one_cpu": restore is not None,
        "stream_seconds": STREAM_S,
        "goal_x_realtime": GOAL,
        "scenarios": {},
    }
    try:
        with tempfile.TemporaryDirectory() as cache:
            for k in (1, 2, 3):
                cfg = get_scenario(k)
                pos = subject_positions(g)[7]
                t = time.perf_counter()
                rir = room_impulse_responses(cfg, pos, g, cache)
                cold = time.perf_counter() - t
                t = time.perf_counter()
                room_impulse_responses(cfg, pos, g, cache)
                warm = time.perf_counter() - t
                n_rirs = warm_cache(cfg, g, cache)
                t = time.perf_counter()
                scene = Scene(k, seed=0, label="typing", positions=(7,), cache_dir=cache)
                startup = time.perf_counter() - t
                wall_x, cpu_x = _stream_x_realtime(scene, STREAM_S * FPS)
                subject_only = Scene(
                    k, seed=0, label="typing", positions=(7,), components=("subject",), cache_dir=cache
                )
                _, subject_x = _stream_x_realtime(subject_only, BASELINE_TICKS)
                base_x = _baseline_x_realtime(subject_only, rir)
                results["scenarios"][k] = {
                    "name": cfg.name,
                    "rir_samples": int(rir.shape[1]),
                    "rirs_per_scenario": n_rirs,
                    "rir_compute_s": round(cold, 3),
                    "rir_cached_load_s": round(warm, 4),
                    "startup_s": round(startup, 2),
                    "x_realtime_wall": round(wall_x, 1),
                    "x_realtime_cpu": round(cpu_x, 1),
                    "subject_only_x_realtime_cpu": round(subject_x, 1),
                    "baseline_x_realtime_cpu": round(base_x, 2),
                    "speedup_over_baseline": round(subject_x / base_x, 1),
                }
        results["meets_goal"] = all(s["x_realtime_cpu"] >= GOAL for s in results["scenarios"].values())
    finally:
        if restore:
            os.sched_setaffinity(0, restore)
    return report(results, as_json, _print_table)


def _print_table(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"sim: {r['stream_seconds']} s of 128-channel audio + video + truth per scenario, one CPU")
    for col in (
        "scenario",
        "RIRs",
        "RIR samples",
        "RIR compute s",
        "RIR cached s",
        "start-up s",
        "x RT wall",
        "x RT CPU",
        "subject x",
        "baseline x",
        "speed-up",
    ):
        t.add_column(col, justify="right")
    for k, s in r["scenarios"].items():
        t.add_row(
            str(k),
            str(s["rirs_per_scenario"]),
            str(s["rir_samples"]),
            str(s["rir_compute_s"]),
            str(s["rir_cached_load_s"]),
            str(s["startup_s"]),
            str(s["x_realtime_wall"]),
            str(s["x_realtime_cpu"]),
            str(s["subject_only_x_realtime_cpu"]),
            str(s["baseline_x_realtime_cpu"]),
            str(s["speedup_over_baseline"]),
        )
    t.caption = (
        f"x RT: multiple of real time (full scene: subject, interferers, background, noise, video, truth); "
        f"subject x vs baseline x: the subject alone through the scene vs per-tick oaconvolve (CPU time); "
        f"goal >= {r['goal_x_realtime']:g}x real time (CPU): {'met' if r['meets_goal'] else 'NOT met'}"
    )
    Console(width=130).print(t)
