"""Checking a session and repairing one cut short (``dualcam-rt verify SESSION [--repair]``)."""

from __future__ import annotations

import json
import os

import google_crc32c
import h5py
import numpy as np

from ..errors import BadInput
from ..geometry import FPS
from .format import AUDIO_FILE, META_FILE, VIDEO_DTYPE, file_checksum, session_dir, write_json_atomic
from .reader import Session
from .writer import utc_now

_COPY_TICKS = 4 * FPS  # ticks per piece when copying, so a long 128-channel session never sits in memory


def _first_bad_tick(s: Session) -> int:
    """Index of the first tick whose audio CRC32C does not match (n_ticks when all do)."""
    b = s.block_samples
    td = s.h5["time_data"]
    for start in range(0, s.n_ticks, _COPY_TICKS):
        stop = min(start + _COPY_TICKS, s.n_ticks)
        block = td[start * b : stop * b]
        for t in range(start, stop):
            if google_crc32c.value(np.ascontiguousarray(block[(t - start) * b : (t - start + 1) * b]).tobytes()) != int(
                s.ticks[t]["audio_crc32c"]
            ):
                return t
    return s.n_ticks


def _bad_video_frames(s: Session) -> list[int]:
    return [
        i for i in range(s.n_video_frames) if google_crc32c.value(s.video_jpeg(i)) != int(s.video_index[i]["crc32c"])
    ]


def verify_session(path, repair: bool = False) -> dict:
    """A report of what the session holds and what is wrong with it; with ``repair`` also fixed.

    Checks: metadata present and finished, the HDF5 closed cleanly (opens without SWMR), all
    datasets cover the same ticks, per-tick audio and per-frame JPEG CRC32C, and the file's
    CRC32C against ``session.json``. Repair keeps the intact ticks (up to the first damaged
    one), rewrites ``audio.h5`` without the partial tail, and rewrites ``session.json`` with the
    true tick count, label spans and checksums.
    """
    path = session_dir(path)
    problems: list[str] = []
    audio_path = path / AUDIO_FILE
    try:
        s = Session(path)
    except BadInput as err:  # no audio.h5, or one its writer never got to initialise
        return _verify_without_audio(path, str(err), repair)
    try:
        meta = s.meta
        if not meta:
            problems.append(f"{META_FILE} is missing")
        elif meta.get("status") not in ("complete", "repaired", "imported"):
            problems.append(f"recording did not finish (status {meta.get('status')!r})")
        try:
            h5py.File(audio_path, "r").close()
            cleanly_closed = True
        except OSError:
            cleanly_closed = False
            problems.append(f"{AUDIO_FILE} was not closed by its writer")
        lengths = {"ticks": len(s.h5["ticks"]), "time_data_ticks": s.h5["time_data"].shape[0] / s.block_samples}
        if "mfcc" in s.h5:
            lengths["mfcc"] = len(s.h5["mfcc"])
        if len(set(lengths.values())) > 1:
            problems.append("datasets cover different spans: " + ", ".join(f"{k}={v:g}" for k, v in lengths.items()))
        good_ticks = _first_bad_tick(s)
        if good_ticks < s.n_ticks:
            problems.append(f"audio checksum mismatch from tick {good_ticks}")
        bad_video = _bad_video_frames(s)
        if bad_video:
            problems.append(f"{len(bad_video)} video frames fail their checksum (first {bad_video[0]})")
        if meta.get("ticks") not in (None, s.n_ticks):
            problems.append(f"{META_FILE} says {meta.get('ticks')} ticks, the audio holds {s.n_ticks}")
        stored = (meta.get("checksums") or {}).get(AUDIO_FILE)
        if stored and cleanly_closed and not problems and stored != file_checksum(audio_path):
            problems.append(f"{AUDIO_FILE} does not match its checksum in {META_FILE}")
        report = {
            "session": str(path),
            "id": s.id,
            "ok": not problems,
            "problems": problems,
            "ticks": s.n_ticks,
            "seconds": s.seconds,
            "channels": s.channels,
            "video_frames": s.n_video_frames,
            "mfcc": "mfcc" in s.h5,
            "repaired": False,
        }
        keep = good_ticks
    finally:
        s.close()
    if repair and problems:
        _repair(path, keep, meta)
        after = verify_session(path)
        report.update(
            repaired=True,
            ok=after["ok"],
            ticks=after["ticks"],
            seconds=after["seconds"],
            video_frames=after["video_frames"],
            remaining_problems=after["problems"],
        )
    return report


def _verify_without_audio(path, problem: str, repair: bool) -> dict:
    """The report for a session killed before its first audio was durable (and its repair)."""
    meta = json.loads((path / META_FILE).read_text()) if (path / META_FILE).is_file() else {}
    report = {
        "session": str(path),
        "id": meta.get("id", path.name),
        "ok": meta.get("status") == "empty",
        "problems": [] if meta.get("status") == "empty" else [problem],
        "ticks": 0,
        "seconds": 0.0,
        "channels": meta.get("channels", 0),
        "video_frames": 0,
        "mfcc": False,
        "repaired": False,
    }
    if repair and not report["ok"]:
        audio_path = path / AUDIO_FILE
        if audio_path.exists():  # holds no flushed tick: keep it aside rather than delete anything
            os.replace(audio_path, audio_path.with_name(AUDIO_FILE + ".unreadable"))
        write_json_atomic(
            path / META_FILE,
            dict(
                meta,
                id=meta.get("id", path.name),
                status="empty",
                ticks=0,
                seconds=0.0,
                labels=[],
                repaired_utc=utc_now(),
                repair={"status_before": meta.get("status"), "problem": problem},
            ),
        )
        report.update(repaired=True, ok=True, remaining_problems=[])
    return report


def _intact_video(s: Session, keep_ticks: int) -> tuple[np.ndarray, np.ndarray]:
    """The JPEG bytes (packed without gaps) and index rows of the frames of the first
    ``keep_ticks`` ticks that pass their CRC."""
    chunks, rows, offset = [], [], 0
    for i, row in enumerate(s.video_index):
        if row["tick"] >= keep_ticks:
            continue
        data = s.video_jpeg(i)
        if google_crc32c.value(data) != int(row["crc32c"]):
            continue
        row = row.copy()
        row["offset"], offset = offset, offset + len(data)
        chunks.append(np.frombuffer(data, np.uint8))
        rows.append(row)
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)), np.array(rows, VIDEO_DTYPE)


def _repair(path, keep_ticks: int, meta: dict) -> None:
    """Rewrite audio.h5 with the first ``keep_ticks`` ticks and session.json to match it."""
    audio_path = path / AUDIO_FILE
    tmp = audio_path.with_name(AUDIO_FILE + ".repair")
    s = Session(path)
    try:
        b = s.block_samples
        keep_ticks = min(keep_ticks, s.n_ticks)
        jpeg_bytes, video_rows = _intact_video(s, keep_ticks)
        try:
            with h5py.File(tmp, "w", libver="latest") as out:
                src = s.h5["time_data"]
                td = out.create_dataset(
                    "time_data", (keep_ticks * b, src.shape[1]), "f4", maxshape=(None, src.shape[1]), chunks=src.chunks
                )
                for k, v in src.attrs.items():
                    td.attrs[k] = v
                for start in range(0, keep_ticks, _COPY_TICKS):
                    stop = min(start + _COPY_TICKS, keep_ticks)
                    td[start * b : stop * b] = src[start * b : stop * b]
                ticks = s.ticks[:keep_ticks].copy()
                new_row = {int(r["tick"]): i for i, r in enumerate(video_rows)}
                ticks["video_frame"] = [new_row.get(t, -1) for t in range(keep_ticks)]
                out.create_dataset("ticks", data=ticks, maxshape=(None,), chunks=(256,))
                out.create_dataset("video_jpeg", data=jpeg_bytes, maxshape=(None,), chunks=(1 << 16,))
                out.create_dataset("video_frames", data=video_rows, maxshape=(None,), chunks=(256,))
                if "mfcc" in s.h5:
                    out.create_dataset(
                        "mfcc",
                        data=s.h5["mfcc"][:keep_ticks],
                        maxshape=(None, *s.h5["mfcc"].shape[1:]),
                        chunks=(FPS, *s.h5["mfcc"].shape[1:]),
                    )
                for k, v in s.h5.attrs.items():
                    out.attrs[k] = v
            n_video = len(video_rows)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise BadInput(f"cannot repair {path}: {err} (the original is untouched)") from err
    finally:
        s.close()
    os.replace(tmp, audio_path)
    seconds = keep_ticks * b / s.sample_rate
    labels = [
        dict(x, end_s=min(x.get("end_s", seconds), seconds))
        for x in meta.get("labels", [])
        if x.get("start_s", 0.0) < seconds
    ]
    if meta.get("label") and not labels and seconds > 0:
        labels = [{"label": meta["label"], "start_s": 0.0, "end_s": seconds}]
    meta = dict(
        meta,
        id=meta.get("id", path.name),
        status="repaired",
        ticks=keep_ticks,
        seconds=seconds,
        video_frames=n_video,
        labels=labels,
        repaired_utc=utc_now(),
        repair={"ticks_claimed": meta.get("ticks"), "status_before": meta.get("status")},
        checksums={AUDIO_FILE: file_checksum(audio_path)},
    )
    write_json_atomic(path / META_FILE, meta)
