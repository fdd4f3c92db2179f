"""The imaging stage: a 128-channel block -> acoustic image -> band energy -> source position -> overlay.

One ``ImagingStage`` per geometry (its beamformer's steering takes ~1 s to build, ~0.1 s from the
cache folder), used by the live pipeline, replay, export and make-dataset alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..dsp.beamform import Beamformer
from ..dsp.mfcc import mfcc_volume
from ..dsp.overlay import band_energy, localise, overlay
from ..geometry import Geometry


@dataclass(frozen=True)
class AcousticImage:
    """One tick's acoustic image: ``power`` (36, 48, 512) Pa² per pixel and bin, ``energy`` (36, 48)
    Pa² summed over 900-6400 Hz."""

    power: np.ndarray
    energy: np.ndarray

    def mfcc(self) -> np.ndarray:
        """The MFCC volume (36, 48, 12) of the image: the teachers' input."""
        return mfcc_volume(self.power)


class ImagingStage:
    """Beamforming and what is made of it, for one geometry (dead channels excluded)."""

    def __init__(self, geometry: Geometry, backend: str = "auto", cache_dir: str | Path | None = None,
                 beamformer: Beamformer | None = None, batch_frames: int = 16):
        self.geometry = geometry
        # steering for 1728 points x 126 mics x 512 bins: seconds to build, unless the cache holds it
        self.beamformer = beamformer or Beamformer(geometry, backend=backend, batch_frames=batch_frames,
                                                   cache_dir=cache_dir)

    @property
    def backend(self) -> str | None:
        return getattr(self.beamformer, "backend", None)

    def image(self, audio: np.ndarray) -> AcousticImage:
        """The acoustic image of one block (128, 1024) Pa."""
        power = self.beamformer.images(audio)
        return AcousticImage(power, band_energy(power))

    def mfcc(self, audio: np.ndarray) -> np.ndarray:
        """MFCC volumes (frames, 36, 48, 12) of blocks (frames, 128, 1024): the teachers' input."""
        return mfcc_volume(self.beamformer.images(audio))

    def localise(self, image: AcousticImage) -> dict[str, Any]:
        """The strongest source of an image (grid row/col, video pixel, angles, peak dB SPL), JSON-ready."""
        return localise(image.energy, self.geometry)

    @staticmethod
    def overlay(video: np.ndarray, image: AcousticImage) -> np.ndarray:
        """The video frame (480, 640, 3) BGR with the image's band energy drawn over it."""
        return overlay(video, image.energy)
