"""The service's error answers: one JSON shape, ``{"error": {"code", "message"}}``, for every failure.

``install_error_handlers(app, routers)`` turns dualcam-rt's own exceptions, Starlette's HTTP errors (404,
405 with the right ``Allow``), request validation errors (422, naming every bad field) and bugs
(500) into that shape and counts them in the service's metrics. ``error_responses(...)``
documents the same answers in the OpenAPI of the routes that give them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from ..errors import BadInput, DualcamError
from .service import service_of

log = logging.getLogger("dualcam_rt.server")


class Unauthorized(DualcamError):
    """A control route was called without the service's bearer token."""

    http_status = 401
    code = "unauthorized"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "Bearer"}


class UnsupportedMediaType(BadInput):
    """The body's declared content type is not one the route reads."""

    http_status = 415
    code = "unsupported_media_type"


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable kind, e.g. bad_input, not_found, too_large")
    message: str = Field(description="One line for a person")


class ErrorBody(BaseModel):
    """Every error answer of the service."""

    error: ErrorDetail


ERROR_DESCRIPTIONS = {
    400: "Bad input (`bad_input`): the body or a parameter is unusable",
    401: "Missing or wrong bearer token (`unauthorized`), when the service has one",
    404: "No such model or resource (`not_found`)",
    413: "The body is over a configured limit (`too_large`)",
    415: "The body's content type is not one this route reads (`unsupported_media_type`)",
    422: "The request does not match its schema (`invalid_request`); the message names every bad field",
    503: "The service cannot do this now (`not_ready`, `device_error`)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entries of these error statuses, all with the ``ErrorBody`` schema."""
    return {status: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[status]} for status in statuses}


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def _answer(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    service_of(request).metrics.errors.labels(code).inc()
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


async def dualcam_error(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, DualcamError)
    return _answer(request, err.http_status, err.code, str(err), getattr(err, "headers", None))


class HTTPErrorHandler:
    """Starlette's 404/405/... as ErrorBody; a 405 names in ``Allow`` every method of the path.

    (Starlette's own ``Allow`` names the methods of the first route matching the path only, and a
    path has one route per method.)
    """

    def __init__(self, routers: Sequence[APIRouter]):
        self.routes = [
            (route.path_regex, set(route.methods or ()))
            for router in routers
            for route in router.routes
            if isinstance(route, APIRoute)
        ]

    def allowed(self, path: str) -> str:
        methods = set().union(*(methods for regex, methods in self.routes if regex.match(path)))
        return ", ".join(sorted(methods))

    async def __call__(self, request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, f"http_{err.status_code}")
        headers = dict(err.headers or {})
        if err.status_code == 405:
            headers["Allow"] = self.allowed(request.scope["path"])
        return _answer(request, err.status_code, code, str(err.detail), headers)


async def validation_error(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, RequestValidationError)
    problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in err.errors()]
    return _answer(request, 422, "invalid_request", " ".join("; ".join(problems).split()) or "invalid request")


async def unexpected_error(request: Request, err: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path)
    return _answer(request, 500, "internal_error", f"{type(err).__name__}: {err}")


def install_error_handlers(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Answer every error of ``app`` (serving ``routers``) with an ErrorBody."""
    app.add_exception_handler(DualcamError, dualcam_error)
    app.add_exception_handler(HTTPException, HTTPErrorHandler(routers))
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)
