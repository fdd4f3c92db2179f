"""MFCC compression of acoustic images: 512 bins per pixel -> 12 coefficients (the paper's recipe).

The one implementation used by recording, training and serving. Per pixel, from the beamformed
power spectrum (Pa^2; the DualCam's 512 bins of 12 Hz, or any array's nfft/2 bins of
sample_rate/nfft Hz: a device's native-rate blocks are 1/12 s long, so its bins are 12 Hz apart
too and an array at 48 kHz gives 2000 of them, of which the filters below read the same 0-6400 Hz):

1. window: Tukey alpha 0.75 on the 1024-sample block before the FFT. The beamformer already
   applies exactly this window (``beamform.block_window``), so its power *is* the windowed power
   spectrum and no second window or FFT is needed here;
2. 24 triangular mel filters (HTK mel scale, 2595 log10(1 + f / 700)) spaced over 0-6400 Hz, with
   unit peak; filters reaching past Nyquist (6144 Hz) simply see no bins there;
3. energies expressed relative to (20 uPa)^2, i.e. as sound-pressure-level power ratios, then
   log with floor 1e-3 (-30 dB SPL): in plain Pa^2 a 60 dB speaker's mel energies sit below 1e-3
   and every pixel would read the floor;
4. DCT-II over the 24 log energies keeping coefficients 1-12 (c0 dropped), scaled sqrt(2 / 24);
5. sinusoidal lifter 1 + (22 / 2) sin(pi n / 22), n = 1..12.

Steps 2-5 are two small matrices (512 x 24 and 24 x 12), so the volume is two matmuls and a log,
the same code on NumPy and CuPy.
"""

from __future__ import annotations

from functools import lru_cache
from types import ModuleType

import numpy as np

from ..geometry import NFFT, SAMPLE_RATE

N_MEL = 24
MEL_LOW_HZ, MEL_HIGH_HZ = 0.0, 6400.0
N_MFCC = 12
LOG_FLOOR = 1e-3
LIFTER = 22
REFERENCE_PA = 20e-6  # energies are power ratios to (20 uPa)^2 before the log


def hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=float) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=float) / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_filterbank(n_bins: int = 512, bin_hz: float = SAMPLE_RATE / NFFT) -> np.ndarray:
    """Triangular mel filters (n_bins, 24) float64 with unit peak, over 0-6400 Hz, for bins k * bin_hz."""
    f = np.arange(n_bins) * float(bin_hz)
    edges = mel_to_hz(np.linspace(hz_to_mel(MEL_LOW_HZ), hz_to_mel(MEL_HIGH_HZ), N_MEL + 2))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (f[:, None] - lower) / (centre - lower)
    falling = (upper - f[:, None]) / (upper - centre)
    return np.clip(np.minimum(rising, falling), 0.0, None)


@lru_cache(maxsize=1)
def cepstral_matrix() -> np.ndarray:
    """DCT-II rows 1..12 scaled sqrt(2/24), times the lifter: (24, 12) float64."""
    n = np.arange(1, N_MFCC + 1)
    m = np.arange(N_MEL)
    dct = np.sqrt(2.0 / N_MEL) * np.cos(np.pi * n[None, :] * (m[:, None] + 0.5) / N_MEL)
    return dct * (1.0 + (LIFTER / 2.0) * np.sin(np.pi * n / LIFTER))


def mfcc_volume(power, xp: ModuleType | None = None, bin_hz: float = SAMPLE_RATE / NFFT):
    """MFCCs (..., 12) float32 of power spectra (..., bins) in Pa^2 with bins ``bin_hz`` apart
    (``Geometry.sample_rate / Geometry.nfft``; 12 Hz for every 1/12-s block), on the array's own backend."""
    if xp is None:
        xp = np if isinstance(power, np.ndarray) or np.isscalar(power) else _module_of(power)
    power = xp.asarray(power, dtype=xp.float32)
    bank = xp.asarray(mel_filterbank(power.shape[-1], bin_hz), dtype=xp.float32) / np.float32(REFERENCE_PA**2)
    mel = xp.matmul(power, bank)
    logmel = xp.log(xp.maximum(mel, np.float32(LOG_FLOOR)))
    return xp.matmul(logmel, xp.asarray(cepstral_matrix(), dtype=xp.float32))


def _module_of(array) -> ModuleType:
    """numpy, or cupy for a CuPy array (without importing CuPy when it is not in use)."""
    module = type(array).__module__.split(".")[0]
    if module == "cupy":
        import cupy

        return cupy
    return np
