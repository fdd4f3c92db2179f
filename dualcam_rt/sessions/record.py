"""Recording a device into a session: the loop shared by ``dualcam-rt record`` and the benchmark."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from ..frame import SensorFrame
from ..geometry import FPS
from .writer import SessionWriter


def default_session_name(label: str | None, scenario: int | None, subject: int | None) -> str:
    """A readable, unique-enough session name: ``LABEL-scK-sN-YYYYmmddTHHMMSSZ``."""
    parts = [label or "session"]
    if scenario is not None:
        parts.append(f"sc{scenario}")
    if subject is not None:
        parts.append(f"s{subject}")
    parts.append(datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    return "-".join(parts)


def record_frames(
    frames: Iterable[SensorFrame],
    writer: SessionWriter,
    seconds: float,
    on_tick: Callable[[int, SessionWriter], None] | None = None,
) -> dict:
    """Write ``seconds`` of frames (or until the source ends) and close; returns a summary.

    ``drops`` counts ticks missing from the device's index sequence (frames the source skipped);
    an interrupt (Ctrl-C, SIGTERM turned into KeyboardInterrupt) or a failing device still closes
    the session cleanly (the error is re-raised after).
    """
    wanted = max(1, round(seconds * FPS))
    received = drops = 0
    last_index = None
    t0 = time.perf_counter()
    interrupted = False
    try:
        for frame in frames:
            if last_index is not None and frame.index > last_index + 1:
                drops += frame.index - last_index - 1
            last_index = frame.index
            writer.write(frame)
            received += 1
            if on_tick:
                on_tick(received, writer)
            if received >= wanted:
                break
    except KeyboardInterrupt:
        interrupted = True
    except Exception as err:  # the device failed (or the disk filled): keep what was recorded
        writer.close({"drops": drops, "error": f"{type(err).__name__}: {err}"})
        raise
    meta = writer.close({"drops": drops, "interrupted": interrupted})
    elapsed = time.perf_counter() - t0
    return {
        "session": str(writer.path),
        "frames": writer.ticks,
        "video_frames": writer.video_frames,
        "drops": drops,
        "lost_samples": writer.lost_samples,
        "bytes": writer.bytes_written,
        "seconds": meta.get("seconds", 0.0),
        "elapsed_s": round(elapsed, 3),
        "realtime_x": round(meta.get("seconds", 0.0) / elapsed, 2) if elapsed > 0 else None,
        "interrupted": interrupted,
        "status": meta.get("status"),
    }
