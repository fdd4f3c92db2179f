"""Devices: sim:// in process, dualcam:// over real sockets, the shared clock, loss, reconnects, fallback."""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
import time

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dualcam_rt.devices import open_device
from dualcam_rt.devices.dualcam import AudioAssembler
from dualcam_rt.devices.simulator import SimulatedDualCam
from dualcam_rt.errors import BadInput, DeviceError
from dualcam_rt.sim import Scene
from firmware_io import AudioEncoding, encode_audio, encode_status, encode_video

INT24_STEP_PA = 20 / 2**23


def take(device, n):
    """The first n frames of a device, then close it."""
    with device:
        return list(itertools.islice(device.frames(), n))


@pytest.fixture
def sim_server():
    """Start a simulated DualCam (real TCP socket) with options; closed after the test."""
    servers = []

    def start(**options):
        server = SimulatedDualCam("127.0.0.1", 0, **{"speed": float("inf"), **options})
        server.start()
        servers.append(server)
        return f"dualcam://127.0.0.1:{server.port}"

    yield start
    for s in servers:
        s.close()


def test_sim_uri_streams_sensor_frames_with_video_and_truth():
    frames = take(open_device("sim://?scenario=2&seed=7&label=knocking&subject=3&speed=max"), 3)
    assert [f.index for f in frames] == [0, 1, 2]
    assert [f.first_sample for f in frames] == [0, 1024, 2048]
    f = frames[1]
    assert f.audio.shape == (128, 1024) and f.audio.dtype == np.float32 and f.sample_rate == 12288
    assert f.video.shape == (480, 640, 3) and f.video.dtype == np.uint8
    assert f.timestamp == pytest.approx(1 / 12) and f.video_timestamp == pytest.approx(1.5 / 12)
    assert f.truth["label"] == "knocking" and f.truth["subject"] == 3 and f.truth["scenario"] == 2
    assert np.array_equal(f.audio, _scene_ticks(2, seed=7, scenario=2, label="knocking", subject=3)[1])


def test_sim_is_paced_at_real_time_by_default():
    start = time.monotonic()
    take(open_device("sim://?seed=1"), 7)  # ticks 0..6 are due at 0 .. 0.5 s
    assert time.monotonic() - start >= 0.45


@pytest.mark.parametrize(
    "uri",
    [
        "sim://?scenario=9",
        "sim://?label=dancing",
        "sim://?speed=-2",
        "sim://?seed=abc",
        "dualcam://127.0.0.1:notaport",
        "dualcam://:7700",
        "tape://x",
    ],
)
def test_bad_device_uri_is_bad_input(uri):
    with pytest.raises(BadInput):
        open_device(uri)


def _scene_ticks(n, **scene_options):
    scene = Scene(**scene_options)
    return [scene.next_tick().audio for _ in range(n)]


@pytest.mark.parametrize("encoding,tolerance_pa", [("FLOAT32", 0.0), ("INT24", INT24_STEP_PA), ("INT16", 20 / 2**15)])
def test_dualcam_client_delivers_the_scene_audio_in_pascal(sim_server, encoding, tolerance_pa):
    uri = sim_server(seed=4, encoding=AudioEncoding[encoding])
    frames = take(open_device(uri, timeout=2), 4)
    expected = _scene_ticks(4, seed=4)
    for frame, audio in zip(frames, expected):
        assert frame.audio.shape == (128, 1024) and frame.lost_samples == 0
        assert np.abs(frame.audio - audio).max() <= tolerance_pa / 2 + 1e-7


def test_impulse_and_flash_land_in_the_same_frame_over_a_real_socket(sim_server):
    uri = sim_server(seed=2, impulse_ticks=[5])
    frames = take(open_device(uri), 9)
    loudest = max(frames, key=lambda f: np.abs(f.audio).max())
    brightest = max(frames, key=lambda f: f.video.mean())
    assert loudest.index == brightest.index == 5
    assert brightest.video.mean() > 200 and np.median([f.video.mean() for f in frames]) < 120
    # Both streams are on the device's sample clock: the flash's frame lies within the block.
    assert loudest.timestamp <= loudest.video_timestamp < loudest.timestamp + 1024 / 12288
    assert all(f.video is not None for f in frames)


def test_lost_audio_packets_are_zero_filled_and_counted(sim_server):
    uri = sim_server(seed=1, drop_every=4)
    device = open_device(uri)
    frames = take(device, 10)
    assert [f.first_sample for f in frames] == [1024 * i for i in range(10)]  # the clock keeps going
    lost = [f.index for f in frames if f.lost_samples]
    assert lost == [3, 7]
    assert all(not frames[i].audio.any() for i in lost) and frames[2].audio.any()
    assert device.stats.lost_packets == 2 and device.stats.lost_samples == 2048
    assert device.stats.extra["lost_by_stream"] == {"audio": 2}


def _serve_in_pieces(listener: socket.socket, ticks_per_connection: int, connections: int):
    """A device that closes the connection every few ticks and carries on after a reconnect."""
    scene = Scene(seed=3)
    tick = 0
    for n in range(connections):
        conn, _ = listener.accept()
        with conn, contextlib.suppress(OSError):  # the client may leave first
            conn.sendall(encode_status({"device": "flaky"}, n, tick * 1024))
            for _ in range(ticks_per_connection):
                st = scene.next_tick()
                jpeg = cv2.imencode(".jpg", st.video)[1].tobytes()
                conn.sendall(
                    encode_audio(st.audio, tick, tick * 1024, 12288) + encode_video(jpeg, tick, tick * 1024 + 512)
                )
                tick += 1
            time.sleep(0.05)


def test_dualcam_reconnects_with_backoff_and_keeps_the_clock():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = threading.Thread(target=_serve_in_pieces, args=(listener, 4, 3), daemon=True)
    server.start()
    try:
        device = open_device(f"dualcam://127.0.0.1:{port}", timeout=2)
        with device:
            frames = []
            for f in device.frames():
                frames.append(f)
                if len(frames) == 10:
                    break
        assert [f.first_sample for f in frames] == [1024 * i for i in range(10)]
        assert device.stats.reconnects == 2 and device.stats.lost_packets == 0
        assert device.describe()["device_status"]["device"] == "flaky"
    finally:
        listener.close()


def test_silent_dualcam_without_fallback_fails_within_the_timeout():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog) but never speaks
        start = time.monotonic()
        with pytest.raises(DeviceError, match="did not answer"):
            open_device(f"dualcam://127.0.0.1:{silent.getsockname()[1]}", timeout=0.4)
        assert time.monotonic() - start < 3


def test_unanswering_dualcam_falls_back_to_sim_with_a_warning(caplog):
    with socket.create_server(("127.0.0.1", 0)) as silent:
        uri = f"dualcam://127.0.0.1:{silent.getsockname()[1]}"
        with caplog.at_level(logging.WARNING, logger="dualcam_rt.devices"):
            device = open_device(uri, fallback_uri="sim://?scenario=1&seed=0", timeout=0.3)
    with device:
        d = device.describe()
        assert device.kind == "sim" and d["fallback"] is True and d["fallback_from"]["uri"] == uri
        assert "falling back" in caplog.text and uri in caplog.text
        assert next(iter(device.frames())).audio.shape == (128, 1024)


def test_answering_dualcam_does_not_fall_back(sim_server):
    device = open_device(sim_server(), fallback_uri="sim://?scenario=1&seed=0", timeout=2)
    with device:
        assert device.kind == "dualcam" and device.describe()["fallback"] is False


def test_assembler_reblocks_odd_packets_and_trims_overlaps():
    asm = AudioAssembler(1024, 12288)
    signal = np.arange(4096, dtype=np.float32)[None, :].repeat(2, axis=0)
    blocks = []
    for start in range(0, 4096, 300):
        blocks += asm.add(start, signal[:, start : start + 300])
    blocks += asm.add(1000, signal[:, 1000:1500])  # a duplicate: nothing new
    assert [b[0] for b in blocks] == [0, 1024, 2048, 3072]
    assert np.array_equal(np.concatenate([b[1] for b in blocks], axis=1), signal)
    assert asm.lost_samples == 0


def test_assembler_restarts_the_block_clock_after_a_very_long_gap():
    asm = AudioAssembler(1024, 12288)
    first = asm.add(0, np.ones((1, 512), np.float32))
    later = asm.add(10**7, np.ones((1, 1024), np.float32))
    assert first == [] and [b[0] for b in later] == [0, 10**7]
    assert later[0][2] == 512 and later[1][2] == 0  # the padded block says it is half zeros


def test_dualcam_client_survives_a_corrupting_link():
    """Bit errors on the link cost the damaged packets only: no crash, the clock and counts hold."""
    rng = np.random.default_rng(5)
    scene = Scene(seed=5)
    wire = bytearray(encode_status({"device": "noisy"}, 0, 0))
    for tick in range(24):
        st = scene.next_tick()
        wire += encode_audio(st.audio, tick, tick * 1024, 12288)
        wire += encode_video(cv2.imencode(".jpg", st.video)[1].tobytes(), tick, tick * 1024 + 512)
    for at in rng.integers(64, len(wire), 12):  # a dozen flipped bytes somewhere in 24 ticks
        wire[at] ^= 0x5A
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = listener.accept()
        with conn, contextlib.suppress(OSError):
            conn.sendall(wire)
            time.sleep(0.3)

    threading.Thread(target=serve, daemon=True).start()
    device = open_device(f"dualcam://127.0.0.1:{listener.getsockname()[1]}", timeout=1, reconnect=False)
    frames = []
    with device, pytest.raises(DeviceError):
        for f in device.frames():
            frames.append(f)
    listener.close()
    s = device.stats
    assert s.crc_errors >= 1 and s.dropped_bytes > 0 and s.lost_packets >= 1
    assert len(frames) >= 18 and all(f.audio.shape == (128, 1024) for f in frames)  # held blocks flushed at the end
    starts = [f.first_sample for f in frames]
    assert starts == list(range(starts[0], starts[0] + 1024 * len(frames), 1024))  # zero-filled, not skipped
    assert sum(f.lost_samples for f in frames) == s.lost_samples and s.lost_samples % 1024 == 0


def test_simulated_dualcam_answers_at_once_even_when_its_scene_is_slow_to_build(sim_server):
    uri = sim_server(scenario=3, seed=1)  # building this room takes ~2 s: done at start-up, not per connection
    device = open_device(uri, timeout=1.0)  # "did not answer" if the room were built on connect
    frames = take(device, 2)
    assert frames[1].first_sample == 1024 and device.device_status["scenario"] == 3


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(-600, 3000), st.integers(1, 1500)), min_size=1, max_size=25))
def test_assembler_never_loses_the_clock_whatever_packets_arrive(packets):
    """Packets with random gaps (positive), overlaps (negative) and sizes: blocks stay contiguous,
    every sample holds the first data that arrived for it or is counted as zero fill."""
    asm = AudioAssembler(1024, 12288)
    clock, blocks, written = 0, [], {}
    for shift, size in packets:
        first = max(0, clock + shift)
        data = np.arange(first, first + size, dtype=np.float32)[None, :] + 1  # sample i holds i + 1
        for i in range(max(first, clock), first + size):  # late samples for filled gaps are dropped
            written[i] = i + 1
        blocks += asm.add(first, data)
        clock = max(clock, first + size)
    if not blocks:
        return
    starts = [b[0] for b in blocks]
    assert starts == list(range(starts[0], starts[0] + 1024 * len(blocks), 1024))
    for start, audio, lost in blocks:
        expect = np.array([written.get(i, 0) for i in range(start, start + 1024)], np.float32)
        assert np.array_equal(audio[0], expect) and lost == int((expect == 0).sum())
