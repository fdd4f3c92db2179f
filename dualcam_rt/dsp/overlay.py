"""What a person sees: band energy per acoustic pixel, a heat map on the video, the loudest direction.

``band_energy`` sums the power map over 900-6400 Hz (the paper's Fig. 1 band); ``overlay`` blends
it as an OpenCV colour map onto the 640x480 frame (top ``dynamic_range_db`` only, so quiet
pixels leave the video untouched); ``localise`` finds the strongest pixel and refines it to
sub-pixel precision by fitting a parabola through the log energies of its neighbours (the log of a
Gaussian-shaped main lobe is a parabola), per axis.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..geometry import Geometry, bin_frequencies, get_geometry

BAND_LOW_HZ, BAND_HIGH_HZ = 900.0, 6400.0
REFERENCE_PA = 20e-6  # peak_db is dB SPL: 10 log10(energy / (20 uPa)^2)


def band_energy(power, lo_hz: float = BAND_LOW_HZ, hi_hz: float = BAND_HIGH_HZ) -> np.ndarray:
    """Energy (..., 36, 48) float32 in Pa^2: the power map (..., 36, 48, 512) summed over lo..hi Hz."""
    power = np.asarray(power)
    f = bin_frequencies(n_bins=power.shape[-1])
    band = (f >= lo_hz) & (f <= hi_hz)
    return power[..., band].sum(axis=-1, dtype=np.float64).astype(np.float32)


def overlay(frame_bgr: np.ndarray, energy: np.ndarray, alpha: float = 0.6, dynamic_range_db: float = 10.0,
            colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """A new BGR frame: ``energy`` (36, 48) as a colour map blended onto ``frame_bgr`` (H, W, 3) uint8."""
    height, width = frame_bgr.shape[:2]
    energy = np.asarray(energy, dtype=np.float64)
    level_db = 10 * np.log10(np.maximum(energy, 1e-30) / max(energy.max(), 1e-30))
    level = np.clip(1 + level_db / dynamic_range_db, 0, 1).astype(np.float32)  # 1 at the peak, 0 below range
    level = cv2.resize(level, (width, height), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap((level * 255).astype(np.uint8), colormap)
    weight = (alpha * level)[..., None]
    return (frame_bgr * (1 - weight) + heat * weight).round().astype(np.uint8)


def _parabolic_offset(left: float, centre: float, right: float) -> float:
    """Vertex offset in (-0.5, 0.5) of the parabola through three equally spaced values."""
    curvature = left - 2 * centre + right
    if curvature >= 0:  # flat or not a maximum: keep the integer position
        return 0.0
    return float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))


def localise(energy: np.ndarray, geometry: Geometry | None = None) -> dict:
    """The strongest source: grid row/col (sub-pixel), video pixel (u, v), azimuth/elevation (deg), peak dB SPL."""
    geometry = geometry or get_geometry()
    energy = np.asarray(energy, dtype=np.float64)
    rows, cols = energy.shape
    log_e = np.log(np.maximum(energy, energy.max() * 1e-12 + 1e-300))
    r, c = np.unravel_index(int(np.argmax(energy)), energy.shape)
    dr = _parabolic_offset(log_e[r - 1, c], log_e[r, c], log_e[r + 1, c]) if 0 < r < rows - 1 else 0.0
    dc = _parabolic_offset(log_e[r, c - 1], log_e[r, c], log_e[r, c + 1]) if 0 < c < cols - 1 else 0.0
    row, col = r + dr, c + dc
    cam = geometry.camera
    u_px = (col + 0.5) * cam.width / cols
    v_px = (row + 0.5) * cam.height / rows
    azimuth, elevation = cam.angles_deg(np.array([u_px, v_px]))
    return {"row": float(row), "col": float(col), "u_px": float(u_px), "v_px": float(v_px),
            "azimuth_deg": float(azimuth), "elevation_deg": float(elevation),
            "peak_db": float(10 * np.log10(max(energy[r, c], 1e-30) / REFERENCE_PA**2))}

