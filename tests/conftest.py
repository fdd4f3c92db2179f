"""Shared fixtures: a free loopback port, the dualcam-rt CLI as a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "dualcam_rt"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def port() -> int:
    return free_port()


def run_cli(*args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``dualcam-rt ARGS`` in a real subprocess and capture its output."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
