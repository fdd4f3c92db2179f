"""A simulated DualCam that serves the wire protocol over TCP (``dualcam-rt simulate-device``).

Each connection gets its own device clock starting at sample 0 and its own copy of a ``Scene``
built once at start-up (building one can take seconds; copying it, milliseconds), so a client
sees a deterministic stream and an immediate answer. Per tick it sends one audio packet (128 x 1024) and one
JPEG video packet timestamped mid-tick; on connect, and then once a second, a status packet.
Paced at real time, a device that falls more than a second behind (a slow client) drops ticks,
as the real sensor's buffer would: the client sees sequence gaps. ``speed=inf`` sends as fast
as the client reads.
"""

from __future__ import annotations

import copy
import logging
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2

from firmware_io import AudioEncoding, encode_audio, encode_status, encode_video

from .. import __version__
from ..geometry import BLOCK_SAMPLES, FPS, N_MICS, SAMPLE_RATE
from ..sim import Scene
from .base import Pacer
from .sim import VIDEO_OFFSET_SAMPLES

log = logging.getLogger(__name__)
MAX_LAG_S = 1.0  # device-side buffer: beyond this much lag, ticks are dropped


class SimulatedDualCam:
    """TCP server; ``start()`` binds and serves in background threads, ``close()`` stops them."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 7700,
        scenario: int = 1,
        seed: int = 0,
        label: str | None = None,
        subject: int | None = None,
        speed: float = 1.0,
        encoding: AudioEncoding = AudioEncoding.INT24,
        impulse_ticks: Sequence[int] = (),
        drop_every: int = 0,
        jpeg_quality: int = 85,
        cache_dir: str | Path | None = None,
    ):
        self.host, self.port = host, port
        self.scene_options: dict[str, Any] = dict(
            scenario=scenario, seed=seed, label=label, subject=subject, impulse_ticks=tuple(impulse_ticks)
        )
        self.cache_dir = cache_dir
        self.speed = speed
        self.encoding = AudioEncoding(encoding)
        self.drop_every = drop_every  # fault injection: skip every Nth audio packet (0: never)
        self.jpeg_quality = jpeg_quality
        self._server: socket.socket | None = None
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> int:
        """Bind, start accepting in a background thread, and return the port (useful with port=0)."""
        scene = Scene(**self.scene_options, cache_dir=self.cache_dir)  # the pristine template, copied per client
        server = self._server = socket.create_server((self.host, self.port))
        server.settimeout(0.2)
        self.port = server.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, args=(server, scene), name="dualcam-sim-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self.port

    def wait(self) -> None:
        """Block until ``close()`` (or Ctrl-C in the caller)."""
        while not self._closed.wait(0.5):
            pass

    def close(self) -> None:
        self._closed.set()
        if self._server is not None:
            self._server.close()
        for t in self._threads:
            t.join(timeout=2)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def status(self, **counters) -> dict:
        """The device description sent in status packets."""
        return {
            "device": "dualcam-sim",
            "firmware": __version__,
            "protocol_version": 1,
            "channels": N_MICS,
            "sample_rate": SAMPLE_RATE,
            "block_samples": BLOCK_SAMPLES,
            "fps": FPS,
            "audio_encoding": self.encoding.name.lower(),
            "video": "jpeg 640x480",
            **self.scene_options,
            "impulse_ticks": list(self.scene_options["impulse_ticks"]),
            **counters,
        }

    def _accept_loop(self, server: socket.socket, scene: Scene) -> None:
        while not self._closed.is_set():
            try:
                conn, addr = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            log.info("client %s:%s connected", *addr[:2])
            t = threading.Thread(target=self._serve_client, args=(conn, scene), name="dualcam-sim-client", daemon=True)
            t.start()
            self._threads = [x for x in self._threads if x.is_alive()] + [t]

    def _serve_client(self, conn: socket.socket, scene: Scene) -> None:
        conn.settimeout(5.0)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            with conn:
                self._stream(conn, scene)
        except OSError as err:  # the client went away
            log.info("client stream ended: %s", err)

    def _stream(self, conn: socket.socket, template: Scene) -> None:
        scene = copy.deepcopy(template)  # each connection starts from the pristine scene
        pacer = Pacer(self.speed)
        seq_audio = seq_video = seq_status = 0
        dropped = 0
        conn.sendall(encode_status(self.status(dropped_ticks=0), seq_status, 0))
        seq_status += 1
        tick = 0
        while not self._closed.is_set():
            late_s = pacer.wait(tick / FPS)
            st = scene.next_tick()
            first = tick * BLOCK_SAMPLES
            ok, jpeg = cv2.imencode(".jpg", st.video, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            audio = encode_audio(st.audio, seq_audio, first, SAMPLE_RATE, self.encoding)
            video = encode_video(jpeg.tobytes(), seq_video, first + VIDEO_OFFSET_SAMPLES)
            seq_audio += 1
            seq_video += 1
            if late_s > MAX_LAG_S:
                dropped += 1  # buffer overflow: this tick never leaves the device
            elif self.drop_every and (tick + 1) % self.drop_every == 0:
                conn.sendall(video)
            else:
                conn.sendall(audio + video)
            tick += 1
            if tick % FPS == 0:
                conn.sendall(encode_status(self.status(dropped_ticks=dropped, ticks=tick), seq_status, first))
                seq_status += 1
