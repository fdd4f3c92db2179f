"""Training augmentation: each step does what it says, measured on the output."""

import json
import sys
from pathlib import Path

import numpy as np
import pyroomacoustics as pra
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from dualcam_rt.geometry import SAMPLE_RATE
from dualcam_rt.training.augment import (
    RT60_EXCLUDED_S,
    AugmentConfig,
    Augmenter,
    add_at_snr,
    apply_gain,
    eq_tilt,
    hard_clip,
    highpass,
    lowpass,
    reverberate,
    room_pool,
)

FS = SAMPLE_RATE
# a real crowd recording from an allow-listed package the CI installs (lmms-common)
CROWD = Path("/usr/share/lmms/samples/misc/raving_crowd01.ogg")


def tone(freq_hz: float, seconds: float = 2.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * FS)) / FS
    return (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def db(power_ratio: float) -> float:
    return float(10 * np.log10(power_ratio))


def power(x) -> float:
    return float(np.mean(np.asarray(x, np.float64) ** 2))


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    cache = tmp_path_factory.mktemp("augment-cache")
    return cache, room_pool(12, cache_dir=cache)


def crowd() -> np.ndarray:
    assert CROWD.is_file(), f"{CROWD} missing: apt-get install lmms-common"
    x, fs = sf.read(CROWD, always_2d=True, dtype="float32")
    return resample_poly(x.mean(axis=1), FS, fs).astype(np.float32)


@pytest.mark.parametrize("gain_db", [-30.0, -7.5, 6.0])
def test_gain_changes_the_level_by_its_decibels(gain_db):
    x = tone(440.0)
    assert db(power(apply_gain(x, gain_db)) / power(x)) == pytest.approx(gain_db, abs=0.01)


def test_clipping_flattens_the_peaks_at_its_level_below_the_peak():
    x = tone(300.0)
    y = hard_clip(x, 6.0)
    assert np.max(np.abs(y)) == pytest.approx(np.max(np.abs(x)) * 10 ** (-6 / 20), rel=1e-6)
    assert np.mean(np.abs(y) >= np.max(np.abs(y)) - 1e-7) > 0.2  # a sine clipped 6 dB down is flat a third of the time
    assert not hard_clip(np.zeros(100, np.float32), 6.0).any()


def test_eq_tilt_changes_level_by_its_slope_per_octave():
    low, high = tone(500.0), tone(4000.0)  # three octaves apart
    tilt = 2.0
    gain = db(power(eq_tilt(high, tilt)) / power(high)) - db(power(eq_tilt(low, tilt)) / power(low))
    assert gain == pytest.approx(3 * tilt, abs=0.2)


def test_highpass_attenuates_below_its_cut_and_passes_above():
    cut = 200.0
    below, above = tone(cut / 4), tone(cut * 4)
    settle = FS // 2  # skip the filter's start-up transient
    assert db(power(highpass(below, cut)[settle:]) / power(below[settle:])) < -40  # 4 poles: ~48 dB at 2 octaves
    assert db(power(highpass(above, cut)[settle:]) / power(above[settle:])) == pytest.approx(0.0, abs=0.5)


def test_lowpass_attenuates_above_its_cut_and_passes_below():
    cut = 1500.0
    below, above = tone(cut / 4), tone(cut * 3.5)  # 5.25 kHz: below the 6.1 kHz Nyquist
    settle = FS // 2
    assert db(power(lowpass(above, cut)[settle:]) / power(above[settle:])) < -40
    assert db(power(lowpass(below, cut)[settle:]) / power(below[settle:])) == pytest.approx(0.0, abs=0.5)


@pytest.mark.parametrize("snr_db", [0.0, 12.0, 30.0])
def test_real_ambience_is_added_at_its_snr(snr_db):
    x = tone(1000.0, seconds=5.0, amp=0.05) * (np.arange(5 * FS) % FS < FS // 3)  # an intermittent event
    y = add_at_snr(x, crowd(), snr_db, np.random.default_rng(0))
    assert db(power(x) / power(y - x)) == pytest.approx(snr_db, abs=1.0)


def test_pooled_rooms_reverberate_unlike_the_three_scenarios(pool):
    _, (rirs, info) = pool
    measured = [pra.experimental.measure_rt60(r.astype(float), FS, decay_db=20) for r in rirs]
    assert all(m > 0.1 for m in measured)  # none anechoic, none the open-air terrace
    assert not any(RT60_EXCLUDED_S[0] <= m <= RT60_EXCLUDED_S[1] for m in measured), measured  # not scenario 2's 0.8 s
    assert min(measured) < 0.5 and max(measured) > 1.2  # both damped small rooms and live halls
    sizes = [np.prod(i["dim_m"]) for i in info]
    assert min(sizes) < 60 and max(sizes) > 300  # m³: a small office and a hall; scenario 2 is 554 m³ only


def test_the_room_pool_is_cached_on_disk_and_read_back(pool):
    cache, (rirs, info) = pool
    files = list((cache / "augment").glob("rooms-*.npz"))
    assert len(files) == 1
    again, info_again = room_pool(12, cache_dir=cache)
    assert info_again == info and all(np.array_equal(a, b) for a, b in zip(rirs, again))


def test_a_room_keeps_the_direct_sound_and_adds_a_tail(pool):
    _, (rirs, _) = pool
    click = np.zeros(FS, np.float32)
    click[100] = 1.0
    y = reverberate(click, rirs[0])
    assert abs(np.max(np.abs(y[90:110])) - 1.0) < 1e-5  # direct path at unit gain, where it was (+ 8 samples)
    assert power(y[200:]) > 0  # and a reverberant tail after it


def test_the_augmenter_is_reproducible_per_rng_and_changes_the_wave(pool):
    cache, _ = pool
    aug = Augmenter(AugmentConfig(), ambience=[crowd()], cache_dir=cache)
    x = tone(800.0, seconds=5.0)
    a, b = aug(x, np.random.default_rng(5)), aug(x, np.random.default_rng(5))
    c = aug(x, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c) and a.shape == x.shape and a.dtype == np.float32
    levels = [db(power(aug(x, np.random.default_rng(s))) / power(x)) for s in range(40)]
    assert min(levels) < -15 and max(levels) > 0  # the gain range reaches quiet and loud recordings
    assert aug.describe()["ambience_recordings"] == 1 and len(aug.describe()["pool_rooms"]) == 12


def test_an_augmented_student_input_is_the_feature_of_the_augmented_wave(pool):
    from dualcam_rt.dsp.spectrogram import student_input
    from dualcam_rt.training.augment import augmented_input

    cache, _ = pool
    aug = Augmenter(AugmentConfig(), cache_dir=cache)
    x = tone(800.0, seconds=5.0)
    got = augmented_input("spectrogram", x, aug, np.random.default_rng(3))
    np.testing.assert_array_equal(got, student_input("spectrogram", aug(x, np.random.default_rng(3))))
    assert got.shape == (257, 500) and not np.array_equal(got, student_input("spectrogram", x))


def test_a_student_trains_on_fresh_augmentations_of_its_clips(pool, tmp_path):

    sys.path.insert(0, str(Path(__file__).parent))
    from test_training import synthetic_clips

    from dualcam_rt.training.engine import ClipDataset, TrainConfig, fit

    cache, _ = pool
    clips = synthetic_clips(28)
    aug = Augmenter(AugmentConfig(), ambience=[crowd()], cache_dir=cache)
    ds = ClipDataset(clips, "spectrogram", train=True, augmenter=aug)
    first, again = ds[0][0][0], ds[0][0][0]
    assert first.shape == (257, 500) and not np.array_equal(first.numpy(), again.numpy())  # a new draw each time
    assert np.array_equal(
        ClipDataset(clips, "spectrogram")[0][0][0].numpy(),  # evaluation sees the clip as it is
        ClipDataset(clips, "spectrogram")[0][0][0].numpy(),
    )
    info = fit(
        TrainConfig("hearnet", epochs=1, batch_size=8, threads=1, augment=True),
        clips.select("train"),
        clips.select("val"),
        tmp_path / "run",
        progress=False,
        augmenter=aug,
    )
    assert info["config"]["augment"] and tuple(info["augmentation"]["gain_db"]) == (-30.0, 6.0)
    assert info["augmentation"]["ambience_recordings"] == 1


def test_background_clips_are_quiet_rooms_ambience_hum_and_noise_at_their_levels():
    from dualcam_rt.training.augment import BACKGROUND_DB_SPL, background_waves

    waves = background_waves(60, 2 * FS, np.random.default_rng(1), [crowd()])
    levels = 10 * np.log10(np.mean(waves.astype(np.float64) ** 2, axis=1) / (20e-6) ** 2)
    assert waves.shape == (60, 2 * FS) and waves.dtype == np.float32
    assert levels.min() > 25 and levels.max() < max(hi for _, hi in BACKGROUND_DB_SPL.values()) + 1
    assert np.sum(levels < 32) >= 5  # quiet rooms: capsule self-noise only (~28 dB SPL)


def test_a_student_with_a_background_class_exports_it_for_the_gate(tmp_path):
    from dataclasses import replace

    sys.path.insert(0, str(Path(__file__).parent))
    from test_training import synthetic_clips

    from dualcam_rt.inference.gate import Gate
    from dualcam_rt.labels import CLASSES
    from dualcam_rt.training.augment import BACKGROUND_CLASS, background_waves, with_background
    from dualcam_rt.training.engine import TrainConfig, fit
    from dualcam_rt.training.export import export_run

    clips = replace(synthetic_clips(28), mfcc=None, frames=None)
    rng = np.random.default_rng(0)
    both = with_background(clips, {s: background_waves(2, clips.mic.shape[1], rng) for s in ("train", "val")})
    assert list(np.bincount(both.label)) == [2] * 14 + [4] and set(both.scenario) == {1, 2, 3}
    fit(
        TrainConfig("hearnet", epochs=1, batch_size=8, threads=1, background=True),
        both.select("train"),
        both.select("val"),
        tmp_path / "run",
        progress=False,
    )
    card = export_run(tmp_path / "run", tmp_path / "models", "hn")
    assert card["classes"] == [*CLASSES, BACKGROUND_CLASS] and card["output"]["shape"] == [None, 15]
    assert Gate.of(json.loads((tmp_path / "models" / "hn.json").read_text())).background_class == BACKGROUND_CLASS


def test_spec_augment_masks_bands_and_spans_of_a_copy():
    from dualcam_rt.training.augment import SPEC_MAX_BINS, SPEC_MAX_FRAMES, spec_augment

    rng = np.random.default_rng(0)
    spec = rng.normal(0, 10, (257, 500)).astype(np.float32)
    before = spec.copy()
    masked_any = False
    for _ in range(20):
        out = spec_augment(spec, rng)
        assert out.shape == spec.shape and np.array_equal(spec, before)  # the input is untouched
        same = out == np.float32(spec.mean())
        rows, cols = np.flatnonzero(same.all(axis=1)), np.flatnonzero(same.all(axis=0))
        assert len(rows) <= 2 * SPEC_MAX_BINS and len(cols) <= 2 * SPEC_MAX_FRAMES
        assert np.array_equal(out[~same], spec[~same])  # everything else kept
        masked_any |= len(rows) > 0 and len(cols) > 0
    assert masked_any


def test_spec_augment_is_for_hearnet_and_trains(tmp_path):
    from dataclasses import replace

    sys.path.insert(0, str(Path(__file__).parent))
    from test_training import synthetic_clips

    from dualcam_rt.errors import BadInput
    from dualcam_rt.training.engine import TrainConfig, fit

    with pytest.raises(BadInput, match="for hearnet"):
        TrainConfig("soundnet", spec_augment=True)
    clips = replace(synthetic_clips(28), mfcc=None, frames=None)
    info = fit(
        TrainConfig("hearnet", epochs=1, batch_size=8, threads=1, spec_augment=True),
        clips.select("train"),
        clips.select("val"),
        tmp_path / "run",
        progress=False,
    )
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["spec_augment"] is True
    assert info["epochs_run"] == 1
