"""The value types every layer shares (ground floor): one sensor tick and the kinds of model input.

Storage, devices, DSP, models and pipelines all speak ``SensorFrame``; none of them needs another
layer to name it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from .geometry import SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class SensorFrame:
    """One sensor tick: an audio block and the video frame nearest to it in time.

    ``audio`` is (channels, samples) float32 in pascal (128 x 1024 for a DualCam, 1 x 1024 for a
    microphone); ``first_sample`` is the index of ``audio[:, 0]`` on the device's sample clock and
    ``timestamp`` its time in seconds on the same clock (``first_sample / sample_rate`` unless the
    device says otherwise). ``video`` is (480, 640, 3) uint8 BGR, or None; ``video_timestamp`` is
    the capture time of that frame on the audio clock. ``lost_samples`` counts zero-filled samples
    in this block (packet loss). ``truth`` carries a simulated scene's ground truth.
    """

    index: int
    first_sample: int
    timestamp: float
    audio: np.ndarray
    video: np.ndarray | None = None
    video_timestamp: float | None = None
    sample_rate: int = SAMPLE_RATE
    lost_samples: int = 0
    truth: dict | None = None

    @property
    def channels(self) -> int:
        return self.audio.shape[0]

    @property
    def samples(self) -> int:
        return self.audio.shape[1]


class InputKind(StrEnum):
    """What a network takes as input; the values are those written in model cards and datasets."""

    MFCC_VOLUME = "mfcc_volume"  # MFCC volumes of the acoustic image (12 coefficients per pixel)
    VIDEO = "video"  # RGB frames of the camera
    AUDIO_VISUAL = "audio_visual"  # MFCC volume and video together
    SPECTROGRAM = "spectrogram"  # HearNet's spectrogram of one microphone
    WAVEFORM = "waveform"  # SoundNet's waveform of one microphone

    @property
    def one_microphone(self) -> bool:
        """True for the inputs computed from one microphone (the students a stream can feed)."""
        return self in (InputKind.SPECTROGRAM, InputKind.WAVEFORM)

    @property
    def uses_mfcc(self) -> bool:
        return self in (InputKind.MFCC_VOLUME, InputKind.AUDIO_VISUAL)

    @property
    def uses_video(self) -> bool:
        return self in (InputKind.VIDEO, InputKind.AUDIO_VISUAL)


MICROPHONE_KINDS: tuple[InputKind, ...] = tuple(k for k in InputKind if k.one_microphone)
