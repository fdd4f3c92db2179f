"""Read a device for a while and report what arrived (``dualcam-rt probe``), with each channel's level.

The per-channel levels (rms and peak in dBFS, one row per channel, and with a geometry each
channel's microphone position) are how a user checks an array's channel order: tap one capsule
during the probe and its row, and only its row, shows the peak.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DeviceError
from ..geometry import Geometry
from .registry import open_device

DEFAULT_FULL_SCALE_PA = 20.0  # the DualCam's capsules; mic:// says its own

# Beyond this, a probe that is still waiting for its device gives up (the device is then
# closed, which unblocks any read in progress).
GRACE_S = 1.0


def probe_device(
    uri: str,
    seconds: float,
    timeout: float,
    cache_dir: str | Path | None = None,
    geometry: Geometry | None = None,
    on_frame=None,
) -> dict:
    """A report of ``seconds`` of streaming; ``report["errors"]`` lists what went wrong (empty: healthy).

    ``timeout`` (s): how long the device may stay silent (at connection, and before its first frame).
    ``geometry``: the array the device should be; its microphone count is checked and each channel's
    row names its microphone's position. ``on_frame(frame, device)`` is called for every frame (a live view).

    A ``dualcam://`` device is opened without fallback and without reconnecting, so that a
    device that fails is reported rather than hidden; DeviceError if it does not answer at all.
    """
    dualcam = uri.lower().startswith("dualcam:")
    options: dict[str, Any] = {"timeout": timeout, "reconnect": False} if dualcam else {}
    device = open_device(uri, cache_dir=cache_dir, geometry=geometry, **options)
    patience_s = getattr(device, "timeout", None) or timeout
    seen: dict[str, Any] = {
        "channels": None,
        "sample_rate": None,
        "frame_shape": None,
        "frames_with_video": 0,
        "arrivals": [],
        "error": None,
        "levels": None,
    }
    stop = threading.Event()

    def read() -> None:
        try:
            for frame in device.frames():
                seen["arrivals"].append(time.monotonic())
                seen["channels"], seen["sample_rate"] = frame.channels, frame.sample_rate
                seen["levels"] = _accumulate(seen["levels"], frame.audio)
                if on_frame is not None:
                    on_frame(frame, device)
                if frame.video is not None:
                    seen["frames_with_video"] += 1
                    seen["frame_shape"] = list(frame.video.shape)
                if stop.is_set():
                    return
        except DeviceError as err:
            seen["error"] = str(err)

    start = time.monotonic()
    reader = threading.Thread(target=read, name="probe-reader", daemon=True)
    reader.start()
    reader.join(seconds)
    if not seen["arrivals"]:  # a slow first frame (connection, scene set-up) gets some patience
        reader.join(patience_s)
    stop.set()
    reader.join(GRACE_S)  # let the frame in flight arrive
    device.close()
    reader.join(GRACE_S)
    elapsed = time.monotonic() - start
    return _report(device, seen, elapsed, geometry)


def _accumulate(levels: dict | None, audio: np.ndarray) -> dict:
    """Running per-channel sum of squares, sample count and peak (Pa) of the blocks seen so far."""
    audio = np.asarray(audio, dtype=np.float64)
    if levels is None or len(levels["peak"]) != len(audio):
        levels = {"energy": np.zeros(len(audio)), "samples": 0, "peak": np.zeros(len(audio))}
    levels["energy"] += (audio * audio).sum(axis=1)
    levels["samples"] += audio.shape[1]
    levels["peak"] = np.maximum(levels["peak"], np.abs(audio).max(axis=1))
    return levels


def dbfs(pa: float, full_scale_pa: float) -> float | None:
    """Level in dB re digital full scale (None for digital silence)."""
    return round(20 * math.log10(pa / full_scale_pa), 1) if pa > 0 else None


def channel_levels(audio: np.ndarray, full_scale_pa: float, geometry: Geometry | None = None) -> list[dict]:
    """One row per channel of a (channels, samples) block in Pa: rms and peak dBFS, and its microphone's position."""
    levels = _accumulate(None, audio)
    return _level_rows(levels, full_scale_pa, geometry)


def _level_rows(levels: dict, full_scale_pa: float, geometry: Geometry | None) -> list[dict]:
    rms = np.sqrt(levels["energy"] / max(levels["samples"], 1))
    rows = []
    for c in range(len(rms)):
        row = {
            "channel": c,
            "rms_dbfs": dbfs(float(rms[c]), full_scale_pa),
            "peak_dbfs": dbfs(float(levels["peak"][c]), full_scale_pa),
        }
        if geometry is not None and len(rms) == geometry.n_mics:
            x, y, z = (round(float(v), 4) for v in geometry.mics[c])
            row.update(x_m=x, y_m=y, z_m=z, dead=c in geometry.dead_channels)
        rows.append(row)
    return rows


def _report(device, seen: dict, elapsed_s: float, geometry: Geometry | None = None) -> dict:
    stats = device.stats.to_dict()
    arrivals = seen["arrivals"]
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 2 else 0.0
    report = {
        "uri": device.uri,
        "kind": device.kind,
        "simulated": device.simulated,
        "audio_blocks": len(arrivals),
        "channels": seen["channels"],
        "sample_rate": seen["sample_rate"],
        "video_frames": stats["video_frames"],
        "frames_with_video": seen["frames_with_video"],
        "frame_shape": seen["frame_shape"],
        "lost_packets": stats["lost_packets"],
        "lost_samples": stats["lost_samples"],
        "crc_errors": stats["crc_errors"],
        "dropped_bytes": stats["dropped_bytes"],
        "malformed_packets": stats["malformed_packets"],
        "reconnects": stats["reconnects"],
        "seconds": round(elapsed_s, 3),
        "blocks_per_second": round(rate, 3),
        "video_fps": round(stats["video_frames"] / elapsed_s, 3) if elapsed_s else 0.0,
        "device": {k: v for k, v in device.describe().items() if k not in ("uri", "kind", "simulated")},
    }
    errors = []
    if seen["error"]:
        errors.append(seen["error"])
    for key, what in (
        ("crc_errors", "CRC errors"),
        ("malformed_packets", "malformed packets"),
        ("dropped_bytes", "bytes dropped"),
        ("lost_packets", "packets lost"),
    ):
        if report[key]:
            errors.append(f"{report[key]} {what}")
    if not arrivals and not seen["error"]:
        errors.append(f"no audio block in {elapsed_s:.1f} s")
    full_scale_pa = float(device.describe().get("full_scale_pa") or DEFAULT_FULL_SCALE_PA)
    report["full_scale_pa"] = full_scale_pa
    report["channel_levels"] = _level_rows(seen["levels"], full_scale_pa, geometry) if seen["levels"] else []
    if geometry is not None:
        report["geometry"] = geometry.name
        if seen["channels"] is not None and seen["channels"] != geometry.n_mics:
            errors.append(
                f"the device delivers {seen['channels']} channel(s) but the geometry {geometry.name} "
                f"has {geometry.n_mics} microphones"
            )
    report["errors"] = errors
    return report
