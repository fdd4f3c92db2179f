"""Read a device for a while and report what arrived (``dualcam-rt probe``)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ..errors import DeviceError
from .registry import open_device

# Beyond this, a probe that is still waiting for its device gives up (the device is then
# closed, which unblocks any read in progress).
GRACE_S = 1.0


def probe_device(uri: str, seconds: float, timeout: float, cache_dir: str | Path | None = None) -> dict:
    """A report of ``seconds`` of streaming; ``report["errors"]`` lists what went wrong (empty: healthy).

    ``timeout`` (s): how long the device may stay silent (at connection, and before its first frame).

    A ``dualcam://`` device is opened without fallback and without reconnecting, so that a
    device that fails is reported rather than hidden; DeviceError if it does not answer at all.
    """
    dualcam = uri.lower().startswith("dualcam:")
    options = {"timeout": timeout, "reconnect": False} if dualcam else {}
    device = open_device(uri, cache_dir=cache_dir, **options)
    patience_s = getattr(device, "timeout", None) or timeout
    seen = {"channels": None, "sample_rate": None, "frame_shape": None, "frames_with_video": 0,
            "arrivals": [], "error": None}
    stop = threading.Event()

    def read() -> None:
        try:
            for frame in device.frames():
                seen["arrivals"].append(time.monotonic())
                seen["channels"], seen["sample_rate"] = frame.channels, frame.sample_rate
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
    return _report(device, seen, elapsed)


def _report(device, seen: dict, elapsed_s: float) -> dict:
    stats = device.stats.to_dict()
    arrivals = seen["arrivals"]
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 2 else 0.0
    report = {
        "uri": device.uri, "kind": device.kind, "simulated": device.simulated,
        "audio_blocks": len(arrivals), "channels": seen["channels"], "sample_rate": seen["sample_rate"],
        "video_frames": stats["video_frames"], "frames_with_video": seen["frames_with_video"],
        "frame_shape": seen["frame_shape"], "lost_packets": stats["lost_packets"],
        "lost_samples": stats["lost_samples"], "crc_errors": stats["crc_errors"],
        "dropped_bytes": stats["dropped_bytes"], "malformed_packets": stats["malformed_packets"],
        "reconnects": stats["reconnects"], "seconds": round(elapsed_s, 3),
        "blocks_per_second": round(rate, 3),
        "video_fps": round(stats["video_frames"] / elapsed_s, 3) if elapsed_s else 0.0,
        "device": {k: v for k, v in device.describe().items() if k not in ("uri", "kind", "simulated")},
    }
    errors = []
    if seen["error"]:
        errors.append(seen["error"])
    for key, what in (("crc_errors", "CRC errors"), ("malformed_packets", "malformed packets"),
                      ("dropped_bytes", "bytes dropped"), ("lost_packets", "packets lost")):
        if report[key]:
            errors.append(f"{report[key]} {what}")
    if not arrivals and not seen["error"]:
        errors.append(f"no audio block in {elapsed_s:.1f} s")
    report["errors"] = errors
    return report
