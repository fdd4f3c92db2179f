"""Packet layout of the DualCam wire protocol, version 1 (see ``docs/protocol.md``).

Every packet is a 32-byte little-endian header followed by ``payload_len`` bytes::

    offset size field
     0     4   magic        b"DCAM"
     4     1   version      1
     5     1   stream       1 audio, 2 video, 3 status
     6     1   encoding     audio: 1 int16, 2 int24, 3 float32; video: 1 JPEG; status: 1 JSON
     7     1   flags        0 (reserved)
     8     4   sequence     per stream, +1 per packet, wraps at 2**32
    12     8   timestamp    device clock in audio sample periods (1/sample_rate s)
    20     4   payload_len  bytes after the header
    24     4   payload_crc  CRC32C of the payload
    28     4   header_crc   CRC32C of header bytes 0..27

The header has its own CRC so that a receiver can trust ``payload_len`` (and check it against a
per-stream limit) before it waits for or allocates the payload.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

MAGIC = b"DCAM"
VERSION = 1
HEADER = struct.Struct("<4sBBBBIQIII")
HEADER_SIZE = HEADER.size  # 32
CRC_SPAN = HEADER_SIZE - 4  # the header CRC covers everything before itself

AUDIO, VIDEO, STATUS = 1, 2, 3
STREAM_NAMES = {AUDIO: "audio", VIDEO: "video", STATUS: "status"}

JPEG, JSON = 1, 1  # the only encodings of the video and status streams


class AudioEncoding(enum.IntEnum):
    """Sample formats of an audio payload; the value is the header's ``encoding`` byte."""

    INT16 = 1
    INT24 = 2
    FLOAT32 = 3

    @property
    def width(self) -> int:
        """Bytes per sample."""
        return {1: 2, 2: 3, 3: 4}[int(self)]


# Audio payloads start with this sub-header: channels, samples per channel, sample rate (Hz),
# and the sound pressure (Pa) that integer full scale stands for (ignored for float32).
AUDIO_SUBHEADER = struct.Struct("<HHIf")
MAX_CHANNELS = 512
MAX_SAMPLES = 8192
# Upper bounds checked before any payload is buffered: a header asking for more is malformed.
MAX_PAYLOAD = {
    AUDIO: AUDIO_SUBHEADER.size + MAX_CHANNELS * MAX_SAMPLES * 4,  # 16 MiB + 12
    VIDEO: 4 * 1024 * 1024,  # a 640x480 JPEG is 10-100 KiB
    STATUS: 64 * 1024,
}
VALID_ENCODINGS = {AUDIO: {int(e) for e in AudioEncoding}, VIDEO: {JPEG}, STATUS: {JSON}}


class ProtocolError(ValueError):
    """A packet or payload that does not follow the protocol."""


@dataclass(frozen=True, slots=True)
class Header:
    stream: int
    encoding: int
    sequence: int
    timestamp: int
    payload_len: int
    payload_crc: int
    version: int = VERSION
    flags: int = 0

    def check(self) -> None:
        """Raise ProtocolError unless version, stream, encoding and length are acceptable."""
        if self.version != VERSION:
            raise ProtocolError(f"unsupported protocol version {self.version}")
        if self.stream not in MAX_PAYLOAD:
            raise ProtocolError(f"unknown stream type {self.stream}")
        if self.encoding not in VALID_ENCODINGS[self.stream]:
            raise ProtocolError(f"unknown encoding {self.encoding} for {STREAM_NAMES[self.stream]}")
        if self.payload_len > MAX_PAYLOAD[self.stream]:
            raise ProtocolError(
                f"{STREAM_NAMES[self.stream]} payload of {self.payload_len} bytes "
                f"exceeds the limit of {MAX_PAYLOAD[self.stream]}"
            )


@dataclass(frozen=True, slots=True)
class Packet:
    """A received packet whose header and payload CRCs both matched."""

    header: Header
    payload: bytes

    @property
    def stream(self) -> int:
        return self.header.stream

    @property
    def sequence(self) -> int:
        return self.header.sequence

    @property
    def timestamp(self) -> int:
        return self.header.timestamp
