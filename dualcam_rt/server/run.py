"""Running the app under uvicorn: in the foreground (``serve``) or in a background thread (tests, benchmarks)."""

from __future__ import annotations

import threading
import time

import uvicorn

from ..errors import DualcamError

WS_MAX_BYTES_FACTOR = 4  # uvicorn's hard cap on a WebSocket message, above the app's own limit


def uvicorn_config(app, host: str, port: int, max_ws_frame_bytes: int, log_level: str = "info") -> uvicorn.Config:
    """One uvicorn process per service (replicate processes or pods, not workers)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        ws_max_size=max_ws_frame_bytes * WS_MAX_BYTES_FACTOR,
        ws_ping_interval=20,
        # PCM hardly compresses and deflating every message costs CPU that streams need
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=5,
    )


class BackgroundServer:
    """``with BackgroundServer(app, port) as url:`` serves ``app`` on loopback in a thread."""

    def __init__(
        self, app, port: int, host: str = "127.0.0.1", max_ws_frame_bytes: int = 1 << 20, start_timeout_s: float = 120.0
    ):
        self.server = uvicorn.Server(uvicorn_config(app, host, port, max_ws_frame_bytes, log_level="warning"))
        self.url = f"http://{host}:{port}"
        self.start_timeout_s = start_timeout_s
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise DualcamError(f"the service did not start on {self.url}")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)
