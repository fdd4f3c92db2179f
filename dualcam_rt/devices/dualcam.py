"""``dualcam://HOST:PORT``: the DualCam wire-protocol client.

Packets come from ``firmware_io`` verified; here audio packets are laid on the device's sample
clock (gaps zero-filled and counted, overlaps trimmed), cut into 1024-sample blocks, and each
block is paired with the video frame whose timestamp is nearest to the block's centre.
Options (URI query or keywords): ``timeout`` (s, default ``DUALCAM_CONNECT_TIMEOUT_S``) to answer
and the longest silence tolerated, ``reconnect`` (1/0), ``give_up_s`` (how long to keep
reconnecting without a valid packet).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np
from numpy.typing import NDArray

from firmware_io import AUDIO, STATUS, VIDEO, ProtocolError, TcpClient, TransportError, decode_audio, decode_status

from ..config import DEFAULT_CONNECT_TIMEOUT_S
from ..errors import BadInput, DeviceError
from ..frame import SensorFrame
from ..geometry import N_MICS
from .base import Device

DEFAULT_PORT = 7700
MAX_ZERO_FILL_S = 2.0  # longer gaps restart the block clock instead of allocating zeros
HOLD_BLOCKS = 2  # blocks kept waiting for their video frame before going out without it


class AudioAssembler:
    """Lays audio packets on the sample clock and cuts (channels, block) blocks out of them."""

    def __init__(self, block_samples: int, sample_rate: int):
        self.block_samples = block_samples
        self.max_fill = int(MAX_ZERO_FILL_S * sample_rate)
        self.block_start = 0  # device sample index of pending[:, 0]
        self.pending: NDArray[np.float32] = np.zeros((0, 0), np.float32)  # (channels, n); 0 channels: no packet yet
        self.lost: NDArray[np.bool_] = np.zeros(0, bool)  # (n,): zero-filled samples
        self.lost_samples = 0

    def add(self, first_sample: int, audio: np.ndarray) -> list[tuple[int, np.ndarray, int]]:
        """Completed blocks as (first_sample, audio (channels, block), zero-filled samples)."""
        if self.pending.shape[0] != audio.shape[0]:
            self._restart(first_sample, audio.shape[0])
        end = self.block_start + self.pending.shape[1]
        blocks = []
        if first_sample > end:
            gap = first_sample - end
            self.lost_samples += gap
            if gap > self.max_fill:  # pad out the current block and start a new one at the packet
                blocks += self._pad_and_flush()
                self._restart(first_sample, audio.shape[0])
            else:
                self._append(np.zeros((audio.shape[0], gap), np.float32), lost=True)
        elif first_sample < end:  # overlap or duplicate: keep only what is new
            audio = audio[:, end - first_sample :]
        if audio.shape[1]:
            self._append(audio, lost=False)
        return blocks + self._cut()

    def _restart(self, first_sample: int, channels: int) -> None:
        self.block_start = first_sample
        self.pending = np.zeros((channels, 0), np.float32)
        self.lost = np.zeros(0, bool)

    def _append(self, audio: np.ndarray, lost: bool) -> None:
        self.pending = np.concatenate([self.pending, audio], axis=1)
        self.lost = np.concatenate([self.lost, np.full(audio.shape[1], lost)])

    def _pad_and_flush(self) -> list:
        n = self.pending.shape[1]
        if n == 0:
            return []
        pad = -n % self.block_samples
        self.lost_samples += pad
        self._append(np.zeros((self.pending.shape[0], pad), np.float32), lost=True)
        return self._cut()

    def _cut(self) -> list:
        blocks = []
        b = self.block_samples
        while self.pending.shape[1] >= b:
            blocks.append((self.block_start, np.ascontiguousarray(self.pending[:, :b]), int(self.lost[:b].sum())))
            self.pending, self.lost = self.pending[:, b:], self.lost[b:]
            self.block_start += b
        return blocks


class DualCamDevice(Device):
    kind = "dualcam"

    def __init__(
        self,
        uri: str,
        host: str,
        port: int,
        timeout: float | None = None,
        reconnect: bool = True,
        give_up_s: float = 30.0,
    ):
        super().__init__(uri, channels=N_MICS)
        if timeout is None:
            timeout = DEFAULT_CONNECT_TIMEOUT_S
        self.host, self.port, self.timeout = host, port, float(timeout)
        self.device_status: dict = {}
        self._bad_payloads = 0  # CRC-valid packets whose JPEG, audio or JSON does not decode
        self._client = TcpClient(host, port, read_timeout=self.timeout, reconnect=reconnect, give_up_s=give_up_s)
        try:
            self._client.open(self.timeout)
        except TransportError as err:
            raise DeviceError(f"{uri} did not answer: {err}") from None

    @classmethod
    def from_uri(cls, uri: str, location: str, query: dict, **options) -> DualCamDevice:
        parts = urlsplit(uri)
        try:
            host, port = parts.hostname, parts.port or DEFAULT_PORT
        except ValueError:
            raise BadInput(f"bad port in {uri!r}") from None
        if not host:
            raise BadInput(f"{uri!r} names no host: expected dualcam://HOST:PORT")
        kwargs: dict[str, Any] = {}
        try:
            if "timeout" in query:
                kwargs["timeout"] = float(query["timeout"])
            if "give_up_s" in query:
                kwargs["give_up_s"] = float(query["give_up_s"])
        except ValueError:
            raise BadInput(f"timeout and give_up_s in {uri!r} must be numbers") from None
        if "reconnect" in query:
            kwargs["reconnect"] = query["reconnect"].lower() not in ("0", "false", "no", "off")
        kwargs.update({k: v for k, v in options.items() if v is not None})
        return cls(uri, host, port, **kwargs)

    def frames(self) -> Iterator[SensorFrame]:
        assembler = AudioAssembler(self.block_samples, self.sample_rate)
        blocks: deque = deque()  # completed (first_sample, audio, lost_samples), awaiting video
        videos: deque = deque(maxlen=8)  # recent (timestamp in samples, frame)
        index = 0
        try:
            for packet in self._client.packets():
                if packet.stream == AUDIO:
                    try:
                        audio, rate = decode_audio(packet.payload, packet.header.encoding)
                    except ProtocolError:
                        self._bad_payloads += 1
                        continue
                    self.sample_rate, self.channels = rate, audio.shape[0]
                    blocks.extend(assembler.add(packet.timestamp, audio))
                elif packet.stream == VIDEO:
                    frame = cv2.imdecode(np.frombuffer(packet.payload, np.uint8), cv2.IMREAD_COLOR)
                    if frame is None:
                        self._bad_payloads += 1
                        continue
                    videos.append((packet.timestamp, frame))
                    self.stats.video_frames += 1
                elif packet.stream == STATUS:
                    try:
                        self.device_status.update(decode_status(packet.payload))
                    except ProtocolError:
                        self._bad_payloads += 1
                self._sync_stats(assembler)
                # A block goes out once a frame at or after its centre has arrived (so the nearest
                # one is known), or when it has waited HOLD_BLOCKS blocks (video late or absent).
                while blocks and (
                    len(blocks) > HOLD_BLOCKS or (videos and videos[-1][0] >= blocks[0][0] + self.block_samples / 2)
                ):
                    yield self._frame(index, blocks.popleft(), videos)
                    index += 1
        except TransportError as err:
            self._sync_stats(assembler)
            for i, block in enumerate(blocks, index):  # the stream ended: what arrived still goes out
                yield self._frame(i, block, videos)
            raise DeviceError(f"{self.uri}: {err}") from None

    def _frame(self, index: int, block: tuple[int, np.ndarray, int], videos: deque) -> SensorFrame:
        first, audio, lost = block
        video, video_ts = self._nearest_video(videos, first)
        self.stats.audio_blocks += 1
        return SensorFrame(
            index=index,
            first_sample=first,
            timestamp=first / self.sample_rate,
            audio=audio,
            video=video,
            video_timestamp=video_ts,
            sample_rate=self.sample_rate,
            lost_samples=lost,
        )

    def _nearest_video(self, videos: deque, first_sample: int) -> tuple[np.ndarray | None, float | None]:
        """The frame nearest to the block's centre if within one block of it, else (None, None)."""
        centre = first_sample + self.block_samples / 2
        best = min(videos, key=lambda v: abs(v[0] - centre), default=None)
        if best is None or abs(best[0] - centre) > self.block_samples:
            return None, None
        return best[1], best[0] / self.sample_rate

    def _sync_stats(self, assembler: AudioAssembler) -> None:
        d = self._client.decoder.stats
        s = self.stats
        s.lost_packets, s.crc_errors, s.dropped_bytes = d.lost_packets, d.crc_errors, d.bytes_dropped
        s.malformed_packets = d.malformed + self._bad_payloads
        s.lost_samples, s.reconnects = assembler.lost_samples, self._client.reconnects
        s.extra["lost_by_stream"] = {
            {AUDIO: "audio", VIDEO: "video", STATUS: "status"}[k]: v for k, v in d.lost_by_stream.items()
        }

    def close(self) -> None:
        self._client.close()

    def describe(self) -> dict:
        return {
            **super().describe(),
            "host": self.host,
            "port": self.port,
            "timeout_s": self.timeout,
            "device_status": self.device_status,
        }
