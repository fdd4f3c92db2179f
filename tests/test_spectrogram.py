"""Student features: HearNet's spectrogram and SoundNet's waveform (shared by training and serving)."""

import numpy as np
import pytest
from scipy.signal import get_window

from dualcam_rt.dsp.spectrogram import (
    CLIP_SAMPLES,
    FLOOR_DB,
    N_FRAMES,
    N_FREQ,
    REFERENCE_PA,
    Recipe,
    feature_params,
    hearnet_input,
    soundnet_input,
    student_input,
)
from dualcam_rt.errors import BadInput
from dualcam_rt.geometry import SAMPLE_RATE


def tone(freq_hz: float, seconds: float = 5.0, rate: int = SAMPLE_RATE, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def test_five_seconds_at_the_sensor_rate_give_257_bins_by_500_frames():
    spec = hearnet_input(tone(1000.0))
    assert spec.shape == (N_FREQ, N_FRAMES) == (257, 500)
    assert spec.dtype == np.float32 and np.all(spec >= FLOOR_DB)


def test_a_tone_peaks_in_the_bin_of_its_frequency_at_22050_hz():
    spec = hearnet_input(tone(2000.0))
    expected_bin = round(2000.0 * 512 / 22050)
    assert np.all(np.argmax(spec, axis=0) == expected_bin)


def test_spectrogram_matches_a_periodic_hann_stft_of_the_scaled_waveform():
    wave = np.random.default_rng(0).standard_normal(5 * SAMPLE_RATE)
    y = soundnet_input(wave).astype(np.float64)
    win = get_window("hann", 440)  # scipy's default is the periodic window
    frame = 123
    ref = np.abs(np.fft.rfft(y[frame * 220 : frame * 220 + 440] * win, n=512))
    db = 20 * np.log10(np.maximum(ref, 10 ** (FLOOR_DB / 20)))
    np.testing.assert_allclose(hearnet_input(wave)[:, frame], db, atol=0.05)  # float32 FFT: ~1e-7 of the peak
    legacy = Recipe("max_abs", "linear")
    ref = np.abs(np.fft.rfft(soundnet_input(wave, recipe=legacy)[frame * 220 : frame * 220 + 440] * win, n=512))
    np.testing.assert_allclose(hearnet_input(wave, recipe=legacy)[:, frame], ref, rtol=1e-5, atol=1e-3)


def test_a_quiet_room_stays_quiet_and_a_loud_event_loud():
    """The fixed scale: capsule noise in a quiet room (~30 dB SPL) and a clap-like burst (~94 dB SPL
    peak) are ~60 dB apart in the features, where max-abs scaling made both full scale."""
    rng = np.random.default_rng(4)
    room = (6e-4 * rng.standard_normal(5 * SAMPLE_RATE)).astype(np.float32)  # Pa rms
    event = room.copy()
    event[SAMPLE_RATE : SAMPLE_RATE + 200] += (
        np.float32(1.0) * np.hanning(200).astype(np.float32) * rng.standard_normal(200)
    )
    level = {k: float(hearnet_input(x).max()) for k, x in (("room", room), ("event", event))}
    assert level["event"] - level["room"] > 30, level
    assert np.max(np.abs(soundnet_input(room))) < 0.05 * np.max(np.abs(soundnet_input(event)))
    legacy = Recipe("max_abs", "linear")  # what older students were trained on: both reach full scale
    assert np.max(np.abs(soundnet_input(room, recipe=legacy))) > 250


def test_with_max_abs_scaling_loudness_does_not_change_the_features():
    wave = tone(700.0) + 0.01 * np.random.default_rng(1).standard_normal(5 * SAMPLE_RATE).astype(np.float32)
    legacy = Recipe("max_abs", "linear")
    quiet = hearnet_input(wave, recipe=legacy)
    # float32 FFTs: bins near zero carry rounding of ~1e-7 of the peak, whatever the loudness
    np.testing.assert_allclose(quiet, hearnet_input(wave * 37.0, recipe=legacy), rtol=1e-4, atol=1e-6 * quiet.max())


def test_gain_shifts_the_db_spectrogram_by_its_decibels():
    wave = tone(700.0) + 0.01 * np.random.default_rng(1).standard_normal(5 * SAMPLE_RATE).astype(np.float32)
    base, louder = hearnet_input(wave), hearnet_input(wave * 10.0)
    above_floor = base > FLOOR_DB + 3  # float32 rounding: bins near the floor wander
    assert above_floor.mean() > 0.5  # all bins below the sensor's 6,144 Hz Nyquist
    np.testing.assert_allclose(louder[above_floor], base[above_floor] + 20.0, atol=0.05)


def test_waveform_is_110250_samples_with_full_scale_at_plus_minus_256():
    y = soundnet_input(tone(440.0, amp=REFERENCE_PA))
    assert y.shape == (CLIP_SAMPLES,) == (110250,) and y.dtype == np.float32
    assert 250 < np.max(np.abs(y)) <= 257  # the resampler may overshoot the peak a little
    y = soundnet_input(tone(440.0, amp=3.0), recipe=Recipe("max_abs", "linear"))
    assert 250 < np.max(np.abs(y)) <= 257


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


def test_silence_gives_the_floor_not_nan():
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    assert np.all(hearnet_input(silence) == np.float32(FLOOR_DB))
    assert np.all(hearnet_input(silence, recipe=Recipe("max_abs", "linear")) == 0)


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
    assert Recipe.of(feature_params("spectrogram")) == Recipe() and Recipe.of(feature_params("waveform")) == Recipe()
    assert Recipe.of({"normalise": "max_abs", "magnitude": "linear"}) == Recipe.of(None) == Recipe("max_abs", "linear")
    with pytest.raises(BadInput):
        Recipe("loudest", "db")


@pytest.mark.parametrize("recipe", [Recipe(), Recipe("max_abs", "linear")])
def test_serving_computes_the_features_at_the_level_the_card_says(tmp_path, recipe):
    """Model.features and the incremental StreamFeatures follow the card's recipe, and agree."""
    import json

    from dualcam_rt.inference.features import StreamFeatures
    from dualcam_rt.inference.models import load_models
    from dualcam_rt.inference.tiny import write_tiny_model

    card_path = write_tiny_model(tmp_path)
    card = json.loads(card_path.read_text())
    card["input"]["feature"] = feature_params("spectrogram", recipe)
    card_path.write_text(json.dumps(card))
    model = next(iter(load_models(tmp_path).values()))
    assert model.recipe == recipe
    rng = np.random.default_rng(7)
    signal = (rng.standard_normal(SAMPLE_RATE * 7) * 0.01 + tone(700, 7.0, amp=0.1)).astype(np.float32)
    np.testing.assert_allclose(
        model.features(signal[: 5 * SAMPLE_RATE]), student_input("spectrogram", signal, recipe=recipe)
    )
    features = StreamFeatures(model)
    features.push(signal)
    for end in range(5 * SAMPLE_RATE, len(signal) + 1, 2048):
        plain, streamed = (
            model.features(signal[end - 5 * SAMPLE_RATE : end]),
            features.at(end, signal[end - 5 * SAMPLE_RATE : end]),
        )
        if recipe.magnitude == "db":  # compared as magnitudes: float32 rounding is ~1e-6 of the peak, not of each bin
            plain, streamed = 10 ** (plain / 20), 10 ** (streamed / 20)
        np.testing.assert_allclose(streamed, plain, rtol=1e-5, atol=1e-5 * np.abs(plain).max())
    assert features.incremental_hits >= 5
