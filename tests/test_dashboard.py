"""The acoustic-camera view, end to end on the live simulated sensor: ``/v1/live`` over a real
WebSocket (no source between events, the source and its colour-map layer during one, the view
changed by a client message), and the dashboard in a real headless Chromium (Debian's, driven by
Playwright) checked pixel by pixel: the video untouched where the scene is quiet, coloured at the
source during an event; plus class probabilities, latency and a screenshot."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time

import cv2
import httpx
import numpy as np
import pytest
import websockets
from conftest import free_port
from test_server_live import wait_until_imaging
from websockets.exceptions import ConnectionClosed

from dualcam_rt.config import Settings
from dualcam_rt.inference.tiny import write_tiny_model
from dualcam_rt.labels import CLASSES
from dualcam_rt.server.app import create_app
from dualcam_rt.server.run import BackgroundServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# RECIPES.md: without the background-networking flags Chromium floods the closed network.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCENE = "sim://?scenario=1&seed=1&label=clapping"  # claps with quiet gaps (sensor noise only) between them
NEAR_PX = 27  # two acoustic pixels


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    write_tiny_model(models)
    with BackgroundServer(create_app(Settings(models_dir=models, hop_s=0.5), SCENE), free_port()) as url:
        wait_until_imaging(url)
        yield url


def ws_url(url: str, query: str = "") -> str:
    return url.replace("http://", "ws://") + "/v1/live" + query


async def positions_until(ws, done, timeout_s: float = 90.0) -> list[dict]:
    """Position messages from ``ws`` until ``done(messages)``."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout_s
    while not done(got):
        assert time.monotonic() < deadline, f"gave up after {len(got)} positions"
        m = await asyncio.wait_for(ws.recv(), timeout_s)
        if isinstance(m, str) and json.loads(m)["type"] == "position":
            got.append(json.loads(m))
    return got


async def text(ws) -> dict:
    """The next JSON message (video JPEGs skipped)."""
    while isinstance(m := await asyncio.wait_for(ws.recv(), 30), bytes):
        pass
    return json.loads(m)


def both_kinds(got: list[dict]) -> bool:
    return (
        any(p["source"] is None for p in got)
        and sum(p["source"] is not None and "layer" in p and p["layer"] is not None for p in got) >= 2
    )


@pytest.mark.slow
def test_live_says_no_source_between_events_and_sends_the_source_and_its_map_during_one(url):
    async def run():
        async with websockets.connect(ws_url(url, "?images=1"), max_size=None) as ws:
            return await positions_until(ws, both_kinds)

    got = asyncio.run(run())
    quiet = [p for p in got if p["source"] is None]
    loud = [p for p in got if p["source"] is not None]
    for p in quiet:  # noise: no position at all, and why
        assert p["reason"] == "below_margin" and p["contrast_db"] < p["margin_db"] == 5.0
        assert not {"u_px", "row", "azimuth_deg"} & set(p) and p["layer"] is None
    for p in loud:
        assert p["reason"] is None and p["contrast_db"] >= p["margin_db"]
        src = p["source"]
        assert np.hypot(src["u_px"] - p["truth_px"][0], src["v_px"] - p["truth_px"][1]) < NEAR_PX
        if p["layer"] is None:  # images are asked for: a source always comes with its layer
            raise AssertionError("a source without its colour-map layer")
    p = loud[-1]
    layer = cv2.imdecode(np.frombuffer(base64.b64decode(p["layer"].split(",", 1)[1]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert layer.shape == (240, 320, 4)
    u, v = (round(c / 2) for c in (p["source"]["u_px"], p["source"]["v_px"]))
    assert layer[v, u, 3] > 100 and layer[v, u, 2] > layer[v, u, 0]  # opaque and red-ish at the source
    assert (layer[..., 3] == 0).mean() > 0.3  # the rest of the frame stays clear


@pytest.mark.slow
def test_a_client_changes_the_band_and_range_for_every_viewer_and_bad_values_change_nothing(url):
    async def run():
        async with (
            websockets.connect(ws_url(url, "?images=1"), max_size=None) as ws,
            websockets.connect(ws_url(url), max_size=None) as other,
        ):
            await ws.send(json.dumps({"type": "view", "band_hz": [1000, 5000], "range_db": 6}))
            for client in (ws, other):  # both are told
                while (msg := await text(client))["type"] != "view":
                    pass
                assert msg == {"type": "view", "band_hz": [1000.0, 5000.0], "range_db": 6.0, "margin_db": 5.0}
            later = await positions_until(other, lambda got: len(got) >= 2)
            assert later[-1]["band_hz"] == [1000.0, 5000.0] and later[-1]["range_db"] == 6.0
            assert not any("layer" in p for p in later)  # layers go to image clients only
            await ws.send(json.dumps({"type": "view", "range_db": -3}))
            while (msg := await text(ws))["type"] != "error":
                pass
            assert msg["request"] == "view" and "range_db" in msg["message"]
            await ws.send(json.dumps({"type": "view", "band_hz": [900, 6400], "range_db": 10}))  # as it was
            after = await positions_until(ws, lambda got: len(got) >= 2)  # still connected
            assert after[-1]["range_db"] == 10.0 and after[-1]["band_hz"] == [900.0, 6400.0]
        async with websockets.connect(ws_url(url, "?band=high"), max_size=None) as bad:
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(bad.recv(), 30)
            assert closed.value.rcvd.code == 1008 and "band" in closed.value.rcvd.reason

    asyncio.run(run())


FREEZE_WHEN = """([wantSource, timeoutMs]) => new Promise((resolve, reject) => {
  // freeze the view (the page's own control) in the same JS turn as the wanted state is seen
  const view = document.getElementById("view"), layer = document.getElementById("layer");
  const t0 = Date.now();
  const poll = setInterval(() => {
    const source = view.dataset.source;
    const ready = wantSource
      ? source && source !== "none" && layer.style.visibility === "visible" && layer.complete && layer.naturalWidth > 0
      : source === "none";
    if (ready) {
      document.getElementById("freeze").click(); clearInterval(poll); resolve([source, view.dataset.truth]);
    }
    else if (Date.now() - t0 > timeoutMs) { clearInterval(poll); reject(new Error("state not seen: " + source)); }
  }, 2);
})"""

VIDEO_PIXELS = """() => { const img = document.getElementById("video"), c = document.createElement("canvas");
  c.width = img.naturalWidth; c.height = img.naturalHeight; c.getContext("2d").drawImage(img, 0, 0);
  return c.toDataURL("image/png"); }"""


LAYER_ALPHA = """([u, v]) => { const img = document.getElementById("layer"), c = document.createElement("canvas");
  c.width = 640; c.height = 480; c.getContext("2d").drawImage(img, 0, 0, 640, 480);
  return c.getContext("2d").getImageData(u, v, 1, 1).data[3]; }"""


def decode_png(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).astype(int)


def frozen_view(page, want_source: bool) -> tuple[np.ndarray, np.ndarray, str, str]:
    """(screenshot of the view, the video frame alone, source "u,v" or "none", truth "u,v") while frozen."""
    source, truth = page.evaluate(FREEZE_WHEN, [want_source, 90_000])
    shot = decode_png(page.locator("#view").screenshot())
    video = decode_png(base64.b64decode(page.evaluate(VIDEO_PIXELS).split(",", 1)[1]))
    return shot, video, source, truth


@pytest.mark.slow
def test_dashboard_draws_the_map_only_at_the_source_and_leaves_quiet_video_untouched(url, tmp_path):
    from playwright.sync_api import sync_playwright

    page_html = httpx.get(url + "/").text
    assert '<script src="/static/dashboard.js">' in page_html and "http" not in page_html.split("<body>")[1]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        try:
            page.goto(url + "/")
            page.wait_for_function("Number(document.getElementById('video').dataset.frames || 0) >= 3", timeout=30_000)
            page.wait_for_function("document.querySelector('#classes tr[data-probability]') !== null", timeout=30_000)
            rows = page.locator("#classes tr")
            assert rows.count() == len(CLASSES)
            probs = [
                float(p)
                for p in page.eval_on_selector_all("#classes tr", "rows => rows.map(r => r.dataset.probability || '0')")
            ]
            assert abs(sum(probs) - 1) < 0.01
            assert page.text_content("#latency").endswith(" ms")
            assert page.text_content("#connection") == "live"
            assert "(simulated)" in page.text_content("#device")
            assert "linear-gradient" in page.eval_on_selector("#legend-bar", "e => e.style.background")

            # between claps: no map, no marker, the video exactly as sent
            shot, video, source, _ = frozen_view(page, want_source=False)
            assert shot.shape == video.shape == (480, 640, 3)
            assert (np.abs(shot - video).max(axis=2) <= 2).mean() > 0.999
            assert page.text_content("#position").startswith("no source")
            assert not page.is_visible("#marker") and not page.is_visible("#marker-label")
            page.click("#freeze")  # live again

            # during a clap: coloured at the source, the video untouched far from it, marker and level shown
            shot, video, source, truth = frozen_view(page, want_source=True)
            u, v = (round(float(c)) for c in source.split(","))
            tu, tv = (float(c) for c in truth.split(","))
            assert np.hypot(u - tu, v - tv) < NEAR_PX
            alpha = page.evaluate(LAYER_ALPHA, [u, v])
            assert alpha > 100, alpha  # the map is opaque at the source (0.6 x 255 at the peak)
            # on screen: changed just below the marker ring (the subject's own colours may be close to the map's)
            at_source = (
                np.abs(shot[v + 14 : v + 24, u - 5 : u + 5] - video[v + 14 : v + 24, u - 5 : u + 5]).max(axis=2).mean()
            )
            assert at_source > 20, at_source
            far_u = 20 if u > 320 else 600
            far = np.abs(shot[400:440, far_u - 10 : far_u + 10] - video[400:440, far_u - 10 : far_u + 10]).max()
            assert far <= 2, far
            assert page.is_visible("#marker") and page.text_content("#marker-label").endswith(" dB")
            assert page.text_content("#position").startswith("source: az ")
            top, bottom = (float(page.text_content(f"#legend-{k}").split()[0]) for k in ("top", "bottom"))
            assert top - bottom == pytest.approx(10, abs=0.11)
            shot_path = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot_path))
            assert shot_path.stat().st_size > 20_000
        finally:
            browser.close()
