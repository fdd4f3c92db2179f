"""Shared fixtures: a free loopback port, the dualcam-rt CLI as a subprocess."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

CLI = [sys.executable, "-m", "dualcam_rt"]

# The suite runs on an empty cache of its own (steering, room responses, sound bank), as CI does on
# a fresh machine: what a developer's ~/.cache/dualcam-rt holds (a built sound bank) must not change
# what the tests see. Set before dualcam_rt is imported; subprocesses inherit it.
TEST_CACHE_DIR = tempfile.mkdtemp(prefix="dualcam-tests-cache-")
os.environ["DUALCAM_CACHE_DIR"] = TEST_CACHE_DIR


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(TEST_CACHE_DIR, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def port() -> int:
    return free_port()


def run_cli(*args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``dualcam-rt ARGS`` in a real subprocess and capture its output."""
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def _pactl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10)


@pytest.fixture(scope="session")
def pulse_sink():
    """A private null sink on a real PulseAudio server (started when none runs); yields its name.

    Record only what a test plays into it by setting ``PULSE_SOURCE=<sink>.monitor``."""
    import shutil

    assert shutil.which("pulseaudio") and shutil.which("paplay"), (
        "install pulseaudio: make test does (deploy/system-packages.sh test)"
    )
    started = False
    if _pactl("info").returncode != 0:
        subprocess.run(
            [
                "pulseaudio",
                "--daemonize=yes",
                "--exit-idle-time=-1",
                "--system=false",
                "--disallow-exit",
                "-n",
                "--load=module-native-protocol-unix",
                "--load=module-always-sink",
            ],
            check=True,
            timeout=30,
        )
        started = True
        deadline = time.monotonic() + 10
        while _pactl("info").returncode != 0:
            assert time.monotonic() < deadline, "PulseAudio started but never answered"
            time.sleep(0.1)
    sink = f"dualcam_test_{os.getpid()}"
    loaded = _pactl("load-module", "module-null-sink", f"sink_name={sink}")
    assert loaded.returncode == 0, f"PulseAudio refused a null sink: {loaded.stderr}"
    module = loaded.stdout.strip()
    deadline = time.monotonic() + 10  # the monitor source is what the tests record from
    while f"{sink}.monitor" not in _pactl("list", "short", "sources").stdout:
        assert time.monotonic() < deadline, f"PulseAudio never showed {sink}.monitor"
        time.sleep(0.1)
    yield sink
    _pactl("unload-module", module)
    if started:
        subprocess.run(["pulseaudio", "--kill"], timeout=10)
