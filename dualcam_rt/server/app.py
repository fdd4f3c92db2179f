"""The FastAPI app: ``create_app(settings, device_uri)``; its lifespan loads models and opens the device.

Routes stay thin (``routes.py``, ``ws.py``): they translate HTTP/WebSocket into calls to
``dualcam_rt.inference`` and ``dualcam_rt.sessions``. Errors a caller causes become
``{"error": {"code", "message"}}`` with a 4xx status.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from .. import __version__
from ..config import Settings, get_settings
from ..errors import DualcamError
from ..geometry import get_geometry
from ..inference.live import LivePipeline
from ..inference.models import ModelSet, load_models
from ..inference.stream import Batcher
from .metrics import Metrics

log = logging.getLogger("dualcam_rt.server")
STATIC_DIR = Path(__file__).parent / "static"


@dataclass
class Service:
    """What the routes share: settings, models, batchers, the live pipeline and its clients."""

    settings: Settings
    device_uri: str | None
    metrics: Metrics = field(default_factory=Metrics)
    models: ModelSet = field(default_factory=lambda: ModelSet({}))
    batchers: dict[str, Batcher] = field(default_factory=dict)
    live: LivePipeline | None = None
    device_info: dict = field(default_factory=dict)
    hub: object = None  # ws.LiveHub
    recorder: object = None  # recordings.Recordings

    def batcher(self, name: str | None) -> Batcher:
        model = self.models.get(name)
        if model.name not in self.batchers:
            self.batchers[model.name] = Batcher(model)
        return self.batchers[model.name]


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def open_live(svc: Service, publish) -> None:
    """Open the service's device (falling back to sim:// when allowed) and start the live pipeline."""
    from ..devices import open_device

    s = svc.settings
    uri = svc.device_uri or s.device_uri
    options = {}
    if uri.startswith("dualcam://"):
        options = {"fallback": s.fallback_to_sim, "timeout": s.connect_timeout_s}
    device = open_device(uri, **options)
    svc.device_info = device.describe()
    # a fallback to sim:// has been logged as a warning by open_device; /v1/status shows it too
    model = svc.models.get() if svc.models.default else None
    geometry = get_geometry(s.focus_distance_m, tuple(s.dead_channels))
    svc.live = LivePipeline(device, model, publish, hop_s=s.hop_s, mic_channel=s.mic_channel,
                            imaging=s.imaging, beamform_backend=s.beamform_backend, geometry=geometry)
    svc.live.start()


def create_app(settings: Settings | None = None, device_uri: str | None = None, live: bool = True) -> FastAPI:
    """The service app. ``live=False`` serves uploads and streams only (no device is opened)."""
    from . import recordings, routes, ws

    svc = Service(settings or get_settings(), device_uri)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loop = asyncio.get_running_loop()
        loaded = await asyncio.to_thread(load_models, svc.settings.models_dir, svc.settings.ort_threads)
        if svc.settings.default_model and svc.settings.default_model not in loaded:
            log.warning("default model %r is not in %s; using the first audio student", svc.settings.default_model,
                        svc.settings.models_dir)
        svc.models = ModelSet(loaded, svc.settings.default_model)
        if not len(svc.models):
            log.warning("no models in %s: predictions are unavailable", svc.settings.models_dir)
        svc.hub = ws.LiveHub(svc)
        svc.recorder = recordings.Recordings(svc)
        if live:
            await asyncio.to_thread(open_live, svc, lambda msg: loop.call_soon_threadsafe(svc.hub.publish, msg))
        try:
            yield
        finally:
            svc.recorder.stop_all()
            if svc.live is not None:
                await asyncio.to_thread(svc.live.stop)
            for b in svc.batchers.values():
                await b.close()

    app = FastAPI(title="dualcam-rt", version=__version__, lifespan=lifespan,
                  description="Real-time action recognition from a DualCam acoustic-optical camera.")
    app.state.svc = svc

    @app.exception_handler(DualcamError)
    async def dualcam_error(request: Request, err: DualcamError):
        svc.metrics.errors.labels(err.code).inc()
        return JSONResponse(error_body(err.code, str(err)), status_code=err.http_status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, f"http_{err.status_code}")
        svc.metrics.errors.labels(code).inc()
        return JSONResponse(error_body(code, str(err.detail)), status_code=err.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        svc.metrics.errors.labels("invalid_request").inc()
        return JSONResponse(error_body("invalid_request", f"{where}: {first.get('msg', 'invalid')}"), status_code=422)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, err: Exception):
        log.exception("unexpected error on %s", request.url.path)
        svc.metrics.errors.labels("internal_error").inc()
        return JSONResponse(error_body("internal_error", f"{type(err).__name__}: {err}"), status_code=500)

    app.include_router(routes.router)
    app.include_router(recordings.router)
    app.include_router(ws.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
