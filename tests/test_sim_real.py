"""Scenes on real recorded sounds: the subject's takes come from the sound bank, the physics holds."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from test_sim import _acoustic_peak_px, _mic0_power

from dualcam_rt.errors import BadInput
from dualcam_rt.geometry import BLOCK_SAMPLES, Geometry, get_geometry
from dualcam_rt.sim import Scene
from dualcam_rt.sim.actions import subject_traits
from dualcam_rt.sim.real_sounds import pitch_shift, procedural_share
from dualcam_rt.sim.rooms import get_scenario
from dualcam_rt.sim.soundbank import PackageRoots, SoundBank, build_bank

FS = 12_288


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("sim-real-cache")


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> SoundBank:
    """The ci bank (a few small allow-listed packages the suite installs), built in ~2 s."""
    out = tmp_path_factory.mktemp("bank")
    build_bank(out, PackageRoots(out / "no-unpacked-sources"), preset="ci")
    return SoundBank.open(out)


def _hashes(takes) -> set[str]:
    return {t.row["content_hash"] for t in takes}


def test_each_subject_performs_a_disjoint_share_of_its_splits_takes(bank, cache):
    train_subjects = [0, 2, 5]
    scenes = [
        Scene(
            1,
            seed=0,
            label="clapping",
            subject=s,
            sounds="real",
            bank=bank,
            split="train",
            split_subjects=train_subjects,
            cache_dir=cache,
        )
        for s in train_subjects
    ]
    shares = [_hashes(s.subject_takes) for s in scenes]
    assert all(shares) and sum(len(s) for s in shares) == len(set().union(*shares))  # disjoint, none empty
    assert set().union(*shares) == _hashes(bank.takes("clapping", "train"))  # and together all of them
    val = Scene(
        1,
        seed=0,
        label="clapping",
        subject=7,
        sounds="real",
        bank=bank,
        split="val",
        split_subjects=[7],
        cache_dir=cache,
    )
    assert _hashes(val.subject_takes) == _hashes(bank.takes("clapping", "val"))
    assert not _hashes(val.subject_takes) & set().union(*shares)


def test_the_subject_plays_its_recorded_take_at_its_own_pitch(bank, cache):
    scene = Scene(
        1,
        seed=3,
        label="clapping",
        subject=4,
        sounds="real",
        bank=bank,
        split="val",
        split_subjects=[4],
        cache_dir=cache,
    )
    (take,) = scene.subject_takes
    shifted = pitch_shift(take.audio, np.sqrt(subject_traits(4).pitch))
    dry = scene.dry_signal(0, 4 * FS)
    events = [e for t in range(48) for e in scene.truth(t)["events"]]
    start = int(round(events[0][0] * FS))
    piece = dry[start : start + len(shifted)]
    corr = np.dot(piece, shifted) / (np.linalg.norm(piece) * np.linalg.norm(shifted))
    assert corr > 0.999  # the take itself, levelled, at the subject's pitch
    inside = np.zeros(len(dry), bool)
    for s, e in {tuple(e) for e in events}:
        inside[int(s * FS) : int(e * FS)] = True
    # between the hits only the takes' tails, more than 25 dB down (the hit gate), and silence
    assert np.mean(dry[inside] ** 2) > 10**2.5 * max(np.mean(dry[~inside] ** 2), 1e-30)


def test_subjects_differ_in_tempo_and_pitch_on_the_same_take(bank, cache):
    """Two subjects sharing the one val take of a class: their event spacing and pitch follow their traits."""

    def gaps_and_takes(subject):
        scene = Scene(
            1,
            seed=1,
            label="clapping",
            subject=subject,
            sounds="real",
            bank=bank,
            split="val",
            split_subjects=[subject],
            cache_dir=cache,
        )
        onsets = sorted({e[0] for t in range(12 * 24) for e in scene.truth(t)["events"]})
        return np.diff(onsets), scene

    slow, fast = sorted(range(9), key=lambda s: subject_traits(s).tempo)[::8]
    gaps_slow, a = gaps_and_takes(slow)
    gaps_fast, b = gaps_and_takes(fast)
    assert np.median(gaps_slow) > np.median(gaps_fast)
    take_len = [len(pitch_shift(s.subject_takes[0].audio, np.sqrt(subject_traits(s.subject).pitch))) for s in (a, b)]
    assert take_len[0] != take_len[1]  # a resample-based pitch shift changes the take's length too


@pytest.mark.parametrize("label", ["clapping", "whistling"])
def test_scenario_3_snr_holds_with_real_sounds_and_real_ambience(bank, cache, label):
    four_mics = Geometry(mics=get_geometry().mics[:4], dead_channels=())
    split = next(s for s in ("train", "val", "test") if any(t.row["category"] == "crowd" for t in bank.ambience(s)))
    options = dict(
        scenario=3,
        seed=1,
        label=label,
        positions=(7,),
        geometry=four_mics,
        cache_dir=cache,
        sounds="real",
        bank=bank,
        split=split,
        split_subjects=[0],
    )
    subject = Scene(components=("subject",), **options)
    assert "voices" in subject.real_ambience  # the ci bank's crowd recording stands in for the babble
    assert subject.sound_sources(4.0)["real"] > 0
    signal = _mic0_power(subject, 120)
    noise = _mic0_power(Scene(components=("background",), **options), 120)
    assert 10 * np.log10(signal / noise) == pytest.approx(get_scenario(3).snr_db, abs=1.5)


def test_a_real_clap_is_localised_within_one_acoustic_pixel(bank, cache):
    scene = Scene(
        1,
        seed=0,
        label="clapping",
        sounds="real",
        bank=bank,
        split="train",
        split_subjects=[0],
        subject=0,
        cache_dir=cache,
    )
    ticks = [scene.next_tick() for _ in range(36)]
    assert all(t.truth["sound"] == "real" for t in ticks)
    truth_px = np.array(ticks[0].truth["source_px"])
    loud = [t.audio for t in ticks if t.truth["active"] and not t.truth["moving"]]
    assert np.linalg.norm(_acoustic_peak_px(scene, loud) - truth_px) < 20  # one acoustic pixel: 13.3 px


def test_mixed_labels_its_share_of_procedural_chunks(bank, cache):
    scene = Scene(
        1,
        seed=2,
        label="whistling",
        subject=0,
        sounds="mixed",
        bank=bank,
        split="train",
        split_subjects=[0],
        cache_dir=cache,
    )
    assert scene.procedural_share == procedural_share(len(scene.subject_takes)) == 0.5  # a thin class
    sources = [scene.truth(t)["sound"] for t in range(0, 12 * 4 * 40, 12 * 4)]  # one tick per 4-s chunk
    assert 0.25 < sources.count("procedural") / len(sources) < 0.75
    counts = scene.sound_sources(4 * 40)
    assert counts["real"] > 0 and counts["procedural"] > 0


def test_a_class_without_takes_in_its_split_falls_back_to_labelled_procedural_events(bank, cache):
    assert not bank.takes("snapping_fingers", "val")
    scene = Scene(
        1,
        seed=0,
        label="snapping_fingers",
        subject=0,
        sounds="real",
        bank=bank,
        split="val",
        split_subjects=[0],
        cache_dir=cache,
    )
    assert scene.sound_sources(8.0)["real"] == 0 and scene.sound_sources(8.0)["procedural"] > 0


def test_the_default_is_real_with_a_bank_and_procedural_with_a_warning_without(bank, tmp_path):
    with pytest.warns(UserWarning, match="dualcam-rt soundbank build"):
        assert Scene(1, seed=0, cache_dir=tmp_path).sounds == "procedural"
    (tmp_path / "soundbank").symlink_to(Path(bank.root).resolve(), target_is_directory=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scene = Scene(1, seed=0, label="clapping", cache_dir=tmp_path)
    assert scene.sounds == "real" and scene.subject_takes


@pytest.mark.parametrize("options", [dict(sounds="recorded"), dict(sounds="real"), dict(split="holdout")])
def test_bad_sound_options_are_bad_input(options, tmp_path):
    with pytest.raises(BadInput):
        Scene(1, cache_dir=tmp_path, **options)  # sounds=real without a bank names the build command


def test_sim_uri_takes_the_sounds_option(cache, monkeypatch):
    from dualcam_rt.config import get_settings
    from dualcam_rt.devices.registry import open_device

    monkeypatch.setenv("DUALCAM_CACHE_DIR", str(cache))
    get_settings.cache_clear()
    try:
        with open_device("sim://?scenario=1&seed=3&label=typing&sounds=procedural&speed=max") as device:
            frame = next(iter(device.frames()))
            assert device.describe()["sounds"] == "procedural" and frame.truth["sound"] == "procedural"
        assert frame.audio.shape[1] == BLOCK_SAMPLES
        with pytest.raises(BadInput, match="sounds must be one of"):
            open_device("sim://?sounds=loud")
    finally:
        get_settings.cache_clear()


def test_a_copied_scene_shares_the_bank_and_streams_the_same(bank, cache):
    """The wire-protocol simulator copies its scene per connection: the bank must not be copied."""
    import copy

    scene = Scene(
        2,
        seed=5,
        label="clapping",
        subject=1,
        sounds="real",
        bank=bank,
        split="train",
        split_subjects=[1],
        cache_dir=cache,
    )
    scene.next_tick()
    twin = copy.deepcopy(scene)
    assert twin._bank is scene._bank and twin._emitters[0].make is scene._emitters[0].make
    for _ in range(3):
        a, b = scene.next_tick(), twin.next_tick()
        assert np.array_equal(a.audio, b.audio) and a.truth == b.truth
    assert twin.tick == scene.tick == 4


def test_each_hit_inside_a_take_is_its_own_event():
    from dualcam_rt.sim.real_sounds import hits

    rng = np.random.default_rng(0)
    take = np.zeros(FS)
    for start in (0.05, 0.35, 0.6):  # three knocks with 20-ms decays, and a quiet floor between
        n = int(0.1 * FS)
        take[int(start * FS) : int(start * FS) + n] += rng.standard_normal(n) * np.exp(-np.arange(n) / (0.02 * FS))
    take += 1e-4 * rng.standard_normal(FS)
    spans = hits(take, FS)
    assert len(spans) == 3
    assert [round(a / FS, 2) for a, _ in spans] == pytest.approx([0.05, 0.35, 0.6], abs=0.011)
    assert all(b > a for a, b in spans)


def test_make_dataset_on_real_sounds_follows_the_subject_split_and_counts_real_events(bank, cache, tmp_path):
    import json

    from dualcam_rt.pipelines.dataset import make_dataset

    manifest = make_dataset(
        tmp_path / "ds",
        "ci",
        workers=1,
        geometry=get_geometry(),
        cache_dir=cache,
        bank=bank,
        scenarios=(1,),
        classes=("clapping",),
        sounds="real",
    )
    assert manifest["config"]["sounds"] == "real" and manifest["sounds"]["mode"] == "real"
    for e in manifest["sessions"]:  # each subject drew the takes of its own split
        assert e["sounds"]["bank_split"] == e["subject_split"] and e["sounds"]["mode"] == "real"
        assert e["sounds"]["real"] > 0
        meta = json.loads((tmp_path / "ds" / e["path"] / "session.json").read_text())
        assert meta["sounds"] == e["sounds"] and "sounds=real" in meta["device"]["uri"]
    clapping = manifest["sounds"]["per_class"]["clapping"]
    assert clapping["real_events"] > 0 and clapping["bank_recordings"] == bank.summary()["clapping"]["recordings"]
    assert manifest["sounds"]["per_class"]["typing"]["real_events"] == 0  # not in this dataset
    with pytest.raises(BadInput, match="other settings"):  # the same directory with other sounds
        make_dataset(
            tmp_path / "ds",
            "ci",
            workers=1,
            geometry=get_geometry(),
            cache_dir=cache,
            bank=bank,
            scenarios=(1,),
            classes=("clapping",),
            sounds="procedural",
        )


def test_a_student_only_dataset_renders_microphone_0_alone_and_stores_no_images(bank, cache, tmp_path):
    from dualcam_rt.pipelines.dataset import make_dataset
    from dualcam_rt.sessions import open_session

    manifest = make_dataset(
        tmp_path / "ds",
        "ci",
        workers=1,
        geometry=get_geometry(),
        cache_dir=cache,
        bank=bank,
        scenarios=(2,),
        classes=("whistling",),
        sounds="mixed",
        images=False,
    )
    assert manifest["config"]["images"] is False and all(not e["mfcc"] for e in manifest["sessions"])
    with open_session(tmp_path / "ds" / manifest["sessions"][0]["path"]) as s:
        mic = s.mic(0)
        assert len(mic) == 12 * BLOCK_SAMPLES and np.sqrt(np.mean(mic**2)) > 1e-3  # the scene, room and all
    with pytest.raises(BadInput, match="no-images"):
        make_dataset(
            tmp_path / "raw", "ci", geometry=get_geometry(), cache_dir=cache, bank=bank, images=False, raw=True
        )
