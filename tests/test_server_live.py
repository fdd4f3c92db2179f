"""The live service on the simulated sensor over real HTTP/WebSocket: /v1/live, status, readiness,
recordings (with the bearer token) and the fallback from an unanswering dualcam:// sensor."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import cv2
import httpx
import numpy as np
import pytest
import websockets
from conftest import free_port
from websockets.exceptions import ConnectionClosed

from dualcam_rt.config import Settings
from dualcam_rt.inference.tiny import write_tiny_model
from dualcam_rt.labels import CLASSES
from dualcam_rt.server.app import create_app
from dualcam_rt.server.recordings import RecordingInfo
from dualcam_rt.server.run import BackgroundServer

TOKEN = "s3cret-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
FOCUS_M = 2.5  # not the default 2 m: a recording must keep the service's geometry


def wait_until_imaging(url: str, timeout_s: float = 180) -> None:
    """Wait until the service is ready and has made an acoustic image (the beamformer takes seconds to build)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if (
                httpx.get(f"{url}/readyz").status_code == 200
                and httpx.get(f"{url}/v1/status").json()["live"]["imaged_frames"]
            ):
                return
        except httpx.TimeoutException:  # a busy machine or a cold start may answer past httpx's 5 s: ask again
            pass
        time.sleep(0.2)
    raise AssertionError(f"no acoustic image within {timeout_s} s")


@pytest.fixture(scope="module")
def live_service(tmp_path_factory):
    """(app, url) of a service on the simulated sensor, imaging, on loopback."""
    models = tmp_path_factory.mktemp("models")
    write_tiny_model(models)
    settings = Settings(
        models_dir=models,
        api_token=TOKEN,
        hop_s=0.5,
        focus_distance_m=FOCUS_M,
        sessions_dir=tmp_path_factory.mktemp("sessions"),
    )
    app = create_app(settings, "sim://?scenario=1&seed=3&label=knocking")
    with BackgroundServer(app, free_port()) as url:
        wait_until_imaging(url)
        yield app, url


@pytest.fixture(scope="module")
def live_url(live_service):
    return live_service[1]


async def collect(url: str, want: dict, subscribe_images=False, timeout_s=20.0) -> dict:
    """Messages from /v1/live by type until each type in ``want`` reached its count."""
    got = {"hello": [], "prediction": [], "position": [], "image": [], "subscribed": []}
    async with websockets.connect(url.replace("http://", "ws://") + "/v1/live", max_size=None) as ws:
        if subscribe_images:
            await ws.send(json.dumps({"type": "subscribe", "images": True}))
        deadline = time.monotonic() + timeout_s
        while any(len(got[k]) < n for k, n in want.items()) and time.monotonic() < deadline:
            m = await asyncio.wait_for(ws.recv(), timeout_s)
            if isinstance(m, bytes):
                got["image"].append(m)
            else:
                msg = json.loads(m)
                got.setdefault(msg["type"], []).append(msg)
    return got


def test_live_pushes_predictions_and_source_positions(live_url):
    got = asyncio.run(collect(live_url, {"hello": 1, "prediction": 2, "position": 3}))
    hello = got["hello"][0]
    assert hello["device"]["kind"] == "sim" and hello["model"] == "tone-bands"
    assert hello["classes"] == list(CLASSES) and hello["hop_s"] == 0.5
    p = got["prediction"][-1]
    # a class, or no action and why (a window between knocks can fall under the level gate)
    assert (p["label"] in CLASSES or p["reason"] in ("silence", "no_action")) and p["truth"] == "knocking"
    assert p["latency_ms"] > 0 and p["arrived_at"] <= time.time()
    assert got["prediction"][1]["t_s"] - got["prediction"][0]["t_s"] == pytest.approx(0.5)
    for pos in got["position"]:  # a source, or none and why (tests/test_dashboard.py waits for both)
        assert pos["floor_db"] <= pos["peak_db"] and pos["band_hz"] == [900.0, 6400.0]
        if pos["source"] is None:
            assert pos["reason"] == "below_margin" and "u_px" not in pos
        else:
            src = pos["source"]
            assert 0 <= src["row"] < 36 and 0 <= src["col"] < 48
            assert 0 <= src["u_px"] <= 640 and 0 <= src["v_px"] <= 480
            assert -40 < src["azimuth_deg"] < 40


def test_live_sends_overlay_frames_only_on_request(live_url):
    got = asyncio.run(collect(live_url, {"position": 4}))
    assert got["image"] == []
    got = asyncio.run(collect(live_url, {"subscribed": 1, "image": 2}, subscribe_images=True))
    frame = cv2.imdecode(np.frombuffer(got["image"][-1], np.uint8), cv2.IMREAD_COLOR)
    assert frame.shape == (480, 640, 3)


def test_status_reports_the_device_rates_drops_and_latency(live_url):
    asyncio.run(collect(live_url, {"prediction": 1}))
    s = httpx.get(f"{live_url}/v1/status").json()
    assert s["device"]["kind"] == "sim" and s["simulated"] is True and s["fallback"] is False
    assert s["live"]["state"] == "streaming" and s["live"]["frames"] > 0
    assert s["live"]["visual_dropped"] >= 0 and s["live"]["imaged_frames"] > 0
    assert s["live"]["prediction_latency_ms"]["p50"] > 0
    assert s["models"]["tone-bands"]["providers"] == ["CPUExecutionProvider"]
    assert httpx.get(f"{live_url}/readyz").json()["checks"] == {"models": True, "device": True}
    assert "dualcam_live_frames" in httpx.get(f"{live_url}/metrics").text


def test_recordings_need_the_token_and_produce_a_readable_session(live_url):
    from dualcam_rt.sessions import open_session

    body = {"seconds": 1.0, "label": "knocking", "scenario": 1, "subject": 2}
    r = httpx.post(f"{live_url}/v1/recordings", json=body)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert (
        httpx.post(f"{live_url}/v1/recordings", json=body, headers={"authorization": "Bearer wrong"}).status_code == 401
    )
    assert httpx.get(f"{live_url}/v1/recordings").status_code == 401
    r = httpx.post(f"{live_url}/v1/recordings", json=body, headers=AUTH)
    assert r.status_code == 202, r.text
    rec = r.json()
    assert rec["state"] == "recording"
    deadline = time.monotonic() + 20
    while rec["state"] == "recording" and time.monotonic() < deadline:
        time.sleep(0.2)
        rec = httpx.get(f"{live_url}/v1/recordings/{rec['id']}", headers=AUTH).json()
    assert rec["state"] == "complete", rec
    RecordingInfo.model_validate(rec)  # what the OpenAPI document promises
    listed = httpx.get(f"{live_url}/v1/recordings", headers=AUTH).json()["recordings"]
    assert rec["id"] in [x["id"] for x in listed]
    session = open_session(rec["path"])
    assert session.meta["label"] == "knocking" and session.meta["subject"] == 2
    assert session.meta["ticks"] == 12 and session.mic(0).shape == (12 * 1024,)
    assert session.meta["geometry"]["grid"]["focus_distance_m"] == FOCUS_M  # the service's geometry, not the default


def test_bad_recording_requests_get_json_4xx(live_url):
    r = httpx.post(f"{live_url}/v1/recordings", json={"seconds": -1}, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    r = httpx.post(f"{live_url}/v1/recordings", json={"seconds": 1, "label": "yodelling"}, headers=AUTH)
    assert r.status_code == 422 and "body.label" in r.json()["error"]["message"]  # the schema's enum
    r = httpx.post(
        f"{live_url}/v1/recordings", content=b"not json", headers={**AUTH, "content-type": "application/json"}
    )
    assert r.status_code == 422
    r = httpx.get(f"{live_url}/v1/recordings/nope", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_a_bad_live_client_is_closed_and_others_keep_receiving(live_url):
    ws_url = live_url.replace("http://", "ws://") + "/v1/live"

    async def bad(message):
        async with websockets.connect(ws_url) as ws:
            await ws.send(message)
            try:
                async for _ in ws:
                    pass
            except ConnectionClosed:
                pass
            return ws.close_code, ws.close_reason

    async def main():
        good = asyncio.create_task(collect(live_url, {"prediction": 2}))
        closes = await asyncio.gather(bad(b"\x00\x01"), bad("not json"), bad(json.dumps({"type": "dance"})))
        return closes, await good

    closes, got = asyncio.run(main())
    assert [c for c, _ in closes] == [1003, 1008, 1008]
    assert all(reason for _, reason in closes)
    assert len(got["prediction"]) == 2


def test_an_unanswering_sensor_falls_back_to_the_simulator(tmp_path):
    write_tiny_model(tmp_path)
    settings = Settings(models_dir=tmp_path, connect_timeout_s=0.5)
    app = create_app(settings, f"dualcam://127.0.0.1:{free_port()}")
    with BackgroundServer(app, free_port()) as url:
        s = httpx.get(f"{url}/v1/status").json()
        assert s["fallback"] is True and s["simulated"] is True
        assert s["device"]["kind"] == "sim" and s["device"]["fallback_from"]["uri"].startswith("dualcam://")


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _socket_buffers_bytes(stuck) -> int:
    """The most bytes a loopback connection holds between the server's writes and a client that
    never reads: the client's receive buffer, the server's send buffer (autotuned up to tcp_wmem's
    maximum, or wmem_max if set by hand), asyncio's write buffer (64 KiB high-water mark) and one
    64 KiB segment the kernel may queue past its limit."""
    from pathlib import Path

    send_max = max(
        int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2]),
        int(Path("/proc/sys/net/core/wmem_max").read_text()),
    )
    return stuck.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) + send_max + 2 * 64 * 1024


async def _offer(outbox, message) -> None:
    outbox.put(message)
    await asyncio.sleep(0)  # the sender's turn: it takes the message unless its send is stuck


def test_a_client_that_never_reads_costs_dropped_messages_not_a_stalled_sensor(live_service):
    """A /v1/live client with a 2 KB receive buffer that never reads: once the buffers on the way
    are full its outbox overflows, and messages are dropped and counted, while frames keep arriving
    and another client keeps getting predictions.

    The test fills that client's outbox itself, one 256 KiB message at a time on the server's event
    loop, so the first drop must come within a number of messages fixed by the buffer sizes and the
    outbox's size (not by wall time): it holds however busy the machine is."""
    import base64
    import os
    from urllib.parse import urlsplit

    app, url = live_service
    hub = app.state.svc.hub
    host, port = urlsplit(url).hostname, urlsplit(url).port
    others = set(hub.clients)
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    stuck.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    stuck.sendall(
        f"GET /v1/live HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert stuck.recv(12) == b"HTTP/1.1 101"
    try:
        deadline = time.monotonic() + 60  # a safety net only: the handler registers right after the 101
        while not (new := set(hub.clients) - others):
            assert time.monotonic() < deadline, "the stuck client never joined the hub"
            time.sleep(0.01)
        (outbox,) = new
        loop = outbox.task.get_loop()
        dropped_before = _metric(url, "dualcam_ws_dropped_messages_total")
        frames_before = httpx.get(f"{url}/v1/status").json()["live"]["frames"]
        message_bytes = 256 * 1024
        message = {"type": "padding", "pad": "x" * message_bytes}
        # held without a drop: what the buffers take (+2 cut at either end), the one the sender
        # waits to write and a full outbox; the next one offered must be dropped
        bound = _socket_buffers_bytes(stuck) // message_bytes + 2 + 1 + outbox.queue.maxsize + 1
        offered = 0
        while outbox.dropped == 0:
            assert offered < bound, f"{offered} messages of 256 KiB held for a client that reads nothing, none dropped"
            asyncio.run_coroutine_threadsafe(_offer(outbox, message), loop).result(timeout=60)
            offered += 1
        assert _metric(url, "dualcam_ws_dropped_messages_total") > dropped_before
        got = asyncio.run(collect(url, {"prediction": 2}))
        assert len(got["prediction"]) == 2
        hop_frames = round((got["prediction"][1]["t_s"] - got["prediction"][0]["t_s"]) * 12)
        frames = httpx.get(f"{url}/v1/status").json()["live"]["frames"] - frames_before
        assert hop_frames > 0 and frames >= hop_frames  # predictions a hop apart: the sensor kept streaming
    finally:
        stuck.close()
