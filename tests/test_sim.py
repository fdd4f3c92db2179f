"""The simulated sensor: class spectra, room acoustics, levels, video/audio agreement, streaming."""

from __future__ import annotations

import numpy as np
import pyroomacoustics as pra
import pytest
from scipy.signal import fftconvolve, welch

from dualcam_rt.errors import BadInput
from dualcam_rt.geometry import BLOCK_SAMPLES, SPEED_OF_SOUND, Geometry, get_geometry
from dualcam_rt.labels import CLASSES
from dualcam_rt.sim import Scene, rooms
from dualcam_rt.sim.actions import subject_traits, synthesize
from dualcam_rt.sim.rooms import get_scenario, room_impulse_responses, subject_positions

FS = 12_288


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """One RIR cache for the whole test session, never the user's."""
    return tmp_path_factory.mktemp("sim-cache")


@pytest.fixture
def settings_cache(cache, monkeypatch):
    """Point the settings' cache_dir (what sim:// uses) at the test cache."""
    from dualcam_rt.config import get_settings

    monkeypatch.setenv("DUALCAM_CACHE_DIR", str(cache))
    get_settings.cache_clear()
    yield cache
    get_settings.cache_clear()


# --- action sounds ------------------------------------------------------------------------


def _clip(label, subject, seconds=8.0, seed=0):
    return synthesize(label, subject, seconds, np.random.default_rng([seed, subject]), FS)


def _spectrum(x):
    f, p = welch(x, FS, nperseg=512)
    return f, p


def _centroid(x):
    f, p = _spectrum(x)
    return float((f * p).sum() / p.sum())


def _line_fraction(x, top=0.02):
    """Share of the power in the strongest 2 % of frequency bins (1 for a pure tone, ~0.1 for noise)."""
    f, p = welch(x, FS, nperseg=4096)
    p = np.sort(p[(f > 100) & (f < 6000)])[::-1]
    return float(p[: max(1, int(top * len(p)))].sum() / p.sum())


def _f0(x, lo=80, hi=260):
    """Median autocorrelation pitch (Hz) over the loudest 40-ms frames."""
    n = int(0.04 * FS)
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[:: n // 2]
    loud = frames[np.argsort((frames**2).sum(1))[-40:]]
    f0 = []
    for fr in loud:
        ac = np.correlate(fr, fr, "full")[n - 1 :]
        lags = np.arange(int(FS / hi), int(FS / lo))
        f0.append(FS / lags[np.argmax(ac[lags])])
    return float(np.median(f0))


def _modulation_hz(x):
    """Strongest amplitude-modulation rate (Hz) of a signal's 100-Hz envelope, 1..12 Hz."""
    env = np.sqrt(np.mean(x[: len(x) // 123 * 123].reshape(-1, 123) ** 2, axis=1))
    env = env - env.mean()
    spec = np.abs(np.fft.rfft(env, 8 * len(env)))
    f = np.fft.rfftfreq(8 * len(env), 123 / FS)
    band = (f > 1) & (f < 12)
    return float(f[band][np.argmax(spec[band])])


# class -> (centroid range Hz, check of the class's distinctive property); the same table is in
# docs/simulation.md.
SIGNATURES = {
    "clapping": ((1600, 2800), lambda x, ev, tr: 2.0 <= len(ev) / 8 <= 4.5),
    "snapping_fingers": ((2800, 4200), lambda x, ev, tr: 20 * np.log10(np.abs(x).max() / x.std()) > 25),
    "speaking": ((400, 900), lambda x, ev, tr: abs(_f0(x) / tr.f0_hz - 1) < 0.15),
    "whistling": ((900, 2800), lambda x, ev, tr: _line_fraction(x) > 0.5),
    "playing_kendama": ((1100, 1900), lambda x, ev, tr: _line_fraction(x) > 0.3),
    "clicking": ((3200, 5000), lambda x, ev, tr: np.median([b - a for a, b in ev]) < 0.02),
    "typing": ((600, 1200), lambda x, ev, tr: len(ev) / 8 >= 4),
    "knocking": (
        (0, 400),
        lambda x, ev, tr: _spectrum(x)[1][_spectrum(x)[0] < 500].sum() / _spectrum(x)[1].sum() > 0.9,
    ),
    "hammering": ((2200, 3000), lambda x, ev, tr: _line_fraction(x) > 0.3),
    "peanut_breaking": ((2500, 3700), lambda x, ev, tr: len(ev) / 8 <= 1.2),
    "paper_ripping": ((2500, 3300), lambda x, ev, tr: np.median([b - a for a, b in ev]) >= 0.4),
    "plastic_crumpling": ((3600, 4500), lambda x, ev, tr: np.median([b - a for a, b in ev]) >= 0.9),
    "paper_shaking": ((1700, 2300), lambda x, ev, tr: 2 <= _modulation_hz(x) <= 8),
    "stick_dropping": ((450, 1300), lambda x, ev, tr: 20 * np.log10(np.abs(x).max() / x.std()) > 15),
}


@pytest.mark.parametrize("label", CLASSES)
def test_each_class_has_its_documented_spectral_signature(label):
    (lo, hi), distinctive = SIGNATURES[label]
    for subject in (0, 4, 7):
        x, events = _clip(label, subject)
        assert events, f"{label} produced no events"
        assert lo <= _centroid(x) <= hi, f"{label} subject {subject}: centroid {_centroid(x):.0f} Hz"
        assert distinctive(x, events, subject_traits(subject)), f"{label} subject {subject}"


def test_classes_are_told_apart_by_spectrum_across_unseen_subjects():
    """Nearest class-mean log-spectrum (subjects 0-5) names the class of subjects 6-8."""

    def feature(x):
        f, p = _spectrum(x)
        v = np.log10(p[(f > 100) & (f < 6000)] + 1e-20)
        return v - v.mean()  # level-independent shape

    means = np.array([np.mean([feature(_clip(c, s)[0]) for s in range(6)], axis=0) for c in CLASSES])
    hits = [
        int(np.argmin(((means - feature(_clip(c, s, seed=1)[0])) ** 2).sum(1))) == i
        for i, c in enumerate(CLASSES)
        for s in (6, 7, 8)
    ]
    assert sum(hits) >= 40, f"{sum(hits)}/42"


def test_subjects_perform_an_action_differently_but_reproducibly():
    a, ea = _clip("speaking", 1)
    b, eb = _clip("speaking", 1)
    c, _ = _clip("speaking", 2)
    assert np.array_equal(a, b) and ea == eb
    assert abs(_f0(a) - _f0(c)) > 40  # odd subjects have higher voices
    assert abs(_centroid(_clip("clapping", 0)[0]) - _centroid(_clip("clapping", 3)[0])) > 30


# --- rooms --------------------------------------------------------------------------------


def test_scenario_2_reverberation_time_measured_from_a_simulated_rir_is_as_configured(cache):
    scenario = get_scenario(2)
    rir = room_impulse_responses(scenario, subject_positions(get_geometry())[7], get_geometry(), cache)
    for mic in (0, 40, 127):  # Schroeder backward integration, T30 extrapolated to 60 dB
        rt60 = pra.experimental.measure_rt60(rir[mic].astype(float), FS, decay_db=30)
        assert rt60 == pytest.approx(scenario.rt60_s, rel=0.2), f"mic {mic}: {rt60:.3f} s"


def test_anechoic_rir_is_a_single_arrival_at_the_right_delay_and_level(cache):
    g = get_geometry()
    pos = subject_positions(g)[0]
    rir = room_impulse_responses(get_scenario(1), pos, g, cache)
    dist = np.linalg.norm(g.mics[0] - pos)
    peak = int(np.argmax(np.abs(rir[0])))
    assert abs(peak - dist / SPEED_OF_SOUND * FS) < 1.5  # pyroomacoustics' t0 offset is 0
    assert np.sum(rir[0] ** 2) == pytest.approx(1 / dist**2, rel=0.1)  # 1/r spreading
    assert np.abs(rir[0, peak + 60 :]).max() < 1e-3 * np.abs(rir[0]).max()  # no echoes


def test_outdoor_rir_has_the_ground_reflection_only(cache):
    g = get_geometry()
    pos = subject_positions(g)[2]
    rir = room_impulse_responses(get_scenario(3), pos, g, cache)[0]
    mirrored = pos - [0, 2 * (1.5 + pos[1]), 0]  # the image below the floor (y = -1.5 m)
    expected = [np.linalg.norm(g.mics[0] - p) / SPEED_OF_SOUND * FS for p in (pos, mirrored)]
    assert abs(int(np.argmax(np.abs(rir))) - expected[0]) < 1.5  # the strongest tap: the direct path
    reflection = np.abs(rir[int(expected[1]) - 2 : int(expected[1]) + 3]).max()
    assert 0.3 < reflection / np.abs(rir).max() < 1  # the ground reflection, a little weaker
    late = int(expected[1]) + 60
    assert np.abs(rir[late:]).max() < 1e-2 * np.abs(rir).max()  # nothing after it above -40 dB


def test_rirs_are_cached_on_disk_and_reused(tmp_path, monkeypatch):
    g = get_geometry()
    pos = subject_positions(g)[3]
    first = room_impulse_responses(get_scenario(1), pos, g, tmp_path)
    files = list((tmp_path / "sim-rir").glob("*.npy"))
    assert len(files) == 1

    def no_compute(*a, **k):
        raise AssertionError("recomputed a cached RIR")

    monkeypatch.setattr(rooms, "_compute", no_compute)
    assert np.array_equal(room_impulse_responses(get_scenario(1), pos, g, tmp_path), first)
    with pytest.raises(AssertionError):  # another position is another key
        room_impulse_responses(get_scenario(1), subject_positions(g)[4], g, tmp_path)


def test_after_warm_cache_a_scene_never_computes_a_rir(tmp_path, monkeypatch):
    four_mics = Geometry(mics=get_geometry().mics[:4], dead_channels=())
    assert rooms.warm_cache(get_scenario(3), four_mics, tmp_path) == 15 + 1 + 5 + 5  # subject, talker, road, background

    def no_compute(*a, **k):
        raise AssertionError("computed a RIR after warm-up")

    monkeypatch.setattr(rooms, "_compute", no_compute)
    scene = Scene(3, seed=8, label="typing", geometry=four_mics, cache_dir=tmp_path)
    for _ in range(12 * 20):  # 20 s: the subject walks, a vehicle passes
        scene.next_tick()


def test_subject_positions_are_at_least_2m_away_and_in_view(cache):
    g = get_geometry()
    pos = subject_positions(g)
    px = g.camera.project(pos)
    assert (pos[:, 2] >= 2.0).all()
    assert ((px >= 0) & (px < [g.camera.width, g.camera.height])).all()
    scene = Scene(1, seed=5, label="typing", cache_dir=cache)
    walked = [scene.truth(t) for t in range(0, 12 * 60, 6)]  # a minute of truth, no audio needed
    assert len({tuple(t["source_m"]) for t in walked if not t["moving"]}) >= 5  # the subject moves
    assert all(t["source_m"][2] >= 2.0 for t in walked)


# --- scenes -------------------------------------------------------------------------------


def _mic0_power(scene, ticks):
    return float(np.mean(np.concatenate([scene.next_tick().audio[0] for _ in range(ticks)]) ** 2))


@pytest.mark.parametrize("label", ["paper_shaking", "typing", "clapping"])
def test_scenario_3_snr_at_one_microphone_is_as_configured(cache, label):
    """Subject-only and background-only renderings of one scene, 10 s at microphone 0.

    Levels are set on an independent realisation, so this measures, not restates, the ratio;
    the subject is held at one position and only four capsules are rendered (it is mic 0's SNR).
    """
    four_mics = Geometry(mics=get_geometry().mics[:4], dead_channels=())
    options = dict(scenario=3, seed=1, label=label, positions=(7,), geometry=four_mics, cache_dir=cache)
    signal = _mic0_power(Scene(components=("subject",), **options), 120)
    noise = _mic0_power(Scene(components=("background",), **options), 120)
    assert 10 * np.log10(signal / noise) == pytest.approx(get_scenario(3).snr_db, abs=1.5)


@pytest.mark.parametrize("scenario", [2, 3])
def test_streamed_audio_equals_one_long_convolution(cache, scenario):
    """Segment-wise overlap-add (1-s segments with a 0.9-s tail indoors) loses and repeats nothing."""
    scene = Scene(scenario, seed=4, label="clicking", components=("subject",), cache_dir=cache)
    ticks = 30  # 2.5 s, across segment boundaries; the subject stays put for >= 3 s
    streamed = np.concatenate([scene.next_tick().audio for _ in range(ticks)], axis=1)
    rir = room_impulse_responses(get_scenario(scenario), scene.truth(0)["source_m"], scene.geometry, cache)
    dry = scene.dry_signal(0, ticks * BLOCK_SAMPLES)
    for mic in (0, 64):
        expected = fftconvolve(dry, rir[mic])[: ticks * BLOCK_SAMPLES]
        assert np.abs(streamed[mic] - expected).max() < 1e-4 * np.abs(expected).max()
    assert not streamed[list(scene.geometry.dead_channels)].any()


def _acoustic_peak_px(scene, audio_blocks):
    """Delay-and-sum power over the 36x48 grid (1-4 kHz); returns the loudest pixel's centre (u, v)."""
    g = scene.geometry
    act = g.active
    mics, grid = g.mics[act], g.grid_points
    x = np.fft.rfft(np.stack(audio_blocks)[:, act], axis=2)  # (B, M, F)
    freqs = np.fft.rfftfreq(BLOCK_SAMPLES, 1 / FS)
    tau = np.linalg.norm(grid[:, None] - mics[None], axis=2) / SPEED_OF_SOUND  # (G, M)
    power = np.zeros(len(grid))
    for k in np.flatnonzero((freqs > 1000) & (freqs < 4000))[::3]:
        steer = np.exp(2j * np.pi * freqs[k] * tau)  # undoes each mic's delay from the focus point
        power += (np.abs(steer @ x[:, :, k].T) ** 2).sum(1)
    from dualcam_rt.geometry import grid_pixel_centres

    return grid_pixel_centres(g.camera)[int(np.argmax(power))]


@pytest.mark.parametrize("label,seed", [("clapping", 0), ("paper_shaking", 11)])
def test_rendered_figure_and_acoustic_source_agree(cache, label, seed):
    scene = Scene(1, seed=seed, label=label, cache_dir=cache)
    ticks = [scene.next_tick() for _ in range(36)]
    truth_px = np.array(ticks[0].truth["source_px"])
    # video: what moves while the subject stands still is the sounding hand/prop
    centroids = []
    for a, b in zip(ticks, ticks[1:]):
        if (a.truth["active"] or b.truth["active"]) and not (a.truth["moving"] or b.truth["moving"]):
            diff = np.abs(b.video.astype(int) - a.video.astype(int)).sum(2) > 30
            if diff.any():
                v, u = np.nonzero(diff)
                centroids.append((u.mean(), v.mean()))
    assert len(centroids) >= 5
    assert np.linalg.norm(np.median(centroids, axis=0) - truth_px) < 12
    # audio: the beamformer's peak is on the same spot (one acoustic pixel is 13.3 video pixels)
    loud = [t.audio for t in ticks if t.truth["active"]]
    assert np.linalg.norm(_acoustic_peak_px(scene, loud) - truth_px) < 20


def test_interferers_are_heard_from_their_own_positions(cache):
    scene = Scene(2, seed=3, label="knocking", components=("interferers",), cache_dir=cache)
    blocks = [scene.next_tick().audio for _ in range(12)]
    assert np.mean(np.stack(blocks) ** 2) > 0
    voice = np.array(scene.truth(0)["interferers"][0]["source_m"])
    expected = scene.geometry.camera.project(voice)
    # the colleague stands at 5 m by the right edge; reverberation and the 2-m focus blur it
    assert np.linalg.norm(_acoustic_peak_px(scene, blocks) - expected) < 60


def test_a_scene_is_reproducible_for_its_seed(cache):
    a = Scene(3, seed=9, label="hammering", subject=2, cache_dir=cache)
    b = Scene(3, seed=9, label="hammering", subject=2, cache_dir=cache)
    c = Scene(3, seed=10, label="hammering", subject=2, cache_dir=cache)
    for _ in range(3):
        ta, tb, tc = a.next_tick(), b.next_tick(), c.next_tick()
        assert np.array_equal(ta.audio, tb.audio) and np.array_equal(ta.video, tb.video)
        assert ta.truth == tb.truth
    assert not np.array_equal(ta.audio, tc.audio)


def test_impulse_tick_is_the_loudest_and_its_frame_is_white(cache):
    scene = Scene(2, seed=1, label="hammering", impulse_ticks=[6], cache_dir=cache)
    ticks = [scene.next_tick() for _ in range(10)]
    assert int(np.argmax([np.abs(t.audio).max() for t in ticks])) == 6
    assert ticks[6].video.min() == 255 and ticks[6].truth["impulse"]
    assert ticks[5].video.mean() < 250 and not ticks[5].truth["impulse"]


def test_truth_travels_with_every_tick(cache):
    t = Scene(1, seed=2, label="knocking", subject=5, cache_dir=cache).next_tick().truth
    assert {
        "tick",
        "label",
        "class_index",
        "subject",
        "scenario",
        "source_m",
        "source_px",
        "impulse",
        "events",
        "active",
        "moving",
    } <= set(t)
    assert t["label"] == "knocking" and t["class_index"] == CLASSES.index("knocking") and t["subject"] == 5
    assert t["source_px"] == pytest.approx(get_geometry().camera.project(np.array(t["source_m"])).tolist(), abs=0.05)


def test_sim_uri_selects_the_scene(settings_cache):
    from dualcam_rt.devices.registry import open_device

    device = open_device("sim://?scenario=2&label=whistling&subject=4&seed=6&speed=max")
    with device:
        frames = [f for _, f in zip(range(3), device.frames())]
    scene = Scene(2, seed=6, label="whistling", subject=4)
    expected = [scene.next_tick() for _ in range(3)]
    assert frames[2].truth["label"] == "whistling" and frames[2].truth["subject"] == 4
    assert frames[2].truth["scenario"] == 2
    assert np.array_equal(frames[2].audio, expected[2].audio)


@pytest.mark.parametrize(
    "options", [dict(scenario=9), dict(label="dancing"), dict(subject=9), dict(components=("music",))]
)
def test_bad_scene_options_are_bad_input(options, cache):
    with pytest.raises(BadInput):
        Scene(cache_dir=cache, **options)
