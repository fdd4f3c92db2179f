"""Export helpers: one microphone to WAV, the video (with the acoustic overlay) to MP4."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

from ..dsp.overlay import DEFAULT_VIEW, View
from ..errors import BadInput
from ..geometry import FPS, Geometry
from ..inference.models import Model
from ..sessions.reader import open_session, recorded_geometry
from .imaging import ImagingStage
from .stream import StreamPredictor


def _output(path: str | Path, suffix: str) -> Path:
    out = Path(path)
    if out.suffix.lower() != suffix:
        raise BadInput(f"output must be a {suffix} file, not {out.name}")
    if not out.parent.is_dir():
        raise BadInput(f"directory {out.parent} does not exist")
    return out


def export_wav(session: str | Path, out: str | Path, channel: int = 0) -> Path:
    """Write device channel ``channel`` as a mono 32-bit float WAV in pascal; returns the path."""
    out = _output(out, ".wav")
    with open_session(session) as s:
        sf.write(out, s.mic(channel), s.sample_rate, subtype="FLOAT")
    return out


def export_video(
    session: str | Path,
    out: str | Path,
    geometry: Geometry,
    overlay: bool = True,
    beamform_backend: str = "auto",
    cache_dir: str | Path | None = None,
    view: View = DEFAULT_VIEW,
    student: Model | None = None,
    hop_s: float = 0.5,
    mic_channel: int = 0,
) -> Path:
    """Write the session's video frames to MP4 at 12 fps; with ``overlay`` (and 128 stored
    channels) each frame carries its tick's acoustic image as the live view draws it (``view``'s
    band and dB range; the source marker and level only when there is a source, with the label of
    ``student``'s latest prediction on microphone ``mic_channel`` when given; a dB legend),
    beamformed with ``geometry`` and the session's own dead channels and focus distance."""
    out = _output(out, ".mp4")
    with open_session(session) as s:
        if s.n_video_frames == 0:
            raise BadInput(f"session {s.id} has no video frames")
        recorded = recorded_geometry(s.meta, geometry)  # the array the session was recorded with
        if overlay and s.channels != recorded.n_mics:
            raise BadInput(
                f"session {s.id} stored {s.channels} channel(s): the overlay needs all {recorded.n_mics} "
                f"of {recorded.name} (use --no-overlay, or --geometry FILE.xml for another array)"
            )
        imaging = ImagingStage(recorded, beamform_backend, cache_dir) if overlay else None
        predictor = StreamPredictor(student, s.sample_rate, hop_s) if student is not None and overlay else None
        column = s.column_of(mic_channel) if predictor is not None else None
        label = None
        writer = None
        try:
            for frame in s.frames():
                for p in predictor.push(frame.audio[column]) if predictor is not None else ():
                    label = p.label  # None between actions: the marker then shows the level only
                if frame.video is None:
                    continue
                image = frame.video
                if imaging is not None:
                    image = imaging.overlay(image, imaging.image(frame.audio, view), view, label)
                if writer is None:
                    h, w = image.shape[:2]
                    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (w, h))
                    if not writer.isOpened():
                        raise BadInput(f"OpenCV cannot write MP4 to {out}")
                writer.write(np.ascontiguousarray(image))
        finally:
            if writer is not None:
                writer.release()
    return out
