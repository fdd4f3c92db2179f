"""MFCC volumes: shapes, the paper's recipe checked against scipy's DCT, silence, backends."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.fft import dct

from dualcam_rt.dsp.mfcc import (
    LIFTER,
    LOG_FLOOR,
    MEL_HIGH_HZ,
    N_MEL,
    REFERENCE_PA,
    hz_to_mel,
    mel_filterbank,
    mfcc_volume,
)
from dualcam_rt.geometry import bin_frequencies


def test_each_pixel_of_one_or_many_images_gets_12_float32_coefficients():
    rng = np.random.default_rng(0)
    assert mfcc_volume(rng.random((36, 48, 512), np.float32)).shape == (36, 48, 12)
    volume = mfcc_volume(rng.random((5, 36, 48, 512), np.float32), xp=np)
    assert volume.shape == (5, 36, 48, 12) and volume.dtype == np.float32


def test_coefficients_follow_the_recipe_computed_independently_with_scipy():
    rng = np.random.default_rng(1)
    power = rng.random((10, 512)) * 1e-4  # Pa^2: quiet enough that some mel bands hit the floor
    power[:, 200:] *= 1e-12
    f = bin_frequencies()
    edges = 700 * (10 ** (np.linspace(0, hz_to_mel(MEL_HIGH_HZ), N_MEL + 2) / 2595) - 1)
    bank = np.zeros((512, N_MEL))
    for i in range(N_MEL):  # triangles written out the long way
        lo, mid, hi = edges[i : i + 3]
        bank[:, i] = np.where(f <= mid, (f - lo) / (mid - lo), (hi - f) / (hi - mid)).clip(0)
    log_mel = np.log(np.maximum(power @ bank / REFERENCE_PA**2, LOG_FLOOR))
    n = np.arange(1, 13)
    expected = dct(log_mel, type=2, norm="ortho", axis=-1)[:, 1:13] * (1 + LIFTER / 2 * np.sin(np.pi * n / LIFTER))
    np.testing.assert_allclose(mfcc_volume(power.astype(np.float32)), expected, rtol=1e-4, atol=1e-3)
    assert (power @ bank / REFERENCE_PA**2 < LOG_FLOOR).any()  # the floor was exercised


def test_mel_filters_are_24_unit_peak_triangles_covering_0_to_6400_hz():
    bank = mel_filterbank()
    assert bank.shape == (512, 24)
    assert bank.max(axis=0).min() > 0.9  # every filter sees bins near its peak
    assert (bank.sum(axis=1)[1:] > 0).all()  # every bin below Nyquist (6144 Hz < 6400 Hz) is covered


def test_silent_pixels_give_zero_coefficients_not_nan():
    volume = mfcc_volume(np.zeros((36, 48, 512), np.float32))
    assert np.isfinite(volume).all()
    np.testing.assert_allclose(volume, 0, atol=1e-5)  # a constant log-floor has no cepstral shape


def test_different_spectral_shapes_give_different_coefficients():
    low, high = np.zeros(512, np.float32), np.zeros(512, np.float32)
    low[40:60], high[300:340] = 1.0, 1.0
    assert np.abs(mfcc_volume(low) - mfcc_volume(high)).max() > 1.0


def _cupy_with_device():
    try:
        import cupy

        return cupy if cupy.cuda.runtime.getDeviceCount() > 0 else None
    except Exception:
        return None


@pytest.mark.gpu
@pytest.mark.skipif(_cupy_with_device() is None, reason="no CUDA device")
def test_cupy_and_numpy_mfcc_agree():
    cupy = _cupy_with_device()
    power = np.random.default_rng(2).random((2, 36, 48, 512), np.float32) * 1e-3
    on_gpu = mfcc_volume(cupy.asarray(power))
    assert isinstance(on_gpu, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(on_gpu), mfcc_volume(power), rtol=1e-4, atol=1e-4)
