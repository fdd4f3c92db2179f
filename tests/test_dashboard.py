"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): it renders class
probabilities, the latency and overlay frames from the live simulated sensor, and a screenshot."""

from __future__ import annotations

import shutil

import httpx
import pytest

from conftest import free_port
from dualcam_rt.config import Settings
from dualcam_rt.inference.tiny import write_tiny_model
from dualcam_rt.labels import CLASSES
from dualcam_rt.server.app import create_app
from dualcam_rt.server.run import BackgroundServer
from test_server_live import wait_until_imaging

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# RECIPES.md: without the background-networking flags Chromium floods the closed network.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.mark.slow
def test_dashboard_shows_live_overlay_probabilities_and_latency(tmp_path):
    from playwright.sync_api import sync_playwright

    write_tiny_model(tmp_path / "models")
    settings = Settings(models_dir=tmp_path / "models", hop_s=0.5)
    with BackgroundServer(create_app(settings, "sim://?scenario=1&seed=1&label=clapping"), free_port()) as url:
        wait_until_imaging(url)
        page_html = httpx.get(url + "/").text
        assert "<script src=\"/static/dashboard.js\">" in page_html and "http" not in page_html.split("<body>")[1]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            try:
                page.goto(url + "/")
                page.wait_for_function("Number(document.getElementById('video').dataset.frames || 0) >= 3",
                                       timeout=30_000)
                page.wait_for_function("document.querySelector('#classes tr[data-probability]') !== null",
                                       timeout=30_000)
                first_src = page.get_attribute("#video", "src")
                page.wait_for_function(f"document.getElementById('video').src !== {first_src!r}", timeout=10_000)
                rows = page.locator("#classes tr")
                assert rows.count() == len(CLASSES)
                probs = [float(p) for p in page.eval_on_selector_all(
                    "#classes tr", "rows => rows.map(r => r.dataset.probability || '0')")]
                assert abs(sum(probs) - 1) < 0.01
                assert page.text_content("#label") in CLASSES
                assert page.text_content("#latency").endswith(" ms")
                assert "az " in page.text_content("#position")
                assert page.text_content("#connection") == "live"
                assert "(simulated)" in page.text_content("#device")
                size = page.evaluate("[document.getElementById('video').naturalWidth,"
                                     " document.getElementById('video').naturalHeight]")
                assert size == [640, 480]  # a decoded overlay JPEG, not a broken image
                shot = tmp_path / "dashboard.png"
                page.screenshot(path=str(shot))
                assert shot.stat().st_size > 20_000
            finally:
                browser.close()
