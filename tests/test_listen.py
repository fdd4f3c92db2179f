"""``dualcam-rt listen`` end to end against a real audio server: PulseAudio with a private null
sink, a WAV played into it with paplay, predictions read back from the command's output."""

from __future__ import annotations

import json
import os
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf
from conftest import CLI, run_cli

from dualcam_rt.inference.tiny import band_of, write_tiny_model
from dualcam_rt.labels import CLASSES

TONE_HZ = 1000


@pytest.fixture(scope="module")
def audio_server(pulse_sink, tmp_path_factory):
    """The shared PulseAudio null sink plus a tone WAV and a models dir; yields (env, sink, tone WAV, models dir)."""
    sink = pulse_sink
    tmp = tmp_path_factory.mktemp("listen")
    tone = tmp / "tone.wav"
    t = np.arange(44_100 * 10) / 44_100
    sf.write(tone, (0.5 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32), 44_100)
    write_tiny_model(tmp / "models")
    env = {"PULSE_SOURCE": f"{sink}.monitor"}  # the command hears only what this test plays
    yield env, sink, tone, tmp / "models"


@pytest.mark.slow
def test_listen_classifies_a_tone_played_into_the_audio_server(audio_server):
    env, sink, tone, models = audio_server
    # playing first keeps the sink's monitor running when capture starts (no start-up gap)
    player = subprocess.Popen(["paplay", "-d", sink, str(tone)])
    time.sleep(0.5)
    listen = subprocess.Popen(
        [*CLI, "listen", "mic://pulse", "--json", "--seconds", "6", "--hop", "0.5", "--models-dir", str(models)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    try:
        out, err = listen.communicate(timeout=60)
    finally:
        player.kill()
        player.wait()
    assert listen.returncode == 0, err
    predictions = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(predictions) >= 6, (out, err)
    assert [p["t_s"] for p in predictions[:3]] == [0.5, 1.0, 1.5]
    tone_class = CLASSES[band_of(TONE_HZ)]
    heard = [p["label"] for p in predictions[-4:]]
    assert heard == [tone_class] * 4, predictions
    assert all(p["latency_ms"] > 0 and len(p["top_k"]) == 3 for p in predictions)


def test_listen_shows_a_live_view_in_the_terminal(audio_server):
    env, sink, tone, models = audio_server
    r = run_cli("listen", "mic://pulse", "--seconds", "2.5", "--models-dir", str(models), env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "dualcam-rt listen" in r.stdout and "probability" in r.stdout
    assert "predictions" in r.stderr


def test_listen_with_a_missing_microphone_models_or_bad_hop_fails_in_one_line(audio_server, tmp_path):
    env, sink, tone, models = audio_server
    r = run_cli("listen", "mic://no-such-microphone", "--seconds", "1", "--models-dir", str(models), env=env)
    assert r.returncode == 2 and "no-such-microphone" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("listen", "mic://pulse", "--seconds", "1", "--models-dir", str(tmp_path), env=env)
    assert r.returncode == 2 and "no models" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("listen", "mic://pulse", "--hop", "0", "--models-dir", str(models), env=env)
    assert r.returncode == 2 and "--hop" in r.stderr


def test_listen_takes_the_default_model_setting_on_any_device(tmp_path):
    write_tiny_model(tmp_path, "tone-bands")
    write_tiny_model(tmp_path, "zz-tones")  # last by name: only the setting makes it the default
    r = run_cli(
        "listen",
        "sim://?scenario=1&seed=0&speed=max",
        "--json",
        "--seconds",
        "4",
        "--models-dir",
        str(tmp_path),
        env={"DUALCAM_DEFAULT_MODEL": "zz-tones"},
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    predictions = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert predictions and {p["model"] for p in predictions} == {"zz-tones"}
