"""Band energy, the heat-map overlay and sub-pixel localisation."""

from __future__ import annotations

import numpy as np
import pytest

from dualcam_rt.dsp.overlay import band_energy, localise, overlay
from dualcam_rt.geometry import get_geometry


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


def test_overlay_colours_the_loud_region_and_leaves_quiet_video_untouched():
    frame = np.full((480, 640, 3), 80, np.uint8)
    original = frame.copy()
    shown = overlay(frame, gaussian_energy(10, 20))
    assert shown.shape == frame.shape and shown.dtype == np.uint8
    np.testing.assert_array_equal(frame, original)  # the input frame is not drawn on
    u, v = int((20 + 0.5) * 640 / 48), int((10 + 0.5) * 480 / 36)
    assert np.abs(shown[v, u].astype(int) - 80).max() > 40  # the source is coloured
    np.testing.assert_array_equal(shown[470, 5], original[470, 5])  # > 10 dB down: video as it was


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
