"""``dualcam-rt probe`` and ``simulate-device`` as a user runs them: real subprocesses, real sockets."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time

import numpy as np
import pytest
from conftest import CLI, free_port, run_cli

from firmware_io import VIDEO, encode_audio, encode_status
from firmware_io.codec import crc32c
from firmware_io.packet import CRC_SPAN, HEADER, MAGIC


@contextlib.contextmanager
def simulate_device(*args: str):
    """``dualcam-rt simulate-device --port P ARGS`` as a subprocess; yields its URI once it listens."""
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "simulate-device", "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "simulate-device did not start listening"
            time.sleep(0.1)
        yield f"dualcam://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def rogue_device(talk):
    """A TCP server whose every connection is handed to ``talk(conn)`` (a misbehaving device)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn, contextlib.suppress(OSError):
                talk(conn, stop)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"dualcam://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        t.join(5)
        listener.close()


def lying_header(stream, encoding, claimed_len, payload=b""):
    head = HEADER.pack(MAGIC, 1, stream, encoding, 0, 0, 0, claimed_len, crc32c(payload), 0)
    return head[:CRC_SPAN] + crc32c(head[:CRC_SPAN]).to_bytes(4, "little") + payload


def assert_one_line_failure(result, code=1):
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.stderr
    return lines[0]


def test_probe_of_simulate_device_shows_128_channels_at_12288_hz_12_fps_and_no_loss():
    with simulate_device() as uri:
        result = run_cli("probe", uri, "--seconds", "3", "--json", timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["channels"] == 128 and report["sample_rate"] == 12288
    assert report["frame_shape"] == [480, 640, 3]
    assert report["audio_blocks"] >= 28 and report["video_frames"] >= 28, report
    assert 10.5 <= report["blocks_per_second"] <= 13.5 and 10 <= report["video_fps"] <= 14, report
    for key in ("lost_packets", "lost_samples", "crc_errors", "dropped_bytes", "malformed_packets"):
        assert report[key] == 0, report
    assert report["errors"] == [] and report["device"]["device_status"]["device"] == "dualcam-sim"


def test_probe_of_a_device_sending_garbage_exits_1_with_one_line_and_the_counts():
    def garbage(conn, stop):
        rng = np.random.default_rng(0)
        while not stop.is_set():
            conn.sendall(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes() + MAGIC)
            time.sleep(0.01)

    with rogue_device(garbage) as uri:
        start = time.monotonic()
        result = run_cli("probe", uri, "--seconds", "2", "--timeout", "0.5", "--json", timeout=30)
        took = time.monotonic() - start
    line = assert_one_line_failure(result)
    assert "no valid packet" in line and "bytes dropped" in line
    assert took < 15


def test_probe_of_a_device_lying_about_lengths_reports_malformed_packets():
    def liar(conn, stop):
        conn.sendall(encode_status({"device": "liar"}, 0, 0))  # answers, so it opens
        block = np.zeros((128, 1024), np.float32)
        seq = 0
        while not stop.is_set():
            seq += 1
            good = bytearray(encode_audio(block, seq, seq * 1024, 12288))
            good[44:46] = (64).to_bytes(2, "little")  # sub-header: 64 channels
            conn.sendall(
                lying_header(VIDEO, 1, 50_000_000)  # far beyond the video limit
                + lying_header(1, 2, len(good) - 32, bytes(good[32:]))
            )  # CRC-valid, inconsistent
            time.sleep(0.05)

    with rogue_device(liar) as uri:
        result = run_cli("probe", uri, "--seconds", "1.5", "--timeout", "0.6", "--json", timeout=30)
    line = assert_one_line_failure(result)
    report = json.loads(result.stdout)
    assert report["malformed_packets"] >= 2 and report["audio_blocks"] == 0
    assert "malformed" in line


def test_probe_of_a_silent_device_fails_fast_instead_of_hanging():
    with rogue_device(lambda conn, stop: stop.wait(30)) as uri:
        start = time.monotonic()
        result = run_cli("probe", uri, "--seconds", "5", "--timeout", "0.5", timeout=30)
        assert time.monotonic() - start < 10
    assert "did not answer" in assert_one_line_failure(result)


def test_probe_of_a_closed_port_exits_1():
    assert "did not answer" in assert_one_line_failure(
        run_cli("probe", f"dualcam://127.0.0.1:{free_port()}", "--timeout", "0.5")
    )


def test_probe_reports_packet_loss_and_exits_1():
    # max speed: a device paced at 4x lags on a busy machine and drops whole ticks (audio and video
    # both), which would break the one-block-per-lost-packet count below
    with simulate_device("--drop-every", "6", "--speed", "max") as uri:
        result = run_cli("probe", uri, "--seconds", "1.5", "--json", timeout=60)
    line = assert_one_line_failure(result)
    report = json.loads(result.stdout)
    assert report["lost_packets"] >= 2 and report["lost_samples"] == 1024 * report["lost_packets"]
    assert "packets lost" in line


def test_probe_of_sim_uri_needs_no_socket():
    result = run_cli("probe", "sim://?scenario=2&seed=2", "--seconds", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["simulated"] is True and report["channels"] == 128 and report["audio_blocks"] >= 8


@pytest.mark.parametrize(
    "args",
    [
        ["probe", "nope://x"],
        ["probe", "sim://", "--seconds", "0"],
        ["probe", "dualcam://127.0.0.1:1", "--timeout", "0"],
        ["simulate-device", "--encoding", "int12"],
        ["simulate-device", "--scenario", "7"],
    ],
)
def test_bad_usage_exits_2_with_one_line(args):
    assert_one_line_failure(run_cli(*args, timeout=30), code=2)


def test_simulate_device_on_a_busy_port_exits_1():
    with socket.create_server(("127.0.0.1", 0)) as busy:
        result = run_cli(
            "simulate-device", "--port", str(busy.getsockname()[1]), timeout=30, env={"PYTHONWARNINGS": "ignore"}
        )
    assert "cannot listen" in assert_one_line_failure(result)


def test_cli_help_lists_the_acquisition_commands():
    out = run_cli("--help", env={"COLUMNS": "200"}).stdout
    assert all(cmd in out for cmd in ("geometry", "simulate-device", "probe"))
