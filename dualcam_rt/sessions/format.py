"""The session format: names, HDF5 layout and metadata shared by writer, reader and repair.

A session is one directory::

    session.json   metadata (id, label, scenario, subject, device, geometry, checksums, ...)
    audio.h5       everything else, in one HDF5 file written in SWMR mode:
      time_data      (samples, channels) float32 Pa, attribute sample_freq (Hz) -- Acoular's layout
      ticks          (ticks,) one row per sensor tick (TICK_DTYPE)
      video_jpeg     (bytes,) uint8, the JPEG frames back to back
      video_frames   (frames,) where each JPEG lies and when it was taken (VIDEO_DTYPE)
      mfcc           (ticks, 36, 48, 12) float32, optional precomputed MFCC acoustic images

Everything lives in one file so that one flush makes one consistent state durable; JPEGs go
into it (not into an MP4, whose index is written last and lost in a crash).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import google_crc32c
import numpy as np

from ..errors import BadInput, NotFound

FORMAT_VERSION = 1
META_FILE = "session.json"
AUDIO_FILE = "audio.h5"
MFCC_SHAPE = (36, 48, 12)

TICK_DTYPE = np.dtype(
    [
        ("index", "<i8"),  # the device's tick index
        ("first_sample", "<i8"),  # index of the block's first sample on the device clock
        ("timestamp", "<f8"),  # seconds on the device clock
        ("lost_samples", "<i4"),  # zero-filled samples in this block (packet loss)
        ("video_frame", "<i4"),  # row in video_frames, or -1 when the tick has no frame
        ("audio_crc32c", "<u4"),  # CRC32C of the block as stored (samples x channels, float32)
        ("source_u", "<f4"),
        ("source_v", "<f4"),  # true source pixel of a simulated scene, else NaN
        ("source_active", "i1"),  # 1 while the simulated subject makes sound, 0 while silent, -1 unknown
    ]
)
VIDEO_DTYPE = np.dtype(
    [
        ("tick", "<i8"),  # row in ticks this frame belongs to
        ("timestamp", "<f8"),  # capture time on the audio clock, seconds
        ("offset", "<i8"),
        ("length", "<i4"),  # byte range in video_jpeg
        ("crc32c", "<u4"),  # CRC32C of the JPEG bytes
    ]
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(name: str) -> str:
    """The name itself when it is a safe session name (no '/', no '..', no leading dot)."""
    if not name or "/" in name or "\\" in name or ".." in name or not _NAME.match(name):
        raise BadInput(
            f"bad session name {name!r}: use letters, digits, '.', '_' and '-' (no '/', no '..', not starting with '.')"
        )
    return name


def new_session_dir(out_dir: str | Path, name: str) -> Path:
    """The path of a new session ``out_dir/name``; ``out_dir`` is created (with its parents) when
    missing, the session must not exist."""
    out = Path(out_dir)
    check_name(name)
    if out.exists() and not out.is_dir():
        raise BadInput(f"output directory {out} is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BadInput(f"cannot create output directory {out}: {err.strerror or err}") from None
    path = out / name
    if path.exists():
        raise BadInput(f"session {path} already exists; choose another --name")
    return path


def session_dir(path: str | Path) -> Path:
    """The directory of an existing session (given its directory or its session.json)."""
    p = Path(path)
    if p.name == META_FILE:
        p = p.parent
    if not (p / META_FILE).is_file() and not (p / AUDIO_FILE).is_file():
        raise NotFound(f"no session at {path} (expected {META_FILE} and {AUDIO_FILE})")
    return p


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON so that a crash leaves either the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def file_checksum(path: Path) -> dict:
    """``{"crc32c": hex, "bytes": n}`` of a file (CRC32C: hardware-accelerated, so closing a long
    128-channel session costs a fraction of a second)."""
    crc = google_crc32c.Checksum()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            crc.update(chunk)
    return {"crc32c": crc.hexdigest().decode(), "bytes": path.stat().st_size}
