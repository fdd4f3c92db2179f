"""The DualCam's geometry: microphones, camera, the acoustic grid aligned to it, and its clock.

Coordinates (metres) are the camera's: x to the right and y up as seen from behind the sensor,
z forward into the scene; the array lies in the plane z = 0 with the camera at its centre.
Image pixels (u, v) count from the top-left corner, u to the right and v down.

Microphone layout: a Fermat (sunflower) spiral of 128 points, golden-angle steps, radii
sqrt(r0^2 + (R^2 - r0^2) (n + 1/2) / N) with R = 0.215 m (so every capsule sits inside the
0.45 m x 0.45 m board with a 1 cm margin) and r0 = 0.04 m (an 8 cm hole for the camera).
Aperiodic spirals of this kind are the usual choice for acoustic cameras because they have no
grating lobes; this one has a minimum spacing of 30.9 mm and a peak sidelobe level of -15.2 dB
at 4 kHz (far field, broadside; ``tests/test_geometry.py`` checks both).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import BadInput

SAMPLE_RATE = 12_288  # Hz; 1024 samples per 1/12 s tick (the paper's official code)
BLOCK_SAMPLES = 1024  # samples per channel per tick
FPS = 12  # video frames (and audio blocks) per second
NFFT = 1024  # FFT size of one block
N_BINS = 512  # bins kept: 0 .. NFFT/2 - 1 (the Nyquist bin is dropped)
N_MICS = 128
GRID_ROWS, GRID_COLS = 36, 48
FRAME_WIDTH, FRAME_HEIGHT = 640, 480
DEFAULT_DEAD_CHANNELS = (79, 105)  # the two dead capsules of the published array
DEFAULT_FOCUS_DISTANCE_M = 2.0  # subjects stood at least 2 m away (paper, section 3)
SPEED_OF_SOUND = 343.0  # m/s at 20 degrees C

ARRAY_SIDE_M = 0.45
SPIRAL_OUTER_RADIUS_M = 0.215
SPIRAL_INNER_RADIUS_M = 0.04
MIN_MIC_SPACING_M = 0.0309  # documented minimum spacing of the shipped layout

DATA_DIR = Path(__file__).parent / "data"
MICGEOM_FILE = DATA_DIR / "dualcam_128.xml"


def spiral_layout(n: int = N_MICS, outer: float = SPIRAL_OUTER_RADIUS_M, inner: float = SPIRAL_INNER_RADIUS_M) -> np.ndarray:
    """The shipped microphone layout, (n, 3) metres, rebuilt from its formula."""
    k = np.arange(n)
    radius = np.sqrt(inner**2 + (outer**2 - inner**2) * (k + 0.5) / n)
    angle = k * math.pi * (3 - math.sqrt(5))  # golden angle
    return np.stack([radius * np.cos(angle), radius * np.sin(angle), np.zeros(n)], axis=1)


def write_micgeom_xml(path: str | Path, mics: np.ndarray, name: str = "dualcam_128") -> None:
    """Write (n, 3) positions as Acoular's MicGeom XML (``<pos Name x y z/>`` per capsule)."""
    root = ET.Element("MicArray", name=name)
    for i, (x, y, z) in enumerate(np.asarray(mics, dtype=float)):
        ET.SubElement(root, "pos", Name=f"Point {i + 1}", x=f"{x:.6f}", y=f"{y:.6f}", z=f"{z:.6f}")
    ET.indent(root)
    Path(path).write_text('<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n")


def read_micgeom_xml(path: str | Path) -> np.ndarray:
    """Read Acoular's MicGeom XML into (n, 3) metres."""
    try:
        root = ET.parse(path).getroot()
        rows = [[float(p.attrib[a]) for a in "xyz"] for p in root.iter("pos")]
    except (OSError, ET.ParseError, KeyError, ValueError) as err:
        raise BadInput(f"cannot read microphone geometry {path}: {err}") from err
    if not rows:
        raise BadInput(f"no <pos> elements in microphone geometry {path}")
    return np.asarray(rows, dtype=np.float64)


@dataclass(frozen=True)
class Camera:
    """Pinhole camera at the array centre looking along +z; the default has a 60 degree horizontal FOV."""

    width: int = FRAME_WIDTH
    height: int = FRAME_HEIGHT
    hfov_deg: float = 60.0

    @property
    def fx(self) -> float:
        return (self.width / 2) / math.tan(math.radians(self.hfov_deg) / 2)

    @property
    def fy(self) -> float:
        return self.fx  # square pixels

    @property
    def vfov_deg(self) -> float:
        return math.degrees(2 * math.atan((self.height / 2) / self.fy))

    @property
    def cx(self) -> float:
        return self.width / 2

    @property
    def cy(self) -> float:
        return self.height / 2

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates (..., 2) as (u, v) of points (..., 3) in metres."""
        p = np.asarray(points, dtype=float)
        u = self.cx + self.fx * p[..., 0] / p[..., 2]
        v = self.cy - self.fy * p[..., 1] / p[..., 2]
        return np.stack([u, v], axis=-1)

    def unproject(self, pixels: np.ndarray, distance: float) -> np.ndarray:
        """Points (..., 3) at depth ``distance`` (z, metres) seen at pixels (..., 2)."""
        px = np.asarray(pixels, dtype=float)
        x = (px[..., 0] - self.cx) / self.fx * distance
        y = -(px[..., 1] - self.cy) / self.fy * distance
        return np.stack([x, y, np.full_like(x, distance)], axis=-1)

    def angles_deg(self, pixels: np.ndarray) -> np.ndarray:
        """Azimuth (right positive) and elevation (up positive) in degrees of pixels (..., 2)."""
        px = np.asarray(pixels, dtype=float)
        az = np.degrees(np.arctan((px[..., 0] - self.cx) / self.fx))
        el = np.degrees(np.arctan(-(px[..., 1] - self.cy) / self.fy))
        return np.stack([az, el], axis=-1)

    def to_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "hfov_deg": self.hfov_deg,
                "vfov_deg": round(self.vfov_deg, 4), "fx": self.fx, "fy": self.fy, "cx": self.cx,
                "cy": self.cy, "fps": FPS, "position_m": [0.0, 0.0, 0.0]}


def grid_pixel_centres(camera: Camera = Camera(), rows: int = GRID_ROWS, cols: int = GRID_COLS) -> np.ndarray:
    """Video-pixel centres (rows*cols, 2) of the acoustic pixels, row-major; one spans 13.33 px."""
    v, u = np.meshgrid((np.arange(rows) + 0.5) * camera.height / rows,
                       (np.arange(cols) + 0.5) * camera.width / cols, indexing="ij")
    return np.stack([u.ravel(), v.ravel()], axis=1)


def bin_frequencies(sample_rate: int = SAMPLE_RATE, nfft: int = NFFT, n_bins: int = N_BINS) -> np.ndarray:
    """Centre frequency (Hz) of each kept FFT bin: k * sample_rate / nfft, k = 0 .. n_bins - 1."""
    return np.arange(n_bins) * (sample_rate / nfft)


@dataclass(frozen=True)
class Geometry:
    """Everything that ties audio samples to image pixels."""

    mics: np.ndarray = field(repr=False)  # (128, 3) metres
    dead_channels: tuple[int, ...] = DEFAULT_DEAD_CHANNELS
    camera: Camera = Camera()
    focus_distance_m: float = DEFAULT_FOCUS_DISTANCE_M
    sample_rate: int = SAMPLE_RATE
    nfft: int = NFFT

    @property
    def n_mics(self) -> int:
        return len(self.mics)

    @property
    def active(self) -> np.ndarray:
        """Boolean mask (n_mics,) of working microphones."""
        mask = np.ones(self.n_mics, dtype=bool)
        mask[list(self.dead_channels)] = False
        return mask

    @property
    def grid_points(self) -> np.ndarray:
        """Focus points (1728, 3) in metres, row-major over the 36x48 acoustic image."""
        return self.camera.unproject(grid_pixel_centres(self.camera), self.focus_distance_m)

    @property
    def frequencies(self) -> np.ndarray:
        return bin_frequencies(self.sample_rate, self.nfft)

    def to_dict(self) -> dict:
        return {
            "sample_rate": self.sample_rate,
            "block_samples": BLOCK_SAMPLES,
            "fps": FPS,
            "nfft": self.nfft,
            "n_bins": N_BINS,
            "frequencies": self.frequencies.tolist(),
            "mics": self.mics.tolist(),
            "dead_channels": list(self.dead_channels),
            "min_mic_spacing_m": MIN_MIC_SPACING_M,
            "grid": {"rows": GRID_ROWS, "cols": GRID_COLS, "focus_distance_m": self.focus_distance_m,
                     "pixel_size_px": self.camera.width / GRID_COLS,
                     "points": self.grid_points.tolist()},
            "camera": self.camera.to_dict(),
            "speed_of_sound": SPEED_OF_SOUND,
        }


@lru_cache(maxsize=8)
def get_geometry(focus_distance_m: float = DEFAULT_FOCUS_DISTANCE_M,
                 dead_channels: tuple[int, ...] = DEFAULT_DEAD_CHANNELS) -> Geometry:
    """The shipped DualCam geometry (read from its MicGeom XML data file)."""
    mics = read_micgeom_xml(MICGEOM_FILE)
    bad = [c for c in dead_channels if not 0 <= c < len(mics)]
    if bad:
        raise BadInput(f"dead channel index out of range 0..{len(mics) - 1}: {bad}")
    return Geometry(mics=mics, dead_channels=tuple(sorted(dead_channels)), focus_distance_m=float(focus_distance_m))
