"""The imaging stage: a 128-channel block -> acoustic image -> band energy -> source (or none) -> overlay.

One ``ImagingStage`` per geometry (its beamformer's steering takes ~1 s to build, ~0.1 s from the
cache folder), used by the live pipeline, replay, export and make-dataset alike; what is shown
(band, dB range, source margin) is a ``dsp.overlay.View`` handed to each call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..dsp.beamform import Beamformer
from ..dsp.mfcc import mfcc_volume
from ..dsp.overlay import (
    DEFAULT_VIEW,
    View,
    band_energy,
    colour_layer,
    describe,
    overlay,
)
from ..geometry import Geometry


@dataclass(frozen=True)
class AcousticImage:
    """One tick's acoustic image: ``power`` (36, 48, 512) Pa² per pixel and bin, ``energy`` (36, 48)
    Pa² summed over the band ``band_hz`` (Hz)."""

    power: np.ndarray
    energy: np.ndarray
    band_hz: tuple[float, float]

    def mfcc(self) -> np.ndarray:
        """The MFCC volume (36, 48, 12) of the image: the teachers' input."""
        return mfcc_volume(self.power)


class ImagingStage:
    """Beamforming and what is made of it, for one geometry (dead channels excluded)."""

    def __init__(
        self,
        geometry: Geometry,
        backend: str = "auto",
        cache_dir: str | Path | None = None,
        beamformer: Beamformer | None = None,
        batch_frames: int = 16,
    ):
        self.geometry = geometry
        # steering for 1728 points x 126 mics x 512 bins: seconds to build, unless the cache holds it
        self.beamformer = beamformer or Beamformer(
            geometry, backend=backend, batch_frames=batch_frames, cache_dir=cache_dir
        )

    @property
    def backend(self) -> str | None:
        return getattr(self.beamformer, "backend", None)

    def image(self, audio: np.ndarray, view: View = DEFAULT_VIEW) -> AcousticImage:
        """The acoustic image of one block (128, 1024) Pa, its energy summed over ``view``'s band."""
        power = self.beamformer.images(audio)
        return AcousticImage(power, band_energy(power, *view.band_hz), view.band_hz)

    def mfcc(self, audio: np.ndarray) -> np.ndarray:
        """MFCC volumes (frames, 36, 48, 12) of blocks (frames, 128, 1024): the teachers' input."""
        return mfcc_volume(self.beamformer.images(audio))

    def describe(self, image: AcousticImage, view: View = DEFAULT_VIEW) -> dict[str, Any]:
        """The image's peak, floor and contrast (dB SPL) and its ``source`` (grid row/col, video pixel,
        angles, peak dB SPL) when the peak stands ``view.margin_db`` above the floor, else None and a
        ``reason``; JSON-ready."""
        return describe(image.energy, self.geometry, view)

    def layer_png(self, image: AcousticImage, view: View = DEFAULT_VIEW, size: tuple[int, int] = (320, 240)) -> bytes:
        """The image's colour map as a transparent PNG of ``size`` (w, h), for a page to draw over the video."""
        _, png = cv2.imencode(".png", colour_layer(image.energy, view, size), [cv2.IMWRITE_PNG_COMPRESSION, 3])
        return png.tobytes()

    def overlay(
        self, video: np.ndarray, image: AcousticImage, view: View = DEFAULT_VIEW, label: str | None = None
    ) -> np.ndarray:
        """The video frame (480, 640, 3) BGR with the map, the source marker, level and ``label`` (or
        "no source") and the dB legend drawn over it."""
        return overlay(video, image.energy, view, self.geometry, label)
