"""Band energy, the heat-map overlay and sub-pixel localisation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dualcam_rt.dsp.overlay import (
    LEGEND_BOX,
    View,
    band_energy,
    colour_layer,
    describe,
    legend_colours,
    level_db,
    localise,
    overlay,
    parse_band,
)
from dualcam_rt.errors import BadInput
from dualcam_rt.geometry import get_geometry
from dualcam_rt.inference.tiny import write_tiny_model


def gaussian_energy(row: float, col: float, width: float = 1.5) -> np.ndarray:
    r, c = np.mgrid[0:36, 0:48]
    return np.exp(-((r - row) ** 2 + (c - col) ** 2) / (2 * width**2)) * 1e-2 + 1e-8


def test_band_energy_sums_only_900_to_6400_hz():
    power = np.zeros((36, 48, 512), np.float32)
    power[3, 4, 50] = 1.0  # 600 Hz: outside the band
    power[5, 6, [75, 300, 511]] = 1.0  # 900 Hz, 3600 Hz, 6132 Hz: inside
    energy = band_energy(power)
    assert energy.shape == (36, 48) and energy.dtype == np.float32
    assert energy[3, 4] == 0 and energy[5, 6] == 3
    assert band_energy(np.stack([power, 2 * power]))[1, 5, 6] == 6  # batches too


def pixel(row: float, col: float) -> tuple[int, int]:
    """(u, v) video pixel at the centre of acoustic pixel (row, col)."""
    return int((col + 0.5) * 640 / 48), int((row + 0.5) * 480 / 36)


def noise_energy(seed: int = 0) -> np.ndarray:
    """Sensor noise only: a spatially white map whose peak stands < 1 dB above its median (as in sim scenes)."""
    return (1e-8 * (1 + 0.05 * np.random.default_rng(seed).standard_normal((36, 48)))).astype(np.float32)


def test_layer_is_transparent_below_the_range_and_hottest_at_the_peak():
    energy = gaussian_energy(10, 20, width=4)  # falls 10 dB at ~8.7 px from the peak
    layer = colour_layer(energy, View(range_db=10), (640, 480))
    assert layer.shape == (480, 640, 4) and layer.dtype == np.uint8
    u, v = pixel(10, 20)
    assert layer[v, u, 3] == round(255 * 0.6)  # full opacity at the peak
    b, _, r = layer[v, u, :3].astype(int)
    assert r > 100 and r > 2 * b  # red end of the colour map at the peak
    db = cv2.resize(level_db(energy).astype(np.float32), (640, 480))
    assert (layer[..., 3][db < db.max() - 10] == 0).all()  # 10 dB down and below: transparent
    assert (layer[..., 3][db > db.max() - 9] > 0).all()
    narrow = colour_layer(energy, View(range_db=3), (640, 480))
    assert (narrow[..., 3] > 0).sum() < (layer[..., 3] > 0).sum() / 2  # a smaller range colours less


def test_noise_only_frame_has_no_source_and_no_colour():
    energy = noise_energy()
    seen = describe(energy)
    assert seen["source"] is None and seen["reason"] == "below_margin"
    assert 0 <= seen["contrast_db"] < 1 and seen["peak_db"] > seen["floor_db"]
    assert (colour_layer(energy)[..., 3] == 0).all()


def test_a_source_needs_the_margin_above_the_median_pixel():
    energy = noise_energy() + gaussian_energy(20, 30) * 1e-4  # a weak blob on the noise
    seen = describe(energy, view=View(margin_db=5))
    contrast = seen["contrast_db"]
    assert 1 < contrast < 40
    found = describe(energy, view=View(margin_db=contrast - 0.5))
    assert found["reason"] is None and found["source"]["row"] == pytest.approx(20, abs=0.2)
    assert found["source"]["col"] == pytest.approx(30, abs=0.2)
    assert describe(energy, view=View(margin_db=contrast + 0.5))["source"] is None
    assert (colour_layer(energy, View(margin_db=contrast + 0.5))[..., 3] == 0).all()


def test_overlay_colours_the_loud_region_and_leaves_quiet_video_untouched():
    frame = np.full((480, 640, 3), 80, np.uint8)
    original = frame.copy()
    shown = overlay(frame, gaussian_energy(10, 20), label="clapping")
    assert shown.shape == frame.shape and shown.dtype == np.uint8
    np.testing.assert_array_equal(frame, original)  # the input frame is not drawn on
    u, v = pixel(10, 20)
    assert np.abs(shown[v + 20, u].astype(int) - 80).max() > 40  # the source is coloured (below the marker ring)
    np.testing.assert_array_equal(shown[470, 5], original[470, 5])  # > 10 dB down: video as it was
    ring = shown[v - 11, u - 2 : u + 3].astype(int)
    assert (ring > 200).all(axis=1).any()  # the white marker ring around the source


def test_overlay_of_a_quiet_frame_says_no_source_and_leaves_the_video_alone():
    frame = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    shown = overlay(frame, noise_energy())
    x0, y0, _, y1 = LEGEND_BOX
    changed = np.argwhere((shown != frame).any(axis=2))
    in_text = (changed[:, 0] < 30) & (changed[:, 1] < 100)  # "no source", top left
    in_legend = (changed[:, 1] >= x0) & (changed[:, 0] >= y0) & (changed[:, 0] < y1)
    assert in_text.any() and in_legend.any()
    assert (in_text | in_legend).all()  # nothing else drawn: no map, no marker


def test_legend_colours_run_from_blue_to_red():
    colours = legend_colours()
    assert len(colours) == 9 and all(c.startswith("#") and len(c) == 7 for c in colours)
    assert colours[0].startswith("#0000") and colours[-1][1:3] > "70" and colours[-1][5:7] == "00"


def test_view_rejects_bad_bands_and_ranges_with_one_line():
    assert parse_band("1000-5000") == (1000.0, 5000.0)
    assert View().changed(range_db=6).range_db == 6.0
    for bad in ("5000-1000", "abc", "7000-9000", "-5-10"):
        with pytest.raises(BadInput, match="band"):
            parse_band(bad)
    for changes in ({"range_db": 0}, {"range_db": "x"}, {"margin_db": -1}, {"band_hz": 5}, {"colour": "red"}):
        with pytest.raises(BadInput):
            View().changed(**changes)


@pytest.mark.parametrize("row,col", [(12.3, 30.7), (20.0, 5.45), (1.6, 46.2)])
def test_localise_refines_a_peak_between_pixels(row, col):
    geometry = get_geometry()
    found = localise(gaussian_energy(row, col), geometry)
    assert found["row"] == pytest.approx(row, abs=0.05) and found["col"] == pytest.approx(col, abs=0.05)
    assert found["u_px"] == pytest.approx((col + 0.5) * 640 / 48, abs=1.0)
    assert found["v_px"] == pytest.approx((row + 0.5) * 480 / 36, abs=1.0)
    az, el = geometry.camera.angles_deg(np.array([found["u_px"], found["v_px"]]))
    assert (found["azimuth_deg"], found["elevation_deg"]) == pytest.approx((az, el))
    assert found["peak_db"] == pytest.approx(10 * np.log10(1e-2 / 20e-6**2), abs=0.5)


def test_localise_on_the_border_or_a_flat_map_stays_on_the_grid():
    corner = localise(gaussian_energy(0, 47))
    assert (corner["row"], corner["col"]) == (0.0, 47.0)
    flat = localise(np.ones((36, 48)))
    assert 0 <= flat["row"] <= 35 and 0 <= flat["col"] <= 47


def _read_video(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1].astype(int))
    cap.release()
    return frames


def _outside_text_and_legend(diff: np.ndarray) -> np.ndarray:
    """``diff`` (480, 640) with the "no source" text and the legend (plus MP4 block spill) masked out."""
    keep = np.ones(diff.shape, bool)
    keep[:48, :128] = False
    x0, y0, _, y1 = LEGEND_BOX
    keep[max(y0 - 16, 0) : y1 + 16, x0 - 16 :] = False
    return diff[keep]


@pytest.mark.slow
def test_export_video_colours_events_near_the_source_and_leaves_frames_between_them_untinted(tmp_path):
    from conftest import run_cli
    from test_sessions import write_session

    frames = write_session(tmp_path / "s", n=48)
    write_tiny_model(tmp_path / "models")  # --predict: the label next to the marker
    for name, options in (("o", ["--range-db", "10", "--band", "900-6400", "--predict"]), ("p", ["--no-overlay"])):
        r = run_cli(
            "export-video",
            str(tmp_path / "s"),
            *options,
            "--out",
            str(tmp_path / f"{name}.mp4"),
            timeout=600,
            env={"DUALCAM_MODELS_DIR": str(tmp_path / "models")},
        )
        assert r.returncode == 0, r.stderr
    shown, plain = _read_video(tmp_path / "o.mp4"), _read_video(tmp_path / "p.mp4")
    assert len(shown) == len(plain) == 48
    active = [f.truth["active"] for f in frames]
    # between events: quiet for 3 ticks around (the room's reverberation outlasts a clap by ~0.2 s)
    quiet = [k for k in range(48) if not any(active[max(k - 3, 0) : k + 1])]
    coloured_near = []
    for k, f in enumerate(frames):
        diff = np.abs(shown[k] - plain[k]).max(axis=2)
        if k in quiet:
            rest = _outside_text_and_legend(diff)
            assert (rest > 25).mean() < 1e-3 and rest.mean() < 1.5, k  # untinted: as lossy as the plain copy
        elif active[k]:
            u, v = (int(x) for x in f.truth["source_px"])
            coloured_near.append(diff[v + 14 : v + 34, u - 10 : u + 10].mean() > 30)  # below the marker ring
    assert quiet, "the scene should have quiet ticks"
    assert sum(coloured_near) >= len(coloured_near) / 2, coloured_near


def test_export_video_rejects_a_bad_band_or_range_in_one_line(tmp_path):
    from conftest import run_cli
    from test_sessions import write_session

    write_session(tmp_path / "s", n=2)
    for options, word in ((["--band", "6400-900"], "band"), (["--range-db", "0"], "range_db")):
        r = run_cli("export-video", str(tmp_path / "s"), *options, "--out", str(tmp_path / "o.mp4"))
        assert r.returncode == 2 and word in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_serve_settings_default_to_the_same_view_as_the_library():
    from dualcam_rt.config import Settings

    s = Settings(_env_file=None)
    assert (
        View(s.view_band_hz, s.view_range_db, s.view_margin_db) == View()
    )  # config cannot import dsp: kept equal here
