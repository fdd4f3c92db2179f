"""Recording the live device into sessions: ``POST/GET /v1/recordings`` (bearer token when configured).

A recording taps the live pipeline's acquisition stage: every frame goes into a bounded queue
(blocking when full, so audio is never dropped) drained by a writer thread running the sessions
area's ``record_frames`` loop into a ``SessionWriter``.
"""

from __future__ import annotations

import queue
import secrets
import threading
import time

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from ..errors import BadInput, DeviceError, DualcamError, NotFound
from ..labels import CLASSES

router = APIRouter()
TAP_QUEUE_FRAMES = 120  # 10 s of ticks between acquisition and the writer


class Unauthorized(DualcamError):
    http_status = 401
    code = "unauthorized"


def require_token(request: Request) -> None:
    """Pass when no token is configured or the request carries ``Authorization: Bearer <token>``."""
    token = request.app.state.svc.settings.api_token
    if not token:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip(), token):
        raise Unauthorized("this route needs 'Authorization: Bearer <DUALCAM_API_TOKEN>'")


class RecordingRequest(BaseModel):
    seconds: float = Field(..., gt=0, le=3600, description="How long to record")
    label: str | None = Field(None, description="Action class of the whole recording")
    scenario: int | None = Field(None, ge=1, le=3)
    subject: int | None = Field(None, ge=0)


class Recording:
    """One recording in progress or finished, running in its own writer thread."""

    def __init__(self, rec_id: str, path, request: RecordingRequest, live):
        from ..sessions import SessionWriter

        self.id, self.path, self.request, self.live = rec_id, path, request, live
        meta = {"label": request.label, "scenario": request.scenario, "subject": request.subject,
                "device": live.device.describe(), "source": "service"}
        if request.label is not None:
            meta["class_index"] = CLASSES.index(request.label)
        self.writer = SessionWriter(path, {k: v for k, v in meta.items() if v is not None})
        self.frames: queue.Queue = queue.Queue(TAP_QUEUE_FRAMES)
        self.state, self.result, self.error = "recording", None, None
        self.started_at = time.time()
        self.done = threading.Event()
        live.taps.append(self.tap)
        self.thread = threading.Thread(target=self._run, name=f"record-{rec_id}", daemon=True)
        self.thread.start()

    def tap(self, frame) -> None:
        self.frames.put(frame)  # blocks acquisition rather than losing audio

    def _frames(self):
        while not self.done.is_set():
            try:
                frame = self.frames.get(timeout=0.5)
            except queue.Empty:
                if self.live.state not in ("starting", "streaming"):
                    return  # the device ended or failed: close what we have
                continue
            yield frame

    def _run(self) -> None:
        from ..sessions.record import record_frames

        try:
            self.result = record_frames(self._frames(), self.writer, self.request.seconds)
            self.state = "complete"
        except Exception as err:  # disk full, device gone: report it on the recording
            self.state, self.error = "failed", f"{type(err).__name__}: {err}"
            self.writer.close({"error": self.error})
        finally:
            if self.tap in self.live.taps:
                self.live.taps.remove(self.tap)
            self.done.set()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(10)

    def describe(self) -> dict:
        return {"id": self.id, "state": self.state, "path": str(self.path), "seconds": self.request.seconds,
                "label": self.request.label, "scenario": self.request.scenario, "subject": self.request.subject,
                "recorded_s": round(self.writer.seconds, 3), "started_at": self.started_at,
                "result": self.result, "error": self.error}


class Recordings:
    """The recordings this service started, by id."""

    def __init__(self, svc):
        self.svc = svc
        self.items: dict[str, Recording] = {}
        self.lock = threading.Lock()

    def start(self, request: RecordingRequest) -> Recording:
        from ..sessions import check_name
        from ..sessions.record import default_session_name

        live = self.svc.live
        if live is None or live.state not in ("starting", "streaming"):
            raise DeviceError("no live device to record from")
        if request.label is not None and request.label not in CLASSES:
            raise BadInput(f"unknown class {request.label!r}; known: {', '.join(CLASSES)}")
        root = self.svc.settings.sessions_dir
        root.mkdir(parents=True, exist_ok=True)
        with self.lock:
            rec_id = check_name(f"{default_session_name(request.label, request.scenario, request.subject)}"
                                f"-{secrets.token_hex(3)}")
            recording = Recording(rec_id, root / rec_id, request, live)
            self.items[rec_id] = recording
        return recording

    def get(self, rec_id: str) -> Recording:
        if rec_id not in self.items:
            raise NotFound(f"no recording {rec_id!r}")
        return self.items[rec_id]

    def stop_all(self) -> None:
        for recording in self.items.values():
            recording.stop()


@router.post("/v1/recordings", status_code=202, dependencies=[Depends(require_token)])
async def start_recording(request: Request, body: RecordingRequest):
    """Start recording the live device into a new session; answers at once (202) with its id."""
    return request.app.state.svc.recorder.start(body).describe()


@router.get("/v1/recordings", dependencies=[Depends(require_token)])
async def list_recordings(request: Request):
    """Recordings started by this service, newest first."""
    items = sorted(request.app.state.svc.recorder.items.values(), key=lambda r: r.started_at, reverse=True)
    return {"recordings": [r.describe() for r in items]}


@router.get("/v1/recordings/{rec_id}", dependencies=[Depends(require_token)])
async def get_recording(request: Request, rec_id: str):
    """One recording: state, how much is on disk, and the session summary once complete."""
    return request.app.state.svc.recorder.get(rec_id).describe()
