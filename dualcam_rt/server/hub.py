"""Fan-out to WebSocket clients: a bounded outbox per client and the hub of ``/v1/live`` clients.

Starlette's ``send`` never pushes back, so every client gets a bounded outbox and its own sender
task: when a client reads too slowly the oldest message is dropped (overlay images: only the
latest is kept) and counted, and a client whose send stays stuck past ``SEND_TIMEOUT_S`` is
closed with 1008.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from ..pipelines.live import LivePipeline
from .metrics import Metrics

OUTBOX = 64  # messages queued per client before the oldest is dropped
SEND_TIMEOUT_S = 5.0
IMAGE = object()  # outbox marker: send the client's latest overlay image


class Outbox:
    """A client's bounded outgoing queue and the task that drains it."""

    def __init__(self, ws: WebSocket, on_drop: Callable[[], None], size: int = OUTBOX):
        self.ws, self.on_drop = ws, on_drop
        self.queue: asyncio.Queue[Any] = asyncio.Queue(size)
        self.image: bytes | None = None
        self.dropped = 0
        self.task = asyncio.create_task(self._send_all())

    def put(self, message: Any) -> None:
        if self.queue.full():
            self.queue.get_nowait()  # drop the oldest: a slow client gets fresh news, not a backlog
            self.dropped += 1
            self.on_drop()
        self.queue.put_nowait(message)

    def put_image(self, jpeg: bytes) -> None:
        if self.image is not None:  # one still waiting: latest wins
            self.dropped += 1
            self.on_drop()
            self.image = jpeg
            return
        self.image = jpeg
        self.put(IMAGE)

    async def _send_all(self) -> None:
        try:
            while True:
                message = await self.queue.get()
                if message is IMAGE:
                    message, self.image = self.image, None
                    if message is None:
                        continue
                    async with asyncio.timeout(SEND_TIMEOUT_S):  # unlike wait_for, no task per message
                        await self.ws.send_bytes(message)
                else:
                    async with asyncio.timeout(SEND_TIMEOUT_S):
                        await self.ws.send_text(json.dumps(message))
        except (TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
            # stuck or gone: closing makes the receive loop end this client
            try:
                await self.ws.close(1008, "client too slow")
            except (RuntimeError, OSError):
                pass

    async def drain(self, timeout_s: float = 2.0) -> None:
        """Wait (bounded) until everything queued has been sent."""
        deadline = time.monotonic() + timeout_s
        while not self.queue.empty() and not self.task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        self.task.cancel()


class LiveHub:
    """Fans live events out to the ``/v1/live`` clients (called on the event loop)."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics
        self.clients: dict[Outbox, dict[str, bool]] = {}  # outbox -> {"images": bool}
        self.stream_clients = 0

    def counts(self) -> dict[str, int]:
        return {"live": len(self.clients), "stream": self.stream_clients}

    def publish(self, message: dict[str, Any] | bytes) -> None:
        if isinstance(message, dict) and message.get("type") == "prediction":
            self.metrics.predictions.labels("live", message["model"]).inc()
            self.metrics.latency.labels("live").observe(message["latency_ms"] / 1e3)
        plain = message
        if isinstance(message, dict) and "layer" in message:  # the colour-map layer is for image clients only
            plain = {k: v for k, v in message.items() if k != "layer"}
        for outbox, prefs in list(self.clients.items()):
            if isinstance(message, bytes):
                if prefs["images"]:
                    outbox.put_image(message)
            else:
                outbox.put(message if prefs["images"] else plain)

    def update_images_wanted(self, live: LivePipeline | None) -> None:
        """Let the live pipeline make overlay images only while some client wants them."""
        if live is None:
            return
        if any(p["images"] for p in self.clients.values()):
            live.want_images.set()
        else:
            live.want_images.clear()
