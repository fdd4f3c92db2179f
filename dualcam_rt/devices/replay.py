"""``replay://PATH?speed=1|X|max``: a recorded session streamed as if it were a live sensor.

Frames are exactly the session's ticks (same audio, video, indices and timestamps) on every run;
only their pacing depends on ``speed`` (1 = real time, X = X times faster, ``max`` = unpaced).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import BadInput
from ..frame import SensorFrame
from ..geometry import get_geometry
from ..sessions.reader import open_session, recorded_geometry
from .base import Device, Pacer, parse_speed


class ReplayDevice(Device):
    kind = "replay"
    simulated = False

    def __init__(self, uri: str, path: str, speed: str | float | None = 1.0):
        self.session = open_session(path)
        self.speed = parse_speed(speed)  # inf: as fast as possible
        super().__init__(
            uri,
            channels=self.session.channels,
            sample_rate=self.session.sample_rate,
            block_samples=self.session.block_samples,
        )
        if (self.session.meta.get("geometry") or {}).get("mics"):  # the array the session was recorded with
            self.geometry = recorded_geometry(self.session.meta, get_geometry())
        self._closed = False

    @classmethod
    def from_uri(cls, uri: str, location: str, query: dict[str, str], **options) -> ReplayDevice:
        if not location:
            raise BadInput(f"replay URI {uri!r} names no session: use replay://PATH")
        return cls(uri, location, speed=options.get("speed", query.get("speed")))

    def frames(self) -> Iterator[SensorFrame]:
        pacer = Pacer(self.speed)
        first_ts = None
        for frame in self.session.frames():
            if self._closed:
                return
            first_ts = frame.timestamp if first_ts is None else first_ts
            pacer.wait(frame.timestamp - first_ts)
            self.stats.audio_blocks += 1
            self.stats.video_frames += frame.video is not None
            self.stats.lost_samples += frame.lost_samples
            yield frame

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.session.close()

    def describe(self) -> dict:
        m = self.session.meta
        return super().describe() | {
            "session": str(self.session.path),
            "session_id": self.session.id,
            "ticks": self.session.n_ticks,
            "seconds": self.session.seconds,
            "speed": "max" if self.speed == float("inf") else self.speed,
            "label": m.get("label"),
            "scenario": m.get("scenario"),
            "subject": m.get("subject"),
            "recorded_from": (m.get("device") or {}).get("uri"),
        }
