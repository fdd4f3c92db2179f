"""REST routes: health, readiness, status, models, predict, metrics and the dashboard page."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from ..errors import BadInput, TooLarge
from ..inference.audio import decode_audio
from ..inference.gate import FILE_FULL_SCALE_PA, SILENCE
from ..inference.predict import gated_answers
from .deps import ModelsDep, ServiceDep, SettingsDep
from .errors import ErrorDetail, UnsupportedMediaType, error_responses

router = APIRouter()
STATIC_DIR = Path(__file__).parent / "static"
AUDIO_MEDIA_TYPES = ("audio/wav", "audio/flac", "audio/ogg", "application/octet-stream")
MULTIPART = "multipart/form-data"
_BINARY = {"type": "string", "format": "binary"}
PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "description": "The audio file itself (WAV, FLAC or OGG; any rate, any channels; the format is read "
        "from the bytes, so any `audio/*` type is accepted), or a multipart form whose first file "
        "field is that file. At most `DUALCAM_MAX_UPLOAD_BYTES` bytes (413 beyond) and "
        "`DUALCAM_MAX_UPLOAD_SECONDS` of audio.",
        "content": {
            **{t: {"schema": _BINARY} for t in AUDIO_MEDIA_TYPES},
            MULTIPART: {"schema": {"type": "object", "properties": {"file": _BINARY}, "required": ["file"]}},
        },
    }
}


@router.get("/", include_in_schema=False)
async def dashboard() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


class LabelProbability(BaseModel):
    label: str
    probability: float


class UploadedAudio(BaseModel):
    format: str = Field(description="WAV, FLAC or OGG")
    sample_rate: int = Field(description="Hz, as uploaded")
    channels: int
    seconds: float


class PredictAnswer(BaseModel):
    """The classification of one uploaded clip (its last 5 s)."""

    model: str
    label: str | None = Field(description="The most probable action, or null when the clip holds none (see reason)")
    reason: Literal["silence", "no_action"] | None = Field(
        description="Why label is null: silence (below the model's level gate; the student did not run, "
        "top_k and probabilities are empty) or no_action (background class or low confidence)"
    )
    top_k: list[LabelProbability]
    probabilities: dict[str, float] = Field(description="Every action of the model (raw; empty for silence)")
    level_db: float | None = Field(
        description="RMS level of the classified window, dB SPL (full scale = 20 Pa); null for digital silence"
    )
    input: UploadedAudio
    latency_ms: float = Field(description="Body read to answer ready")
    timing_ms: dict[str, float] = Field(description="Stages: features_ms, inference_ms")


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, bool | None]
    providers: dict[str, list[str]]
    error: ErrorDetail | None = None


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready yet; `error` says what is missing"}},
)
async def readyz(svc: ServiceDep) -> JSONResponse:
    """200 once models are loaded and the device streams (when one is opened); 503 until then."""
    checks = {"models": len(svc.models) > 0, "device": svc.live.streaming if svc.live is not None else None}
    ready = checks["models"] and checks["device"] is not False
    body: dict[str, Any] = {
        "ready": ready,
        "checks": checks,
        "providers": {m.name: m.providers for m in svc.models.models.values()},
    }
    if not ready:
        failing = ", ".join(k for k, v in checks.items() if v is False)
        body["error"] = {"code": "not_ready", "message": f"not ready: {failing}"}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/v1/status")
async def status(svc: ServiceDep) -> dict[str, Any]:
    """Device URI and kind, simulated or not, rates, drops, latency percentiles, clients."""
    live = svc.live
    device = dict(svc.device_info)
    if live is not None:
        device["stats"] = live.device.stats.to_dict()
    return {
        "device": device or None,
        "simulated": device.get("simulated") if device else None,
        "fallback": bool(device.get("fallback")) if device else False,
        "live": live.status() if live is not None else None,
        "models": {m.name: {"providers": m.providers} for m in svc.models.models.values()},
        "default_model": svc.models.default,
        "clients": svc.hub.counts(),
        "batching": {name: {"batches": b.batches, "items": b.items} for name, b in svc.batchers.items()},
    }


@router.get("/v1/models")
async def models(models: ModelsDep) -> dict[str, Any]:
    """Loaded models, their classes and input specs."""
    return {"default": models.default, "models": [m.describe() for m in models.models.values()]}


def _check_media_type(request: Request) -> str:
    """The body's media type; UnsupportedMediaType unless it is audio, binary or a multipart form."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if (
        media_type
        and media_type != MULTIPART
        and not media_type.startswith("audio/")
        and media_type not in AUDIO_MEDIA_TYPES
    ):
        raise UnsupportedMediaType(
            f"content type {media_type!r} is not audio; send the file as audio/wav, "
            f"audio/flac, audio/ogg, application/octet-stream or {MULTIPART}"
        )
    return media_type


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, or TooLarge as soon as it passes ``limit`` bytes (never buffered beyond)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"upload of {int(declared)} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"upload exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _file_of_form(request: Request, body: bytes) -> bytes:
    """The first file field of a multipart form body."""

    async def chunks():
        yield body

    try:
        form = await MultiPartParser(request.headers, chunks()).parse()
    except MultiPartException as err:
        raise BadInput(f"malformed multipart body: {err.message}") from None
    files = [v for v in form.values() if isinstance(v, UploadFile)]
    if not files:
        raise BadInput("multipart body has no file field")
    return await files[0].read()


@router.post(
    "/v1/predict",
    response_model=PredictAnswer,
    openapi_extra=PREDICT_BODY,
    responses=error_responses(400, 404, 413, 415, 422),
)
async def predict(
    request: Request,
    svc: ServiceDep,
    settings: SettingsDep,
    model: Annotated[str | None, Query(description="Model name (default: the service's default model)")] = None,
    top_k: Annotated[int, Query(ge=1, le=14, description="How many labels to list")] = 3,
) -> JSONResponse:
    """Classify an audio file (WAV/FLAC/OGG, any rate, any channels): top-k, probabilities, latency.

    The body is the file itself (or a multipart form with one file field). It is mixed to mono
    and resampled to 12,288 Hz; its last 5 s are classified (shorter clips are looped).
    """
    started = time.perf_counter()
    m = svc.models.get(model)
    media_type = _check_media_type(request)
    body = await _read_body(request, settings.max_upload_bytes)
    if media_type == MULTIPART:
        body = await _file_of_form(request, body)

    def run():
        wave, source = decode_audio(body, settings.max_upload_seconds, m.sample_rate)
        window = wave[-int(m.seconds * m.sample_rate) :]
        answers, timing = gated_answers(m, [window], top_k, FILE_FULL_SCALE_PA)
        return answers[0], timing, source

    answer, timing, source = await asyncio.to_thread(run)
    latency_s = time.perf_counter() - started
    svc.metrics.predictions.labels("predict", m.name).inc()
    if answer["reason"] == SILENCE:
        svc.metrics.gate_skipped.labels("predict").inc()
    svc.metrics.latency.labels("predict").observe(latency_s)
    # a plain dict of str/float/int: JSONResponse directly, without FastAPI's jsonable_encoder walk
    return JSONResponse(
        {
            "model": m.name,
            **answer,
            "input": source,
            "latency_ms": round(latency_s * 1e3, 3),
            "timing_ms": {k: round(v, 3) for k, v in timing.items()},
        }
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text exposition"}
    },
)
async def metrics(svc: ServiceDep) -> Response:
    """Prometheus metrics of this service (predictions, latency, errors, clients, drops)."""
    live = svc.live
    if live is not None:
        svc.metrics.live_frames.set(live.frames)
        svc.metrics.live_visual_dropped.set(live.visual_dropped)
        svc.metrics.live_lost_samples.set(live.device.stats.lost_samples)
        svc.metrics.live_gate_skipped.set(live.gate_skipped)
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
