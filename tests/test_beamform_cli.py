"""`dualcam-rt beamform`: HDF5 files in Acoular's layout and recorded sessions, in a real subprocess."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from conftest import run_cli

from dualcam_rt.dsp.beamform import Beamformer
from dualcam_rt.sim import Scene


@pytest.fixture(scope="module")
def beamformer():
    return Beamformer(backend="numpy")


def write_time_data(path, audio_channels_by_samples: np.ndarray, sample_freq: float = 12288.0) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("time_data", data=audio_channels_by_samples.T)
        f["time_data"].attrs["sample_freq"] = sample_freq


def scene_audio(ticks: int, seed: int = 1) -> np.ndarray:
    scene = Scene(scenario=1, seed=seed)
    return np.concatenate([scene.next_tick().audio for _ in range(ticks)], axis=1)


def test_beamform_command_writes_one_image_per_block_of_an_acoular_h5_file(tmp_path, beamformer):
    audio = scene_audio(3)[:, :3000]  # 2 whole blocks and a partial one
    write_time_data(tmp_path / "rec.h5", audio)
    result = run_cli("beamform", str(tmp_path / "rec.h5"), "--out", str(tmp_path / "maps.npy"), "--backend", "numpy")
    assert result.returncode == 0, result.stderr
    maps = np.load(tmp_path / "maps.npy")
    assert maps.shape == (2, 36, 48, 512) and maps.dtype == np.float32
    expected = beamformer.images(audio[:, :2048].reshape(128, 2, 1024).transpose(1, 0, 2))
    assert np.abs(maps - expected).max() <= 1e-5 * expected.max()


def test_beamform_command_reads_a_recorded_session(tmp_path, beamformer):
    sessions = pytest.importorskip("dualcam_rt.sessions", reason="sessions area not installed")
    from dualcam_rt.frame import SensorFrame

    audio = scene_audio(4, seed=2)
    with sessions.SessionWriter(tmp_path / "s1", {"label": "clapping", "scenario": 1}) as writer:
        for i in range(4):
            writer.write(
                SensorFrame(
                    index=i,
                    first_sample=i * 1024,
                    timestamp=i / 12,
                    audio=np.ascontiguousarray(audio[:, i * 1024 : (i + 1) * 1024]),
                )
            )
    result = run_cli("beamform", str(tmp_path / "s1"), "--out", str(tmp_path / "maps.npy"))
    assert result.returncode == 0, result.stderr
    maps = np.load(tmp_path / "maps.npy")
    assert maps.shape == (4, 36, 48, 512)
    expected = beamformer.images(audio[:, 3072:].copy())
    assert np.abs(maps[3] - expected).max() <= 1e-5 * expected.max()


@pytest.mark.parametrize("channels,rate,message", [(130, 12288.0, "130 channels"), (128, 48000.0, "48000 Hz")])
def test_beamform_command_rejects_extra_channels_or_wrong_rate_in_one_line(tmp_path, channels, rate, message):
    write_time_data(tmp_path / "bad.h5", np.zeros((channels, 2048), np.float32), sample_freq=rate)
    result = run_cli("beamform", str(tmp_path / "bad.h5"), "--out", str(tmp_path / "maps.npy"))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_beamform_command_on_a_missing_or_non_hdf5_input_exits_2(tmp_path):
    missing = run_cli("beamform", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "m.npy"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    (tmp_path / "text.h5").write_text("not hdf5")
    garbage = run_cli("beamform", str(tmp_path / "text.h5"), "--out", str(tmp_path / "m.npy"))
    assert garbage.returncode == 2 and "Traceback" not in garbage.stderr
