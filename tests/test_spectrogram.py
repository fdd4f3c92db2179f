"""Student features: HearNet's spectrogram and SoundNet's waveform (shared by training and serving)."""

import numpy as np
import pytest
from scipy.signal import get_window

from dualcam_rt.dsp.spectrogram import (CLIP_SAMPLES, N_FRAMES, N_FREQ, feature_params, hearnet_input,
                                        soundnet_input, student_input)
from dualcam_rt.errors import BadInput
from dualcam_rt.geometry import SAMPLE_RATE


def tone(freq_hz: float, seconds: float = 5.0, rate: int = SAMPLE_RATE, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def test_five_seconds_at_the_sensor_rate_give_257_bins_by_500_frames():
    spec = hearnet_input(tone(1000.0))
    assert spec.shape == (N_FREQ, N_FRAMES) == (257, 500)
    assert spec.dtype == np.float32 and np.all(spec >= 0)


def test_a_tone_peaks_in_the_bin_of_its_frequency_at_22050_hz():
    spec = hearnet_input(tone(2000.0))
    expected_bin = round(2000.0 * 512 / 22050)
    assert np.all(np.argmax(spec, axis=0) == expected_bin)


def test_spectrogram_matches_a_periodic_hann_stft_of_the_scaled_waveform():
    wave = np.random.default_rng(0).standard_normal(5 * SAMPLE_RATE)
    y = soundnet_input(wave).astype(np.float64)
    win = get_window("hann", 440)  # scipy's default is the periodic window
    frame = 123
    ref = np.abs(np.fft.rfft(y[frame * 220: frame * 220 + 440] * win, n=512))
    np.testing.assert_allclose(hearnet_input(wave)[:, frame], ref, rtol=1e-5, atol=1e-3)


def test_loudness_does_not_change_the_features():
    wave = tone(700.0) + 0.01 * np.random.default_rng(1).standard_normal(5 * SAMPLE_RATE).astype(np.float32)
    quiet = hearnet_input(wave)
    # float32 FFTs: bins near zero carry rounding of ~1e-7 of the peak, whatever the loudness
    np.testing.assert_allclose(quiet, hearnet_input(wave * 37.0), rtol=1e-4, atol=1e-6 * quiet.max())


def test_waveform_is_110250_samples_within_plus_minus_256():
    y = soundnet_input(tone(440.0, amp=3.0))
    assert y.shape == (CLIP_SAMPLES,) == (110250,) and y.dtype == np.float32
    assert 250 < np.max(np.abs(y)) <= 257  # the resampler may overshoot the peak a little


def test_a_short_clip_is_looped_to_five_seconds():
    one_second = np.random.default_rng(2).standard_normal(SAMPLE_RATE)
    looped = np.tile(one_second, 5)
    np.testing.assert_allclose(soundnet_input(one_second), soundnet_input(looped), atol=1e-3)


def test_a_long_clip_keeps_its_first_five_seconds():
    rng = np.random.default_rng(3)
    wave = rng.standard_normal(8 * SAMPLE_RATE)
    np.testing.assert_array_equal(hearnet_input(wave), hearnet_input(wave[: 5 * SAMPLE_RATE]))


def test_other_sample_rates_are_resampled_to_the_same_features():
    # a 1.5 kHz tone recorded at 44.1 kHz and at the sensor rate give the same spectrum peak
    a = hearnet_input(tone(1500.0, rate=44100), sample_rate=44100)
    b = hearnet_input(tone(1500.0))
    assert a.shape == b.shape
    assert np.argmax(a.mean(axis=1)) == np.argmax(b.mean(axis=1))


def test_silence_gives_zeros_not_nan():
    spec = hearnet_input(np.zeros(SAMPLE_RATE, dtype=np.float32))
    assert np.all(spec == 0)


@pytest.mark.parametrize("bad", [np.zeros(0), np.zeros((2, 100)), np.array([0.0, np.nan, 1.0])])
def test_unusable_audio_is_bad_input(bad):
    with pytest.raises(BadInput):
        hearnet_input(bad)


def test_student_input_dispatches_on_kind():
    wave = tone(900.0, seconds=1.0)
    assert student_input("spectrogram", wave).shape == (257, 500)
    assert student_input("waveform", wave).shape == (110250,)
    with pytest.raises(BadInput):
        student_input("mfcc", wave)
    assert feature_params("spectrogram")["win_samples"] == 440
