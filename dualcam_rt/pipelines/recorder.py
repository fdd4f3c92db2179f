"""Recording the live pipeline into sessions while it serves: a tap, a bounded queue, a writer thread.

A recording taps the live pipeline's acquisition stage: every frame goes into a bounded queue
(blocking when full, so audio is never dropped) drained by a writer thread running the sessions
area's ``record_frames`` loop into a ``SessionWriter``.
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DeviceError, NotFound
from ..frame import SensorFrame
from ..labels import CLASSES, class_index
from ..sessions import SessionWriter, check_name
from ..sessions.record import default_session_name, record_frames
from .live import LivePipeline

TAP_QUEUE_FRAMES = 120  # 10 s of ticks between acquisition and the writer
STREAMING_STATES = ("starting", "streaming")


@dataclass(frozen=True)
class RecordingSpec:
    """What to record: ``seconds`` of the live device, and the labels the session carries."""

    seconds: float
    label: str | None = None
    scenario: int | None = None
    subject: int | None = None


class Recording:
    """One recording in progress or finished, written by its own thread."""

    def __init__(self, rec_id: str, path: Path, spec: RecordingSpec, live: LivePipeline):
        self.id, self.path, self.spec, self.live = rec_id, path, spec, live
        meta: dict[str, Any] = {
            "label": spec.label,
            "scenario": spec.scenario,
            "subject": spec.subject,
            "device": live.device.describe(),
            "source": "service",
        }
        if spec.label is not None:
            meta["class_index"] = CLASSES.index(spec.label)
        # the session keeps the geometry the live pipeline images with (its dead channels included)
        self.writer = SessionWriter(path, {k: v for k, v in meta.items() if v is not None}, geometry=live.geometry)
        self.frames: queue.Queue[SensorFrame] = queue.Queue(TAP_QUEUE_FRAMES)
        self.state = "recording"  # recording | complete | failed
        self.result: dict[str, Any] | None = None  # record_frames' summary once complete
        self.error: str | None = None
        self.started_at = time.time()
        self.done = threading.Event()
        live.taps.append(self.tap)
        self.thread = threading.Thread(target=self._run, name=f"record-{rec_id}", daemon=True)
        self.thread.start()

    def tap(self, frame: SensorFrame) -> None:
        self.frames.put(frame)  # blocks acquisition rather than losing audio

    def _frames(self) -> Iterator[SensorFrame]:
        while not self.done.is_set():
            try:
                frame = self.frames.get(timeout=0.5)
            except queue.Empty:
                if self.live.state not in STREAMING_STATES:
                    return  # the device ended or failed: close what we have
                continue
            yield frame

    def _run(self) -> None:
        try:
            self.result = record_frames(self._frames(), self.writer, self.spec.seconds)
            self.state = "complete"
        except Exception as err:  # noqa: BLE001  # disk full, device gone: report it on the recording
            self.state, self.error = "failed", f"{type(err).__name__}: {err}"
            self.writer.close({"error": self.error})
        finally:
            if self.tap in self.live.taps:
                self.live.taps.remove(self.tap)
            self.done.set()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(10)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "path": str(self.path),
            "seconds": self.spec.seconds,
            "label": self.spec.label,
            "scenario": self.spec.scenario,
            "subject": self.spec.subject,
            "recorded_s": round(self.writer.seconds, 3),
            "started_at": self.started_at,
            "result": self.result,
            "error": self.error,
        }


class Recorder:
    """The recordings of one service, by id, each a new session under ``sessions_dir``."""

    def __init__(self, sessions_dir: Path):
        self.sessions_dir = Path(sessions_dir)
        self.items: dict[str, Recording] = {}
        self.lock = threading.Lock()

    def start(self, live: LivePipeline | None, spec: RecordingSpec) -> Recording:
        """Start recording ``live``; BadInput for an unknown class, DeviceError when nothing streams."""
        if spec.label is not None:
            class_index(spec.label)  # BadInput for an unknown class
        if live is None or live.state not in STREAMING_STATES:
            raise DeviceError("no live device to record from")
        self.sessions_dir.mkdir(parents=True, exist_ok=True)
        with self.lock:
            rec_id = check_name(
                f"{default_session_name(spec.label, spec.scenario, spec.subject)}-{secrets.token_hex(3)}"
            )
            recording = Recording(rec_id, self.sessions_dir / rec_id, spec, live)
            self.items[rec_id] = recording
        return recording

    def get(self, rec_id: str) -> Recording:
        if rec_id not in self.items:
            raise NotFound(f"no recording {rec_id!r}")
        return self.items[rec_id]

    def newest_first(self) -> list[Recording]:
        return sorted(self.items.values(), key=lambda r: r.started_at, reverse=True)

    def stop_all(self) -> None:
        for recording in self.items.values():
            recording.stop()
