"""``dualcam-rt replay``: a session through the live stack (replay:// device → beamformer → model).

Unlike the service's threaded pipeline, which drops imaging frames when it falls behind, this
runs every stage on every tick in order, so the timeline of a session is the same on every run.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from ..errors import BadInput
from ..geometry import N_MICS


def replay_uri(path: str | Path, speed: str = "max") -> str:
    """The ``replay://`` URI of a session directory."""
    return f"replay://{quote(str(Path(path).resolve()))}?speed={quote(str(speed))}"


def _load_model(name: str | None):
    """The installed audio student to predict with; BadInput when none is installed."""
    from ..config import get_settings
    from ..inference.models import ModelSet, load_models

    models_dir = get_settings().models_dir
    models = ModelSet(load_models(models_dir))
    if models.default is None:
        raise BadInput(f"--predict: no models are installed in {models_dir} "
                       "(train and export one with 'dualcam-rt export', or set DUALCAM_MODELS_DIR)")
    return models.get(name)


def replay_timeline(path: str | Path, speed: str = "max", predict: bool = False, localise: bool = True,
                    model: str | None = None, hop_s: float = 0.5, mic_channel: int = 0) -> dict:
    """The session's timeline: one row per tick (video, localisation) and, with ``predict``, the
    model's predictions every ``hop_s`` seconds over its window of microphone ``mic_channel``."""
    from ..devices import open_device

    student = _load_model(model) if predict else None
    rows, predictions = [], []
    with open_device(replay_uri(path, speed)) as device:
        info = device.describe()
        imaging = localise and device.channels == N_MICS
        if imaging:
            from ..dsp.beamform import Beamformer
            from ..dsp.overlay import band_energy
            from ..dsp.overlay import localise as locate

            beamformer = Beamformer()
        window = None
        if student is not None:
            from ..dsp.resample import resample
            from ..inference.predict import predict_waves, prediction
            from ..inference.stream import SlidingWindow

            col = device.session.column_of(mic_channel)
        for frame in device.frames():
            row = {"tick": frame.index, "time_s": round(frame.timestamp, 4), "video": frame.video is not None,
                   "lost_samples": frame.lost_samples,
                   "truth_px": (frame.truth or {}).get("source_px"), "truth_active": (frame.truth or {}).get("active")}
            if imaging:
                row["localisation"] = locate(band_energy(beamformer.images(frame.audio)), beamformer.geometry)
            if student is not None:
                rate = frame.sample_rate
                window = window or SlidingWindow(student.seconds * rate, hop_s * rate)
                for end, wave in window.push(frame.audio[col]):
                    if rate != student.sample_rate:
                        wave = resample(wave, rate, student.sample_rate)
                    probs, _ = predict_waves(student, [wave])
                    pred = {"tick": frame.index, "t_s": round(end / rate, 4), **prediction(probs[0], student.classes)}
                    predictions.append(pred)
                    row["prediction"] = pred
            rows.append(row)
    return {"session": info, "frames": len(rows), "video_frames": sum(r["video"] for r in rows),
            "localised": imaging, "model": student.name if student else None,
            "predictions": predictions, "timeline": rows}
