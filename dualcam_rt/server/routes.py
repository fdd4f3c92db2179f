"""REST routes: health, readiness, status, models, predict, metrics and the dashboard page."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..errors import BadInput, TooLarge
from ..inference.audio import decode_audio
from ..inference.predict import predict_waves, prediction

router = APIRouter()


def _svc(request: Request):
    return request.app.state.svc


@router.get("/", include_in_schema=False)
async def dashboard():
    from .app import STATIC_DIR

    return FileResponse(STATIC_DIR / "index.html")


@router.get("/healthz")
async def healthz():
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request):
    """200 once models are loaded and the device streams (when one is opened); 503 until then."""
    svc = _svc(request)
    checks = {"models": len(svc.models) > 0,
              "device": svc.live.streaming if svc.live is not None else None}
    ready = checks["models"] and checks["device"] is not False
    body = {"ready": ready, "checks": checks,
            "providers": {m.name: m.providers for m in svc.models.models.values()}}
    if not ready:
        failing = ", ".join(k for k, v in checks.items() if v is False)
        body["error"] = {"code": "not_ready", "message": f"not ready: {failing}"}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/v1/status")
async def status(request: Request):
    """Device URI and kind, simulated or not, rates, drops, latency percentiles, clients."""
    svc = _svc(request)
    live = svc.live
    device = dict(svc.device_info)
    if live is not None:
        device["stats"] = live.device.stats.to_dict()
    return {"device": device or None, "simulated": device.get("simulated") if device else None,
            "fallback": bool(device.get("fallback")) if device else False,
            "live": live.status() if live is not None else None,
            "models": {m.name: {"providers": m.providers} for m in svc.models.models.values()},
            "default_model": svc.models.default,
            "clients": svc.hub.counts(),
            "batching": {name: {"batches": b.batches, "items": b.items} for name, b in svc.batchers.items()}}


@router.get("/v1/models")
async def models(request: Request):
    """Loaded models, their classes and input specs."""
    svc = _svc(request)
    return {"default": svc.models.default, "models": [m.describe() for m in svc.models.models.values()]}


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


async def _audio_bytes(request: Request, body: bytes) -> bytes:
    """The audio file of a raw body, or of the first file field of a multipart form."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return body
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

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


@router.post("/v1/predict")
async def predict(request: Request, model: str | None = Query(None, description="Model name (default: first audio student)"),
                  top_k: int = Query(3, ge=1, le=14)):
    """Classify an audio file (WAV/FLAC/OGG, any rate, any channels): top-k, probabilities, latency.

    The body is the file itself (or a multipart form with one file field). It is mixed to mono
    and resampled to 12,288 Hz; its last 5 s are classified (shorter clips are looped).
    """
    svc = _svc(request)
    started = time.perf_counter()
    m = svc.models.get(model)
    body = await _audio_bytes(request, await _read_body(request, svc.settings.max_upload_bytes))

    def run():
        wave, source = decode_audio(body, svc.settings.max_upload_seconds, m.sample_rate)
        window = wave[-int(m.seconds * m.sample_rate):]
        probs, timing = predict_waves(m, [window])
        return probs[0], timing, source

    probs, timing, source = await asyncio.to_thread(run)
    latency_s = time.perf_counter() - started
    svc.metrics.predictions.labels("predict", m.name).inc()
    svc.metrics.latency.labels("predict").observe(latency_s)
    # a plain dict of str/float/int: JSONResponse directly, without FastAPI's jsonable_encoder walk
    return JSONResponse({"model": m.name, **prediction(probs, m.classes, top_k), "input": source,
                         "latency_ms": round(latency_s * 1e3, 3),
                         "timing_ms": {k: round(v, 3) for k, v in timing.items()}})


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request):
    svc = _svc(request)
    live = svc.live
    if live is not None:
        svc.metrics.live_frames.set(live.frames)
        svc.metrics.live_visual_dropped.set(live.visual_dropped)
        svc.metrics.live_lost_samples.set(live.device.stats.lost_samples)
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
