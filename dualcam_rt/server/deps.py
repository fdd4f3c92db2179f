"""Typed dependencies of the routes: ``svc: ServiceDep``, ``models: ModelsDep``, ``dependencies=[TokenDep]``.

Each hands a route one typed part of the ``Service`` that ``create_app`` built.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..config import Settings
from ..inference.models import ModelSet
from ..pipelines.recorder import Recorder
from .errors import Unauthorized
from .hub import LiveHub
from .service import Service, service_of

ServiceDep = Annotated[Service, Depends(service_of)]


def _settings(svc: ServiceDep) -> Settings:
    return svc.settings


def _models(svc: ServiceDep) -> ModelSet:
    return svc.models


def _hub(svc: ServiceDep) -> LiveHub:
    return svc.hub


def _recorder(svc: ServiceDep) -> Recorder:
    return svc.recorder


SettingsDep = Annotated[Settings, Depends(_settings)]
ModelsDep = Annotated[ModelSet, Depends(_models)]
HubDep = Annotated[LiveHub, Depends(_hub)]
RecorderDep = Annotated[Recorder, Depends(_recorder)]

bearer = HTTPBearer(
    auto_error=False, scheme_name="token", description="`DUALCAM_API_TOKEN`; needed only when the service has one"
)


def require_token(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """Pass when no token is configured or the request carries ``Authorization: Bearer <token>``."""
    token = settings.api_token
    if not token:
        return
    if credentials is None or not secrets.compare_digest(credentials.credentials.strip(), token):
        raise Unauthorized("this route needs 'Authorization: Bearer <DUALCAM_API_TOKEN>'")


TokenDep = Depends(require_token)
