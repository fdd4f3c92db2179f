"""An array's geometry: microphones, camera, the acoustic grid aligned to it, and its clock.

The DualCam is the default (``get_geometry``); any array Acoular describes (a MicGeom XML file:
``<pos x= y= z=/>`` per capsule, in channel order) is read by ``load_geometry``, with its invalid
channels (Acoular's ``invalid_channels``: indices into the file's order), a ``rows x cols`` grid
over the camera's field of view, and the sample rate and block size of the device that feeds it
(``Geometry.for_device``).

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

import dataclasses
import importlib.util
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
MAX_FREQUENCY_HZ = 6400.0  # the top of the MFCC filters and of the view's band: no consumer reads a bin above it

ARRAY_SIDE_M = 0.45
SPIRAL_OUTER_RADIUS_M = 0.215
SPIRAL_INNER_RADIUS_M = 0.04
MIN_MIC_SPACING_M = 0.0309  # documented minimum spacing of the shipped layout

DATA_DIR = Path(__file__).parent / "data"
MICGEOM_FILE = DATA_DIR / "dualcam_128.xml"


def spiral_layout(
    n: int = N_MICS, outer: float = SPIRAL_OUTER_RADIUS_M, inner: float = SPIRAL_INNER_RADIUS_M
) -> np.ndarray:
    """The shipped microphone layout, (n, 3) metres, rebuilt from its formula."""
    k = np.arange(n)
    radius = np.sqrt(inner**2 + (outer**2 - inner**2) * (k + 0.5) / n)
    angle = k * math.pi * (3 - math.sqrt(5))  # golden angle
    return np.stack([radius * np.cos(angle), radius * np.sin(angle), np.zeros(n)], axis=1)


def resolve_micgeom_file(path: str | Path) -> Path:
    """``path`` itself, or, for a bare name such as ``minidsp_uma-16.xml`` that is not a file here, the
    MicGeom file of that name shipped with Acoular (found without importing it); BadInput otherwise."""
    path = Path(path)
    if path.is_file():
        return path
    if path.parent == Path("."):
        spec = importlib.util.find_spec("acoular")
        for folder in (spec.submodule_search_locations or []) if spec else []:
            shipped = Path(folder) / "xml" / path.name
            if shipped.is_file():
                return shipped
    raise BadInput(f"no microphone geometry file {path} (an Acoular MicGeom XML file, e.g. minidsp_uma-16.xml)")


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
        return {
            "width": self.width,
            "height": self.height,
            "hfov_deg": self.hfov_deg,
            "vfov_deg": round(self.vfov_deg, 4),
            "fx": self.fx,
            "fy": self.fy,
            "cx": self.cx,
            "cy": self.cy,
            "fps": FPS,
            "position_m": [0.0, 0.0, 0.0],
        }


def grid_pixel_centres(camera: Camera = Camera(), rows: int = GRID_ROWS, cols: int = GRID_COLS) -> np.ndarray:
    """Video-pixel centres (rows*cols, 2) of the acoustic pixels, row-major; one spans 13.33 px."""
    v, u = np.meshgrid(
        (np.arange(rows) + 0.5) * camera.height / rows, (np.arange(cols) + 0.5) * camera.width / cols, indexing="ij"
    )
    return np.stack([u.ravel(), v.ravel()], axis=1)


def bin_frequencies(sample_rate: int = SAMPLE_RATE, nfft: int = NFFT, n_bins: int = N_BINS) -> np.ndarray:
    """Centre frequency (Hz) of each kept FFT bin: k * sample_rate / nfft, k = 0 .. n_bins - 1."""
    return np.arange(n_bins) * (sample_rate / nfft)


def parse_grid(text: str) -> tuple[int, int]:
    """``"36x48"`` -> (36, 48): acoustic pixels (rows, cols) over the camera's view; BadInput otherwise."""
    try:
        rows, cols = (int(part) for part in str(text).lower().split("x"))
    except ValueError:
        raise BadInput(f"grid must be ROWSxCOLS, e.g. 36x48, not {text!r}") from None
    if not (2 <= rows <= 256 and 2 <= cols <= 256):
        raise BadInput(f"grid rows and cols must be 2..256, not {text!r}")
    return rows, cols


@dataclass(frozen=True)
class Geometry:
    """Everything that ties audio samples to image pixels.

    ``mics`` (n, 3) metres in channel order; ``dead_channels`` the channels excluded everywhere
    downstream; a block is ``nfft`` samples at ``sample_rate`` Hz (the device's), of which the bins
    0 .. nfft/2 - 1 up to ``max_frequency_hz`` are kept (the Nyquist bin is dropped; the DualCam's
    512 bins all lie below 6400 Hz, an array at 48 kHz keeps 534 of its 2000: beamforming the bins
    no consumer reads would cost four times as much); the acoustic image is ``grid_rows`` x
    ``grid_cols`` pixels over the camera's view, on the plane ``focus_distance_m`` away.
    """

    mics: np.ndarray = field(repr=False)  # (n_mics, 3) metres
    dead_channels: tuple[int, ...] = DEFAULT_DEAD_CHANNELS
    camera: Camera = Camera()
    focus_distance_m: float = DEFAULT_FOCUS_DISTANCE_M
    sample_rate: int = SAMPLE_RATE
    nfft: int = NFFT
    grid_rows: int = GRID_ROWS
    grid_cols: int = GRID_COLS
    name: str = "dualcam_128"
    max_frequency_hz: float | None = MAX_FREQUENCY_HZ  # None: every bin up to Nyquist

    def __post_init__(self):
        bad = [c for c in self.dead_channels if not 0 <= c < len(self.mics)]
        if bad:
            raise BadInput(f"dead channel index out of range 0..{len(self.mics) - 1}: {bad}")
        if len(self.dead_channels) >= len(self.mics):
            raise BadInput(f"every one of the {len(self.mics)} microphones is marked dead")
        if self.nfft < 16 or self.nfft % 2:
            raise BadInput(f"a block must be an even number of samples (>= 16), not {self.nfft}")

    @property
    def n_mics(self) -> int:
        return len(self.mics)

    @property
    def block_samples(self) -> int:
        """Samples per channel per block: one FFT of ``nfft`` (a block is never zero-padded)."""
        return self.nfft

    @property
    def n_bins(self) -> int:
        """Bins kept: 0 .. nfft/2 - 1, those at or below ``max_frequency_hz``."""
        if self.max_frequency_hz is None:
            return self.nfft // 2
        return max(2, min(self.nfft // 2, int(self.max_frequency_hz * self.nfft / self.sample_rate) + 1))

    @property
    def fps(self) -> float:
        """Blocks (acoustic images) per second."""
        return self.sample_rate / self.nfft

    @property
    def grid_shape(self) -> tuple[int, int]:
        return self.grid_rows, self.grid_cols

    def for_device(self, channels: int, sample_rate: int, block_samples: int) -> Geometry:
        """This geometry at a device's sample rate and block size; BadInput when the device's channels
        are not this array's microphones."""
        if channels != self.n_mics:
            raise BadInput(
                f"the device delivers {channels} channel(s) but the geometry {self.name} has "
                f"{self.n_mics} microphones: give the array's geometry (--geometry FILE.xml)"
            )
        if (sample_rate, block_samples) == (self.sample_rate, self.nfft):
            return self
        return dataclasses.replace(self, sample_rate=int(sample_rate), nfft=int(block_samples))

    @property
    def active(self) -> np.ndarray:
        """Boolean mask (n_mics,) of working microphones."""
        mask = np.ones(self.n_mics, dtype=bool)
        mask[list(self.dead_channels)] = False
        return mask

    @property
    def grid_points(self) -> np.ndarray:
        """Focus points (rows * cols, 3) in metres, row-major over the acoustic image (1728 for 36 x 48)."""
        return self.camera.unproject(
            grid_pixel_centres(self.camera, self.grid_rows, self.grid_cols), self.focus_distance_m
        )

    @property
    def frequencies(self) -> np.ndarray:
        return bin_frequencies(self.sample_rate, self.nfft, self.n_bins)

    @property
    def min_mic_spacing_m(self) -> float:
        """The smallest distance between two microphones of the layout (m)."""
        p = self.mics
        d = np.linalg.norm(p[:, None] - p[None], axis=-1) + np.eye(len(p)) * 1e9
        return float(d.min())

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "n_mics": self.n_mics,
            "sample_rate": self.sample_rate,
            "block_samples": self.block_samples,
            "fps": FPS if self.fps == FPS else round(self.fps, 4),
            "nfft": self.nfft,
            "n_bins": self.n_bins,
            "frequencies": self.frequencies.tolist(),
            "mics": self.mics.tolist(),
            "dead_channels": list(self.dead_channels),
            "min_mic_spacing_m": round(self.min_mic_spacing_m, 4),
            "grid": {
                "rows": self.grid_rows,
                "cols": self.grid_cols,
                "focus_distance_m": self.focus_distance_m,
                "pixel_size_px": self.camera.width / self.grid_cols,
                "points": self.grid_points.tolist(),
            },
            "camera": self.camera.to_dict(),
            "speed_of_sound": SPEED_OF_SOUND,
        }


@lru_cache(maxsize=8)
def get_geometry(
    focus_distance_m: float = DEFAULT_FOCUS_DISTANCE_M,
    dead_channels: tuple[int, ...] = DEFAULT_DEAD_CHANNELS,
    grid: tuple[int, int] = (GRID_ROWS, GRID_COLS),
) -> Geometry:
    """The shipped DualCam geometry (read from its MicGeom XML data file)."""
    return Geometry(
        mics=read_micgeom_xml(MICGEOM_FILE),
        dead_channels=tuple(sorted(set(dead_channels))),
        focus_distance_m=float(focus_distance_m),
        grid_rows=grid[0],
        grid_cols=grid[1],
    )


def load_geometry(
    path: str | Path | None = None,
    focus_distance_m: float = DEFAULT_FOCUS_DISTANCE_M,
    dead_channels: tuple[int, ...] | None = None,
    grid: tuple[int, int] = (GRID_ROWS, GRID_COLS),
    max_frequency_hz: float | None = MAX_FREQUENCY_HZ,
    hfov_deg: float = Camera.hfov_deg,
) -> Geometry:
    """The geometry of the array in MicGeom file ``path`` (None: the DualCam) with its invalid channels
    ``dead_channels`` (None: the DualCam's two dead capsules, or none for a file), beamformed up to
    ``max_frequency_hz``, seen by a camera of ``hfov_deg`` horizontal field of view at the array's
    centre, at 12,288 Hz in 1024-sample blocks until ``for_device`` gives it the device's rate and
    block size."""
    if path is None:
        dualcam = get_geometry(
            focus_distance_m, DEFAULT_DEAD_CHANNELS if dead_channels is None else tuple(dead_channels), tuple(grid)
        )
        if (max_frequency_hz, hfov_deg) == (MAX_FREQUENCY_HZ, Camera.hfov_deg):
            return dualcam
        return dataclasses.replace(dualcam, max_frequency_hz=max_frequency_hz, camera=Camera(hfov_deg=hfov_deg))
    path = resolve_micgeom_file(path)
    try:
        name = ET.parse(path).getroot().get("name") or path.stem
    except (OSError, ET.ParseError):
        name = path.stem
    return Geometry(
        mics=read_micgeom_xml(path),
        dead_channels=tuple(sorted(set(dead_channels or ()))),
        focus_distance_m=float(focus_distance_m),
        grid_rows=grid[0],
        grid_cols=grid[1],
        name=name,
        max_frequency_hz=max_frequency_hz,
        camera=Camera(hfov_deg=hfov_deg),
    )
