"""Student-network inputs from one microphone: HearNet's spectrogram and SoundNet's waveform.

One implementation (NumPy only) shared by training and serving, so a deployed student sees
exactly what it was trained on. The recipe follows the official code (``../shared/SPEC.md``):
the clip is divided by its max |x|, resampled to 22,050 Hz and scaled to [-256, 256]; HearNet
then takes the linear STFT magnitude with a periodic Hann window of 440 samples (20 ms), hop
220 (half overlap) and a 512-point FFT: 257 bins x 500 frames for 5 s.

Clips are fixed at 5 s: a longer clip keeps its first 5 s (a streaming caller passes the window
it wants), a shorter one is repeated end to end until it fills 5 s (as the dataset looped short
recordings).
"""

from __future__ import annotations

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


def feature_params(kind: InputKind | str) -> dict:
    """The parameters of a student input kind, as written into model cards."""
    common = {"resample_hz": TARGET_RATE, "seconds": CLIP_SECONDS, "normalise": "max_abs",
              "scale": SCALE, "short_clips": "looped", "long_clips": "first 5 s", "channel": 0}
    if kind == InputKind.SPECTROGRAM:
        return {**common, "window": "hann_periodic", "win_samples": WIN_SAMPLES, "hop_samples": HOP_SAMPLES,
                "nfft": NFFT, "magnitude": "linear", "shape": [N_FREQ, N_FRAMES]}
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


def soundnet_input(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The 5 s waveform at 22,050 Hz scaled to [-256, 256]: float32 (110250,).

    ``wave`` is (samples,) of one microphone at ``sample_rate`` Hz (any unit: it is normalised).
    """
    x = _as_mono(wave)
    if sample_rate <= 0:
        raise BadInput(f"sample rate must be positive, got {sample_rate}")
    n_in = int(round(CLIP_SECONDS * sample_rate))
    if x.size < n_in:
        x = np.tile(x, -(-n_in // x.size))
    x = x[:n_in]
    peak = np.max(np.abs(x))
    if peak > 0:  # silence stays silence instead of dividing by zero
        x = x / peak
    y = resample(x, int(sample_rate), TARGET_RATE)
    y = np.resize(y, CLIP_SAMPLES)  # resample_poly may be a sample off; np.resize repeats/cuts
    return (y * SCALE).astype(np.float32)


def hearnet_input(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """HearNet's linear amplitude spectrogram of a 5 s clip: float32 (257 bins, 500 frames)."""
    return spectrogram_of(soundnet_input(wave, sample_rate))


def spectrogram_of(waveform: np.ndarray) -> np.ndarray:
    """HearNet's spectrogram (257, 500) float32 of a prepared waveform (110250,) from ``soundnet_input``."""
    # float32 throughout: the result is float32 anyway, and the FFT error (~1e-7 of the peak) is far
    # below the students' tolerance; this is 5x cheaper than float64 on the serving hot path.
    y = np.asarray(waveform, dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(y, WIN_SAMPLES)[::HOP_SAMPLES][:N_FRAMES]
    spec = scipy.fft.rfft(frames * _hann(), n=NFFT, axis=1)  # (500, 257) complex64
    return np.ascontiguousarray(np.sqrt(spec.real**2 + spec.imag**2).T)  # sqrt beats np.abs's hypot


def student_input(kind: InputKind | str, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The input of a student of ``kind`` (spectrogram or waveform) for one clip."""
    if kind == InputKind.SPECTROGRAM:
        return hearnet_input(wave, sample_rate)
    if kind == InputKind.WAVEFORM:
        return soundnet_input(wave, sample_rate)
    raise BadInput(f"unknown student input kind {str(kind)!r}; known: {', '.join(MICROPHONE_KINDS)}")


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    n = np.arange(WIN_SAMPLES)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / WIN_SAMPLES)  # periodic, as tf.signal / scipy "hann"
    return window.astype(np.float32)


