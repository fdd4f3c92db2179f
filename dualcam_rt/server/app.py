"""The FastAPI app: ``create_app(settings, device_uri)`` builds the service once; its lifespan loads
the models and opens the device.

``create_app`` is where the service reads its settings: it builds the geometry, the metrics, the
live hub and the recorder once and hands them to the routes through ``Service`` (``deps.py``).
Routes stay thin (``routes.py``, ``recordings.py``, ``ws.py``); every error a caller causes becomes
``{"error": {"code", "message"}}`` with a 4xx status (``errors.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..config import Settings, get_settings
from ..devices import open_device
from ..dsp.overlay import View
from ..inference.models import ModelSet, load_models
from ..pipelines.live import LivePipeline
from ..pipelines.recorder import Recorder
from ..threads import apply_cpu_budget
from . import recordings, routes, ws
from .errors import install_error_handlers
from .hub import LiveHub
from .metrics import Metrics
from .service import Service

log = logging.getLogger("dualcam_rt.server")
DESCRIPTION = (
    "Real-time action recognition from a DualCam acoustic-optical camera. The WebSocket "
    "routes `/v1/stream` and `/v1/live` are described in docs/api.md."
)


def open_live(svc: Service, publish: Callable[[dict[str, Any] | bytes], None]) -> None:
    """Open the service's device (falling back to sim:// when allowed) and start the live pipeline."""
    s = svc.settings
    uri = svc.device_uri or s.device_uri
    device = open_device(
        uri,
        fallback_uri=s.fallback_uri if s.fallback_to_sim else None,
        timeout=s.connect_timeout_s,
        cache_dir=s.cache_dir,
        geometry=svc.geometry,
    )
    svc.device_info = device.describe()
    imaging = s.imaging and device.channels > 1
    if s.imaging and not imaging:
        log.warning("%s has one microphone: no acoustic image, predictions only", uri)
    if imaging:  # the array imaged at the device's rate and block size (BadInput: another array's channels)
        try:
            svc.geometry = device.geometry_for(svc.geometry)
        except Exception:
            device.close()
            raise
    # a fallback to sim:// has been logged as a warning by open_device; /v1/status shows it too
    model = svc.models.get() if svc.models.default else None
    svc.live = LivePipeline(
        device,
        model,
        publish,
        geometry=svc.geometry,
        hop_s=s.hop_s,
        mic_channel=s.mic_channel,
        imaging=imaging,
        beamform_backend=s.beamform_backend,
        cache_dir=s.cache_dir,
        view=View(s.view_band_hz, s.view_range_db, s.view_margin_db),
    )
    svc.live.start()


def load_service_models(svc: Service) -> None:
    """Load every student of the models directory into ``svc.models`` (warning when there are none)."""
    s = svc.settings
    loaded = load_models(s.models_dir, s.ort_threads)
    if s.default_model and s.default_model not in loaded:
        log.warning("default model %r is not in %s; using the first audio student", s.default_model, s.models_dir)
    svc.models = ModelSet(loaded, s.default_model)
    if not len(svc.models):
        log.warning("no models in %s: predictions are unavailable", s.models_dir)


@asynccontextmanager
async def lifespan(app: FastAPI, svc: Service, live: bool) -> AsyncIterator[None]:
    """Models loaded and the device opened (when ``live``) while the app serves; all stopped after."""
    loop = asyncio.get_running_loop()

    def publish(message: dict[str, Any] | bytes) -> None:  # called from the pipeline's threads
        loop.call_soon_threadsafe(svc.hub.publish, message)

    await asyncio.to_thread(load_service_models, svc)
    apply_cpu_budget()  # once the models' libraries are loaded: BLAS and numba held to the usable CPUs
    if live:
        await asyncio.to_thread(open_live, svc, publish)
    try:
        yield
    finally:
        svc.recorder.stop_all()
        if svc.live is not None:
            await asyncio.to_thread(svc.live.stop)
        for b in svc.batchers.values():
            await b.close()


def openapi_with_limits(app: FastAPI, max_upload_bytes: int) -> dict[str, Any]:
    """The OpenAPI document, with this service's upload limit on ``/v1/predict``'s body."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        body = schema["paths"]["/v1/predict"]["post"]["requestBody"]
        body["description"] += f" This service's limit: {max_upload_bytes} bytes."
        for media_type in routes.AUDIO_MEDIA_TYPES:
            body["content"][media_type]["schema"] = {
                **body["content"][media_type]["schema"],
                "maxLength": max_upload_bytes,
            }
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(settings: Settings | None = None, device_uri: str | None = None, live: bool = True) -> FastAPI:
    """The service app. ``live=False`` serves uploads and streams only (no device is opened)."""
    settings = settings or get_settings()
    metrics = Metrics()
    svc = Service(settings, device_uri, settings.geometry(), metrics, LiveHub(metrics), Recorder(settings.sessions_dir))
    app = FastAPI(
        title="dualcam-rt", version=__version__, description=DESCRIPTION, lifespan=partial(lifespan, svc=svc, live=live)
    )
    app.state.svc = svc
    for router in (routes.router, recordings.router, ws.router):
        app.include_router(router)
    install_error_handlers(app, (routes.router, recordings.router))
    app.mount("/static", StaticFiles(directory=routes.STATIC_DIR), name="static")
    app.openapi = partial(openapi_with_limits, app, settings.max_upload_bytes)  # type: ignore[method-assign]
    return app
