"""Export helpers: a microphone to WAV, the video with its acoustic overlay to MP4."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import soundfile as sf
from conftest import run_cli
from test_sessions import write_session


def test_export_wav_writes_one_microphone_in_pascal(tmp_path):
    frames = write_session(tmp_path / "s", n=12)
    r = run_cli("export-wav", str(tmp_path / "s"), "--channel", "3", "--out", str(tmp_path / "mic3.wav"))
    assert r.returncode == 0, r.stderr
    data, rate = sf.read(tmp_path / "mic3.wav", dtype="float32")
    assert rate == 12288 and data.shape == (12 * 1024,)
    np.testing.assert_array_equal(data, np.concatenate([f.audio[3] for f in frames]))


def _read_video(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return frames, fps


@pytest.mark.slow
def test_export_video_draws_the_acoustic_image_over_the_frames(tmp_path):
    frames = write_session(tmp_path / "s", n=12)
    assert run_cli("export-video", str(tmp_path / "s"), "--out", str(tmp_path / "o.mp4"), timeout=600).returncode == 0
    assert (
        run_cli(
            "export-video", str(tmp_path / "s"), "--no-overlay", "--out", str(tmp_path / "p.mp4"), timeout=600
        ).returncode
        == 0
    )
    with_overlay, fps = _read_video(tmp_path / "o.mp4")
    plain, _ = _read_video(tmp_path / "p.mp4")
    assert len(with_overlay) == len(plain) == 12 and fps == 12
    assert with_overlay[0].shape == (480, 640, 3)
    assert np.abs(plain[5].astype(int) - frames[5].video.astype(int)).mean() < 6  # lossy, but the same picture
    k = next(i for i, f in enumerate(frames) if f.truth["active"])  # a tick where the subject makes sound
    u, v = (int(x) for x in frames[k].truth["source_px"])
    near = np.abs(with_overlay[k].astype(int) - plain[k].astype(int))[max(v - 20, 0) : v + 20, max(u - 20, 0) : u + 20]
    assert near.mean() > 20  # the heat map is drawn where the source is


def test_export_video_overlay_needs_all_channels(tmp_path):
    write_session(tmp_path / "s", n=12, channels=[0])
    r = run_cli("export-video", str(tmp_path / "s"), "--out", str(tmp_path / "o.mp4"))
    assert r.returncode == 2 and "--no-overlay" in r.stderr
    r = run_cli("export-wav", str(tmp_path / "s"), "--out", str(tmp_path / "o.flac"))
    assert r.returncode == 2 and ".wav" in r.stderr
