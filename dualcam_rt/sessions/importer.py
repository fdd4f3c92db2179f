"""``dualcam-rt import-tfrecords``: the published DualCam dataset (GZIP TFRecords) as sessions.

Layout read: ``SRC/Location_0L/Subject_0S/Action_0AA/Data_0NN.tfrecord``, one SequenceExample per
second (12 steps) with context ``action``, ``location``, ``subject`` (0-based) and the shapes,
and feature lists ``audio/image`` (float32 36x48x12 MFCC), ``audio/data`` (int32 mics x 1024,
microphone 0) and ``video/image`` (uint8 480x640x3 BGR). Each Action directory becomes one
session (its Data files in name order); the manifest gets the same splits as ``make-dataset``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import BadInput, NotFound
from ..frame import SensorFrame
from ..geometry import FPS
from ..labels import CLASSES
from .format import MFCC_SHAPE
from .manifest import manifest_entry, write_manifest
from .tfrecord import parse_sequence_example, read_records
from .writer import SessionWriter


def _one(context: dict, key: str, where: Path) -> int:
    values = context.get(key)
    if not values:
        raise BadInput(f"{where}: context feature {key!r} is missing")
    return int(values[0])


def sequence_frames(context: dict, lists: dict, first_tick: int, where: Path):
    """(SensorFrame, MFCC volume) per step of one decoded SequenceExample."""
    shape = tuple(_one(context, f"audio_image/{k}", where) for k in ("height", "width", "depth"))
    mics, samples = (_one(context, f"audio_data/{k}", where) for k in ("mics", "samples"))
    vshape = tuple(_one(context, f"video/{k}", where) for k in ("height", "width", "depth"))
    if shape != MFCC_SHAPE:
        raise BadInput(f"{where}: audio images are {shape}, expected {MFCC_SHAPE}")
    images, audio, video = (lists.get(k, []) for k in ("audio/image", "audio/data", "video/image"))
    if not (len(images) == len(audio) == len(video)) or not audio:
        raise BadInput(f"{where}: feature lists have {len(images)}, {len(audio)}, {len(video)} steps")
    for i, (img, aud, vid) in enumerate(zip(images, audio, video)):
        try:
            volume = np.frombuffer(img[0], "<f4").reshape(shape)
            block = np.frombuffer(aud[0], "<i4").reshape(mics, samples).astype(np.float32)
            frame = np.frombuffer(vid[0], np.uint8).reshape(vshape)
        except (ValueError, IndexError) as err:
            raise BadInput(f"{where}: step {i} has the wrong size ({err})") from None
        tick = first_tick + i
        yield (
            SensorFrame(
                index=tick,
                first_sample=tick * samples,
                timestamp=tick / FPS,
                audio=block,
                video=frame,
                video_timestamp=tick / FPS,
            ),
            volume,
        )


def import_sequence(action_dir: Path, src: Path, out: Path) -> dict:
    """Convert one ``Action_*`` directory into a session; returns its manifest entry."""
    files = sorted(action_dir.glob("*.tfrecord"))
    writer = None
    tick = 0
    for file in files:
        for record in read_records(file):
            context, lists = parse_sequence_example(record)
            action, location, subject = (_one(context, k, file) for k in ("action", "location", "subject"))
            if not 0 <= action < len(CLASSES):
                raise BadInput(f"{file}: action {action} outside 0..{len(CLASSES) - 1}")
            if writer is None:
                label = CLASSES[action]
                meta = {
                    "label": label,
                    "scenario": location + 1,
                    "subject": subject,
                    "action_index": action,
                    "source": {"kind": "tfrecords", "path": str(action_dir.relative_to(src)), "files": len(files)},
                    "audio_units": "sensor counts (int32 in the published TFRecords), stored as float32",
                    "device": {"uri": None, "kind": "dualcam", "simulated": False},
                }
                writer = SessionWriter(out / f"sc{location + 1}_s{subject}_{label}", meta, mfcc=True)
            for frame, volume in sequence_frames(context, lists, tick, file):
                writer.write(frame, mfcc=volume)
                tick += 1
    if writer is None:
        raise BadInput(f"{action_dir}: no records")
    meta = writer.close()
    return manifest_entry(writer.path, out, meta)


def import_tfrecords(src: str | Path, out: str | Path, progress=None) -> dict:
    """Import every sequence under ``src`` into sessions in ``out``; writes and returns the manifest."""
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise NotFound(f"no directory {src}")
    action_dirs = sorted({p.parent for p in src.rglob("*.tfrecord")})
    if not action_dirs:
        raise NotFound(f"no .tfrecord files under {src}")
    if not out.parent.is_dir():
        raise NotFound(f"directory {out.parent} does not exist")
    out.mkdir(exist_ok=True)
    task = progress.add_task("import-tfrecords", total=len(action_dirs)) if progress else None
    if progress:
        progress.start()
    try:
        entries = []
        for d in action_dirs:
            entries.append(import_sequence(d, src, out))
            if progress:
                progress.advance(task)
    finally:
        if progress:
            progress.stop()
    return write_manifest(out, {"preset": "imported", "source": str(src.resolve())}, entries)
