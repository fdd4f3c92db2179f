"""The live microphone end to end (issue 11 item 8): silence and test-split real recordings played
through the real PulseAudio null sink into ``dualcam-rt listen --json``, with the shipped student.

What is asserted is the live path, not the student's accuracy (that is ``dualcam-rt score`` on the
real-recording test set, whose figures are in the model cards): silence is ``null`` with reason
``silence``; each played take is heard at its onset (two onsets, 6 s apart), its windows pass the
level gate and are answered (a label, or ``no_action`` from the student's background class or
confidence threshold); a take is never reported as two events. The exact class is asserted with the
tiny tone model (tests/test_listen.py, tests/test_gate.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import CLI

from dualcam_rt.geometry import SAMPLE_RATE
from dualcam_rt.labels import CLASSES
from dualcam_rt.sim.soundbank import PackageRoots, SoundBank, build_bank

MODELS = Path(__file__).resolve().parents[1] / "models"
SILENCE_S, GAP_S = 12.0, 6.0


@pytest.fixture(scope="module")
def played(tmp_path_factory) -> tuple[Path, list[float]]:
    """A WAV: 12 s of digital silence, then two loud test-split takes of the ci bank 6 s apart
    (each followed by silence); and the takes' start times (s)."""
    out = tmp_path_factory.mktemp("listen-real")
    build_bank(out / "bank", PackageRoots(out / "no-unpacked-sources"), preset="ci")
    bank = SoundBank.open(out / "bank")
    takes = sorted((t for cls in CLASSES for t in bank.takes(cls, "test")), key=lambda t: -len(t.audio))[:2]
    assert len(takes) == 2, "the ci bank has test-split takes"
    parts, starts, t = [np.zeros(int(SILENCE_S * SAMPLE_RATE), np.float32)], [], SILENCE_S
    for take in takes:
        starts.append(t)
        piece = np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)
        audio = take.audio[: len(piece) // 2] * np.float32(0.5)  # -6 dBFS peak
        piece[: len(audio)] = audio
        parts.append(piece)
        t += GAP_S
    wav = out / "played.wav"
    sf.write(wav, np.concatenate(parts), SAMPLE_RATE, subtype="PCM_16")
    return wav, starts


@pytest.mark.slow
def test_listen_says_silence_then_answers_each_played_recording_once(pulse_sink, played):
    wav, starts = played
    seconds = SILENCE_S + GAP_S * len(starts)
    player = subprocess.Popen(["paplay", "-d", pulse_sink, str(wav)])
    time.sleep(0.3)
    listen = subprocess.Popen(
        [
            *CLI,
            "listen",
            "mic://pulse",
            "--json",
            "--seconds",
            str(seconds),
            "--hop",
            "0.5",
            "--models-dir",
            str(MODELS),
            "--model",
            "hearnet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PULSE_SOURCE": f"{pulse_sink}.monitor"},
    )
    try:
        out, err = listen.communicate(timeout=120)
    finally:
        player.kill()
        player.wait()
    assert listen.returncode == 0, err
    predictions = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(predictions) >= 2 * seconds - 4, (out, err)
    # the command starts a few seconds after the file (start-up): the first onset sets the offset
    onsets: list[float] = []
    for p in predictions:
        if p["onset_s"] is not None and not any(abs(p["onset_s"] - t) < 1.0 for t in onsets):
            onsets.append(p["onset_s"])
    assert len(onsets) == len(starts), onsets
    assert abs(onsets[1] - onsets[0] - GAP_S) < 0.5, onsets
    quiet = [p for p in predictions if p["t_s"] <= onsets[0] - 0.5]
    assert len(quiet) >= 2 and all(p["label"] is None and p["reason"] == "silence" for p in quiet), quiet
    for onset in onsets:  # a take is inside the windows ending up to 5 s after it
        heard = [p for p in predictions if onset + 0.5 <= p["t_s"] <= onset + 3]
        assert heard and all(p["reason"] != "silence" for p in heard), heard
        assert all(p["label"] is not None or p["reason"] == "no_action" for p in heard), heard
    # whatever the student names a take, it is reported once, at that take's onset
    events = [e for p in predictions for e in p["events"]]
    assert all(any(abs(e["onset_s"] - t) < 1.0 for t in onsets) for e in events), (events, onsets)
    assert len(events) == len({min(onsets, key=lambda t: abs(t - e["onset_s"])) for e in events}), events
