"""Incremental decoder that turns an arbitrary byte stream into verified packets.

It never trusts the stream: it searches for the magic, checks the header CRC before believing
the length, checks the length against the stream's limit before buffering the payload, checks
the payload CRC, and on any failure skips one byte and searches again (so a packet hidden inside
a corrupted one is still found). Every byte fed in ends up in exactly one of: a good packet,
``bytes_dropped``, or the pending buffer (``StreamStats.balanced()`` checks this).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .codec import audio_info, crc32c, parse_header
from .packet import AUDIO, AUDIO_SUBHEADER, HEADER_SIZE, MAGIC, MAX_PAYLOAD, AudioEncoding, Packet, ProtocolError

# The most the decoder ever holds: one maximal packet plus the partial next one.
MAX_PENDING = HEADER_SIZE + max(MAX_PAYLOAD.values())


@dataclass
class StreamStats:
    """Counters of one decoder; ``lost_packets`` counts sequence gaps, per stream in ``lost_by_stream``."""

    bytes_in: int = 0
    bytes_dropped: int = 0
    packet_bytes: int = 0
    packets: int = 0
    crc_errors: int = 0  # header or payload CRC mismatches
    malformed: int = 0  # CRC-valid headers or payloads that break the protocol (version, type, length)
    lost_packets: int = 0
    sequence_resets: int = 0  # sequence numbers going backwards (device restarted)
    pending_bytes: int = 0
    lost_by_stream: dict = field(default_factory=dict)

    def balanced(self) -> bool:
        """True when every byte fed in is accounted for (a packet, dropped, or pending)."""
        return self.bytes_in == self.packet_bytes + self.bytes_dropped + self.pending_bytes


class StreamDecoder:
    """Feed bytes in any chunking; get back the packets they complete, in order."""

    def __init__(self):
        self.stats = StreamStats()
        self._buf = bytearray()
        self._next_seq: dict[int, int] = {}

    def feed(self, data: bytes) -> list[Packet]:
        """The packets completed by ``data`` (possibly none)."""
        self._buf += data
        self.stats.bytes_in += len(data)
        packets = []
        pos = 0
        buf = self._buf
        while True:
            start = buf.find(MAGIC, pos)
            if start < 0:  # keep a tail that may be the beginning of a magic
                start = max(pos, len(buf) - (len(MAGIC) - 1))
                self._drop(start - pos)
                pos = start
                break
            self._drop(start - pos)
            pos = start
            if len(buf) - pos < HEADER_SIZE:
                break
            try:
                header = parse_header(bytes(buf[pos : pos + HEADER_SIZE]))
            except ProtocolError:
                self.stats.crc_errors += 1
                pos = self._skip_one(pos)
                continue
            try:
                header.check()
            except ProtocolError:
                self.stats.malformed += 1
                pos = self._skip_one(pos)
                continue
            end = pos + HEADER_SIZE + header.payload_len
            if len(buf) < end:
                break
            with memoryview(buf) as view:  # one copy, straight from the buffer
                payload = bytes(view[pos + HEADER_SIZE : end])
            if crc32c(payload) != header.payload_crc:
                self.stats.crc_errors += 1
                pos = self._skip_one(pos)
                continue
            if header.stream == AUDIO and not _audio_payload_consistent(payload, header.encoding):
                self.stats.malformed += 1
                pos = self._skip_one(pos)
                continue
            self._count_sequence(header.stream, header.sequence)
            self.stats.packets += 1
            self.stats.packet_bytes += end - pos
            packets.append(Packet(header, payload))
            pos = end
        del buf[:pos]
        self.stats.pending_bytes = len(buf)
        return packets

    def discard_pending(self) -> None:
        """Count the unfinished tail as dropped (end of stream or reconnect); sequence state stays."""
        self._drop(len(self._buf))
        self._buf.clear()
        self.stats.pending_bytes = 0

    def _drop(self, n: int) -> None:
        self.stats.bytes_dropped += n

    def _skip_one(self, pos: int) -> int:
        self._drop(1)
        return pos + 1

    def _count_sequence(self, stream: int, seq: int) -> None:
        expected = self._next_seq.get(stream)
        self._next_seq[stream] = (seq + 1) & 0xFFFFFFFF
        if expected is None or seq == expected:
            return
        gap = (seq - expected) & 0xFFFFFFFF
        if gap < 2**31:
            self.stats.lost_packets += gap
            self.stats.lost_by_stream[stream] = self.stats.lost_by_stream.get(stream, 0) + gap
        else:
            self.stats.sequence_resets += 1


def _audio_payload_consistent(payload: bytes, encoding: int) -> bool:
    """True when an audio payload's sub-header agrees with its length."""
    if len(payload) < AUDIO_SUBHEADER.size:
        return False
    channels, samples, sample_rate, full_scale = audio_info(payload)
    width = AudioEncoding(encoding).width
    return (
        channels > 0
        and samples > 0
        and sample_rate > 0
        and full_scale > 0
        and len(payload) == AUDIO_SUBHEADER.size + channels * samples * width
    )
