"""``POST/GET /v1/recordings``: start a recording of the live device, list and inspect them.

The route only speaks HTTP; the recording itself (tap, queue, writer thread) is
``dualcam_rt.pipelines.recorder``. A bearer token is needed when ``DUALCAM_API_TOKEN`` is set.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from ..labels import CLASSES
from ..pipelines.recorder import RecordingSpec
from .deps import RecorderDep, ServiceDep, TokenDep
from .errors import error_responses

router = APIRouter(dependencies=[TokenDep])
ActionClass = StrEnum("ActionClass", {name: name for name in CLASSES})  # type: ignore[misc]  # the schema's enum


class RecordingRequest(BaseModel):
    """What to record; unknown fields are refused (422), so a typo is never silently ignored."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"seconds": 10, "label": "clapping", "scenario": 1, "subject": 0}]},
    )

    seconds: float = Field(..., gt=0, le=3600, description="How long to record")
    label: ActionClass | None = Field(None, description="Action class of the whole recording")
    scenario: int | None = Field(None, ge=1, le=3)
    subject: int | None = Field(None, ge=0)


class RecordingInfo(BaseModel):
    """A recording started by this service."""

    id: str
    state: str = Field(description="recording, complete or failed")
    path: str = Field(description="The session directory")
    seconds: float = Field(description="Asked for")
    label: str | None
    scenario: int | None
    subject: int | None
    recorded_s: float = Field(description="Durable on disk so far")
    started_at: float = Field(description="UNIX time")
    result: dict[str, Any] | None = Field(description="The session summary once complete")
    error: str | None = Field(description="Why it failed")


class RecordingList(BaseModel):
    recordings: list[RecordingInfo] = Field(description="Newest first")


@router.post(
    "/v1/recordings", status_code=202, response_model=RecordingInfo, responses=error_responses(400, 401, 422, 503)
)
async def start_recording(body: RecordingRequest, svc: ServiceDep) -> dict[str, Any]:
    """Start recording the live device into a new session; answers at once (202) with its id."""
    label = body.label.value if body.label is not None else None
    spec = RecordingSpec(body.seconds, label, body.scenario, body.subject)
    return svc.recorder.start(svc.live, spec).describe()


@router.get("/v1/recordings", response_model=RecordingList, responses=error_responses(401))
async def list_recordings(recorder: RecorderDep) -> dict[str, list[dict[str, Any]]]:
    """Recordings started by this service, newest first."""
    return {"recordings": [r.describe() for r in recorder.newest_first()]}


@router.get("/v1/recordings/{rec_id}", response_model=RecordingInfo, responses=error_responses(401, 404, 422))
async def get_recording(rec_id: str, recorder: RecorderDep) -> dict[str, Any]:
    """One recording: state, how much is on disk, and the session summary once complete."""
    return recorder.get(rec_id).describe()
