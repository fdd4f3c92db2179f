"""Encode and decode packets and payloads (vectorised NumPy; CRC32C from google-crc32c).

Audio samples travel sample-major (all channels of sample 0, then of sample 1, ...), the order
a TDM microphone bus produces them, little-endian. Integers map to pascal linearly:
``pa = counts / 2**(bits - 1) * full_scale_pa``; the default full scale is 20 Pa (120 dB SPL, the
acoustic overload point of typical digital MEMS microphones), so an int24 count is 2.4 uPa.
"""

from __future__ import annotations

import json

import google_crc32c
import numpy as np

from .packet import (
    AUDIO,
    AUDIO_SUBHEADER,
    CRC_SPAN,
    HEADER,
    JPEG,
    JSON,
    MAGIC,
    MAX_CHANNELS,
    MAX_SAMPLES,
    STATUS,
    VERSION,
    VIDEO,
    AudioEncoding,
    Header,
    ProtocolError,
)

FULL_SCALE_PA = 20.0  # sound pressure of integer full scale: 120 dB SPL re 20 uPa


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli) of ``data``."""
    return google_crc32c.value(data)


def encode_packet(stream: int, encoding: int, sequence: int, timestamp: int, payload: bytes) -> bytes:
    """One packet on the wire: header (with both CRCs) followed by the payload."""
    head = HEADER.pack(
        MAGIC, VERSION, stream, encoding, 0, sequence & 0xFFFFFFFF, timestamp, len(payload), crc32c(payload), 0
    )
    return head[:CRC_SPAN] + crc32c(head[:CRC_SPAN]).to_bytes(4, "little") + payload


def parse_header(raw: bytes) -> Header:
    """The header in the first 32 bytes of ``raw``; ProtocolError if its magic or CRC is wrong."""
    magic, version, stream, encoding, flags, seq, ts, length, pcrc, hcrc = HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise ProtocolError("bad magic")
    if crc32c(bytes(raw[:CRC_SPAN])) != hcrc:
        raise ProtocolError("header CRC mismatch")
    return Header(stream, encoding, seq, ts, length, pcrc, version, flags)


def encode_audio(
    audio_pa: np.ndarray,
    sequence: int,
    first_sample: int,
    sample_rate: int,
    encoding: AudioEncoding = AudioEncoding.INT24,
    full_scale_pa: float = FULL_SCALE_PA,
) -> bytes:
    """An audio packet for a (channels, samples) block in pascal; integers saturate at full scale."""
    channels, samples = audio_pa.shape
    if not (0 < channels <= MAX_CHANNELS and 0 < samples <= MAX_SAMPLES):
        raise ValueError(f"audio block {audio_pa.shape} outside 1..{MAX_CHANNELS} x 1..{MAX_SAMPLES}")
    encoding = AudioEncoding(encoding)
    interleaved = np.ascontiguousarray(np.asarray(audio_pa, dtype=np.float32).T)  # (samples, channels)
    if encoding is AudioEncoding.FLOAT32:
        body = interleaved.astype("<f4").tobytes()
    else:
        bits = 8 * encoding.width
        top = 2 ** (bits - 1)
        counts = np.clip(np.rint(interleaved * (top / full_scale_pa)), -top, top - 1).astype("<i4")
        if encoding is AudioEncoding.INT16:
            body = counts.astype("<i2").tobytes()
        else:  # int24: the low three bytes of each little-endian int32
            body = counts.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    sub = AUDIO_SUBHEADER.pack(channels, samples, sample_rate, full_scale_pa)
    return encode_packet(AUDIO, encoding, sequence, first_sample, sub + body)


def audio_info(payload: bytes) -> tuple[int, int, int, float]:
    """(channels, samples, sample_rate, full_scale_pa) of an audio payload's sub-header."""
    if len(payload) < AUDIO_SUBHEADER.size:
        raise ProtocolError(f"audio payload of {len(payload)} bytes has no sub-header")
    return AUDIO_SUBHEADER.unpack_from(payload)


def decode_audio(payload: bytes, encoding: int) -> tuple[np.ndarray, int]:
    """(audio (channels, samples) float32 pascal, sample_rate) of an audio payload."""
    try:
        encoding = AudioEncoding(encoding)
    except ValueError:
        raise ProtocolError(f"unknown audio encoding {encoding}") from None
    channels, samples, sample_rate, full_scale_pa = audio_info(payload)
    n = channels * samples
    expected = AUDIO_SUBHEADER.size + n * encoding.width
    if not (0 < channels <= MAX_CHANNELS and 0 < samples <= MAX_SAMPLES) or len(payload) != expected:
        raise ProtocolError(
            f"audio payload says {channels} x {samples} {encoding.name.lower()} "
            f"({expected} bytes) but carries {len(payload)} bytes"
        )
    if not (sample_rate > 0 and np.isfinite(full_scale_pa) and full_scale_pa > 0):
        raise ProtocolError(f"audio payload has sample rate {sample_rate} and full scale {full_scale_pa}")
    off = AUDIO_SUBHEADER.size
    if encoding is AudioEncoding.FLOAT32:
        interleaved = np.frombuffer(payload, "<f4", n, off)
        scale = 1.0
    elif encoding is AudioEncoding.INT16:
        interleaved = np.frombuffer(payload, "<i2", n, off)
        scale = full_scale_pa / 2**15
    else:
        # Read each sample as an int32 starting one byte early (stride 3): its top three bytes
        # are the sample, and the arithmetic shift drops the stray low byte and sign-extends.
        # The sub-header guarantees a byte before the first sample.
        interleaved = np.ndarray((n,), "<i4", payload, off - 1, (3,)) >> 8
        scale = full_scale_pa / 2**23
    out = np.empty((channels, samples), np.float32)
    np.multiply(interleaved.reshape(samples, channels).T, np.float32(scale), out=out, casting="unsafe")
    return out, int(sample_rate)


def encode_video(jpeg: bytes, sequence: int, timestamp: int) -> bytes:
    """A video packet carrying one JPEG frame captured at ``timestamp`` (sample clock)."""
    return encode_packet(VIDEO, JPEG, sequence, timestamp, bytes(jpeg))


def encode_status(status: dict, sequence: int, timestamp: int) -> bytes:
    """A status packet carrying a JSON object (device description, counters)."""
    return encode_packet(STATUS, JSON, sequence, timestamp, json.dumps(status).encode())


def decode_status(payload: bytes) -> dict:
    """The JSON object of a status payload; ProtocolError if it is not one."""
    try:
        status = json.loads(payload.decode())
    except (UnicodeDecodeError, ValueError) as err:
        raise ProtocolError(f"status payload is not JSON: {err}") from None
    if not isinstance(status, dict):
        raise ProtocolError("status payload is not a JSON object")
    return status
