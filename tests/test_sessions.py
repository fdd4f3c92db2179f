"""Sessions: writing, reading back, Acoular compatibility, crash safety, bad names, full disks."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import run_cli

from dualcam_rt.errors import BadInput, DualcamError, NotFound
from dualcam_rt.frame import SensorFrame
from dualcam_rt.sessions import SessionWriter, open_session, verify_session
from dualcam_rt.sessions.format import new_session_dir
from dualcam_rt.sim import Scene


def scene_frames(n: int, seed: int = 0, label: str = "clapping", video_every: int = 1):
    """``n`` SensorFrames from a simulated scene (video on every ``video_every``-th tick)."""
    scene = Scene(scenario=1, seed=seed, label=label, subject=2)
    for i in range(n):
        tick = scene.next_tick()
        video = tick.video if i % video_every == 0 else None
        yield SensorFrame(
            index=i,
            first_sample=i * 1024,
            timestamp=i / 12,
            audio=tick.audio,
            video=video,
            video_timestamp=i / 12 + 0.01 if video is not None else None,
            truth=tick.truth,
        )


def write_session(path: Path, n: int = 30, **kw) -> list[SensorFrame]:
    frames = list(scene_frames(n, video_every=kw.pop("video_every", 1)))
    with SessionWriter(path, {"label": "clapping", "scenario": 1, "subject": 2}, **kw) as w:
        for f in frames:
            w.write(f)
    return frames


def test_recorded_session_reads_back_exactly(tmp_path):
    frames = write_session(tmp_path / "s", n=30, video_every=2)
    with open_session(tmp_path / "s") as s:
        assert s.n_ticks == 30 and s.seconds == pytest.approx(2.5)
        assert s.n_video_frames == 15
        assert s.meta["status"] == "complete" and s.meta["ticks"] == 30
        assert s.meta["class_index"] == 1 - 1 and s.meta["channels"] == 128
        assert s.labels == [{"label": "clapping", "start_s": 0.0, "end_s": 2.5}]
        back = list(s.frames())
        assert [f.index for f in back] == list(range(30))
        for a, b in zip(frames, back):
            np.testing.assert_array_equal(a.audio, b.audio)
            assert (b.video is None) == (a.video is None)
            assert b.truth["source_px"] == pytest.approx(a.truth["source_px"], abs=1e-3)
            assert b.truth["active"] == a.truth["active"]
        assert back[2].video_timestamp == pytest.approx(2 / 12 + 0.01)
        # JPEG is lossy but close on this flat synthetic image
        assert np.abs(back[0].video.astype(int) - frames[0].video.astype(int)).mean() < 2.0
        np.testing.assert_array_equal(s.mic(5), np.concatenate([f.audio[5] for f in frames]))


def test_session_opens_unchanged_in_acoular_timesamples(tmp_path):
    import acoular

    acoular.config.global_caching = "none"
    frames = write_session(tmp_path / "s", n=12)
    ts = acoular.TimeSamples(file=str(tmp_path / "s" / "audio.h5"))
    try:
        assert (ts.num_samples, ts.num_channels, ts.sample_freq) == (12 * 1024, 128, 12288.0)
        got = np.concatenate(list(ts.result(1024)))
    finally:
        ts._h5f.close()  # Acoular keeps the file open until exit otherwise
    np.testing.assert_array_equal(got, np.concatenate([f.audio.T for f in frames]))


def test_only_microphone_zero_can_be_stored(tmp_path):
    frames = write_session(tmp_path / "s", n=12, channels=[0])
    with open_session(tmp_path / "s") as s:
        assert s.channels == 1 and s.meta["channel_map"] == [0]
        np.testing.assert_array_equal(s.mic(0), np.concatenate([f.audio[0] for f in frames]))
        with pytest.raises(BadInput, match="did not store device channel 3"):
            s.mic(3)
        with pytest.raises(NotFound, match="no precomputed MFCC"):
            s.mfcc()


@pytest.mark.parametrize("name", ["..", "../evil", "a/b", ".hidden", "", "x..y"])
def test_session_name_with_dotdot_or_slash_is_refused(tmp_path, name):
    with pytest.raises(BadInput, match="bad session name"):
        new_session_dir(tmp_path, name)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_output_directory_is_made_and_a_file_in_its_place_is_a_clear_error(tmp_path):
    assert new_session_dir(tmp_path / "a" / "b", "s1") == tmp_path / "a" / "b" / "s1"
    assert (tmp_path / "a" / "b").is_dir() and not (tmp_path / "a" / "b" / "s1").exists()
    (tmp_path / "f").write_text("")
    with pytest.raises(BadInput, match="not a directory"):
        new_session_dir(tmp_path / "f", "s1")


def test_existing_session_is_never_overwritten(tmp_path):
    write_session(tmp_path / "s", n=12)
    before = (tmp_path / "s" / "audio.h5").read_bytes()
    with pytest.raises(BadInput, match="already exists"):
        SessionWriter(tmp_path / "s", {})
    with pytest.raises(BadInput, match="already exists"):
        new_session_dir(tmp_path, "s")
    assert (tmp_path / "s" / "audio.h5").read_bytes() == before


def test_record_command_refuses_bad_names_and_missing_dirs_in_one_line(tmp_path):
    write_session(tmp_path / "src", n=12)
    uri = f"replay://{tmp_path / 'src'}?speed=max"
    for args, expected in [
        (["--out", str(tmp_path), "--name", "../x"], "bad session name"),
        (["--out", str(tmp_path / "src" / "session.json")], "not a directory"),
        (["--out", str(tmp_path), "--name", "src"], "already exists"),
    ]:
        r = run_cli("record", uri, "--seconds", "1", *args)
        assert r.returncode == 2, r.stderr
        assert expected in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def _mounted_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    try:
        return (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
            ).returncode
            == 0
        )
    except FileNotFoundError:
        return False


def test_disk_full_stops_with_a_clear_error_and_keeps_what_was_written(tmp_path, monkeypatch):
    """A real 3 MB tmpfs where mounting is allowed (root); otherwise a file system that reports
    itself full after two seconds (the only thing mocked: the free-space figure)."""
    disk = tmp_path / "disk"
    real = _mounted_tmpfs(disk, "3m")
    try:
        if not real:
            from dualcam_rt.sessions import writer

            calls = iter(range(10**6))
            monkeypatch.setattr(writer, "free_bytes", lambda path: 10**9 if next(calls) < 2 else 10**5)
        w = SessionWriter(disk / "s", {"label": "typing"}, channels=list(range(16)))
        with pytest.raises(DualcamError, match="disk full") as err:
            for frame in scene_frames(600, video_every=12):
                w.write(frame)
        assert "\n" not in str(err.value)
        kept = w.ticks
        assert kept >= 12 and kept % 12 == 0
        report = verify_session(disk / "s")
        assert report["ok"] and report["ticks"] == kept, report  # every flushed second is there
        with open_session(disk / "s") as s:
            assert s.mic(0).shape == (kept * 1024,)
            assert s.meta["stopped"] == "disk full"
    finally:
        if real:
            subprocess.run(["umount", "-l", str(disk)], check=False)


CHILD = """
import sys
import numpy as np
from dualcam_rt.frame import SensorFrame
from dualcam_rt.sessions import SessionWriter
rng = np.random.default_rng(0)
audio = rng.standard_normal((32, 1024)).astype(np.float32)
video = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
w = SessionWriter(sys.argv[1], {"label": "knocking", "scenario": 2, "subject": 4})
for i in range(100000):
    w.write(SensorFrame(index=i, first_sample=i * 1024, timestamp=i / 12, audio=audio + i,
                        video=video if i % 3 == 0 else None))
    print(i + 1, flush=True)   # ticks handed to the writer so far
"""


def _kill_writer_at_random(path: Path, delay_s: float) -> int:
    """Start a writer process, SIGKILL it after ``delay_s``, return how many ticks it had written."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True)
    written = [0]

    def read():
        for line in proc.stdout:
            written[0] = int(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while written[0] == 0 and time.monotonic() < deadline:  # wait until it is really writing
        time.sleep(0.01)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reader.join(5)
    return written[0]


@pytest.mark.slow
def test_writer_killed_at_random_instants_loses_at_most_the_last_second(tmp_path):
    rng = random.Random(1234)
    for k in range(5):
        path = tmp_path / f"k{k}"
        written = _kill_writer_at_random(path, rng.uniform(0.0, 1.0))
        report = verify_session(path)
        assert not report["ok"]  # cut short, and verify says so
        assert written - 12 <= report["ticks"] <= written + 1, (k, written, report)
        with open_session(path) as s:  # readable as it is, before any repair
            assert s.mic(0).shape == (report["ticks"] * 1024,)
            assert [f.audio[0, 0] for f in s.frames()] == pytest.approx(
                [np.float32(np.random.default_rng(0).standard_normal((32, 1024))[0, 0]) + i for i in range(s.n_ticks)]
            )
        fixed = verify_session(path, repair=True)
        assert fixed["repaired"] and fixed["ok"], fixed
        assert fixed["ticks"] == report["ticks"]
        meta = json.loads((path / "session.json").read_text())
        assert meta["status"] == "repaired" and meta["ticks"] == report["ticks"]
        assert meta["labels"] == (
            [{"label": "knocking", "start_s": 0.0, "end_s": meta["seconds"]}] if meta["ticks"] else []
        )
        h5py.File(path / "audio.h5", "r").close()  # now opens the ordinary way (Acoular's way)
        assert verify_session(path)["ok"]


def test_verify_detects_damaged_audio_and_repair_keeps_the_intact_part(tmp_path):
    write_session(tmp_path / "s", n=36)
    with h5py.File(tmp_path / "s" / "audio.h5", "r+") as f:
        f["time_data"][20 * 1024 + 5, 7] += 1.0  # damage tick 20
        frame3 = f["video_frames"][3]
        f["video_jpeg"][frame3["offset"] + 700] ^= 0x55  # and the JPEG of tick 3
    r = run_cli("verify", str(tmp_path / "s"), "--json")
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert any("checksum mismatch from tick 20" in p for p in report["problems"])
    assert any("1 video frames fail their checksum (first 3)" in p for p in report["problems"])
    r = run_cli("verify", str(tmp_path / "s"), "--repair", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["ticks"] == 20
    with open_session(tmp_path / "s") as s:
        assert s.n_ticks == 20 and s.n_video_frames == 19 and s.meta["seconds"] == pytest.approx(20 / 12)
        assert s.ticks["video_frame"][3] == -1 and s.video_index["tick"][3] == 4
        s.video_frame(3)  # decodes


def test_verify_of_a_good_session_says_ok(tmp_path):
    write_session(tmp_path / "s", n=12)
    r = run_cli("verify", str(tmp_path / "s"))
    assert r.returncode == 0 and "ok" in r.stderr
    r = run_cli("verify", str(tmp_path / "nothing"))
    assert r.returncode == 2 and "no session" in r.stderr
