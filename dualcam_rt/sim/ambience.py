"""Sounds that are not the subject's action: interferers and the outdoor background.

Each generator returns a stationary signal (float64, arbitrary level: the scene scales it to a
configured power ratio at microphone 0) for ``seconds`` at ``fs``:

- voice: another talker (the ``speaking`` generator with a stranger's traits).
- hum: a ventilation unit: mains harmonics (50 Hz x 2..8), a fan blade-pass tone, low rumble < 800 Hz.
- traffic: engine and tyre noise: brown-ish rumble < 1.5 kHz plus tyre hiss at 1-4 kHz.
- voices: distant babble, three talkers at once, high frequencies lost to distance (< 2.5 kHz).
- wind (``wind_filter``): turbulence at each capsule, independent per microphone, below ~300 Hz.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter

from .actions import Traits, band_noise, speaking


def _stranger(rng: np.random.Generator) -> Traits:
    return Traits(
        pitch=1.0,
        tempo=float(rng.uniform(0.9, 1.1)),
        level_db=0.0,
        f0_hz=float(rng.choice([rng.uniform(100, 130), rng.uniform(190, 220)])),
        whistle_hz=1500.0,
        formant_scale=float(rng.uniform(0.95, 1.12)),
    )


def voice(rng: np.random.Generator, seconds: float, fs: int) -> np.ndarray:
    return speaking(rng, _stranger(rng), seconds, fs)[0]


def hum(rng: np.random.Generator, seconds: float, fs: int) -> np.ndarray:
    n = int(round(seconds * fs))
    t = np.arange(n) / fs
    out = 0.4 * band_noise(rng, n, 40, 800, fs)
    # fixed phases: a 4-s chunk holds whole periods of every tone, so chunks join seamlessly
    for k in range(2, 9):  # mains harmonics
        out += (0.5 / k) * np.sin(2 * np.pi * 50 * k * t + k)
    blade_hz = 147.0  # fan blade-pass frequency
    out += 0.4 * np.sin(2 * np.pi * blade_hz * t)
    return out


def traffic(rng: np.random.Generator, seconds: float, fs: int) -> np.ndarray:
    n = int(round(seconds * fs))
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / fs)
    spec *= 1 / np.maximum(f, 30.0)  # brown: -6 dB per octave above 30 Hz
    spec[f > 1500] = 0
    rumble = np.fft.irfft(spec, n)
    rumble /= np.std(rumble) + 1e-12
    return rumble + 0.25 * band_noise(rng, n, 1000, 4000, fs)


def voices(rng: np.random.Generator, seconds: float, fs: int) -> np.ndarray:
    out = np.sum([voice(rng, seconds, fs) for _ in range(3)], axis=0)
    spec = np.fft.rfft(out)
    spec[np.fft.rfftfreq(len(out), 1 / fs) > 2500] *= 0.1  # air absorption over tens of metres
    return np.fft.irfft(spec, len(out))


AMBIENCE = {"voice": voice, "hum": hum, "traffic": traffic, "voices": voices}


def wind_filter(fs: int) -> tuple[np.ndarray, np.ndarray]:
    """IIR (b, a) shaping white noise into wind noise: 2nd-order low-pass at 300 Hz."""
    return butter(2, 300, fs=fs)
