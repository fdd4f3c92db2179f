"""Recording throughput: seconds of sensor data written per second, as a multiple of real time.

The sensor's data rate is 128 channels x 12,288 Hz x float32 (6.29 MB/s) plus 12 video frames/s.
Measured in one run, on the same frames (5 s of a simulated scene, repeated to ``SECONDS``), into
a temporary directory on the same disk:

- ``session``: ``SessionWriter`` as ``dualcam-rt record`` uses it (JPEG encoding, CRC32C per
  tick and per frame, SWMR HDF5 appends flushed every second, SHA-256 at close), all 128 channels;
- ``session, mic 0``: the same with only microphone 0 stored (the dataset's default);
- baseline ``raw file``: the same audio bytes and the already-encoded JPEGs appended to one
  plain file with ``write`` and an ``fsync`` per second -- the least a crash-safe recorder does;
- ``record sim://?speed=max``: end to end from the simulated device (its rendering included).

A soak (``soak_s > 0``, not run by ``dualcam-rt bench record``) records ``sim://`` paced at real
time for that long and reports dropped frames: ``benchmarks/bench_record.py --soak 600``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2

from ..frame import SensorFrame
from ..geometry import FPS, N_MICS, SAMPLE_RATE
from ..sessions.record import record_frames
from ..sessions.writer import SessionWriter

SECONDS = 20  # of sensor data per measurement
SOURCE_S = 5  # distinct seconds rendered, then repeated
GOAL = 10.0


def _frames(seconds: int) -> list[SensorFrame]:
    from ..sim import Scene

    scene = Scene(scenario=1, seed=0, label="clapping", subject=0)
    ticks = [scene.next_tick() for _ in range(SOURCE_S * FPS)]
    return [
        SensorFrame(
            index=i,
            first_sample=i * 1024,
            timestamp=i / FPS,
            audio=ticks[i % len(ticks)].audio,
            video=ticks[i % len(ticks)].video,
            video_timestamp=i / FPS,
            truth=ticks[i % len(ticks)].truth,
        )
        for i in range(seconds * FPS)
    ]


def _session_x(frames: list[SensorFrame], path: Path, channels=None) -> tuple[float, int]:
    t0 = time.perf_counter()
    with SessionWriter(path, {"label": "clapping"}, channels=channels) as w:
        for f in frames:
            w.write(f)
    return len(frames) / FPS / (time.perf_counter() - t0), w.bytes_written


def _raw_file_x(frames: list[SensorFrame], path: Path) -> float:
    jpegs = [
        cv2.imencode(".jpg", f.video, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        for f in frames[: SOURCE_S * FPS]
        if f.video is not None  # every simulated frame has one
    ]
    t0 = time.perf_counter()
    with open(path, "wb") as out:
        for i, f in enumerate(frames):
            out.write(f.audio.T.tobytes())
            out.write(jpegs[i % len(jpegs)])
            if (i + 1) % FPS == 0:
                out.flush()
                os.fsync(out.fileno())
    return len(frames) / FPS / (time.perf_counter() - t0)


def _sim_x(path: Path, seconds: int) -> tuple[float, int]:
    from ..devices import open_device

    with open_device("sim://?scenario=1&seed=0&label=clapping&speed=max") as dev:
        summary = record_frames(dev.frames(), SessionWriter(path, {"label": "clapping"}), seconds)
    return summary["realtime_x"], summary["drops"]


def soak(seconds: float, out_dir: str | Path) -> dict:
    """Record ``sim://`` paced at real time for ``seconds``; frames, drops and the final lag."""
    from ..devices import open_device

    t0 = time.perf_counter()
    with open_device("sim://?scenario=2&seed=1&label=typing") as dev:
        summary = record_frames(dev.frames(), SessionWriter(Path(out_dir) / "soak", {"label": "typing"}), seconds)
        summary["device_stats"] = dev.stats.to_dict()
    summary["wall_s"] = round(time.perf_counter() - t0, 2)
    return summary


def run(as_json: bool = False, soak_s: float = 0.0) -> dict:
    """Measure and print the figures (a rich table, or JSON); returns them."""
    frames = _frames(SECONDS)
    with tempfile.TemporaryDirectory(prefix="bench-record-", dir=".") as tmp_dir:
        tmp = Path(tmp_dir)
        baseline = _raw_file_x(frames, tmp / "raw.bin")
        full, full_bytes = _session_x(frames, tmp / "full")
        mic0, _ = _session_x(frames, tmp / "mic0", channels=[0])
        sim, sim_drops = _sim_x(tmp / "sim", 5)
        result: dict[str, Any] = {
            "sensor_mb_per_s": N_MICS * SAMPLE_RATE * 4 / 1e6,
            "seconds_per_run": SECONDS,
            "session_x_realtime": round(full, 2),
            "session_mb_per_s": round(full_bytes / SECONDS * full / 1e6, 1),
            "session_mic0_x_realtime": round(mic0, 2),
            "raw_file_x_realtime": round(baseline, 2),
            "session_vs_raw_file": round(full / baseline, 3),
            "record_sim_max_x_realtime": sim,
            "record_sim_max_drops": sim_drops,
            "goal_x_realtime": GOAL,
            "cpus": os.cpu_count(),
        }
        if soak_s > 0:
            result["soak"] = soak(soak_s, tmp)
    if as_json:
        print(json.dumps(result))
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"recording: {SECONDS} s of 128-channel audio + 12 fps video (goal >= {GOAL:g}x real time)")
        t.add_column("what")
        t.add_column("x real time", justify="right")
        t.add_row("raw file (baseline: write + fsync per second)", f"{baseline:.1f}")
        t.add_row("session, 128 channels (record)", f"{full:.1f}")
        t.add_row("session, mic 0 only (dataset)", f"{mic0:.1f}")
        t.add_row(f"record sim://?speed=max (rendering included, {sim_drops} drops)", f"{sim:.1f}")
        t.add_row("session / baseline", f"{full / baseline:.2f}")
        if soak_s > 0:
            s = result["soak"]
            t.add_row(f"soak at 1x: {s['frames']} frames in {s['wall_s']} s", f"{s['drops']} dropped")
        Console().print(t)
    return result
