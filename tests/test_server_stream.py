"""``WS /v1/stream`` over real WebSockets: predictions per hop, many clients, and every bad client."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import websockets
from conftest import free_port
from websockets.exceptions import ConnectionClosed

from dualcam_rt.config import Settings
from dualcam_rt.inference.tiny import band_of, write_tiny_model
from dualcam_rt.labels import CLASSES
from dualcam_rt.server.app import create_app
from dualcam_rt.server.run import BackgroundServer

MAX_FRAME = 64 * 1024


@pytest.fixture(scope="module")
def ws_url(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    write_tiny_model(models)
    settings = Settings(models_dir=models, max_ws_frame_bytes=MAX_FRAME)
    with BackgroundServer(create_app(settings, live=False), free_port(), max_ws_frame_bytes=MAX_FRAME) as url:
        yield url.replace("http://", "ws://") + "/v1/stream"


def pcm_s16(freq_hz: float, seconds: float, rate: int) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * 32767 * np.sin(2 * np.pi * freq_hz * t)).astype("<i2").tobytes()


async def run_client(url, freq_hz=1000, rate=16000, seconds=2.0, hop_s=0.5, chunk_s=0.1, pace=False):
    """Stream a tone, send end; returns (hello, predictions, end message, close code)."""
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"sample_rate": rate, "encoding": "pcm_s16le", "channels": 1, "hop_s": hop_s}))
        hello = json.loads(await ws.recv())
        audio = pcm_s16(freq_hz, seconds, rate)
        step = int(chunk_s * rate) * 2
        for i in range(0, len(audio), step):
            await ws.send(audio[i : i + step])
            if pace:
                await asyncio.sleep(chunk_s)
        await ws.send(json.dumps({"type": "end"}))
        messages = [json.loads(m) async for m in ws]
        return hello, [m for m in messages if m["type"] == "prediction"], messages[-1], ws.close_code


async def expect_close(url, *messages, query="") -> tuple[int, str]:
    """Send messages in order and return the close code and reason the server answers with."""
    async with websockets.connect(url + query, max_size=None) as ws:
        try:
            for m in messages:
                await ws.send(m)
            async for _ in ws:
                pass
        except ConnectionClosed:
            pass
        return ws.close_code, ws.close_reason


def test_stream_answers_hello_then_predicts_each_hop_of_a_tone(ws_url):
    hello, predictions, end, code = asyncio.run(run_client(ws_url, freq_hz=1000, seconds=2.0, hop_s=0.5))
    assert hello["type"] == "hello" and hello["sample_rate"] == 16000 and hello["hop_s"] == 0.5
    assert hello["model"] == "tone-bands" and hello["classes"] == list(CLASSES)
    assert [p["t_s"] for p in predictions] == [0.5, 1.0, 1.5, 2.0]
    assert all(p["label"] == CLASSES[band_of(1000)] for p in predictions)
    assert predictions[-1]["window_s"] == 2.0
    assert end == {"type": "end", "samples": 32000, "seconds": 2.0}
    assert code == 1000


def test_stream_does_not_negotiate_per_message_deflate(ws_url):
    async def main():
        async with websockets.connect(ws_url) as ws:  # the client offers permessage-deflate
            return ws.response.headers.get("Sec-WebSocket-Extensions")

    assert asyncio.run(main()) is None  # PCM hardly compresses; inflating every message costs CPU


def test_many_clients_stream_at_once_and_share_batches(ws_url):
    async def main():
        return await asyncio.gather(
            *[run_client(ws_url, freq_hz=f, seconds=1.0, hop_s=0.25, pace=True) for f in [500, 1000, 3000, 5000] * 6]
        )

    results = asyncio.run(main())
    for (_hello, predictions, _end, code), f in zip(results, [500, 1000, 3000, 5000] * 6):
        assert len(predictions) == 4 and code == 1000
        assert {p["label"] for p in predictions} == {CLASSES[band_of(f)]}
    assert max(p["batch"] for r in results for p in r[1]) > 1  # windows of different clients shared a run


GOOD_HELLO = json.dumps({"sample_rate": 16000, "encoding": "pcm_s16le", "channels": 1})


@pytest.mark.parametrize(
    "name,messages,query,code,reason",
    [
        ("hello not json", ["hello there"], "", 1008, "not JSON"),
        ("hello a list", ["[1, 2]"], "", 1008, "JSON object"),
        ("no sample rate", [json.dumps({"encoding": "pcm_s16le"})], "", 1008, "sample_rate"),
        ("absurd rate", [json.dumps({"sample_rate": 10, "encoding": "pcm_s16le"})], "", 1008, "sample rate"),
        (
            "absurd channels",
            [json.dumps({"sample_rate": 16000, "encoding": "pcm_s16le", "channels": 4096})],
            "",
            1008,
            "channel",
        ),
        ("wrong encoding", [json.dumps({"sample_rate": 16000, "encoding": "mp3"})], "", 1008, "encoding"),
        ("bad hop", [json.dumps({"sample_rate": 16000, "encoding": "pcm_s16le", "hop_s": -1})], "", 1008, "hop_s"),
        (
            "future version",
            [json.dumps({"sample_rate": 16000, "encoding": "pcm_s16le", "version": 9})],
            "",
            1008,
            "version",
        ),
        ("misspelt field", [json.dumps({"sample_rate": 16000, "encoding": "pcm_s16le", "hopS": 1})], "", 1008, "hopS"),
        ("audio before hello", [b"\x00\x01" * 100], "", 1003, "hello"),
        ("odd byte count", [GOOD_HELLO, b"\x00" * 1001], "", 1007, "whole number"),
        ("garbage text", [GOOD_HELLO, "garbage"], "", 1003, "JSON"),
        ("unexpected json", [GOOD_HELLO, json.dumps({"type": "dance"})], "", 1003, "end"),
        ("oversized frame", [GOOD_HELLO, b"\x00\x00" * MAX_FRAME], "", 1009, "exceeds"),
        ("unknown model", [GOOD_HELLO], "?model=nope", 1008, "unknown model"),
    ],
)
def test_bad_clients_get_a_close_code_with_a_reason(ws_url, name, messages, query, code, reason):
    got_code, got_reason = asyncio.run(expect_close(ws_url, *messages, query=query))
    assert got_code == code, (name, got_code, got_reason)
    assert reason in got_reason, (name, got_reason)


def test_a_garbage_client_leaves_a_good_client_unaffected(ws_url):
    async def main():
        good = asyncio.create_task(run_client(ws_url, freq_hz=3000, seconds=1.5, hop_s=0.5, pace=True))
        bad = [expect_close(ws_url, GOOD_HELLO, b"\x00" * 999) for _ in range(5)]
        bad += [expect_close(ws_url, "{{{{") for _ in range(5)]
        closes = await asyncio.gather(*bad)
        return await good, closes

    (hello, predictions, end, code), closes = asyncio.run(main())
    assert {c for c, _ in closes} == {1007, 1008}
    assert len(predictions) == 3 and code == 1000
    assert {p["label"] for p in predictions} == {CLASSES[band_of(3000)]}
