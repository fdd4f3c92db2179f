"""WebSocket routes: ``/v1/stream`` (client PCM → a prediction per hop) and ``/v1/live`` (device events).

Every client's outgoing messages go through a bounded ``hub.Outbox``. Close codes: 1003 wrong
message type, 1007 bad PCM, 1008 bad hello, unknown model or a client too slow to read, 1009
message too big, 1011 server error; each with a one-line reason (docs/api.md lists them all).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ..dsp.overlay import legend_colours, parse_band
from ..errors import BadInput, DualcamError
from ..inference.audio import PCM_ENCODINGS, check_format, decode_pcm
from ..inference.gate import FILE_FULL_SCALE_PA, Gate
from ..pipelines.stream import StreamPredictor
from .deps import ServiceDep
from .hub import Outbox
from .service import Service

router = APIRouter()
log = logging.getLogger("dualcam_rt.server")

HELLO_TIMEOUT_S = 10.0
HELLO_FIELDS = ("sample_rate", "encoding", "channels", "version", "hop_s")
STREAM_VERSION = 1


class Closed(Exception):
    """Close the WebSocket with ``code`` and a one-line ``reason``."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason[:120]  # a close reason must fit in 123 bytes


def _dropped(svc: Service, route: str) -> Callable[[], None]:
    return lambda: svc.metrics.ws_dropped.labels(route).inc()


async def _close(ws: WebSocket, svc: Service, route: str, closed: Closed) -> None:
    svc.metrics.ws_closed.labels(route, str(closed.code)).inc()
    try:
        await ws.close(closed.code, closed.reason)
    except (RuntimeError, OSError):
        pass


@asynccontextmanager
async def _client_errors(ws: WebSocket, svc: Service, route: str) -> AsyncIterator[None]:
    """Ends one client's handler: its Closed becomes a close code, a bug a 1011; the server stays up."""
    try:
        yield
    except Closed as closed:
        await _close(ws, svc, route, closed)
    except WebSocketDisconnect:
        pass
    except Exception:  # a bug must cost this client only, with a close code, not the server
        log.exception("%s client failed", route)
        await _close(ws, svc, route, Closed(1011, "internal error"))


@router.websocket("/v1/live")
async def live(ws: WebSocket, svc: ServiceDep) -> None:
    """Pushes the live device's predictions and acoustic images (the source, or none and why); video
    JPEGs (binary) and colour-map layers on request.

    Client messages: ``{"type": "subscribe", "images": true|false}``; ``{"type": "view", "band_hz":
    [LO, HI], "range_db": N, "margin_db": M}`` (any of them; also ``?band=LO-HI&range_db=N`` on
    connecting) changes what the device's acoustic images show, for every client: each gets a
    ``view`` message; a bad value gets ``{"type": "error"}`` and changes nothing.
    """
    await ws.accept()
    outbox = Outbox(ws, _dropped(svc, "live"))
    prefs = {"images": ws.query_params.get("images") in ("1", "true")}
    try:
        asked = {
            "band_hz": parse_band(ws.query_params["band"]) if "band" in ws.query_params else None,
            "range_db": float(ws.query_params["range_db"]) if "range_db" in ws.query_params else None,
        }
        view_changes = {k: v for k, v in asked.items() if v is not None}
    except (BadInput, ValueError) as err:
        await _close(ws, svc, "live", Closed(1008, f"bad view query: {err}"))
        outbox.stop()
        return
    hub = svc.hub
    hub.clients[outbox] = prefs
    hub.update_images_wanted(svc.live)
    svc.metrics.ws_clients.labels("live").inc()
    live = svc.live
    student = live.model if live else None
    outbox.put(
        {
            "type": "hello",
            "device": svc.device_info or None,
            "model": student.name if student else None,
            "classes": Gate.of(student.card).actions(student.classes) if student else [],
            "hop_s": live.hop_s if live else None,
            "images": prefs["images"],
            "state": live.state if live else "no device",
            "view": live.view.describe() if live else None,
            "legend_colours": legend_colours(),
        }
    )
    try:
        if view_changes and live is not None:
            _change_view(svc, live, view_changes, outbox)
        async with _client_errors(ws, svc, "live"):
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("bytes") is not None:
                    raise Closed(1003, "/v1/live takes JSON text messages only")
                try:
                    request = json.loads(message.get("text") or "")
                except ValueError:
                    raise Closed(1008, "malformed JSON message") from None
                if isinstance(request, dict) and request.get("type") == "view" and svc.live is not None:
                    _change_view(svc, svc.live, {k: v for k, v in request.items() if k != "type"}, outbox)
                    continue
                if not isinstance(request, dict) or request.get("type") != "subscribe":
                    raise Closed(1008, 'expected {"type": "subscribe", "images": true|false} or {"type": "view", ...}')
                prefs["images"] = bool(request.get("images"))
                hub.update_images_wanted(svc.live)
                outbox.put({"type": "subscribed", "images": prefs["images"]})
    finally:
        hub.clients.pop(outbox, None)
        hub.update_images_wanted(svc.live)
        outbox.stop()
        svc.metrics.ws_clients.labels("live").dec()


def _change_view(svc: Service, live, changes: dict, outbox: Outbox) -> None:
    """Give the live pipeline a new ``View`` and tell every client; a bad change is an error to this client only."""
    try:
        live.view = live.view.changed(**changes)
    except BadInput as err:
        outbox.put({"type": "error", "request": "view", "message": str(err)})
        return
    svc.hub.publish({"type": "view", **live.view.describe()})


def parse_hello(text: str | None, default_hop_s: float) -> dict:
    """The accepted stream config of a hello message; Closed(1008) when it is malformed."""
    try:
        hello = json.loads(text or "")
    except ValueError:
        raise Closed(1008, "hello is not JSON") from None
    if not isinstance(hello, dict):
        raise Closed(1008, "hello must be a JSON object")
    unknown = sorted(set(hello) - set(HELLO_FIELDS))
    if unknown:  # a misspelt field would otherwise be silently replaced by its default
        raise Closed(1008, f"unknown hello field(s) {', '.join(unknown)}; known: {', '.join(HELLO_FIELDS)}")
    rate, encoding, channels = hello.get("sample_rate"), hello.get("encoding"), hello.get("channels", 1)
    hop_s = hello.get("hop_s", default_hop_s)
    if not isinstance(rate, int) or isinstance(rate, bool):
        raise Closed(1008, "hello needs an integer sample_rate")
    if encoding not in PCM_ENCODINGS:
        raise Closed(1008, f"encoding must be one of {', '.join(PCM_ENCODINGS)}")
    if not isinstance(channels, int) or isinstance(channels, bool):
        raise Closed(1008, "channels must be an integer")
    if hello.get("version", STREAM_VERSION) != STREAM_VERSION:
        raise Closed(1008, f"unsupported version {hello.get('version')!r}; this server speaks {STREAM_VERSION}")
    if not isinstance(hop_s, (int, float)) or isinstance(hop_s, bool) or not 0.05 <= hop_s <= 10:
        raise Closed(1008, "hop_s must be a number in 0.05..10")
    try:
        check_format(rate, channels)
    except BadInput as err:
        raise Closed(1008, str(err)) from None
    return {"sample_rate": rate, "encoding": encoding, "channels": channels, "hop_s": float(hop_s)}


@router.websocket("/v1/stream")
async def stream(ws: WebSocket, svc: ServiceDep) -> None:
    """JSON hello, then binary PCM; a JSON prediction per hop of audio; ``{"type": "end"}`` to finish."""
    await ws.accept()
    svc.metrics.ws_clients.labels("stream").inc()
    svc.hub.stream_clients += 1
    outbox = None
    try:
        async with _client_errors(ws, svc, "stream"):
            try:
                batcher = svc.batcher(ws.query_params.get("model"))
            except DualcamError as err:
                raise Closed(1008, str(err)) from None
            model = batcher.model
            try:
                first = await asyncio.wait_for(ws.receive(), HELLO_TIMEOUT_S)
            except TimeoutError:
                raise Closed(1008, f"no hello within {HELLO_TIMEOUT_S:g} s") from None
            if first["type"] == "websocket.disconnect":
                return
            if first.get("bytes") is not None:
                raise Closed(1003, "send the JSON hello before any audio")
            config = parse_hello(first.get("text"), svc.settings.hop_s)
            rate = config["sample_rate"]
            predictor = StreamPredictor(model, rate, config["hop_s"], pa_per_unit=FILE_FULL_SCALE_PA)
            outbox = Outbox(ws, _dropped(svc, "stream"))
            outbox.put(
                {
                    "type": "hello",
                    **config,
                    "version": STREAM_VERSION,
                    "model": model.name,
                    "window_s": model.seconds,
                    "classes": predictor.gate.actions(model.classes),
                    "max_message_bytes": svc.settings.max_ws_frame_bytes,
                }
            )
            limit = svc.settings.max_ws_frame_bytes
            encoding, channels = config["encoding"], config["channels"]
            # the labelled metrics of this client, looked up once instead of at every prediction
            predicted = svc.metrics.predictions.labels("stream", model.name)
            skipped = svc.metrics.gate_skipped.labels("stream")
            latency = svc.metrics.latency.labels("stream")
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                payload = message.get("bytes")
                if payload is None:
                    text = message.get("text") or ""
                    if len(text) > limit:
                        raise Closed(1009, f"message of {len(text)} bytes exceeds {limit} bytes")
                    try:
                        request = json.loads(text)
                    except ValueError:
                        raise Closed(1003, "text after the hello must be JSON; audio goes in binary messages") from None
                    if isinstance(request, dict) and request.get("type") == "end":
                        total = predictor.samples_pushed
                        outbox.put({"type": "end", "samples": total, "seconds": round(total / rate, 4)})
                        await outbox.drain()
                        await ws.close(1000, "end of stream")
                        return
                    raise Closed(1003, 'unexpected JSON message; only {"type": "end"} may follow the hello')
                if len(payload) > limit:
                    raise Closed(1009, f"message of {len(payload)} bytes exceeds {limit} bytes")
                arrived = time.perf_counter()
                try:
                    samples = decode_pcm(payload, encoding, channels)
                except BadInput as err:
                    raise Closed(1007, str(err)) from None
                async for p in predictor.push_batched(samples, batcher):
                    latency_s = time.perf_counter() - arrived
                    predicted.inc()
                    if p.reason == "silence":
                        skipped.inc()
                    latency.observe(latency_s)
                    outbox.put(
                        {
                            "type": "prediction",
                            "t_s": round(p.t_s, 4),
                            "window_s": round(p.window_s, 4),
                            "latency_ms": round(latency_s * 1e3, 3),
                            "batch": p.timing.get("batch", 0),
                            **p.answer(),
                        }
                    )
    finally:
        if outbox is not None:
            outbox.stop()
        svc.hub.stream_clients -= 1
        svc.metrics.ws_clients.labels("stream").dec()
