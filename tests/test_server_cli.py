"""``dualcam-rt serve`` as a real subprocess: it comes up ready on the simulated sensor, and bad
arguments exit 2 with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
from conftest import CLI, free_port, run_cli

from dualcam_rt.inference.tiny import write_tiny_model


def test_serve_comes_up_ready_on_the_simulated_sensor_and_stops_on_sigterm(tmp_path):
    write_tiny_model(tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "sim://?scenario=1&seed=5", "--port", str(port), "--models-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DUALCAM_HOP_S": "0.25", "DUALCAM_IMAGING": "0"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        status = httpx.get(f"{url}/v1/status").json()
        assert status["device"]["uri"] == "sim://?scenario=1&seed=5" and status["live"]["hop_s"] == 0.25
        assert status["live"]["imaged_frames"] == 0 and status["live"]["beamform_backend"] is None
        assert "<title>dualcam-rt</title>" in httpx.get(f"{url}/").text
        assert httpx.get(f"{url}/static/dashboard.js").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, -signal.SIGTERM), err  # uvicorn re-raises the signal after a clean shutdown
    assert "Application shutdown complete" in err
    assert "Traceback" not in err


def test_serve_refuses_bad_arguments_in_one_line():
    r = run_cli("serve", "bogus://nowhere", "--port", str(free_port()))
    assert r.returncode == 2 and "unknown device URI" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("serve", "--port", "70000")
    assert r.returncode == 2 and "port" in r.stderr
