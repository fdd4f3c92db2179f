"""Reading a session: ``open_session(path)`` gives a ``Session`` (also one cut short by a crash)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np

from ..errors import BadInput, NotFound
from ..frame import SensorFrame
from ..geometry import BLOCK_SAMPLES, SAMPLE_RATE, Geometry
from .format import AUDIO_FILE, META_FILE, VIDEO_DTYPE, session_dir


def open_h5(path: Path) -> h5py.File:
    """Open a session's HDF5 for reading, also while it is being written or after its writer died."""
    try:
        return h5py.File(path, "r", libver="latest", swmr=True)
    except OSError:
        pass  # not a SWMR file (e.g. repaired or imported): open it the ordinary way
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise BadInput(f"cannot read {path}: {err}") from err


class Session:
    """One recorded session; see ``format.py`` for the layout. Use as a context manager.

    ``n_ticks`` counts the ticks whose audio, index row (and MFCC volume, if stored) are all on
    disk, so a session cut short reads as its intact part.
    """

    def __init__(self, path: str | Path):
        self.path = session_dir(path)
        meta_path = self.path / META_FILE
        try:
            self.meta: dict = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        except (OSError, json.JSONDecodeError) as err:
            raise BadInput(f"cannot read {meta_path}: {err}") from err
        if not (self.path / AUDIO_FILE).is_file():
            raise NotFound(f"session {self.path} has no {AUDIO_FILE}")
        self.h5 = open_h5(self.path / AUDIO_FILE)
        for name in ("time_data", "ticks"):
            if name not in self.h5:
                raise BadInput(f"{self.path / AUDIO_FILE} has no '{name}' dataset")
        td = self.h5["time_data"]
        self.sample_rate = int(td.attrs.get("sample_freq", self.meta.get("sample_rate", SAMPLE_RATE)))
        self.block_samples = int(self.meta.get("block_samples", BLOCK_SAMPLES))
        self.channel_map: list[int] = list(self.meta.get("channel_map", range(td.shape[1])))
        counts = [len(self.h5["ticks"]), td.shape[0] // self.block_samples]
        if "mfcc" in self.h5:
            counts.append(len(self.h5["mfcc"]))
        self.n_ticks = min(counts)
        self._ticks = self.h5["ticks"][: self.n_ticks]
        vf = self.h5["video_frames"][:] if "video_frames" in self.h5 else np.zeros(0, VIDEO_DTYPE)
        n_bytes = len(self.h5["video_jpeg"]) if "video_jpeg" in self.h5 else 0
        keep = (vf["tick"] < self.n_ticks) & (vf["offset"] + vf["length"] <= n_bytes) if len(vf) else []
        self._video = vf[keep] if len(vf) else vf
        self.n_video_frames = int(len(self._video))

    # -- metadata
    @property
    def id(self) -> str:
        return self.meta.get("id", self.path.name)

    @property
    def labels(self) -> list[dict]:
        return list(self.meta.get("labels", []))

    @property
    def channels(self) -> int:
        return self.h5["time_data"].shape[1]

    @property
    def seconds(self) -> float:
        return self.n_ticks * self.block_samples / self.sample_rate

    @property
    def video_index(self) -> np.ndarray:
        """The video frame rows (n_video_frames,) of ``VIDEO_DTYPE``."""
        return self._video

    @property
    def ticks(self) -> np.ndarray:
        """The tick index rows (n_ticks,) of ``TICK_DTYPE``."""
        return self._ticks

    # -- data
    def column_of(self, channel: int) -> int:
        """The stored column holding device channel ``channel``."""
        try:
            return self.channel_map.index(channel)
        except ValueError:
            raise BadInput(
                f"session {self.id} did not store device channel {channel}; "
                f"it has {self.channel_map[:8]}{'...' if len(self.channel_map) > 8 else ''}"
            ) from None

    def mic(self, channel: int = 0) -> np.ndarray:
        """Samples (n_ticks * block_samples,) float32 Pa of one device channel."""
        col = self.column_of(channel)
        return self.h5["time_data"][: self.n_ticks * self.block_samples, col].astype(np.float32)

    def audio(self, start_tick: int = 0, stop_tick: int | None = None) -> np.ndarray:
        """Stored channels (channels, samples) float32 Pa of ticks [start_tick, stop_tick)."""
        stop = self.n_ticks if stop_tick is None else min(stop_tick, self.n_ticks)
        b = self.block_samples
        return np.ascontiguousarray(self.h5["time_data"][start_tick * b : stop * b].T)

    def mfcc(self) -> np.ndarray:
        """Precomputed MFCC acoustic images (n_ticks, 36, 48, 12) float32; NotFound if not stored."""
        if "mfcc" not in self.h5:
            raise NotFound(f"session {self.id} has no precomputed MFCC volumes")
        return self.h5["mfcc"][: self.n_ticks]

    def video_jpeg(self, i: int) -> bytes:
        """The stored JPEG bytes of video frame ``i``."""
        if not 0 <= i < self.n_video_frames:
            raise BadInput(f"video frame {i} out of range 0..{self.n_video_frames - 1}")
        row = self._video[i]
        return self.h5["video_jpeg"][row["offset"] : row["offset"] + row["length"]].tobytes()

    def video_frame(self, i: int) -> np.ndarray:
        """Video frame ``i`` decoded: (480, 640, 3) uint8 BGR."""
        frame = cv2.imdecode(np.frombuffer(self.video_jpeg(i), np.uint8), cv2.IMREAD_COLOR)
        if frame is None:
            raise BadInput(f"video frame {i} of session {self.id} is not a valid JPEG")
        return frame

    def video_timestamps(self) -> np.ndarray:
        """Capture time (n_video_frames,) in seconds on the audio clock."""
        return self._video["timestamp"].astype(np.float64)

    def frames(self, start_tick: int = 0) -> Iterator[SensorFrame]:
        """The session's ticks as ``SensorFrame``s, exactly as a live device would yield them."""
        tick_of_video = {int(r["tick"]): i for i, r in enumerate(self._video)}
        b = self.block_samples
        td = self.h5["time_data"]
        label = self.meta.get("label")
        has_activity = "source_active" in self._ticks.dtype.names  # absent in sessions of early builds
        for t in range(start_tick, self.n_ticks):
            row = self._ticks[t]
            video = vts = None
            if t in tick_of_video:
                video = self.video_frame(tick_of_video[t])
                vts = float(self._video[tick_of_video[t]]["timestamp"])
            truth = None
            if not np.isnan(row["source_u"]) or label:
                truth = {
                    "tick": int(row["index"]),
                    "label": label,
                    "subject": self.meta.get("subject"),
                    "scenario": self.meta.get("scenario"),
                }
                if not np.isnan(row["source_u"]):
                    truth["source_px"] = [float(row["source_u"]), float(row["source_v"])]
                if has_activity and row["source_active"] >= 0:
                    truth["active"] = bool(row["source_active"])
            yield SensorFrame(
                index=int(row["index"]),
                first_sample=int(row["first_sample"]),
                timestamp=float(row["timestamp"]),
                audio=np.ascontiguousarray(td[t * b : (t + 1) * b].T),
                video=video,
                video_timestamp=vts,
                sample_rate=self.sample_rate,
                lost_samples=int(row["lost_samples"]),
                truth=truth,
            )

    def close(self) -> None:
        self.h5.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_session(path: str | Path) -> Session:
    """The session stored at ``path`` (its directory)."""
    return Session(path)


def recorded_geometry(meta: dict[str, Any], geometry: Geometry) -> Geometry:
    """``geometry`` as a session says it was recorded: its array's microphones (when they are not
    ``geometry``'s), dead channels, focus distance, sample rate and block size (the grid is ``geometry``'s)."""
    recorded = meta.get("geometry") or {}
    changes: dict[str, Any] = {}
    mics = recorded.get("mics")
    if mics is not None and (len(mics) != geometry.n_mics or not np.allclose(mics, geometry.mics, atol=1e-6)):
        changes.update(mics=np.asarray(mics, dtype=np.float64), name=recorded.get("name", "recorded"), dead_channels=())
    if meta.get("sample_rate") and meta.get("block_samples"):
        changes.update(sample_rate=int(meta["sample_rate"]), nfft=int(meta["block_samples"]))
    if "dead_channels" in recorded:
        changes["dead_channels"] = tuple(sorted(int(c) for c in recorded["dead_channels"]))
    if "focus_distance_m" in (recorded.get("grid") or {}):
        changes["focus_distance_m"] = float(recorded["grid"]["focus_distance_m"])
    return dataclasses.replace(geometry, **changes) if changes else geometry
