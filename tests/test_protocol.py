"""The wire protocol: codec round trips, framing, loss/CRC/length accounting, fuzzing."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_io import (
    AUDIO,
    HEADER_SIZE,
    STATUS,
    VIDEO,
    AudioEncoding,
    StreamDecoder,
    decode_audio,
    decode_status,
    encode_audio,
    encode_packet,
    encode_status,
    encode_video,
)
from firmware_io.codec import crc32c
from firmware_io.packet import CRC_SPAN, HEADER, MAGIC, MAX_PAYLOAD
from firmware_io.stream import MAX_PENDING

RNG = np.random.default_rng(0)
BLOCK = (RNG.standard_normal((128, 1024)) * 0.5).astype(np.float32)


def packet_with_header(stream, encoding, seq, ts, payload, claimed_len=None, version=1):
    """A packet whose header may lie about its payload length but still has a valid header CRC."""
    head = HEADER.pack(
        MAGIC,
        version,
        stream,
        encoding,
        0,
        seq,
        ts,
        len(payload) if claimed_len is None else claimed_len,
        crc32c(payload),
        0,
    )
    return head[:CRC_SPAN] + crc32c(head[:CRC_SPAN]).to_bytes(4, "little") + payload


def small_stream(n=6):
    """n audio packets (8 channels x 64 samples) interleaved with a video and a status packet."""
    parts = []
    for i in range(n):
        parts.append(encode_audio(BLOCK[:8, :64], i, i * 64, 12288))
        parts.append(encode_video(b"\xff\xd8jpeg" + bytes([i]), i, i * 64 + 32))
    parts.append(encode_status({"ok": True}, 0, n * 64))
    return parts


@pytest.mark.parametrize(
    "encoding,tolerance_pa",
    [(AudioEncoding.INT16, 20 / 2**15), (AudioEncoding.INT24, 20 / 2**23), (AudioEncoding.FLOAT32, 0.0)],
)
def test_audio_block_round_trips_within_one_count(encoding, tolerance_pa):
    pkt = encode_audio(BLOCK, 7, 1024 * 7, 12288, encoding)
    packets = StreamDecoder().feed(pkt)
    assert len(packets) == 1 and packets[0].sequence == 7 and packets[0].timestamp == 7168
    audio, rate = decode_audio(packets[0].payload, packets[0].header.encoding)
    assert rate == 12288 and audio.shape == (128, 1024) and audio.dtype == np.float32
    assert audio.flags.c_contiguous
    assert np.abs(audio - BLOCK).max() <= tolerance_pa * 0.5 + 1e-7


def test_int24_keeps_sign_and_saturates_at_full_scale():
    pa = np.array([[-25.0, -20.0, -1e-5, 0.0, 2.4e-6, 1.0, 19.9999, 25.0]], np.float32)
    pkt = encode_audio(pa, 0, 0, 12288, AudioEncoding.INT24)
    raw = np.frombuffer(pkt[HEADER_SIZE + 12 :], np.uint8).reshape(-1, 3).astype(np.int64)
    counts = raw[:, 0] | raw[:, 1] << 8 | raw[:, 2] << 16
    counts = np.where(counts >= 2**23, counts - 2**24, counts)
    assert counts[0] == -(2**23) and counts[-1] == 2**23 - 1  # saturated, not wrapped
    audio, _ = decode_audio(pkt[HEADER_SIZE:], AudioEncoding.INT24)
    np.testing.assert_allclose(audio[0], np.clip(pa[0], -20, 20 - 20 / 2**23), atol=20 / 2**23)
    assert audio[0, 2] < 0 < audio[0, 4]


def test_decoder_gives_the_same_packets_for_any_chunking():
    stream = b"".join(small_stream())
    whole = StreamDecoder().feed(stream)
    dec = StreamDecoder()
    bytewise = [p for i in range(len(stream)) for p in dec.feed(stream[i : i + 1])]
    assert [(p.stream, p.sequence, p.payload) for p in whole] == [(p.stream, p.sequence, p.payload) for p in bytewise]
    assert len(whole) == 13 and dec.stats.bytes_dropped == 0 and dec.stats.balanced()
    assert decode_status(whole[-1].payload) == {"ok": True}


def test_sequence_gap_is_counted_as_lost_packets_per_stream():
    parts = small_stream()
    del parts[4:8]  # audio 2, video 2, audio 3, video 3
    dec = StreamDecoder()
    dec.feed(b"".join(parts))
    assert dec.stats.lost_packets == 4 and dec.stats.lost_by_stream == {AUDIO: 2, VIDEO: 2}
    assert dec.stats.bytes_dropped == 0


def test_corrupted_payload_is_dropped_counted_and_the_next_packet_survives():
    parts = small_stream()
    bad = bytearray(parts[2])
    bad[HEADER_SIZE + 40] ^= 0xFF
    parts[2] = bytes(bad)
    dec = StreamDecoder()
    packets = dec.feed(b"".join(parts))
    assert dec.stats.crc_errors == 1 and len(packets) == 12
    assert dec.stats.bytes_dropped == len(bad) and dec.stats.balanced()
    assert dec.stats.lost_by_stream == {AUDIO: 1}


def test_header_claiming_a_huge_payload_is_rejected_before_buffering():
    liar = packet_with_header(VIDEO, 1, 0, 0, b"x" * 10, claimed_len=MAX_PAYLOAD[VIDEO] + 1)
    good = encode_video(b"frame", 1, 10)
    dec = StreamDecoder()
    packets = dec.feed(liar + good)
    assert [p.payload for p in packets] == [b"frame"]
    assert dec.stats.malformed == 1 and dec.stats.pending_bytes == 0 and dec.stats.balanced()


def test_header_claiming_a_longer_payload_hides_no_following_packet():
    liar = packet_with_header(VIDEO, 1, 0, 0, b"short", claimed_len=200)
    parts = small_stream()
    dec = StreamDecoder()
    packets = dec.feed(liar + b"".join(parts))
    assert len(packets) == 13  # all the real packets inside the claimed span are recovered
    assert dec.stats.crc_errors == 1 and dec.stats.bytes_dropped == len(liar) and dec.stats.balanced()


def test_audio_subheader_that_disagrees_with_the_length_is_malformed():
    body = struct.pack("<HHIf", 128, 1024, 12288, 20.0) + bytes(30)  # claims 128x1024 int24
    dec = StreamDecoder()
    assert dec.feed(packet_with_header(AUDIO, int(AudioEncoding.INT24), 0, 0, body)) == []
    assert dec.stats.malformed == 1 and dec.stats.balanced()


def test_unknown_version_and_stream_are_malformed():
    dec = StreamDecoder()
    dec.feed(packet_with_header(STATUS, 1, 0, 0, b"{}", version=9) + packet_with_header(7, 1, 0, 0, b"{}"))
    assert dec.stats.malformed == 2 and dec.stats.packets == 0 and dec.stats.balanced()


def test_backwards_sequence_is_a_reset_not_a_loss():
    dec = StreamDecoder()
    dec.feed(encode_packet(STATUS, 1, 500, 0, b"{}") + encode_packet(STATUS, 1, 0, 0, b"{}"))
    assert dec.stats.lost_packets == 0 and dec.stats.sequence_resets == 1


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=12))
def test_random_bytes_never_crash_and_every_byte_is_accounted(chunks):
    dec = StreamDecoder()
    for chunk in chunks:
        dec.feed(chunk)
        assert dec.stats.pending_bytes <= MAX_PENDING
    dec.discard_pending()
    assert dec.stats.balanced() and dec.stats.bytes_dropped + dec.stats.packet_bytes == dec.stats.bytes_in


@FUZZ
@given(st.data())
def test_mutated_streams_never_crash_and_never_invent_packets(data):
    parts = small_stream(4)
    stream = bytearray(b"".join(parts))
    for _ in range(data.draw(st.integers(0, 6))):
        kind = data.draw(st.sampled_from(["flip", "insert", "delete", "magic"]))
        at = data.draw(st.integers(0, len(stream) - 1))
        if kind == "flip":
            stream[at] ^= data.draw(st.integers(1, 255))
        elif kind == "insert":
            stream[at:at] = data.draw(st.binary(min_size=1, max_size=40))
        elif kind == "delete":
            del stream[at : at + data.draw(st.integers(1, 40))]
        else:
            stream[at:at] = MAGIC
    cut = data.draw(st.integers(0, len(stream)))
    dec = StreamDecoder()
    packets = dec.feed(bytes(stream[:cut])) + dec.feed(bytes(stream[cut:]))
    originals = {bytes(p) for p in parts}
    # Every packet that comes out is one that went in, byte for byte.
    for p in packets:
        assert encode_packet(p.stream, p.header.encoding, p.sequence, p.timestamp, p.payload) in originals
        if p.stream == AUDIO:
            assert decode_audio(p.payload, p.header.encoding)[0].shape == (8, 64)
    dec.discard_pending()
    assert dec.stats.balanced()


def test_client_backs_off_exponentially_and_gives_up_when_the_device_is_gone():
    import socket
    import threading
    import time

    from firmware_io import TcpClient, TransportError

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_once_then_vanish():
        conn, _ = listener.accept()
        conn.sendall(encode_status({"hello": 1}, 0, 0))
        conn.close()
        listener.close()  # the port now refuses connections

    threading.Thread(target=answer_once_then_vanish, daemon=True).start()
    client = TcpClient("127.0.0.1", port, read_timeout=1.0, give_up_s=1.5, backoff_s=0.1, max_backoff_s=2.0)
    client.open(2.0)
    start = time.monotonic()
    got = []
    with pytest.raises(TransportError, match="cannot connect"):
        for packet in client.packets():
            got.append(packet)
    took = time.monotonic() - start
    assert [decode_status(p.payload) for p in got] == [{"hello": 1}]
    # Waits of 0.1, 0.2, 0.4, 0.8 s: a handful of attempts, not a busy loop, and it does give up.
    assert 3 <= client.attempts <= 6 and 0.5 < took < 4


def test_decode_benchmark_prints_its_figures_as_json(monkeypatch, capsys):
    import json

    from dualcam_rt.bench import decode

    monkeypatch.setattr(decode, "SECONDS", 1)  # the figures' shape, not their size, is checked here
    monkeypatch.setattr(decode, "REPEATS", 1)
    figures = decode.run(as_json=True)
    assert json.loads(capsys.readouterr().out) == figures
    assert set(figures["encodings"]) == {"int24", "int16", "float32"}
    assert figures["encodings"]["int24"]["x_realtime"] > 0 and figures["baselines"]["memcpy_x_realtime"] > 0
