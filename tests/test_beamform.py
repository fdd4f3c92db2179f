"""The beamformer: Acoular agreement, localisation of simulated sources, calibration, robustness, and the
compiled (numba) kernel against the NumPy reference."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from dualcam_rt.dsp import beamform
from dualcam_rt.dsp.beamform import Beamformer, array_module, focus_path_differences, resolve_backend, steering_matrices
from dualcam_rt.dsp.overlay import band_energy, localise
from dualcam_rt.errors import BadInput
from dualcam_rt.geometry import SPEED_OF_SOUND, get_geometry


@pytest.fixture(scope="module")
def geometry():
    return get_geometry()


@pytest.fixture(scope="module")
def steering_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("steering")


@pytest.fixture(scope="module")
def beamformer(geometry, steering_cache):
    # the NumPy reference, built here (the cache is empty), so the tests below check the build
    return Beamformer(geometry, backend="numpy", cache_dir=steering_cache)


@pytest.fixture(scope="module")
def compiled(geometry, beamformer, steering_cache):
    return Beamformer(geometry, backend="numba", cache_dir=steering_cache)  # the same steering, from the cache


def point_source_blocks(geometry, positions_m, lo_hz=1500.0, hi_hz=6000.0, seed=0) -> np.ndarray:
    """(len(positions), 128, 1024) float32: band-limited noise from each point, exact fractional delays.

    The signal is periodic in the block, so a delay is an exact phase ramp in the frequency domain.
    """
    rng = np.random.default_rng(seed)
    n = geometry.nfft
    f = np.fft.rfftfreq(n, 1 / geometry.sample_rate)
    blocks = []
    for pos in positions_m:
        source = (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)) * ((f >= lo_hz) & (f <= hi_hz))
        dist = np.linalg.norm(geometry.mics - np.asarray(pos), axis=1)
        spectra = source[None, :] * np.exp(-2j * np.pi * f[None, :] * dist[:, None] / SPEED_OF_SOUND) / dist[:, None]
        blocks.append(np.fft.irfft(spectra, n, axis=1) * 50)
    return np.asarray(blocks, dtype=np.float32)


def noisy_blocks(geometry, n, seed=0) -> np.ndarray:
    """(n, 128, 1024) float32: a broadband point source in the view plus independent sensor noise."""
    rng = np.random.default_rng(seed)
    pixels = rng.uniform((0, 0), (640, 480), size=(n, 2))
    sources = point_source_blocks(geometry, geometry.camera.unproject(pixels, 2.5), lo_hz=100, seed=seed)
    return (sources + 0.02 * rng.standard_normal(sources.shape)).astype(np.float32)


@pytest.mark.slow
def test_maps_match_acoular_classic_beamformer_in_every_bin(geometry, beamformer):
    acoular = pytest.importorskip("acoular", reason="acoular is in the dev extra")  # always installed by make test
    acoular.config.global_caching = "none"
    block = noisy_blocks(geometry, 1, seed=3)[0]
    ours = beamformer.images(block)
    spectra = beamformer.spectra(block)[0].astype(np.complex128)  # (512, working mics), documented scaling
    csm = spectra[:, :, None] * spectra[:, None, :].conj()
    mics = acoular.MicGeom(pos_total=geometry.mics.T.copy(), invalid_channels=list(geometry.dead_channels))
    steer = acoular.SteeringVector(
        grid=acoular.ImportGrid(pos=geometry.grid_points.T.copy()),
        mics=mics,
        steer_type="classic",
        env=acoular.Environment(c=SPEED_OF_SOUND),
    )
    reference_bf = acoular.BeamformerBase(
        freq_data=acoular.PowerSpectraImport(csm=csm, frequencies=geometry.frequencies), steer=steer, r_diag=False
    )
    reference = np.asarray(reference_bf.result[:]).reshape(512, 36, 48).transpose(1, 2, 0)
    assert reference.shape == ours.shape
    error_per_bin = np.abs(ours - reference).max(axis=(0, 1)) / reference.max(axis=(0, 1))
    assert error_per_bin.max() < 1e-3, f"bin {error_per_bin.argmax()} differs by {error_per_bin.max():.2e}"


def test_band_limited_point_source_is_localised_within_one_acoustic_pixel(geometry, beamformer):
    cam = geometry.camera
    pixels = np.array([(u, v) for v in (60.0, 240.0, 420.0) for u in (70.0, 330.0, 580.0)])
    positions = cam.unproject(pixels, geometry.focus_distance_m)
    energies = band_energy(beamformer.images(point_source_blocks(geometry, positions)), lo_hz=1500)
    cell_px = cam.width / 48
    for (u, v), energy in zip(pixels, energies):
        found = localise(energy, geometry)
        assert abs(found["col"] - (u / cell_px - 0.5)) <= 1.0, (u, v, found)
        assert abs(found["row"] - (v / cell_px - 0.5)) <= 1.0, (u, v, found)
        az, el = cam.angles_deg(np.array([u, v]))
        assert abs(found["azimuth_deg"] - az) < 1.5 and abs(found["elevation_deg"] - el) < 1.5


def test_bin_centred_sine_focused_on_its_source_reads_half_its_amplitude_squared(geometry, beamformer):
    k, amplitude_pa = 200, 0.3
    point = geometry.grid_points[17 * 48 + 30]
    delay_s = np.linalg.norm(geometry.mics - point, axis=1) / SPEED_OF_SOUND
    t = np.arange(geometry.nfft) / geometry.sample_rate
    block = amplitude_pa * np.cos(2 * np.pi * geometry.frequencies[k] * (t[None, :] - delay_s[:, None]))
    power = beamformer.images(block.astype(np.float32))
    assert power[17, 30, k] == pytest.approx(amplitude_pa**2 / 2, rel=1e-3)
    assert np.unravel_index(power[..., k].argmax(), (36, 48)) == (17, 30)


def test_dead_channels_never_change_the_map(beamformer):
    block = noisy_blocks(beamformer.geometry, 1, seed=2)[0]
    broken = block.copy()
    broken[[79, 105]] = 1e3 * np.random.default_rng(0).standard_normal((2, block.shape[1]))
    np.testing.assert_array_equal(beamformer.images(block), beamformer.images(broken))


def test_batched_maps_equal_single_frame_maps(beamformer):
    blocks = noisy_blocks(beamformer.geometry, 3, seed=4)
    batched = beamformer.images(blocks)
    assert batched.shape == (3, 36, 48, 512) and batched.dtype == np.float32
    for i in range(3):
        single = beamformer.images(blocks[i])  # a matrix-vector product: other rounding than the batch's
        assert np.abs(batched[i] - single).max() <= 1e-5 * single.max()


def test_factored_steering_gives_the_dense_delay_and_sum_maps_even_for_incoherent_noise(geometry, beamformer):
    block = np.random.default_rng(7).standard_normal((128, 1024)).astype(np.float32)  # no smooth structure to help
    spectra = beamformer.spectra(block)[0]  # (512, M)
    dense = np.abs(np.einsum("kpm,km->kp", steering_matrices(geometry), spectra)) ** 2  # (512, 1728)
    ours = beamformer.images(block).reshape(1728, 512).T
    error_per_bin = np.abs(ours - dense).max(axis=1) / dense.max(axis=1)
    assert error_per_bin.max() < 1e-4, f"bin {error_per_bin.argmax()} differs by {error_per_bin.max():.2e}"


def test_maps_written_into_a_caller_buffer_equal_returned_maps(beamformer):
    blocks = noisy_blocks(beamformer.geometry, 2, seed=8)
    buffer = np.full((2, 36, 48, 512), np.nan, np.float32)
    assert beamformer.images(blocks, out=buffer) is buffer
    np.testing.assert_array_equal(buffer, beamformer.images(blocks))
    single = np.empty((36, 48, 512), np.float32)
    beamformer.images(blocks[1], out=single)
    np.testing.assert_array_equal(single, beamformer.images(blocks[1]))
    strided = np.full((2, 36, 48, 2, 512), np.nan, np.float32)[..., 0, :]  # a strided view, written in place
    beamformer.images(blocks, out=strided)
    np.testing.assert_array_equal(strided, buffer)
    with pytest.raises(BadInput):
        beamformer.images(blocks, out=np.empty((3, 36, 48, 512), np.float32))


def test_steering_is_cached_on_disk_per_geometry_and_reused(geometry, beamformer, tmp_path, monkeypatch):
    Beamformer(geometry, backend="numpy", cache_dir=tmp_path)  # builds and stores
    assert len(list(tmp_path.rglob("*.npz"))) == 1

    def no_build(*args, **kwargs):
        raise AssertionError("the steering was built again instead of read from the cache")

    monkeypatch.setattr(beamform, "steering_chunks", no_build)
    cached = Beamformer(geometry, backend="numpy", cache_dir=tmp_path)
    block = noisy_blocks(geometry, 1, seed=9)[0]
    np.testing.assert_array_equal(cached.images(block), beamformer.images(block))
    with pytest.raises(AssertionError, match="built again"):  # another grid (focus distance) is another entry
        Beamformer(dataclasses.replace(geometry, focus_distance_m=3.0), backend="numpy", cache_dir=tmp_path)


def test_fast_steering_build_equals_direct_exponentials(geometry):
    steering = steering_matrices(geometry, np)
    phase = 2 * np.pi * (geometry.sample_rate / geometry.nfft) * focus_path_differences(geometry) / SPEED_OF_SOUND
    for k in (0, 1, 31, 32, 255, 511):
        direct = np.exp(1j * k * phase) / phase.shape[1]
        np.testing.assert_allclose(steering[k], direct, atol=2e-6 / phase.shape[1])


def test_malformed_blocks_and_unknown_backends_are_bad_input(beamformer):
    with pytest.raises(BadInput):
        beamformer.images(np.zeros((64, 1024), np.float32))
    with pytest.raises(BadInput):
        beamformer.images(np.zeros((2, 128, 512), np.float32))
    with pytest.raises(BadInput):
        array_module("opencl")
    with pytest.raises(BadInput, match="band_bins"):
        Beamformer(beamformer.geometry, backend="numpy", band_bins=0)


def _cupy_with_device():
    try:
        import cupy

        return cupy if cupy.cuda.runtime.getDeviceCount() > 0 else None
    except Exception:
        return None


def test_auto_backend_is_numba_without_a_gpu_and_cupy_request_fails_cleanly():
    if _cupy_with_device() is not None:
        assert array_module("auto").__name__ == "cupy" and resolve_backend("auto") == "cupy"
        return
    assert array_module("auto") is np
    assert resolve_backend("auto") == "numba" and resolve_backend("numpy") == "numpy"
    with pytest.raises(BadInput, match="cupy"):
        array_module("cupy")


def assert_maps_equal(ours, reference, rtol=1e-4):
    """Every bin of every frame within ``rtol`` of that bin's peak in the reference."""
    assert ours.shape == reference.shape and ours.dtype == np.float32
    error = np.abs(ours - reference).max(axis=(-3, -2)) / reference.max(axis=(-3, -2))
    assert error.max() < rtol, f"differs by {error.max():.2e} at {np.unravel_index(error.argmax(), error.shape)}"


def test_compiled_kernel_gives_the_numpy_reference_maps_single_frame_and_batched(beamformer, compiled):
    assert compiled.backend == "numba" and beamformer.backend == "numpy"
    blocks = noisy_blocks(beamformer.geometry, 5, seed=11)
    assert_maps_equal(compiled.images(blocks[0]), beamformer.images(blocks[0]))  # the streaming core kernel
    assert_maps_equal(compiled.images(blocks[:2]), beamformer.images(blocks[:2]))  # still that kernel
    assert_maps_equal(compiled.images(blocks), beamformer.images(blocks))  # BLAS core products
    block = np.random.default_rng(5).standard_normal((128, 1024)).astype(np.float32)  # incoherent noise
    assert_maps_equal(compiled.images(block), beamformer.images(block))


def test_compiled_kernel_writes_strided_buffers_over_several_batches(geometry, beamformer, steering_cache):
    compiled = Beamformer(geometry, backend="numba", batch_frames=4, cache_dir=steering_cache)
    blocks = noisy_blocks(geometry, 6, seed=12)  # a batch of 4, then one of 2 (the other core kernel)
    strided = np.full((6, 36, 48, 2, 512), np.nan, np.float32)[..., 1, :]
    compiled.images(blocks, out=strided)
    assert_maps_equal(strided, beamformer.images(blocks))
    single = np.full((36, 48, 2, 512), np.nan, np.float32)[:, :, 0]
    compiled.images(blocks[3], out=single)
    assert_maps_equal(single, beamformer.images(blocks[3]))


def test_two_threads_beamforming_at_once_get_the_maps_each_would_get_alone(compiled):
    blocks = noisy_blocks(compiled.geometry, 6, seed=14)
    alone = [compiled.images(blocks[:3]), compiled.images(blocks[3])]
    together = [None, None]

    def beamform(i):  # the kernels release the GIL: these calls overlap
        for _ in range(5):
            together[i] = compiled.images(blocks[:3] if i == 0 else blocks[3])

    threads = [threading.Thread(target=beamform, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    np.testing.assert_array_equal(together[0], alone[0])
    np.testing.assert_array_equal(together[1], alone[1])


def test_bands_that_do_not_divide_the_512_bins_give_the_same_maps(geometry, beamformer, tmp_path):
    reference = Beamformer(geometry, backend="numpy", band_bins=48, cache_dir=tmp_path)  # 10 x 48 + 32
    assert [band.stop - band.start for band in reference.bands] == [48] * 10 + [32]
    compiled = Beamformer(geometry, backend="numba", band_bins=48, cache_dir=tmp_path)
    blocks = noisy_blocks(geometry, 3, seed=13)
    expected = reference.images(blocks)
    assert_maps_equal(compiled.images(blocks), expected)
    assert_maps_equal(compiled.images(blocks[1]), expected[1])
    assert_maps_equal(expected, beamformer.images(blocks))  # and the 32-bin bands' maps


@pytest.mark.gpu
@pytest.mark.skipif(_cupy_with_device() is None, reason="no CUDA device")
def test_cupy_and_numpy_maps_agree(geometry, beamformer):
    gpu = Beamformer(geometry, backend="cupy")
    assert gpu.backend == "cupy"
    blocks = noisy_blocks(geometry, 4, seed=6)
    ours, theirs = beamformer.images(blocks), gpu.images(blocks)
    assert isinstance(theirs, np.ndarray)
    error = np.abs(theirs - ours).max(axis=(1, 2)) / ours.max(axis=(1, 2))
    assert error.max() < 1e-4
