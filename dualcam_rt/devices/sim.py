"""``sim://``: the simulated DualCam, in process (no socket), streaming from ``dualcam_rt.sim.Scene``.

``sim://?scenario=K&seed=N&label=C&subject=S&speed=1|X|max&sounds=real|procedural|mixed&geometry=FILE``:
paced at real time by default, ``speed=X`` runs X times faster, ``speed=max`` as fast as the scene
renders; ``sounds`` as ``Scene``'s (default: real when a sound bank is built, else procedural);
``geometry`` an Acoular MicGeom XML file (or a bare name Acoular ships, e.g. ``minidsp_uma-16.xml``):
the scene as that array hears it (default: the geometry the caller hands down, else the DualCam),
always at the simulator's 12,288 Hz in 1024-sample blocks.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import BadInput
from ..frame import SensorFrame
from ..geometry import BLOCK_SAMPLES, FPS, SAMPLE_RATE, Geometry, get_geometry, load_geometry
from ..labels import SCENARIOS, class_index
from ..sim import Scene
from .base import Device, Pacer, parse_speed

# The simulated camera exposes in the middle of each 1/12 s tick, so the frame of tick k carries
# the timestamp of sample k * 1024 + 512 and pairs with audio block k (see docs/protocol.md).
VIDEO_OFFSET_SAMPLES = BLOCK_SAMPLES // 2


def int_option(query: dict, key: str, default: int | None) -> int | None:
    """An integer URI query value, or ``default`` when absent; BadInput when not an integer."""
    if key not in query or query[key] == "":
        return default
    try:
        return int(query[key])
    except ValueError:
        raise BadInput(f"{key} must be an integer, not {query[key]!r}") from None


class SimDevice(Device):
    kind = "sim"
    simulated = True
    geometry: Geometry  # always the array it simulates

    def __init__(
        self,
        uri: str = "sim://",
        scenario: int = 1,
        seed: int = 0,
        label: str | None = None,
        subject: int | None = None,
        speed: float = 1.0,
        impulse_ticks: Sequence[int] = (),
        sounds: str | None = None,
        cache_dir: str | Path | None = None,
        geometry: Geometry | None = None,
    ):
        geometry = geometry or get_geometry()
        geometry = geometry.for_device(geometry.n_mics, SAMPLE_RATE, BLOCK_SAMPLES)  # the simulator's clock
        super().__init__(uri, channels=geometry.n_mics)
        self.geometry = geometry
        if scenario not in SCENARIOS:
            raise BadInput(f"scenario must be 1, 2 or 3, not {scenario}")
        self.scene_options: dict[str, Any] = dict(
            scenario=scenario,
            seed=seed,
            label=label,
            subject=subject,
            impulse_ticks=tuple(impulse_ticks),
            sounds=sounds,
        )
        self.speed = speed
        # built here: opening pays its set-up cost, not frame 0
        self.scene = Scene(**self.scene_options, cache_dir=cache_dir, geometry=geometry)
        self._closed = False

    @classmethod
    def from_uri(cls, uri: str, location: str, query: dict, **options) -> SimDevice:
        kwargs: dict[str, Any] = dict(
            scenario=int_option(query, "scenario", 1),
            seed=int_option(query, "seed", 0),
            label=query.get("label") or None,
            subject=int_option(query, "subject", None),
            speed=parse_speed(query.get("speed")),
            sounds=query.get("sounds") or None,
        )
        if query.get("label"):
            class_index(query["label"])  # BadInput for an unknown class
        kwargs.update(options)
        if query.get("geometry"):  # the URI's array wins over the one handed down (its focus and grid kept)
            given = kwargs.get("geometry") or get_geometry()
            kwargs["geometry"] = load_geometry(query["geometry"], given.focus_distance_m, None, given.grid_shape)
        return cls(uri, **kwargs)

    def frames(self) -> Iterator[SensorFrame]:
        pacer = Pacer(self.speed)
        start_tick = self.scene.tick  # a second frames() call carries on where the first stopped
        for tick in itertools.count(start_tick):
            if self._closed:
                return
            pacer.wait((tick - start_tick) / FPS)
            st = self.scene.next_tick()
            first = tick * BLOCK_SAMPLES
            self.stats.audio_blocks += 1
            self.stats.video_frames += 1
            yield SensorFrame(
                index=tick,
                first_sample=first,
                timestamp=first / SAMPLE_RATE,
                audio=st.audio,
                video=st.video,
                video_timestamp=(first + VIDEO_OFFSET_SAMPLES) / SAMPLE_RATE,
                truth=st.truth,
            )

    def close(self) -> None:
        self._closed = True

    def describe(self) -> dict:
        speed = "max" if self.speed == float("inf") else self.speed
        return {
            **super().describe(),
            **{k: v for k, v in self.scene_options.items() if k != "impulse_ticks"},
            "speed": speed,
            "sounds": self.scene.sounds,
            "geometry": self.geometry.name,
        }
