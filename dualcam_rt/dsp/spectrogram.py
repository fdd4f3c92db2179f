"""Student-network inputs from one microphone: HearNet's spectrogram and SoundNet's waveform.

One implementation (NumPy only) shared by training and serving, so a deployed student sees
exactly what it was trained on. The layout follows the paper's official code (docs/training.md):
the clip is resampled to 22,050 Hz and scaled; HearNet then takes the STFT magnitude with a
periodic Hann window of 440 samples (20 ms), hop 220 (half overlap) and a 512-point FFT: 257
bins x 500 frames for 5 s.

The level (``Recipe``): students trained since the real-recording work use a fixed, calibrated
scale (``fixed``: the clip in Pa times ``SCALE / REFERENCE_PA``, so digital full scale, 20 Pa,
is +-256 and a quiet room stays quiet) and, for HearNet, the magnitude in dB floored at
``FLOOR_DB`` (``db``). The official code's recipe (``max_abs``: each clip divided by its own
max |x|, which turns a quiet room into a full-scale event; linear magnitude) is what older
model cards say, and ``Recipe.of(card feature)`` gives them exactly that.

Clips are fixed at 5 s: a longer clip keeps its first 5 s (a streaming caller passes the window
it wants), a shorter one is repeated end to end until it fills 5 s (as the dataset looped short
recordings).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft

from ..errors import BadInput
from ..frame import MICROPHONE_KINDS, InputKind
from ..geometry import SAMPLE_RATE
from .resample import resample

TARGET_RATE = 22_050  # Hz, SoundNet's and HearNet's rate
CLIP_SECONDS = 5.0
CLIP_SAMPLES = int(TARGET_RATE * CLIP_SECONDS)  # 110,250
SCALE = 256.0  # waveform range after normalisation: [-256, 256]
WIN_SAMPLES = 440  # 20 ms at 22,050 Hz
HOP_SAMPLES = 220  # half overlap
NFFT = 512
N_FREQ = NFFT // 2 + 1  # 257
N_FRAMES = (CLIP_SAMPLES - WIN_SAMPLES) // HOP_SAMPLES + 1  # 500
REFERENCE_PA = 20.0  # "fixed": the sound pressure that becomes SCALE (digital full scale, 120 dB SPL)
FLOOR_DB = -40.0  # "db": magnitudes below this (digital silence) are floored; capsule noise is ~-22 dB
NORMALISATIONS = ("fixed", "max_abs")
MAGNITUDES = ("db", "linear")


@dataclass(frozen=True)
class Recipe:
    """How a clip's level becomes the student's input level (see the module docstring)."""

    normalise: str = "fixed"  # "fixed" | "max_abs"
    magnitude: str = "db"  # spectrogram only: "db" | "linear"

    def __post_init__(self):
        if self.normalise not in NORMALISATIONS or self.magnitude not in MAGNITUDES:
            raise BadInput(
                f"unknown feature recipe {self.normalise!r}/{self.magnitude!r}; known: {NORMALISATIONS} x {MAGNITUDES}"
            )

    @classmethod
    def of(cls, feature: dict | None) -> Recipe:
        """The recipe of a model card's ``input.feature`` (cards that do not say: the official code's)."""
        normalise = (feature or {}).get("normalise", "max_abs")
        return cls(normalise, (feature or {}).get("magnitude", "db" if normalise == "fixed" else "linear"))


def input_gain(x: np.ndarray, recipe: Recipe = Recipe()) -> float:
    """The factor a clip ``x`` (Pa) is multiplied by to become the student's waveform: the one
    level normalisation of training and serving."""
    if recipe.normalise == "fixed":
        return SCALE / REFERENCE_PA
    peak = float(np.max(np.abs(x)))
    return SCALE / peak if peak > 0 else SCALE  # silence stays silence instead of dividing by zero


def feature_params(kind: InputKind | str, recipe: Recipe = Recipe()) -> dict:
    """The parameters of a student input kind, as written into model cards."""
    common = {
        "resample_hz": TARGET_RATE,
        "seconds": CLIP_SECONDS,
        "normalise": recipe.normalise,
        **({"reference_pa": REFERENCE_PA} if recipe.normalise == "fixed" else {}),
        "scale": SCALE,
        "short_clips": "looped",
        "long_clips": "first 5 s",
        "channel": 0,
    }
    if kind == InputKind.SPECTROGRAM:
        return {
            **common,
            "window": "hann_periodic",
            "win_samples": WIN_SAMPLES,
            "hop_samples": HOP_SAMPLES,
            "nfft": NFFT,
            "magnitude": recipe.magnitude,
            **({"floor_db": FLOOR_DB} if recipe.magnitude == "db" else {}),
            "shape": [N_FREQ, N_FRAMES],
        }
    if kind == InputKind.WAVEFORM:
        return {**common, "shape": [CLIP_SAMPLES]}
    raise BadInput(f"unknown student input kind {str(kind)!r}; known: {', '.join(MICROPHONE_KINDS)}")


def _as_mono(wave: np.ndarray) -> np.ndarray:
    x = np.asarray(wave, dtype=np.float32)  # float32 resampling is 3x cheaper and far inside the tolerance
    if x.ndim != 1:
        raise BadInput(f"expected one microphone (samples,), got shape {x.shape}")
    if x.size == 0:
        raise BadInput("empty audio clip")
    if not np.all(np.isfinite(x)):
        raise BadInput("audio clip contains NaN or infinite samples")
    return x


def soundnet_input(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, recipe: Recipe = Recipe()) -> np.ndarray:
    """The 5 s waveform at 22,050 Hz scaled by ``input_gain``: float32 (110250,).

    ``wave`` is (samples,) of one microphone at ``sample_rate`` Hz, in Pa (``max_abs``: any unit).
    """
    x = _as_mono(wave)
    if sample_rate <= 0:
        raise BadInput(f"sample rate must be positive, got {sample_rate}")
    n_in = int(round(CLIP_SECONDS * sample_rate))
    if x.size < n_in:
        x = np.tile(x, -(-n_in // x.size))
    x = x[:n_in]
    y = resample(x * np.float32(input_gain(x, recipe) / SCALE), int(sample_rate), TARGET_RATE)
    y = np.resize(y, CLIP_SAMPLES)  # resample_poly may be a sample off; np.resize repeats/cuts
    return (y * SCALE).astype(np.float32)


def hearnet_input(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, recipe: Recipe = Recipe()) -> np.ndarray:
    """HearNet's amplitude spectrogram of a 5 s clip: float32 (257 bins, 500 frames)."""
    return spectrogram_of(soundnet_input(wave, sample_rate, recipe), recipe.magnitude)


def spectrogram_of(waveform: np.ndarray, magnitude: str = "db") -> np.ndarray:
    """HearNet's spectrogram (257, 500) float32 of a prepared waveform (110250,) from ``soundnet_input``:
    the magnitude in dB (floored at ``FLOOR_DB``) or linear."""
    # float32 throughout: the result is float32 anyway, and the FFT error (~1e-7 of the peak) is far
    # below the students' tolerance; this is 5x cheaper than float64 on the serving hot path.
    y = np.asarray(waveform, dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(y, WIN_SAMPLES)[::HOP_SAMPLES][:N_FRAMES]
    spec = scipy.fft.rfft(frames * _hann(), n=NFFT, axis=1)  # (500, 257) complex64
    power = spec.real**2 + spec.imag**2
    if magnitude == "db":  # 10 log10 of the power: 20 log10 of the magnitude without a square root
        return np.ascontiguousarray(10 * np.log10(np.maximum(power, np.float32(10 ** (FLOOR_DB / 10)))).T)
    return np.ascontiguousarray(np.sqrt(power).T)  # sqrt beats np.abs's hypot


def student_input(
    kind: InputKind | str, wave: np.ndarray, sample_rate: int = SAMPLE_RATE, recipe: Recipe = Recipe()
) -> np.ndarray:
    """The input of a student of ``kind`` (spectrogram or waveform) for one clip, at ``recipe``'s level."""
    if kind == InputKind.SPECTROGRAM:
        return hearnet_input(wave, sample_rate, recipe)
    if kind == InputKind.WAVEFORM:
        return soundnet_input(wave, sample_rate, recipe)
    raise BadInput(f"unknown student input kind {str(kind)!r}; known: {', '.join(MICROPHONE_KINDS)}")


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    n = np.arange(WIN_SAMPLES)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / WIN_SAMPLES)  # periodic, as tf.signal / scipy "hann"
    return window.astype(np.float32)
