"""mic://: a real microphone path through a real audio server (PulseAudio null sink, no sound card)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from dualcam_rt.devices import open_device
from dualcam_rt.dsp.resample import StreamResampler, resample
from dualcam_rt.errors import DeviceError, NotFound

TONE_HZ, TONE_FS = 1000.0, 0.3  # played at 30 % of full scale


@pytest.fixture(scope="module")
def pulse_source(pulse_sink, tmp_path_factory):
    """The shared PulseAudio null sink and a tone file to play into it; yields (sink, tone file)."""
    sink = pulse_sink
    tone = tmp_path_factory.mktemp("mic") / "tone.wav"
    t = np.arange(48000 * 6) / 48000
    sf.write(tone, (TONE_FS * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32), 48000)
    yield sink, tone


@pytest.mark.parametrize("query", ["", "?rate=48000"])
def test_mic_hears_a_tone_played_into_the_audio_server(pulse_source, monkeypatch, query):
    sink, tone = pulse_source
    monkeypatch.setenv("PULSE_SOURCE", f"{sink}.monitor")  # record only what this test plays
    player = subprocess.Popen(["paplay", "-d", sink, str(tone)])
    try:
        device = open_device(f"mic://pulse{query}")
        with device:
            frames = list(itertools.islice(device.frames(), 16))
    finally:
        player.kill()
        player.wait()
    assert device.describe()["resampled"] is bool(query)
    assert [f.first_sample for f in frames] == [1024 * i for i in range(16)]
    assert all(f.audio.shape == (1, 1024) and f.audio.dtype == np.float32 and f.video is None for f in frames)
    heard = np.concatenate([f.audio[0] for f in frames[-8:]])
    spectrum = np.abs(np.fft.rfft(heard * np.hanning(len(heard))))
    peak_hz = np.fft.rfftfreq(len(heard), 1 / 12288)[spectrum.argmax()]
    assert abs(peak_hz - TONE_HZ) < 10
    # Full scale is 20 Pa by default: a 30 % tone peaks at 6 Pa (resampling keeps the level).
    assert np.abs(heard).max() == pytest.approx(TONE_FS * 20, rel=0.1)


def test_an_audio_server_started_after_import_is_found(pulse_source, tmp_path):
    # PortAudio lists devices once; here the server's socket appears only after sounddevice started.
    server = next(
        line.split(":", 1)[1].strip()
        for line in subprocess.run(["pactl", "info"], capture_output=True, text=True, check=True).stdout.splitlines()
        if line.startswith("Server String")
    )
    late = tmp_path / "late-socket"
    code = (
        f"import os, sounddevice as sd; from dualcam_rt.devices import open_device; "
        f"assert 'pulse' not in [d['name'] for d in sd.query_devices()]; "
        f"os.symlink({server.removeprefix('unix:')!r}, {str(late)!r}); "
        f"print(open_device('mic://pulse').describe()['input'])"
    )
    env = {**os.environ, "PULSE_SERVER": f"unix:{late}"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pulse"


def test_unknown_microphone_is_not_found():
    with pytest.raises(NotFound):
        open_device("mic://no-such-card-anywhere")


def test_camera_that_does_not_exist_is_a_device_error(pulse_source):
    with pytest.raises(DeviceError, match="camera 7"):
        open_device("mic://pulse?camera=7")


def test_missing_portaudio_is_one_line_not_a_traceback():
    # A machine without libportaudio: make the library lookup fail, then run the real CLI.
    code = (
        "import sys, ctypes.util; ctypes.util.find_library = lambda name: None; "
        "sys.argv = ['dualcam-rt', 'probe', 'mic://default']; "
        "from dualcam_rt.cli import main; main()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "PortAudio" in result.stderr


def test_resampler_output_does_not_depend_on_chunking():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(48000)
    whole = StreamResampler(48000, 12288)(x)
    r = StreamResampler(48000, 12288)
    cuts = np.sort(rng.integers(0, len(x), 40))
    pieces = np.concatenate([r(c) for c in np.split(x, cuts)])
    # all but the filter's reach at the end (~10 output samples) is given back, as the clip resampler has it
    assert len(whole) == len(pieces) > 12288 - 16
    np.testing.assert_allclose(pieces, whole, atol=1e-5)
    np.testing.assert_allclose(pieces, resample(x, 48000, 12288)[: len(pieces)], atol=1e-5)


def test_resampler_keeps_a_tone_below_the_new_nyquist_and_removes_one_above():
    t = np.arange(48000) / 48000
    r = StreamResampler(48000, 12288)
    kept = r(np.sin(2 * np.pi * 2000 * t))[2000:]
    removed = StreamResampler(48000, 12288)(np.sin(2 * np.pi * 9000 * t))[2000:]  # would alias to 3288 Hz
    assert np.abs(kept).max() == pytest.approx(1.0, abs=0.02)
    assert np.abs(removed).max() < 0.01
