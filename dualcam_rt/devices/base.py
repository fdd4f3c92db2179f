"""The one device interface: every source yields ``SensorFrame``s, one per 1/12 s tick."""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import BadInput
from ..frame import SensorFrame
from ..geometry import BLOCK_SAMPLES, SAMPLE_RATE, Geometry


@dataclass
class DeviceStats:
    """Counters a device keeps while streaming (reported by ``probe`` and ``/v1/status``)."""

    audio_blocks: int = 0
    video_frames: int = 0
    lost_packets: int = 0
    lost_samples: int = 0
    crc_errors: int = 0
    dropped_bytes: int = 0
    malformed_packets: int = 0
    reconnects: int = 0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "extra"}
        d.update(self.extra)
        return d


class Device(ABC):
    """A source of sensor frames. Use as a context manager; iterate ``frames()``."""

    kind: str = "?"  # "dualcam" | "sim" | "mic" | "replay"
    simulated: bool = False
    fallback_from: dict | None = None  # {"uri", "reason"} when open_device fell back to this device
    geometry: Geometry | None = None  # the array this device says it is (sim://?geometry=), else None

    def __init__(self, uri: str, channels: int, sample_rate: int = SAMPLE_RATE, block_samples: int = BLOCK_SAMPLES):
        self.uri = uri
        self.channels = channels
        self.sample_rate = sample_rate
        self.block_samples = block_samples
        self.stats = DeviceStats()

    @abstractmethod
    def frames(self) -> Iterator[SensorFrame]:
        """Yield frames until the source ends (replay) or ``close()`` is called."""

    def close(self) -> None:  # noqa: B027 (optional: a device that holds nothing keeps this one)
        """Release sockets, threads and hardware; safe to call twice."""

    def geometry_for(self, geometry: Geometry) -> Geometry:
        """The geometry to image this device's frames with: its own array when it names one, else
        ``geometry``, at the device's sample rate and block size; BadInput when the channels do not match."""
        if self.geometry is not None:  # its microphones, the caller's grid and band
            geometry = dataclasses.replace(
                self.geometry,
                grid_rows=geometry.grid_rows,
                grid_cols=geometry.grid_cols,
                max_frequency_hz=geometry.max_frequency_hz,
            )
        return geometry.for_device(self.channels, self.sample_rate, self.block_samples)

    def describe(self) -> dict:
        return {
            "uri": self.uri,
            "kind": self.kind,
            "simulated": self.simulated,
            "channels": self.channels,
            "sample_rate": self.sample_rate,
            "block_samples": self.block_samples,
            "fallback": self.fallback_from is not None,
            **({"fallback_from": self.fallback_from} if self.fallback_from else {}),
        }

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Pacer:
    """Releases a stream at ``speed`` times real time: ``wait(t_s)`` sleeps until stream time ``t_s``
    (seconds since the first frame) is due; a no-op for ``speed=inf``."""

    def __init__(self, speed: float):
        self.speed = speed
        self.start = time.monotonic()

    def wait(self, t_s: float) -> float:
        """Seconds this moment is late (0 when on time)."""
        if self.speed == float("inf"):
            return 0.0
        due = self.start + t_s / self.speed
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
            return 0.0
        return now - due


def parse_speed(value: str | float | None) -> float:
    """Pacing factor: 1 real time, X times real time, or ``inf`` for ``max``."""
    if value is None or value == "":
        return 1.0
    if str(value).lower() == "max":
        return float("inf")
    try:
        speed = float(value)
    except ValueError:
        raise BadInput(f"speed must be a positive number or 'max', not {value!r}") from None
    if not speed > 0:
        raise BadInput(f"speed must be a positive number or 'max', not {value!r}")
    return speed
