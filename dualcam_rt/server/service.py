"""What one running service holds: its settings, geometry, models, live pipeline, hub and recorder.

``create_app`` builds one ``Service`` (from the settings it was given, the only place they are
read) and its lifespan fills in the models and the live pipeline; routes reach it through the
typed dependencies of ``deps.py`` (``service_of`` is the one reader of ``app.state``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection

from ..config import Settings
from ..geometry import Geometry
from ..inference.models import ModelSet
from ..inference.stream import Batcher
from ..pipelines.live import LivePipeline
from ..pipelines.recorder import Recorder
from .hub import LiveHub
from .metrics import Metrics


@dataclass
class Service:
    """The service's state; ``models`` and ``live`` are set by the lifespan once loaded and opened."""

    settings: Settings
    device_uri: str | None
    geometry: Geometry
    metrics: Metrics
    hub: LiveHub
    recorder: Recorder
    models: ModelSet = field(default_factory=lambda: ModelSet({}))
    batchers: dict[str, Batcher] = field(default_factory=dict)
    live: LivePipeline | None = None
    device_info: dict[str, Any] = field(default_factory=dict)

    def batcher(self, name: str | None) -> Batcher:
        """The batcher of model ``name`` (default model when None), made on first use."""
        model = self.models.get(name)
        if model.name not in self.batchers:
            self.batchers[model.name] = Batcher(model)
        return self.batchers[model.name]


def service_of(conn: HTTPConnection) -> Service:
    """The service of the app serving this request or WebSocket."""
    svc: Service = conn.app.state.svc
    return svc
