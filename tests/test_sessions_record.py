"""End to end: `dualcam-rt record` from sim:// and from dualcam:// (simulate-device), killed or not,
then verify, replay and Acoular."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
from conftest import CLI, free_port, run_cli

from dualcam_rt.sessions import open_session, verify_session

SIM = "sim://?scenario=1&seed=5&label=knocking&subject=3"


def _open_in_acoular(path):
    import acoular

    acoular.config.global_caching = "none"
    ts = acoular.TimeSamples(file=str(path / "audio.h5"))
    try:
        return ts.num_samples, ts.num_channels, ts.sample_freq
    finally:
        ts._h5f.close()  # Acoular keeps the file open until exit otherwise


@pytest.mark.slow
def test_record_from_sim_then_verify_replay_and_open_in_acoular(tmp_path):
    r = run_cli("record", SIM, "--seconds", "2", "--out", str(tmp_path), "--name", "take1", "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert (summary["frames"], summary["video_frames"], summary["drops"]) == (24, 24, 0)
    assert summary["bytes"] > 24 * 128 * 1024 * 4 and summary["status"] == "complete"
    session = tmp_path / "take1"
    meta = json.loads((session / "session.json").read_text())
    assert (meta["label"], meta["class_index"], meta["scenario"], meta["subject"]) == ("knocking", 7, 1, 3)
    assert meta["device"]["kind"] == "sim" and meta["software_version"] and len(meta["geometry"]["mics"]) == 128
    assert run_cli("verify", str(session)).returncode == 0
    assert _open_in_acoular(session) == (24 * 1024, 128, 12288.0)
    r = run_cli("replay", str(session), "--no-localise", "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    timeline = json.loads(r.stdout)
    assert timeline["frames"] == 24 and timeline["session"]["label"] == "knocking"


def test_a_session_records_the_dead_channels_the_settings_say_and_replay_images_with_them(tmp_path):
    env = {"DUALCAM_DEAD_CHANNELS": "[3, 79, 105]"}
    r = run_cli("record", SIM, "--seconds", "0.25", "--out", str(tmp_path), "--name", "dead3", env=env)
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "dead3" / "session.json").read_text())
    assert meta["geometry"]["dead_channels"] == [3, 79, 105]
    from dualcam_rt.geometry import get_geometry
    from dualcam_rt.sessions.reader import recorded_geometry

    assert recorded_geometry(meta, get_geometry()).dead_channels == (3, 79, 105)  # what replay and export use


def test_record_creates_a_missing_out_folder_and_its_parents(tmp_path):
    out = tmp_path / "not" / "there" / "yet"
    r = run_cli("record", SIM, "--seconds", "0.5", "--channels", "0", "--out", str(out), "--name", "t1", "--json")
    assert r.returncode == 0, r.stderr
    session = open_session(out / "t1")
    assert session.meta["status"] == "complete" and session.mic(0).shape == (6 * 1024,)
    (tmp_path / "a-file").write_text("not a folder")
    r = run_cli("record", SIM, "--seconds", "0.5", "--out", str(tmp_path / "a-file" / "sub"))
    assert r.returncode == 2 and "cannot create output directory" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_record_from_a_dualcam_served_by_simulate_device(tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [*CLI, "simulate-device", "--port", str(port), "--scenario", "2", "--seed", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        r = None
        for _ in range(60):  # the simulator builds its scene before it listens
            r = run_cli(
                "record",
                f"dualcam://127.0.0.1:{port}",
                "--seconds",
                "1.5",
                "--out",
                str(tmp_path),
                "--name",
                "wire",
                "--label",
                "hammering",
                "--scenario",
                "2",
                "--json",
                timeout=300,
            )
            if r.returncode == 0 or "already exists" in r.stderr:
                break
            for p in tmp_path.iterdir():  # a refused connection may have left an empty session
                subprocess.run(["rm", "-rf", str(p)], check=True)
            time.sleep(1)
        assert r.returncode == 0, r.stderr
    finally:
        server.terminate()
        server.wait(10)
    summary = json.loads(r.stdout)
    assert summary["frames"] == 18 and summary["drops"] == 0
    with open_session(tmp_path / "wire") as s:
        assert s.meta["device"]["kind"] == "dualcam" and s.channels == 128 and s.n_ticks == 18
        assert s.n_video_frames >= 15  # video arrives on its own clock; nearly every tick has a frame
        assert np.abs(s.mic(0)).max() > 0
    assert verify_session(tmp_path / "wire")["ok"]
    assert _open_in_acoular(tmp_path / "wire")[:2] == (18 * 1024, 128)


def _record_and_kill(out, name: str, delay_s: float, after_first_second: bool) -> int:
    """Run `dualcam-rt record sim://`, SIGKILL it after ``delay_s`` (counted from its first durable
    second, or from its start); returns the frames it had reported durable."""
    proc = subprocess.Popen(
        [*CLI, "record", SIM, "--seconds", "60", "--out", str(out), "--name", name],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    durable = [0]
    first = threading.Event()

    def read():
        for line in proc.stderr:
            if line.startswith("recorded "):
                durable[0] = int(line.split()[1])
                first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if after_first_second:
        assert first.wait(120), "the recorder never reported a second"
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reader.join(5)
    return durable[0]


@pytest.mark.slow
def test_recordings_killed_at_random_instants_stay_readable_and_are_repaired(tmp_path):
    rng = random.Random(7)
    for k in range(10):
        name = f"kill{k}"
        durable = _record_and_kill(tmp_path, name, rng.uniform(0, 2.0), after_first_second=k % 4 != 0)
        session = tmp_path / name
        if not session.exists():  # killed before it created anything: nothing was lost
            assert durable == 0
            continue
        before = verify_session(session)
        assert durable <= before["ticks"] <= durable + 12, (k, durable, before)  # no durable second lost
        fixed = verify_session(session, repair=True)
        assert fixed["ok"] and fixed["ticks"] == before["ticks"], fixed
        meta = json.loads((session / "session.json").read_text())
        assert meta["ticks"] == before["ticks"] and meta["status"] in ("repaired", "empty", "complete")
        if before["ticks"]:
            assert _open_in_acoular(session) == (before["ticks"] * 1024, 128, 12288.0)
            with open_session(session) as s:
                assert [f.index for f in s.frames()] == list(range(before["ticks"]))


@pytest.mark.slow
def test_record_stopped_with_sigterm_closes_the_session_cleanly(tmp_path):
    proc = subprocess.Popen(
        [*CLI, "record", SIM, "--seconds", "60", "--out", str(tmp_path), "--name", "stopped", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stderr:  # wait for the first durable second
        if line.startswith("recorded "):
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    summary = json.loads(out)
    assert summary["interrupted"] and summary["status"] == "complete" and summary["frames"] >= 12
    report = verify_session(tmp_path / "stopped")
    assert report["ok"] and report["ticks"] == summary["frames"]  # every received frame kept, nothing to repair
