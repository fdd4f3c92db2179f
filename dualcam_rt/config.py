"""Settings: the only place that reads the environment (prefix ``DUALCAM_``)."""

import os
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .geometry import DEFAULT_FOCUS_DISTANCE_M, MAX_FREQUENCY_HZ, Geometry, load_geometry, parse_grid

REPO_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
# Steering, room impulse responses, sound bank. Read here as well as by Settings so that library
# callers given no cache_dir (in-process scenes, rooms) honour DUALCAM_CACHE_DIR too.
DEFAULT_CACHE_DIR = Path(os.environ.get("DUALCAM_CACHE_DIR") or Path.home() / ".cache" / "dualcam-rt")
DEFAULT_CONNECT_TIMEOUT_S = 2.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUALCAM_", env_file=".env", extra="ignore")

    # acquisition
    device_uri: str = Field("dualcam://127.0.0.1:7700", description="Device the service opens")
    connect_timeout_s: float = Field(
        DEFAULT_CONNECT_TIMEOUT_S, gt=0, description="How long a dualcam:// URI may stay silent before fallback"
    )
    fallback_to_sim: bool = Field(True, description="serve: fall back from dualcam:// to sim:// when no sensor answers")
    fallback_uri: str = "sim://?scenario=1&seed=0"
    dead_channels: tuple[int, ...] | None = Field(
        None,
        description="Microphones excluded everywhere downstream "
        "(default: the DualCam's 79 and 105; none for a geometry file)",
    )
    geometry_file: Path | None = Field(
        None,
        validation_alias=AliasChoices("DUALCAM_GEOMETRY", "geometry_file"),
        description="Acoular MicGeom XML of the array (env DUALCAM_GEOMETRY; default: the DualCam)",
    )

    # imaging
    focus_distance_m: float = Field(
        DEFAULT_FOCUS_DISTANCE_M, gt=0.1, description="Distance of the acoustic grid plane from the array"
    )
    grid: str = Field("36x48", pattern=r"^\d+x\d+$", description="Acoustic pixels ROWSxCOLS over the camera's view")
    max_frequency_hz: float | None = Field(
        MAX_FREQUENCY_HZ,
        gt=0,
        description="Highest frequency beamformed, Hz "
        "(None: up to Nyquist); the DualCam's bins all lie below the default",
    )
    camera_hfov_deg: float = Field(
        60.0,
        gt=10,
        lt=170,
        description="The camera's horizontal field of view, degrees (the grid spans it); the DualCam's is 60",
    )
    beamform_backend: str = Field("auto", pattern="^(auto|numba|numpy|cupy)$")
    view_band_hz: tuple[float, float] = Field(
        (900.0, 6400.0), description="serve: the band (Hz) acoustic images sum, e.g. [900, 6400]"
    )
    view_range_db: float = Field(
        10.0, gt=0, le=60, description="serve: the colour map covers this many dB below each frame's peak"
    )
    view_margin_db: float = Field(
        5.0,
        ge=0,
        le=60,
        description="serve: a source is shown only when the peak stands this many dB above the median pixel",
    )

    # data and models
    models_dir: Path = REPO_MODELS_DIR
    sessions_dir: Path = Path("sessions")
    cache_dir: Path = DEFAULT_CACHE_DIR

    # service
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_token: str | None = None
    hop_s: float = Field(0.5, gt=0.05, le=10)
    max_upload_bytes: int = 20 * 1024 * 1024
    max_upload_seconds: float = 600.0
    ort_threads: int = Field(
        0, ge=0, description="onnxruntime intra-op threads per session (0: the CPUs this process may use)"
    )
    default_model: str | None = Field(
        None,
        description="Model used when a request names none (default: first audio student by name), e.g. hearnet_int8",
    )
    mic_channel: int = Field(0, ge=0, description="Microphone the live student listens to")
    imaging: bool = Field(True, description="serve: beamform, localise and overlay live frames (off: predictions only)")
    max_ws_frame_bytes: int = Field(1024 * 1024, ge=1024, description="Largest WebSocket message a client may send")

    def geometry(self) -> Geometry:
        """The array these settings describe (geometry file, dead channels, focus distance, grid), at
        12,288 Hz in 1024-sample blocks until ``Geometry.for_device``: built once by each edge and handed down."""
        dead = None if self.dead_channels is None else tuple(self.dead_channels)
        return load_geometry(
            self.geometry_file,
            self.focus_distance_m,
            dead,
            parse_grid(self.grid),
            self.max_frequency_hz,
            self.camera_hfov_deg,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
