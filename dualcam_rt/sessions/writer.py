"""Writing a session: ``SessionWriter(path, meta).write(frame)`` per tick, then ``close()``.

Crash safety: the HDF5 file is opened in SWMR mode (chunked, resizable datasets) and ticks are
buffered in memory and appended and flushed once per second, so a process killed at any instant
leaves a readable file that holds every second flushed before the kill (at most the last second
is lost). ``session.json`` is replaced atomically and says ``"status": "recording"`` until
``close()``; ``dualcam-rt verify --repair`` finishes a session whose writer died.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import cv2
import google_crc32c
import h5py
import numpy as np

from .. import __version__
from ..errors import BadInput, DualcamError
from ..frame import SensorFrame
from ..geometry import FPS, Geometry, get_geometry
from ..labels import class_index
from .format import (
    AUDIO_FILE,
    FORMAT_VERSION,
    META_FILE,
    MFCC_SHAPE,
    TICK_DTYPE,
    VIDEO_DTYPE,
    check_name,
    file_checksum,
    write_json_atomic,
)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# Free space a flush must leave for HDF5's metadata and the final session.json: HDF5 can crash
# the process when a write fails with ENOSPC, so a flush that would not fit is never attempted.
DISK_RESERVE_BYTES = 1 << 20


def free_bytes(path: Path) -> int:
    """Bytes still available to this process on the file system holding ``path``."""
    return shutil.disk_usage(path).free


def _is_disk_full(err: BaseException) -> bool:
    return getattr(err, "errno", None) == errno.ENOSPC or "No space left" in str(err)


def geometry_meta(geometry: Geometry) -> dict:
    """The geometry facts a session keeps: microphones (m), dead channels, grid and camera."""
    d = geometry.to_dict()
    return {
        k: d[k]
        for k in ("name", "sample_rate", "block_samples", "fps", "nfft", "n_bins", "mics", "dead_channels", "camera")
    } | {"grid": {k: v for k, v in d["grid"].items() if k != "points"}}


class SessionWriter:
    """Writes one session directory (created here; its parent must exist, it must not).

    ``meta`` may hold label, scenario, subject, device (a ``describe()`` dict) and anything else
    worth keeping. ``channels`` picks which device channels to store (default all; ``[0]`` keeps
    microphone 0 only). With ``mfcc=True`` every ``write`` must also get that tick's MFCC volume
    (36, 48, 12). ``flush_every`` ticks (default 12 = 1 s) bounds what a crash can lose.
    ``geometry`` is the one the recording is made with (its dead channels, focus distance), kept in
    ``session.json`` for 128-channel devices (default: the shipped DualCam's).
    """

    def __init__(
        self,
        path: str | Path,
        meta: dict | None = None,
        *,
        channels: list[int] | None = None,
        mfcc: bool = False,
        jpeg_quality: int = 90,
        flush_every: int = FPS,
        geometry: Geometry | None = None,
    ):
        self.path = Path(path)
        check_name(self.path.name)
        if not self.path.parent.is_dir():
            raise BadInput(f"output directory {self.path.parent} does not exist")
        if self.path.exists():
            raise BadInput(f"session {self.path} already exists")
        self.channels = None if channels is None else list(channels)
        self.geometry = geometry or get_geometry()
        self.mfcc_shape = (*self.geometry.grid_shape, MFCC_SHAPE[-1])  # (36, 48, 12) on the DualCam's grid
        self._all_channels = channels is None
        self.store_mfcc = mfcc
        self.jpeg_quality = int(jpeg_quality)
        self.flush_every = max(1, int(flush_every))
        self.meta = dict(meta or {})
        label = self.meta.get("label")
        if label is not None:
            class_index(label)  # BadInput for an unknown class, before anything is written
        self.ticks = 0  # ticks durable on disk
        self.video_frames = 0
        self.bytes_written = 0
        self.lost_samples = 0
        self._buffer: list[tuple] = []
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="jpeg")
        self._video_bytes = 0
        self._h5: h5py.File | None = None
        self._closed = False
        self.path.mkdir()
        self._started = time.time()
        # says "recording" from the first instant, so a kill before any audio still leaves a session
        write_json_atomic(
            self.path / META_FILE,
            {"id": self.path.name, "format_version": FORMAT_VERSION, "status": "recording", "ticks": 0, **self.meta},
        )

    # -- the file is created on the first frame, when the channel count is known
    def _open(self, frame: SensorFrame) -> None:
        n_device = frame.channels
        if self.channels is None:
            self.channels = list(range(n_device))
        bad = [c for c in self.channels if not 0 <= c < n_device]
        if bad:
            raise BadInput(f"channels {bad} out of range: the device has {n_device}")
        n = len(self.channels)
        self.meta.update(
            {
                "id": self.path.name,
                "format_version": FORMAT_VERSION,
                "status": "recording",
                "class_index": class_index(self.meta["label"]) if self.meta.get("label") else None,
                "sample_rate": int(frame.sample_rate),
                "block_samples": int(frame.samples),
                "fps": FPS,
                "channels": n,
                "channel_map": self.channels,
                "device_channels": n_device,
                "ticks": 0,
                "seconds": 0.0,
                "video_frames": 0,
                "mfcc": self.store_mfcc,
                "software_version": __version__,
                "created_utc": utc_now(),
                "started_unix": self._started,
            }
        )
        if n_device == self.geometry.n_mics:  # the array at the device's own rate and block size
            self.meta.setdefault(
                "geometry", geometry_meta(self.geometry.for_device(n_device, frame.sample_rate, frame.samples))
            )
        self.meta.setdefault("geometry", None)
        self.meta.setdefault("labels", [])
        write_json_atomic(self.path / META_FILE, self.meta)
        f = h5py.File(self.path / AUDIO_FILE, "w", libver="latest")
        td = f.create_dataset("time_data", (0, n), "f4", maxshape=(None, n), chunks=(frame.samples, n))
        td.attrs["sample_freq"] = float(frame.sample_rate)
        f.create_dataset("ticks", (0,), TICK_DTYPE, maxshape=(None,), chunks=(256,))
        f.create_dataset("video_jpeg", (0,), "u1", maxshape=(None,), chunks=(1 << 16,))
        f.create_dataset("video_frames", (0,), VIDEO_DTYPE, maxshape=(None,), chunks=(256,))
        if self.store_mfcc:
            f.create_dataset(
                "mfcc", (0, *self.mfcc_shape), "f4", maxshape=(None, *self.mfcc_shape), chunks=(FPS, *self.mfcc_shape)
            )
        f.attrs["session_id"] = self.path.name
        f.attrs["format_version"] = FORMAT_VERSION
        f.swmr_mode = True  # from here on a reader (or a crash) always sees a consistent file
        self._h5 = f
        # HDF5's flush hands the data to the OS (enough to survive the process being killed);
        # an fsync per second through this descriptor also survives a power cut or kernel panic
        self._fd = os.open(self.path / AUDIO_FILE, os.O_RDONLY)

    def write(self, frame: SensorFrame, mfcc: np.ndarray | None = None) -> None:
        """Buffer one tick; every ``flush_every`` ticks append them to the file and flush."""
        if self._closed:
            raise DualcamError(f"session {self.path} is closed")
        if self._h5 is None:
            self._open(frame)
        if self.store_mfcc:
            if mfcc is None or tuple(mfcc.shape) != self.mfcc_shape:
                raise BadInput(f"this session stores MFCC volumes: write() needs one of shape {self.mfcc_shape}")
            mfcc = np.asarray(mfcc, dtype=np.float32)
        # the device's (channels, samples) block; transposed once per second in _append
        audio = frame.audio if self._all_channels else frame.audio[self.channels]
        # JPEG encoding (the costliest step per tick) runs on a worker thread, beside the HDF5 writes
        jpeg = None if frame.video is None else self._encoder.submit(self._encode, frame.video)
        self._buffer.append((frame, audio, jpeg, mfcc))
        self.lost_samples += frame.lost_samples
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def _encode(self, image: np.ndarray) -> np.ndarray:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise BadInput("could not encode a video frame as JPEG")
        return buf.ravel()

    def flush(self) -> None:
        """Append the buffered ticks and make them durable."""
        if not self._buffer or self._h5 is None:
            return
        needed = sum(a.nbytes + (0 if m is None else m.nbytes) for _, a, _, m in self._buffer) * 5 // 4  # + JPEGs
        if free_bytes(self.path) < 2 * needed + DISK_RESERVE_BYTES:
            self._buffer = []
            self.close({"stopped": "disk full"})
            raise DualcamError(
                f"disk full while recording {self.path}: stopped and kept the first "
                f"{self.seconds:.1f} s ({self.ticks} ticks), which are complete and readable"
            )
        try:
            self._append(self._h5, self._buffer)
            self._h5.flush()
            os.fsync(self._fd)
        except OSError as err:
            self._fail(err)
        self._buffer = []

    def _append(self, f: h5py.File, items: list[tuple]) -> None:
        n_ticks = len(items)
        b = items[0][1].shape[1]
        # (ticks, channels, samples) -> (ticks * samples, channels): time_data's layout, one copy
        audio = (
            np.stack([it[1] for it in items]).transpose(0, 2, 1).reshape(n_ticks * b, -1).astype(np.float32, copy=False)
        )
        rows = np.zeros(n_ticks, TICK_DTYPE)
        vrows: list[tuple] = []
        jpegs: list[np.ndarray] = []
        for i, (frame, _, jpeg, _) in enumerate(items):
            tick = self.ticks + i
            truth = frame.truth or {}
            truth_px = truth.get("source_px") or (np.nan, np.nan)
            active = -1 if truth.get("active") is None else int(bool(truth["active"]))
            video_row = -1
            if jpeg is not None:
                jpeg = jpeg.result()
                video_row = self.video_frames + len(vrows)
                vts = frame.timestamp if frame.video_timestamp is None else frame.video_timestamp
                vrows.append(
                    (
                        tick,
                        vts,
                        self._video_bytes + sum(len(j) for j in jpegs),
                        len(jpeg),
                        google_crc32c.value(jpeg.tobytes()),
                    )
                )
                jpegs.append(jpeg)
            rows[i] = (
                frame.index,
                frame.first_sample,
                frame.timestamp,
                frame.lost_samples,
                video_row,
                google_crc32c.value(audio[i * b : (i + 1) * b].tobytes()),
                truth_px[0],
                truth_px[1],
                active,
            )
        td = f["time_data"]
        start = td.shape[0]
        td.resize(start + len(audio), axis=0)
        td[start:] = audio
        if jpegs:
            data = np.concatenate(jpegs)
            vj = f["video_jpeg"]
            vj.resize(self._video_bytes + len(data), axis=0)
            vj[self._video_bytes :] = data
            vf = f["video_frames"]
            vf.resize(self.video_frames + len(vrows), axis=0)
            vf[self.video_frames :] = np.array(vrows, VIDEO_DTYPE)
            self._video_bytes += len(data)
            self.bytes_written += len(data)
        if self.store_mfcc:
            mf = f["mfcc"]
            mf.resize(self.ticks + n_ticks, axis=0)
            mf[self.ticks :] = np.stack([it[3] for it in items])
            self.bytes_written += n_ticks * 4 * int(np.prod(self.mfcc_shape))
        ds = f["ticks"]  # the tick index goes last: a reader trusts ticks only as far as it reaches
        ds.resize(self.ticks + n_ticks, axis=0)
        ds[self.ticks :] = rows
        self.ticks += n_ticks
        self.video_frames += len(vrows)
        self.bytes_written += audio.nbytes + rows.nbytes

    def _fail(self, err: OSError) -> None:
        """Stop writing after an I/O error; what was flushed before stays readable."""
        self._closed = True
        self._buffer = []
        self._encoder.shutdown(cancel_futures=True)
        try:
            if self._h5 is not None:
                self._h5.close()
            os.close(self._fd)
        except Exception:  # noqa: BLE001  (the file is already in trouble; keep the first error)
            pass
        what = "disk full" if _is_disk_full(err) else f"write failed ({err})"
        raise DualcamError(
            f"{what} while recording {self.path}: kept the first {self.ticks / FPS:.1f} s "
            f"({self.ticks} ticks); run 'dualcam-rt verify {self.path} --repair'"
        ) from err

    @property
    def seconds(self) -> float:
        return self.ticks / FPS

    def close(self, extra_meta: dict | None = None) -> dict:
        """Flush, close the file and write the final metadata (with checksums); returns it."""
        if self._closed:
            return self.meta
        self.flush()
        self._closed = True
        self._encoder.shutdown()
        if self._h5 is None:  # no frame ever arrived: keep an empty, honest session.json
            self.meta.update(
                {
                    "id": self.path.name,
                    "format_version": FORMAT_VERSION,
                    "status": "empty",
                    "ticks": 0,
                    "seconds": 0.0,
                    "created_utc": utc_now(),
                }
            )
            write_json_atomic(self.path / META_FILE, self.meta)
            return self.meta
        self._h5.close()
        os.close(self._fd)
        seconds = self.ticks * self.meta["block_samples"] / self.meta["sample_rate"]
        self.meta.update(extra_meta or {})
        if self.meta.get("label") and not self.meta.get("labels"):
            self.meta["labels"] = [{"label": self.meta["label"], "start_s": 0.0, "end_s": seconds}]
        audio = self.path / AUDIO_FILE
        self.meta.update(
            {
                "status": "complete",
                "ticks": self.ticks,
                "seconds": seconds,
                "video_frames": self.video_frames,
                "lost_samples": self.lost_samples,
                "ended_utc": utc_now(),
                "checksums": {AUDIO_FILE: file_checksum(audio)},
            }
        )
        try:
            write_json_atomic(self.path / META_FILE, self.meta)
        except OSError as err:
            raise DualcamError(
                f"could not write {self.path / META_FILE} ({err}); the audio is complete: "
                f"run 'dualcam-rt verify {self.path} --repair'"
            ) from err
        return self.meta

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
