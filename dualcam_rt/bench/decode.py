"""Wire-protocol decode throughput, as a multiple of the sensor's data rate, on one core.

The DualCam sends 128 channels x 12,288 Hz x 3 bytes (int24) = 4.72 MB/s of audio, plus a JPEG
per tick. The stream here is 10 s of sensor data (120 audio packets of 128 x 1024, 120 JPEG-sized
video packets) fed to ``StreamDecoder`` in 64 KiB chunks, as a socket delivers it; every audio
payload is then unpacked to float32 pascal. Figures (best of 3, process pinned to one CPU):

- full decode (framing + both CRCs + unpack) per audio encoding, as a multiple of real time;
- its parts: framing + CRC only, unpack only;
- the whole ``dualcam://`` client over loopback TCP (socket reads, decode, re-blocking, JPEG
  decode, pairing) on the same 10 s with real JPEG frames, served from memory by a thread;
- baselines measured in the same run: a plain memory copy of the same bytes (the ceiling), and a
  straightforward per-sample Python int24 unpack (extrapolated from 8,192 samples).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import numpy as np

from firmware_io import AudioEncoding, StreamDecoder, decode_audio, encode_audio, encode_video

from ..geometry import BLOCK_SAMPLES, FPS, N_MICS, SAMPLE_RATE
from . import pin_to_one_cpu, report

SENSOR_BYTES_PER_S = N_MICS * SAMPLE_RATE * 3  # 4,718,592
SECONDS = 10
CHUNK_BYTES = 1 << 16
REPEATS = 3
GOAL = 50.0


def _stream(encoding: AudioEncoding) -> tuple[bytes, int]:
    """(wire bytes of SECONDS of sensor data, number of audio packets)."""
    rng = np.random.default_rng(0)
    block = (rng.standard_normal((N_MICS, BLOCK_SAMPLES)) * 0.1).astype(np.float32)
    jpeg = rng.integers(0, 256, 40_000, dtype=np.uint8).tobytes()  # a typical 640x480 JPEG size
    n = SECONDS * FPS
    parts = []
    for tick in range(n):
        parts.append(encode_audio(block, tick, tick * BLOCK_SAMPLES, SAMPLE_RATE, encoding))
        parts.append(encode_video(jpeg, tick, tick * BLOCK_SAMPLES + BLOCK_SAMPLES // 2))
    return b"".join(parts), n


def _best(fn) -> float:
    """Best wall time of REPEATS calls, seconds."""
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _framing(wire: bytes) -> list:
    dec = StreamDecoder()
    packets = []
    for i in range(0, len(wire), CHUNK_BYTES):
        packets += dec.feed(wire[i : i + CHUNK_BYTES])
    assert dec.stats.bytes_dropped == 0 and dec.stats.crc_errors == 0
    return packets


def _unpack(audio_packets: list) -> None:
    for p in audio_packets:
        decode_audio(p.payload, p.header.encoding)


def _naive_int24_s_per_sample(payload: bytes) -> float:
    """Seconds per sample of a per-sample Python int24 unpack (the baseline)."""
    n = 8192
    body = payload[12 : 12 + 3 * n]
    t = time.perf_counter()
    out = [int.from_bytes(body[3 * i : 3 * i + 3], "little", signed=True) * (20.0 / 2**23) for i in range(n)]
    assert len(out) == n
    return (time.perf_counter() - t) / n


def _client_over_loopback_s() -> float:
    """Seconds the dualcam:// client takes to deliver SECONDS of sensor frames over loopback TCP."""
    import cv2

    from ..devices import open_device
    from ..errors import DeviceError
    from ..sim import Scene

    tick = Scene(seed=0).next_tick()
    jpeg = cv2.imencode(".jpg", tick.video)[1].tobytes()
    n = SECONDS * FPS
    wire = b"".join(
        encode_audio(tick.audio, i, i * BLOCK_SAMPLES, SAMPLE_RATE)
        + encode_video(jpeg, i, i * BLOCK_SAMPLES + BLOCK_SAMPLES // 2)
        for i in range(n)
    )
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(wire)

    threading.Thread(target=serve, daemon=True).start()
    start = time.perf_counter()
    device = open_device(f"dualcam://127.0.0.1:{listener.getsockname()[1]}", timeout=5, reconnect=False)
    frames = 0
    try:
        for _ in device.frames():
            frames += 1
    except DeviceError:  # the end of the stream: the server closed the connection
        pass
    took = time.perf_counter() - start
    device.close()
    listener.close()
    assert frames == n, f"{frames} of {n} frames"
    return took


def run(as_json: bool = False) -> dict:
    """Measure, print a table (or JSON), and return the figures."""
    restore = pin_to_one_cpu()
    try:
        results: dict[str, Any] = {
            "sensor_bytes_per_s": SENSOR_BYTES_PER_S,
            "seconds_of_sensor_data": SECONDS,
            "pinned_to_one_cpu": restore is not None,
            "goal_x_realtime": GOAL,
            "encodings": {},
        }
        for encoding in (AudioEncoding.INT24, AudioEncoding.INT16, AudioEncoding.FLOAT32):
            wire, n_audio = _stream(encoding)
            packets = _framing(wire)
            audio = [p for p in packets if p.stream == 1]
            assert len(audio) == n_audio
            full = _best(lambda: _unpack([p for p in _framing(wire) if p.stream == 1]))
            framing = _best(lambda: _framing(wire))
            unpack = _best(lambda: _unpack(audio))
            results["encodings"][encoding.name.lower()] = {
                "wire_mb_per_s": round(len(wire) / full / 1e6, 1),
                "x_realtime": round(SECONDS / full, 1),
                "framing_crc_x_realtime": round(SECONDS / framing, 1),
                "unpack_x_realtime": round(SECONDS / unpack, 1),
            }
            if encoding is AudioEncoding.INT24:
                copy = _best(lambda: bytes(bytearray(wire)))
                naive = _naive_int24_s_per_sample(audio[0].payload) * N_MICS * SAMPLE_RATE * SECONDS
                results["baselines"] = {
                    "memcpy_x_realtime": round(SECONDS / copy, 1),
                    "python_int24_x_realtime": round(SECONDS / naive, 3),
                    "speedup_over_python_int24": round(naive / full, 1),
                }
        results["dualcam_client_x_realtime"] = round(SECONDS / _client_over_loopback_s(), 1)
        results["meets_goal"] = results["encodings"]["int24"]["x_realtime"] >= GOAL
    finally:
        if restore:
            os.sched_setaffinity(0, restore)
    return report(results, as_json, _print_table)


def _print_table(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"decode: {r['seconds_of_sensor_data']} s of DualCam stream, one CPU, "
        f"real time = {r['sensor_bytes_per_s'] / 1e6:.2f} MB/s of int24 audio"
    )
    for col in ("encoding", "x real time (full)", "wire MB/s", "framing+CRC x", "unpack x"):
        t.add_column(col, justify="right")
    for name, e in r["encodings"].items():
        t.add_row(
            name,
            str(e["x_realtime"]),
            str(e["wire_mb_per_s"]),
            str(e["framing_crc_x_realtime"]),
            str(e["unpack_x_realtime"]),
        )
    b = r["baselines"]
    t.caption = (
        f"baselines: memcpy {b['memcpy_x_realtime']}x, per-sample Python int24 "
        f"{b['python_int24_x_realtime']}x (int24 decode is {b['speedup_over_python_int24']}x faster); "
        f"goal >= {r['goal_x_realtime']:g}x: {'met' if r['meets_goal'] else 'NOT met'}; whole dualcam:// "
        f"client over loopback TCP (incl. JPEG decode): {r['dualcam_client_x_realtime']}x"
    )
    Console().print(t)
