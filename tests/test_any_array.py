"""Any microphone array (issue 15): an Acoular MicGeom file (the miniDSP UMA-16) at the device's rate,
beamformed as Acoular does, captured as 16 channels through a real PulseAudio server, recorded into a
session Acoular opens, and simulated by sim://?geometry=."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import time
import uuid

import cv2
import httpx
import numpy as np
import pytest
import soundfile as sf
from conftest import _pactl, free_port, run_cli
from test_server_live import wait_until_imaging

from dualcam_rt.config import Settings
from dualcam_rt.devices import open_device
from dualcam_rt.dsp.beamform import Beamformer
from dualcam_rt.dsp.mfcc import mfcc_volume
from dualcam_rt.dsp.overlay import band_energy, localise
from dualcam_rt.errors import BadInput
from dualcam_rt.geometry import MICGEOM_FILE, SPEED_OF_SOUND, get_geometry, load_geometry, resolve_micgeom_file
from dualcam_rt.inference.tiny import write_tiny_model
from dualcam_rt.server.app import create_app
from dualcam_rt.server.run import BackgroundServer

UMA16 = "minidsp_uma-16.xml"  # shipped with Acoular: found by its bare name
RATE, BLOCK = 48_000, 4_000  # the UMA-16 at 48 kHz: blocks of 1/12 s, bins 12 Hz apart
BINS = 534  # those up to 6400 Hz (0 .. 6396 Hz), of the block's 2000
# PulseAudio remixes by channel name: a 16-channel null sink and file laid out as PortAudio's ALSA
# plugin names 16 capture channels pass every channel through unmixed, in order
PULSE_16_MAP = "front-left,front-right,rear-left,rear-right,front-center,lfe,side-left,side-right," + ",".join(
    f"aux{i}" for i in range(8)
)
TONES_HZ = 300.0 + 150.0 * np.arange(16)  # channel c plays TONES_HZ[c]
AMPLITUDES = 0.4 * 10 ** (-np.arange(16) / 20)  # channel c is c dB below channel 0


@pytest.fixture(scope="module")
def uma16():
    return load_geometry(UMA16).for_device(16, RATE, BLOCK)


@pytest.fixture(scope="module")
def beamformer(uma16, tmp_path_factory):
    return Beamformer(uma16, backend="numba", cache_dir=tmp_path_factory.mktemp("steering"))


def point_source_blocks(geometry, positions_m, lo_hz=1500.0, hi_hz=6000.0, seed=0, noise=0.0) -> np.ndarray:
    """(len(positions), mics, nfft) float32: band-limited noise from each point, exact fractional delays
    (periodic in the block), plus independent sensor noise of rms ``noise`` Pa."""
    rng = np.random.default_rng(seed)
    n = geometry.nfft
    f = np.fft.rfftfreq(n, 1 / geometry.sample_rate)
    blocks = []
    for pos in positions_m:
        source = (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)) * ((f >= lo_hz) & (f <= hi_hz))
        dist = np.linalg.norm(geometry.mics - np.asarray(pos), axis=1)
        spectra = source[None, :] * np.exp(-2j * np.pi * f[None, :] * dist[:, None] / SPEED_OF_SOUND) / dist[:, None]
        blocks.append(np.fft.irfft(spectra, n, axis=1) * 50 + noise * rng.standard_normal((len(dist), n)))
    return np.asarray(blocks, dtype=np.float32)


# --- geometry ---------------------------------------------------------------------------------


def test_the_uma16_file_gives_16_microphones_at_the_devices_rate_and_block(uma16):
    assert uma16.name == "minidsp_uma16" and uma16.n_mics == 16 and uma16.dead_channels == ()
    assert (uma16.sample_rate, uma16.block_samples, uma16.n_bins, uma16.fps) == (48_000, 4_000, BINS, 12.0)
    assert uma16.frequencies[1] == 12.0 and uma16.frequencies[-1] == 6396.0 and uma16.grid_points.shape == (1728, 3)
    assert dataclasses.replace(uma16, max_frequency_hz=None).n_bins == 2000  # every bin below Nyquist
    assert uma16.min_mic_spacing_m == pytest.approx(0.042)
    with pytest.raises(BadInput, match="16 microphones"):
        uma16.for_device(128, 12_288, 1024)  # a DualCam's frames with the UMA-16's file


def test_geometry_settings_grid_and_invalid_channels(monkeypatch):
    monkeypatch.setenv("DUALCAM_GEOMETRY", UMA16)
    monkeypatch.setenv("DUALCAM_GRID", "24x32")
    monkeypatch.setenv("DUALCAM_DEAD_CHANNELS", "[3]")
    monkeypatch.setenv("DUALCAM_CAMERA_HFOV_DEG", "78")
    g = Settings().geometry()
    assert g.camera.hfov_deg == 78 and g.camera.fx < load_geometry(UMA16).camera.fx  # a wider view: the grid spans it
    assert (g.n_mics, g.grid_shape, g.dead_channels, g.grid_points.shape) == (16, (24, 32), (3,), (768, 3))
    assert int(g.active.sum()) == 15
    default = Settings(
        _env_file=None, geometry_file=None, grid="36x48", dead_channels=None, camera_hfov_deg=60
    ).geometry()
    assert default.n_mics == 128 and default.dead_channels == (79, 105)  # the DualCam, unchanged
    assert np.array_equal(default.mics, get_geometry().mics)
    with pytest.raises(BadInput, match="out of range"):
        load_geometry(UMA16, dead_channels=(16,))


def test_serving_an_array_with_another_arrays_geometry_is_one_line_exit_2():
    out = run_cli("serve", f"mic://pulse?channels=16&rate={RATE}", "--port", "1")  # the DualCam's 128 mics
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "16 channels" in out.stderr and "128 microphones" in out.stderr


def test_a_geometry_that_cannot_be_read_is_one_line_exit_2(tmp_path):
    for args in (["--geometry", "no-such-array.xml"], ["--geometry", UMA16, "--grid", "36by48"]):
        out = run_cli("geometry", *args)
        assert out.returncode == 2 and out.stderr.startswith("error:") and "Traceback" not in out.stderr, out.stderr
    out = run_cli("geometry", "--json", "--geometry", UMA16, "--grid", "18x24")
    d = json.loads(out.stdout)
    assert d["name"] == "minidsp_uma16" and len(d["mics"]) == 16 and d["grid"]["rows"] == 18


# --- beamforming ------------------------------------------------------------------------------


def test_uma16_maps_equal_acoulars_classic_beamformer_in_every_bin(uma16, beamformer):
    acoular = pytest.importorskip("acoular", reason="acoular is in the dev extra")  # always installed by make test
    acoular.config.global_caching = "none"
    assert beamformer.backend == "numba"
    block = point_source_blocks(
        uma16, uma16.camera.unproject(np.array([[420.0, 130.0]]), 2.5), lo_hz=100, noise=0.02, seed=3
    )[0]
    ours = beamformer.images(block)
    assert ours.shape == (36, 48, BINS)
    spectra = beamformer.spectra(block)[0].astype(np.complex128)  # (534, 16)
    csm = spectra[:, :, None] * spectra[:, None, :].conj()
    mics = acoular.MicGeom(file=str(resolve_micgeom_file(UMA16)))
    steer = acoular.SteeringVector(
        grid=acoular.ImportGrid(pos=uma16.grid_points.T.copy()),
        mics=mics,
        steer_type="classic",
        env=acoular.Environment(c=SPEED_OF_SOUND),
    )
    reference_bf = acoular.BeamformerBase(
        freq_data=acoular.PowerSpectraImport(csm=csm, frequencies=uma16.frequencies), steer=steer, r_diag=False
    )
    reference = np.asarray(reference_bf.result[:]).reshape(BINS, 36, 48).transpose(1, 2, 0)
    error_per_bin = np.abs(ours - reference).max(axis=(0, 1)) / reference.max(axis=(0, 1))
    assert error_per_bin.max() < 1e-3, f"bin {error_per_bin.argmax()} differs by {error_per_bin.max():.2e}"


def test_a_point_source_is_localised_by_the_uma16_within_one_acoustic_pixel(uma16, beamformer):
    cam = uma16.camera
    pixels = np.array([(u, v) for v in (80.0, 240.0, 400.0) for u in (90.0, 330.0, 560.0)])
    energies = band_energy(
        beamformer.images(point_source_blocks(uma16, cam.unproject(pixels, uma16.focus_distance_m))), lo_hz=1500
    )
    cell_px = cam.width / uma16.grid_cols
    for (u, v), energy in zip(pixels, energies):
        found = localise(energy, uma16)
        assert abs(found["col"] - (u / cell_px - 0.5)) <= 1.0, (u, v, found)
        assert abs(found["row"] - (v / cell_px - 0.5)) <= 1.0, (u, v, found)


def test_any_grid_and_a_64_mic_array_give_the_numpy_reference_maps(tmp_path):
    vogel = load_geometry("tub_vogel64.xml", grid=(15, 20), dead_channels=(5, 40))
    reference = Beamformer(vogel, backend="numpy", cache_dir=tmp_path)
    compiled = Beamformer(vogel, backend="numba", cache_dir=tmp_path)  # the same steering, from the cache
    blocks = point_source_blocks(
        vogel, vogel.camera.unproject(np.array([[200.0, 300.0], [500.0, 90.0]]), 2.0), lo_hz=300, noise=0.05
    )
    expected = reference.images(blocks)
    assert expected.shape == (2, 15, 20, 512)
    for ours in (compiled.images(blocks), np.stack([compiled.images(b) for b in blocks])):
        error = np.abs(ours - expected).max(axis=(-3, -2)) / expected.max(axis=(-3, -2))
        assert error.max() < 1e-4
    broken = blocks.copy()
    broken[:, [5, 40]] = 1e3  # invalid channels never reach the map
    np.testing.assert_array_equal(compiled.images(broken), compiled.images(blocks))


def test_mfcc_volumes_at_48_khz_equal_those_at_the_sensor_rate_for_the_same_sound():
    # the same band-limited power at 12 Hz bins: every bin at 48 kHz (2000), the 534 kept, 512 at 12,288 Hz
    rng = np.random.default_rng(1)
    power = np.zeros((4, 6, 2000), np.float32)
    power[..., 10:500] = rng.random((4, 6, 490)) * 1e-3
    sensor = mfcc_volume(power[..., :512])
    for bins in (2000, BINS):
        np.testing.assert_allclose(mfcc_volume(power[..., :bins]), sensor, rtol=1e-5, atol=1e-5)


# --- simulated array --------------------------------------------------------------------------


def test_sim_uri_with_a_geometry_is_the_scene_heard_by_that_array():
    with open_device(f"sim://?geometry={UMA16}&speed=max&seed=3&sounds=procedural") as device:
        frames = list(itertools.islice(device.frames(), 3))
        geometry = device.geometry_for(get_geometry())  # the URI's array wins over the DualCam handed down
    assert device.describe()["geometry"] == "minidsp_uma16" and device.channels == 16
    assert all(f.audio.shape == (16, 1024) for f in frames) and geometry.n_mics == 16
    assert np.abs(frames[-1].audio).max() > 0


def test_serve_with_a_geometry_images_the_simulated_uma16(tmp_path):
    write_tiny_model(tmp_path)
    settings = Settings(models_dir=tmp_path, geometry_file=UMA16, hop_s=0.5)  # as DUALCAM_GEOMETRY does
    app = create_app(settings, "sim://?scenario=1&seed=1&label=clapping")  # simulates the service's array
    with BackgroundServer(app, free_port()) as url:
        wait_until_imaging(url)
        status = httpx.get(f"{url}/v1/status").json()
    assert status["device"]["channels"] == 16 and status["device"]["geometry"] == "minidsp_uma16"
    assert status["live"]["imaged_frames"] > 0 and status["live"]["state"] == "streaming"
    assert app.state.svc.geometry.n_mics == 16


# --- 16 channels through a real audio server --------------------------------------------------


@pytest.fixture(scope="module")
def pulse16(pulse_sink, tmp_path_factory):
    """A 16-channel, 48 kHz null sink on the suite's PulseAudio server and a 16-channel file of one tone
    per channel (channel c: TONES_HZ[c] at AMPLITUDES[c] of full scale); yields (sink, file)."""
    sink = f"dualcam_a16_{uuid.uuid4().hex[:8]}"
    loaded = _pactl(
        "load-module",
        "module-null-sink",
        f"sink_name={sink}",
        "channels=16",
        f"rate={RATE}",
        f"channel_map={PULSE_16_MAP}",
    )
    assert loaded.returncode == 0, loaded.stderr
    deadline = time.monotonic() + 10
    while f"{sink}.monitor" not in _pactl("list", "short", "sources").stdout:
        assert time.monotonic() < deadline, f"PulseAudio never showed {sink}.monitor"
        time.sleep(0.1)
    t = np.arange(RATE * 20) / RATE
    tones = tmp_path_factory.mktemp("a16") / "tones16.wav"
    sf.write(
        tones,
        (AMPLITUDES[None, :] * np.sin(2 * np.pi * TONES_HZ[None, :] * t[:, None])).astype(np.float32),
        RATE,
        subtype="FLOAT",
    )
    yield sink, tones
    _pactl("unload-module", loaded.stdout.strip())


def play(sink: str, path) -> subprocess.Popen:
    return subprocess.Popen(["paplay", "-d", sink, f"--channel-map={PULSE_16_MAP}", str(path)])


def assert_each_channel_carries_its_own_tone(audio: np.ndarray, rate: int) -> None:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.shape[1]), axis=1))
    peaks = np.fft.rfftfreq(audio.shape[1], 1 / rate)[spectrum.argmax(axis=1)]
    assert np.abs(peaks - TONES_HZ).max() < 5, f"channel tones {peaks} (expected {TONES_HZ})"


def test_16_channels_are_captured_in_order_on_one_clock(pulse16, monkeypatch):
    sink, tones = pulse16
    monkeypatch.setenv("PULSE_SOURCE", f"{sink}.monitor")  # record only what this test plays
    player = play(sink, tones)
    try:
        with open_device(f"mic://pulse?channels=16&rate={RATE}") as device:
            frames = list(itertools.islice(device.frames(), 18))
    finally:
        player.kill()
        player.wait()
    info = device.describe()
    assert (info["channels"], info["sample_rate"], info["block_samples"], info["resampled"]) == (16, RATE, BLOCK, False)
    assert info["channel_map"] == list(range(16))
    assert [f.first_sample for f in frames] == [BLOCK * i for i in range(18)]
    assert all(f.audio.shape == (16, BLOCK) and f.sample_rate == RATE for f in frames)
    heard = np.concatenate([f.audio for f in frames[-12:]], axis=1)  # one second, after the start-up
    assert_each_channel_carries_its_own_tone(heard, RATE)
    peak_pa = np.abs(heard).max(axis=1)
    np.testing.assert_allclose(peak_pa, AMPLITUDES * 20, rtol=0.05)  # 20 Pa full scale; no remixing


def test_a_channel_map_reorders_the_device_channels(pulse16, monkeypatch):
    sink, tones = pulse16
    monkeypatch.setenv("PULSE_SOURCE", f"{sink}.monitor")
    order = list(range(15, -1, -1))
    player = play(sink, tones)
    try:
        with open_device(f"mic://pulse?channels=16&rate={RATE}&map={','.join(map(str, order))}") as device:
            frames = list(itertools.islice(device.frames(), 18))
    finally:
        player.kill()
        player.wait()
    heard = np.concatenate([f.audio for f in frames[-12:]], axis=1)
    assert_each_channel_carries_its_own_tone(heard[order], RATE)  # frame channel i = device channel 15 - i
    with pytest.raises(BadInput, match="map"):
        open_device("mic://pulse?channels=16&map=0,1,2")
    with pytest.raises(BadInput, match="multiple of 12"):
        open_device("mic://pulse?channels=16&rate=44110")


def test_probe_prints_each_channels_level_so_a_wrong_order_shows(pulse16):
    sink, tones = pulse16
    player = play(sink, tones)
    try:
        out = run_cli(
            "probe",
            f"mic://pulse?channels=16&rate={RATE}",
            "--seconds",
            "2",
            "--json",
            "--geometry",
            UMA16,
            env={"PULSE_SOURCE": f"{sink}.monitor"},
        )
    finally:
        player.kill()
        player.wait()
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    rows = report["channel_levels"]
    assert [r["channel"] for r in rows] == list(range(16)) and report["geometry"] == "minidsp_uma16"
    uma = load_geometry(UMA16)
    assert [(r["x_m"], r["y_m"]) for r in rows] == [(round(x, 4), round(y, 4)) for x, y, _ in uma.mics]
    peaks = np.array([r["peak_dbfs"] for r in rows])
    np.testing.assert_allclose(peaks, 20 * np.log10(AMPLITUDES), atol=1.0)  # channel c is c dB down
    wrong = run_cli(
        "probe",
        f"mic://pulse?channels=16&rate={RATE}",
        "--seconds",
        "0.5",
        "--geometry",
        str(MICGEOM_FILE),
        env={"PULSE_SOURCE": f"{sink}.monitor"},
    )
    assert wrong.returncode == 1 and "128 microphones" in wrong.stderr  # a UMA-16's channels, the DualCam's file


def test_a_session_recorded_from_16_channels_opens_in_acoular(pulse16, tmp_path):
    acoular = pytest.importorskip("acoular", reason="acoular is in the dev extra")
    sink, tones = pulse16
    player = play(sink, tones)
    try:
        out = run_cli(
            "record",
            f"mic://pulse?channels=16&rate={RATE}",
            "--seconds",
            "2",
            "--out",
            str(tmp_path),
            "--name",
            "uma16",
            "--geometry",
            UMA16,
            "--json",
            env={"PULSE_SOURCE": f"{sink}.monitor"},
        )
    finally:
        player.kill()
        player.wait()
    assert out.returncode == 0, out.stderr
    meta = json.loads((tmp_path / "uma16" / "session.json").read_text())
    assert (meta["channels"], meta["sample_rate"], meta["block_samples"]) == (16, RATE, BLOCK)
    assert meta["geometry"]["name"] == "minidsp_uma16" and len(meta["geometry"]["mics"]) == 16
    assert meta["geometry"]["n_bins"] == BINS
    ts = acoular.TimeSamples(file=str(tmp_path / "uma16" / "audio.h5"))
    assert (ts.num_channels, ts.sample_freq) == (16, RATE) and ts.num_samples >= 20 * BLOCK
    data = np.asarray(ts.data[-RATE:])  # (samples, channels), Acoular's layout
    ts._h5f.close()  # Acoular keeps its file open (it has no public close)
    assert_each_channel_carries_its_own_tone(data.T, RATE)


def test_a_uma16_session_replays_and_exports_with_the_array_it_recorded(tmp_path):
    out = run_cli(
        "record",
        f"sim://?geometry={UMA16}&speed=max&seed=5&sounds=procedural&label=clapping",
        "--seconds",
        "2",
        "--out",
        str(tmp_path),
        "--name",
        "sim16",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    session = tmp_path / "sim16"
    assert json.loads((session / "session.json").read_text())["geometry"]["name"] == "minidsp_uma16"
    with open_device(f"replay://{session}") as device:  # a replayed session names the array it recorded
        assert device.geometry_for(get_geometry()).name == "minidsp_uma16"
    replayed = run_cli("replay", str(session), "--json")  # no --geometry: the session says which array
    assert replayed.returncode == 0, replayed.stderr
    timeline = json.loads(replayed.stdout)
    assert timeline["localised"] and all("localisation" in row for row in timeline["timeline"])
    video = tmp_path / "sim16.mp4"
    exported = run_cli("export-video", str(session), "--out", str(video))
    assert exported.returncode == 0, exported.stderr
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 24
    capture.release()
    npy = tmp_path / "maps.npy"
    beamformed = run_cli("beamform", str(session), "--out", str(npy), "--grid", "12x16")
    assert beamformed.returncode == 0, beamformed.stderr
    assert np.load(npy, mmap_mode="r").shape == (24, 12, 16, 512)
    assert os.path.getsize(npy) > 0
