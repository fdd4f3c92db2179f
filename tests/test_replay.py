"""replay://: a recorded session streams like a live sensor, deterministically."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from conftest import run_cli
from test_sessions import write_session

from dualcam_rt.devices import open_device
from dualcam_rt.errors import BadInput, NotFound


def test_replay_yields_the_recorded_frames_identically_on_every_run(tmp_path):
    frames = write_session(tmp_path / "s", n=24, video_every=2)
    runs = []
    for _ in range(2):
        with open_device(f"replay://{tmp_path / 's'}?speed=max") as dev:
            assert dev.describe()["ticks"] == 24 and dev.describe()["speed"] == "max"
            runs.append(list(dev.frames()))
            assert dev.stats.audio_blocks == 24 and dev.stats.video_frames == 12
    for a, b, orig in zip(*runs, frames):
        assert (
            (a.index, a.first_sample, a.timestamp)
            == (b.index, b.first_sample, b.timestamp)
            == (orig.index, orig.first_sample, orig.timestamp)
        )
        np.testing.assert_array_equal(a.audio, b.audio)
        np.testing.assert_array_equal(a.audio, orig.audio)
        if a.video is not None:
            np.testing.assert_array_equal(a.video, b.video)


def test_replay_at_speed_1_takes_the_session_duration(tmp_path):
    write_session(tmp_path / "s", n=12)  # 1 s
    with open_device(f"replay://{tmp_path / 's'}?speed=1") as dev:
        t0 = time.monotonic()
        n = sum(1 for _ in dev.frames())
        paced = time.monotonic() - t0
    with open_device(f"replay://{tmp_path / 's'}", speed="max") as dev:
        t0 = time.monotonic()
        sum(1 for _ in dev.frames())
        unpaced = time.monotonic() - t0
    assert n == 12
    assert paced >= 11 / 12 - 0.02  # the last frame is due 11/12 s after the first
    assert unpaced < paced


def test_replay_of_a_missing_session_or_bad_speed_is_a_clear_error(tmp_path):
    with pytest.raises(NotFound, match="no session"):
        open_device(f"replay://{tmp_path / 'nothing'}")
    write_session(tmp_path / "s", n=12)
    with pytest.raises(BadInput, match="speed must be a positive number"):
        open_device(f"replay://{tmp_path / 's'}?speed=fast")
    r = run_cli("replay", str(tmp_path / "nothing"), "--json")
    assert r.returncode == 2 and "no session" in r.stderr


@pytest.mark.slow
def test_replay_json_timeline_localises_the_simulated_source(tmp_path):
    write_session(tmp_path / "s", n=12, video_every=3)
    r = run_cli("replay", str(tmp_path / "s"), "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["frames"] == 12 and out["video_frames"] == 4 and out["localised"]
    assert [row["tick"] for row in out["timeline"]] == list(range(12))
    active = [row for row in out["timeline"] if row["truth_active"] and row["localisation"]["source"]]
    assert len(active) >= 2  # clapping: a few claps per second
    errors = [
        np.hypot(
            row["localisation"]["source"]["u_px"] - row["truth_px"][0],
            row["localisation"]["source"]["v_px"] - row["truth_px"][1],
        )
        for row in active
    ]
    assert max(errors) < 27  # within two acoustic pixels of the subject whenever it makes sound
    again = json.loads(run_cli("replay", str(tmp_path / "s"), "--no-localise", "--json").stdout)
    assert again["timeline"] == [{k: v for k, v in row.items() if k != "localisation"} for row in out["timeline"]]


def test_replay_predict_without_installed_models_says_so(tmp_path):
    write_session(tmp_path / "s", n=12)
    (tmp_path / "models").mkdir()
    r = run_cli(
        "replay", str(tmp_path / "s"), "--predict", "--json", env={"DUALCAM_MODELS_DIR": str(tmp_path / "models")}
    )
    assert r.returncode == 2
    assert "no models are installed" in r.stderr and "Traceback" not in r.stderr


def test_recording_a_replay_reproduces_the_session(tmp_path):
    frames = write_session(tmp_path / "s", n=24)
    (tmp_path / "out").mkdir()
    r = run_cli(
        "record",
        f"replay://{tmp_path / 's'}?speed=max",
        "--seconds",
        "2",
        "--out",
        str(tmp_path / "out"),
        "--name",
        "copy",
        "--label",
        "clapping",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["frames"] == 24 and summary["drops"] == 0 and summary["status"] == "complete"
    with open_device(f"replay://{tmp_path / 'out' / 'copy'}?speed=max") as dev:
        for a, b in zip(dev.frames(), frames):
            np.testing.assert_array_equal(a.audio, b.audio)


def test_replay_predict_classifies_the_microphone_with_an_installed_model(tmp_path):
    from dualcam_rt.frame import SensorFrame
    from dualcam_rt.inference.tiny import band_of, write_tiny_model
    from dualcam_rt.labels import CLASSES
    from dualcam_rt.sessions import SessionWriter

    tone_hz = 3000.0
    t = np.arange(24 * 1024) / 12288
    wave = (0.5 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
    with SessionWriter(tmp_path / "tone", {"label": "whistling"}) as w:
        for i in range(24):
            w.write(
                SensorFrame(
                    index=i, first_sample=i * 1024, timestamp=i / 12, audio=wave[None, i * 1024 : (i + 1) * 1024]
                )
            )
    write_tiny_model(tmp_path / "models")
    r = run_cli(
        "replay", str(tmp_path / "tone"), "--predict", "--json", env={"DUALCAM_MODELS_DIR": str(tmp_path / "models")}
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model"] == "tone-bands" and not out["localised"]
    assert [p["t_s"] for p in out["predictions"]] == [0.5, 1.0, 1.5, 2.0]  # one per 0.5 s hop
    assert {p["label"] for p in out["predictions"]} == {CLASSES[band_of(tone_hz)]}


def test_replay_takes_the_default_model_setting(tmp_path):
    from dualcam_rt.inference.tiny import write_tiny_model

    write_session(tmp_path / "s", n=12)
    write_tiny_model(tmp_path / "models", "tone-bands")
    write_tiny_model(tmp_path / "models", "zz-tones")  # last by name: only the setting makes it the default
    env = {"DUALCAM_MODELS_DIR": str(tmp_path / "models"), "DUALCAM_DEFAULT_MODEL": "zz-tones"}
    r = run_cli("replay", str(tmp_path / "s"), "--predict", "--no-localise", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["model"] == "zz-tones"
    r = run_cli("replay", str(tmp_path / "s"), "--predict", "--no-localise", "--model", "tone-bands", "--json", env=env)
    assert json.loads(r.stdout)["model"] == "tone-bands"  # a named model wins over the setting
