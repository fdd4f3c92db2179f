"""``dualcam-rt replay``: a session through the live stack (replay:// device → imaging stage → stream predictor).

Unlike the service's threaded pipeline, which drops imaging frames when it falls behind, this
runs every stage on every tick in order, so the timeline of a session is the same on every run.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from ..devices.replay import ReplayDevice
from ..geometry import Geometry
from ..inference.models import ModelSet
from ..sessions.reader import recorded_geometry
from .imaging import ImagingStage
from .stream import StreamPredictor


def replay_uri(path: str | Path, speed: str = "max") -> str:
    """The ``replay://`` URI of a session directory."""
    return f"replay://{quote(str(Path(path).resolve()))}?speed={quote(str(speed))}"


def replay_timeline(
    path: str | Path,
    geometry: Geometry,
    models: ModelSet | None = None,
    model: str | None = None,
    speed: str = "max",
    localise: bool = True,
    hop_s: float = 0.5,
    mic_channel: int = 0,
    beamform_backend: str = "auto",
    cache_dir: str | Path | None = None,
) -> dict:
    """The session's timeline: one row per tick (video, localisation: ``ImagingStage.describe``'s
    peak/floor/contrast and source or None) and, with ``models``, the
    predictions of model ``model`` (their default when None) every ``hop_s`` seconds over its
    window of microphone ``mic_channel`` (gated: a null label has a reason) and the debounced
    ``events`` (label, onset). Imaging uses ``geometry`` with the session's own dead
    channels and focus distance."""
    student = models.get(model) if models is not None else None
    rows, predictions = [], []
    with ReplayDevice(replay_uri(path, speed), str(path), speed=speed) as device:
        info = device.describe()
        imaging = None
        recorded = recorded_geometry(device.session.meta, geometry)  # the array the session was recorded with
        if localise and device.channels == recorded.n_mics:
            imaging = ImagingStage(recorded, beamform_backend, cache_dir)
        predictor, col = None, device.session.column_of(mic_channel) if student is not None else None
        for frame in device.frames():
            truth = frame.truth or {}
            row = {
                "tick": frame.index,
                "time_s": round(frame.timestamp, 4),
                "video": frame.video is not None,
                "lost_samples": frame.lost_samples,
                "truth_px": truth.get("source_px"),
                "truth_active": truth.get("active"),
            }
            if imaging is not None:
                row["localisation"] = imaging.describe(imaging.image(frame.audio))  # source None between events
            if student is not None:
                predictor = predictor or StreamPredictor(student, frame.sample_rate, hop_s)
                for p in predictor.push(frame.audio[col]):
                    pred = {"tick": frame.index, "t_s": round(p.t_s, 4), **p.answer()}
                    predictions.append(pred)
                    row["prediction"] = pred
            rows.append(row)
    return {
        "session": info,
        "frames": len(rows),
        "video_frames": sum(r["video"] for r in rows),
        "localised": imaging is not None,
        "model": student.name if student else None,
        "predictions": predictions,
        "events": predictor.events.reported if predictor else [],
        "timeline": rows,
    }
