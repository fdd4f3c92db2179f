"""The sound bank: a real bank from the ci packages, and fake packages for what must never happen."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import run_cli

from dualcam_rt.errors import BadInput, NotFound
from dualcam_rt.sim.qrc import RccFile
from dualcam_rt.sim.soundbank import (
    CI_PACKAGES,
    SPLITS,
    MissingPackages,
    PackageRoots,
    SoundBank,
    Source,
    build_bank,
    licence_of,
)

RATE = 12_288


@pytest.fixture(scope="session")
def ci_bank(tmp_path_factory) -> tuple[Path, dict]:
    """The ci-preset bank built from the installed packages (see deploy/install-sound-sources.sh ci)."""
    out = tmp_path_factory.mktemp("bank")
    return out, build_bank(out, PackageRoots(tmp_path_factory.mktemp("no-unpacked")), "ci")


def _fake_package(
    root: Path, name: str, files: dict[str, np.ndarray | bytes], rate: int = 44_100, licence: str = "CC0-1.0"
) -> Path:
    """A package tree under ``root/name`` as dpkg -x leaves it: files plus a DEP-5 copyright file."""
    pkg = root / name
    doc = pkg / "usr/share/doc" / name
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: nobody\nLicense: GPL-2+\n\n"
        f"Files: sounds/claps/*\nCopyright: somebody\nLicense: {licence}\n"
    )
    for rel, content in files.items():
        path = pkg / "usr/share/sounds" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            sf.write(str(path), content, rate, subtype="PCM_16")
    return pkg


def _burst(rng: np.random.Generator, rate: int = 44_100, seconds: float = 0.15) -> np.ndarray:
    """A clap-like decaying noise burst, padded with quiet noise."""
    n = int(seconds * rate)
    burst = rng.standard_normal(n) * np.exp(-np.arange(n) / (0.02 * rate))
    pad = 1e-4 * rng.standard_normal(int(0.1 * rate))
    return np.concatenate([pad, 0.5 * burst, pad])


CLAPS = Source("clapping", "fake-claps", ("usr/share/sounds/claps/*.wav",), "real")


def test_ci_bank_holds_real_events_at_the_sensor_rate(ci_bank):
    out, manifest = ci_bank
    assert {r["package"] for r in manifest["recordings"]} == set(CI_PACKAGES)
    assert manifest["summary"]["clapping"]["recordings"] >= 3 and manifest["summary"]["ambience"]["recordings"] >= 1
    for e in manifest["events"]:
        audio, rate = sf.read(str(out / e["file"]))  # read back by libsndfile, not by the bank's loader
        assert rate == RATE and audio.ndim == 1
        assert abs(len(audio) / RATE - e["duration_s"]) < 1e-3
        assert 0.98 < np.max(np.abs(audio)) <= 0.991  # peak-normalised
    for r in manifest["recordings"]:
        info = sf.info(r["path"])
        assert (r["original_rate"], r["channels"]) == (info.samplerate, info.channels)
        assert abs(r["duration_s"] - info.duration) < 1e-3


def test_no_recording_has_events_in_two_splits(ci_bank):
    _, manifest = ci_bank
    split_of = {r["id"]: r["split"] for r in manifest["recordings"]}
    for e in manifest["events"]:
        assert e["split"] == split_of[e["recording"]]
    for cls, s in manifest["summary"].items():
        if s["recordings"] >= 3:  # every class with three recordings is tested on one it never trained on
            assert s["test_recordings"] >= 1 and s["val_recordings"] >= 1, cls
        assert sum(s[f"{k}_recordings"] for k in SPLITS) == s["recordings"]


def test_each_file_carries_the_licence_its_copyright_file_gives(ci_bank):
    _, manifest = ci_bank
    lic = {Path(r["path"]).name + "@" + r["package"]: r["licence"] for r in manifest["recordings"]}
    assert lic["camera-shutter.oga@sound-theme-freedesktop"] == "CC-BY-SA-3.0"
    assert lic["trash-empty.oga@sound-theme-freedesktop"] == "CC-BY-3.0"
    assert lic["trash-empty.oga@yaru-theme-sound"] == "CC-BY-SA-4.0"
    assert lic["applause01.ogg@lmms-common"] == "GPL-2+"


def test_single_recording_classes_are_train_only_and_say_so(ci_bank):
    _, manifest = ci_bank
    single = [c for c, s in manifest["summary"].items() if s["recordings"] == 1]
    assert single  # the ci preset has one snapping and one clicking recording
    for cls in single:
        assert manifest["summary"][cls]["train_recordings"] == 1
        assert "train only" in manifest["notes"][cls]


def test_rebuild_with_the_same_inputs_rewrites_nothing(ci_bank, tmp_path):
    out, _ = ci_bank
    copy = tmp_path / "bank"
    shutil.copytree(out, copy)
    before = {p: p.stat().st_mtime_ns for p in copy.rglob("*")}
    again = build_bank(copy, PackageRoots(tmp_path / "none"), "ci")
    assert again == json.loads((out / "manifest.json").read_text())
    assert (copy / "manifest.json").read_bytes() == (out / "manifest.json").read_bytes()
    assert {p: p.stat().st_mtime_ns for p in copy.rglob("*")} == before
    stale = copy / "events/typing/0123456789abcdef0123.flac"  # left by a bigger preset's build
    stale.parent.mkdir()
    shutil.copy(next(copy.glob("events/clapping/*.flac")), stale)
    build_bank(copy, PackageRoots(tmp_path / "none"), "ci")
    assert not stale.parent.exists()


def test_soundbank_hands_back_takes_at_peak_one_with_their_rows(ci_bank):
    out, manifest = ci_bank
    bank = SoundBank.open(out)
    takes = bank.takes("clapping", "train")
    assert len(takes) == manifest["summary"]["clapping"]["train_events"]
    assert all(t.audio.dtype == np.float32 and np.isclose(np.max(np.abs(t.audio)), 1.0) for t in takes)
    assert all(t.row["split"] == "train" and t.package == "lmms-common" and t.licence == "GPL-2+" for t in takes)
    assert {t.row["split"] for t in bank.ambience()} <= set(SPLITS) and bank.ambience()
    assert bank.summary()["clapping"]["recordings"] == manifest["summary"]["clapping"]["recordings"]
    with pytest.raises(BadInput, match="unknown class"):
        bank.takes("juggling")
    with pytest.raises(BadInput, match="unknown split"):
        bank.takes("clapping", "dev")


def test_opening_a_folder_without_a_bank_says_how_to_build_one(tmp_path):
    with pytest.raises(NotFound, match="soundbank build"):
        SoundBank.open(tmp_path)


def test_missing_packages_name_the_install_commands(tmp_path):
    roots = PackageRoots(tmp_path / "unpacked", system=tmp_path / "empty-system")
    with pytest.raises(MissingPackages) as err:
        build_bank(tmp_path / "bank", roots, "full")
    msg = str(err.value)
    assert "\n" not in msg
    assert "apt-get install -y --no-install-recommends" in msg and "hydrogen-drumkits" in msg
    assert f"apt-get download kpat && dpkg -x kpat_*.deb {tmp_path / 'unpacked'}/kpat" in msg
    assert "./usr/share/games/widelands/data/sound/*" in msg and "pip install --no-deps keebsound" in msg
    assert not (tmp_path / "bank").exists()


def test_corrupt_and_silent_files_are_skipped_counted_and_listed(tmp_path):
    rng = np.random.default_rng(1)
    _fake_package(
        tmp_path / "unpacked",
        "fake-claps",
        {
            "claps/a.wav": _burst(rng),
            "claps/b.wav": _burst(rng),
            "claps/c.wav": _burst(rng),
            "claps/broken.wav": b"RIFF\x10\x00\x00\x00WAVEfmt garbage",
            "claps/silent.wav": np.zeros(4410),
        },
    )
    manifest = build_bank(tmp_path / "bank", PackageRoots(tmp_path / "unpacked", tmp_path / "sys"), sources=[CLAPS])
    skipped = {Path(s["path"]).name: s["reason"] for s in manifest["skipped"]}
    assert set(skipped) == {"broken.wav", "silent.wav"} and "silent" in skipped["silent.wav"]
    assert manifest["summary"]["clapping"]["recordings"] == 3
    assert {r["licence"] for r in manifest["recordings"]} == {"CC0-1.0"}  # the last matching paragraph wins


def test_one_take_at_several_gains_or_in_two_packages_is_kept_once(tmp_path):
    rng = np.random.default_rng(2)
    take, other = _burst(rng), _burst(rng)
    _fake_package(
        tmp_path / "u",
        "fake-claps",
        {"claps/take-hard.wav": take, "claps/take-soft.wav": 0.1 * take, "claps/other.wav": other},
    )
    _fake_package(tmp_path / "u", "fake-claps-2", {"claps/copy.wav": take})  # the same recording, another package
    sources = [CLAPS, Source("clapping", "fake-claps-2", ("usr/share/sounds/claps/*.wav",), "real")]
    manifest = build_bank(tmp_path / "bank", PackageRoots(tmp_path / "u", tmp_path / "sys"), sources=sources)
    kept = sorted(Path(r["path"]).name for r in manifest["recordings"])
    assert kept == ["other.wav", "take-hard.wav"]
    dup = {Path(d["path"]).name: (Path(d["duplicate_of"]).name, d["reason"]) for d in manifest["duplicates"]}
    assert dup["take-soft.wav"] == ("take-hard.wav", "same take at another gain")
    assert dup["copy.wav"][0] == "take-hard.wav"


def test_a_long_recording_is_cut_at_its_silences_and_stays_in_one_split(tmp_path):
    rng = np.random.default_rng(3)
    quiet = 1e-4 * rng.standard_normal(int(0.5 * 44_100))
    long = np.concatenate([quiet, _burst(rng), quiet, _burst(rng), quiet, _burst(rng), quiet])
    _fake_package(tmp_path / "u", "fake-claps", {"claps/three.wav": long})
    manifest = build_bank(tmp_path / "bank", PackageRoots(tmp_path / "u", tmp_path / "sys"), sources=[CLAPS])
    onsets = [e["onset_s"] for e in manifest["events"]]
    burst_s = len(_burst(rng)) / 44_100
    truth = [0.5 + 0.1 + k * (burst_s + 0.5) for k in range(3)]  # each burst starts 0.1 s into its padding
    assert len(onsets) == 3 and np.allclose(onsets, truth, atol=0.03)
    assert all(0.1 < e["duration_s"] < 0.4 for e in manifest["events"])
    assert manifest["summary"]["clapping"]["train_events"] == 3 and manifest["notes"]["clapping"].endswith(
        "come from augmented or procedural events"
    )


def test_a_recording_with_most_of_a_class_stays_in_train(tmp_path):
    rng = np.random.default_rng(4)
    quiet = 1e-4 * rng.standard_normal(int(0.5 * 44_100))
    many = np.concatenate([quiet, *[np.concatenate([_burst(rng), quiet]) for _ in range(5)]])
    _fake_package(
        tmp_path / "u", "fake-claps", {"claps/many.wav": many, **{f"claps/one{k}.wav": _burst(rng) for k in range(4)}}
    )
    manifest = build_bank(tmp_path / "bank", PackageRoots(tmp_path / "u", tmp_path / "sys"), sources=[CLAPS])
    split = {Path(r["path"]).name: (r["split"], r["events"]) for r in manifest["recordings"]}
    assert split["many.wav"] == ("train", 5)
    assert sorted(s for s, _ in split.values()) == ["test", "train", "train", "train", "val"]


def test_dep5_licence_lookup_uses_the_kit_archive_for_hydrogen(tmp_path):
    doc = tmp_path / "usr/share/doc/hydrogen-drumkits"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "Files:\n drumkits/Gimme?A?Hand?1.0.h2drumkit\nCopyright: G\nLicense: GPL-2\n\n"
        "Files: drumkits/Audiophob.h2drumkit\nCopyright: A\nLicense: CC0\n"
    )
    kit = "usr/share/hydrogen/data/drumkits"
    assert licence_of("hydrogen-drumkits", tmp_path, f"{kit}/Gimme A Hand 1.0/HandClap-Hard.wav") == "GPL-2"
    assert licence_of("hydrogen-drumkits", tmp_path, f"{kit}/Audiophob/29800__x.wav") == "CC0"


# ------------------------------------------------------------------------------------------ qrc


def _rcc(files: dict[str, bytes], compress: set[str]) -> bytes:
    """A version-3 Qt resource file holding ``files`` ("dir/name": bytes), laid out as Qt's
    rcc documents it (children of a directory sorted, nodes numbered breadth-first)."""
    tree: dict = {}
    for path, data in files.items():
        node = tree
        *dirs, leaf = path.split("/")
        for d in dirs:
            node = node.setdefault(d, {})
        node[leaf] = data
    names, payload, nodes = bytearray(), bytearray(), []

    def name_offset(name: str) -> int:
        off = len(names)
        names.extend(struct.pack(">HI", len(name), 0) + name.encode("utf-16-be"))
        return off

    queue = [("", tree, None)]
    nodes.append(None)  # root, filled below
    index = {id(tree): 0}
    while queue:
        name, node, _ = queue.pop(0)
        children = sorted(node.items())
        first = len(nodes)
        nodes[index[id(node)]] = (name_offset(name) if name else 0, 2, len(children), first)
        for cname, child in children:
            if isinstance(child, dict):
                index[id(child)] = len(nodes)
                nodes.append(None)
                queue.append((cname, child, None))
            else:
                full = next(p for p, d in files.items() if d is child and p.endswith(cname))
                blob = struct.pack(">I", len(child)) + zlib.compress(child) if full in compress else child
                nodes.append((name_offset(cname), 1 if full in compress else 0, 0, len(payload)))
                payload.extend(struct.pack(">I", len(blob)) + blob)
    tree_bytes = b"".join(
        struct.pack(">IHIIQ", n, f, a if f & 2 else 0, b, 0) if f & 2 else struct.pack(">IHHHIQ", n, f, 0, 0, b, 0)
        for n, f, a, b in nodes
    )
    head = 24
    return (
        b"qres"
        + struct.pack(">IIIII", 3, head, head + len(tree_bytes), head + len(tree_bytes) + len(payload), 0)
        + tree_bytes
        + bytes(payload)
        + bytes(names)
    )


def test_qrc_reads_plain_and_compressed_entries_in_nested_folders(tmp_path):
    files = {"gcompris/src/a/knock.wav": b"RIFF-one", "gcompris/src/b/castanets.ogg": b"OggS" * 50, "top.txt": b"t"}
    path = tmp_path / "x.rcc"
    path.write_bytes(_rcc(files, compress={"gcompris/src/b/castanets.ogg"}))
    rcc = RccFile(path)
    assert sorted(rcc.entries) == sorted(files)
    assert all(rcc.read(name) == data for name, data in files.items())
    with pytest.raises(BadInput, match="no resource"):
        rcc.read("missing.wav")


def test_qrc_refuses_a_file_that_is_not_a_resource(tmp_path):
    (tmp_path / "bad.rcc").write_bytes(b"not a qt resource at all")
    with pytest.raises(BadInput, match="not a Qt resource"):
        RccFile(tmp_path / "bad.rcc")
    good = _rcc({"a/b.wav": b"x" * 100}, compress=set())
    (tmp_path / "cut.rcc").write_bytes(good[:30])
    with pytest.raises(BadInput, match="corrupt"):
        RccFile(tmp_path / "cut.rcc")


# ------------------------------------------------------------------------------------------ CLI


def test_cli_builds_the_ci_bank_and_prints_its_table(tmp_path):
    r = run_cli(
        "soundbank", "build", "--preset", "ci", "--out", str(tmp_path / "bank"), "--sources", str(tmp_path / "u")
    )
    assert r.returncode == 0, r.stderr
    assert "clapping" in r.stderr and "manifest.json" in r.stderr
    assert json.loads((tmp_path / "bank/manifest.json").read_text())["preset"] == "ci"


def test_cli_missing_packages_is_one_line_and_exit_2(tmp_path):
    r = run_cli(
        "soundbank",
        "build",
        "--preset",
        "ci",
        "--out",
        str(tmp_path / "bank"),
        "--sources",
        str(tmp_path / "u"),
        "--system-root",
        str(tmp_path / "empty"),
    )
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "apt-get install -y --no-install-recommends" in lines[0] and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------------ testset


def test_testset_uses_test_takes_in_unseen_rooms_and_repeats_with_its_seed(ci_bank, tmp_path):
    from dualcam_rt.sim.rooms import ROOMS
    from dualcam_rt.sim.testset import write_testset

    out, manifest = ci_bank
    bank = SoundBank.open(out)
    a = write_testset(bank, tmp_path / "a", clips_per_class=2, seed=5, empty_clips=2)
    rows = (tmp_path / "a/labels.csv").read_text().splitlines()
    assert rows[0] == "file,class" and len(rows) - 1 == len(a["clips"])
    with_test = [c for c, s in manifest["summary"].items() if c != "ambience" and s["test_events"]]
    assert sorted({c["class"] for c in a["clips"]} - {""}) == sorted(with_test)
    assert sum(c["class"] == "" for c in a["clips"]) == 4  # 2 ambience-only + 2 silence: "no action"
    assert set(a["classes_without_test_takes"]) == {
        c for c, s in manifest["summary"].items() if c != "ambience" and not s["test_events"]
    }
    split_of = {e["file"]: e["split"] for e in manifest["events"]}
    used = [f for c in a["clips"] for f in c.get("takes", [])] + [c["ambience"] for c in a["clips"] if "ambience" in c]
    assert used and all(split_of[f] == "test" for f in used)
    for c in a["clips"]:
        audio, rate = sf.read(str(tmp_path / "a" / c["file"]))
        assert rate == RATE and audio.ndim == 1 and len(audio) == 5 * RATE
        if "room" in c:  # smaller and drier than every scenario room
            assert all(s < min(ROOMS[k].room_dim_m[i] for k in ROOMS) for i, s in enumerate(c["room"]["size_m"]))
            assert c["room"]["rt60_s"] < ROOMS[2].rt60_s
        level = 20 * np.log10(np.sqrt(np.mean(audio**2)))
        assert level < -50 if c["file"].startswith("silence") else level > -70  # never normalised to full scale
    write_testset(bank, tmp_path / "b", clips_per_class=2, seed=5, empty_clips=2)
    assert all(
        (tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes()
        for n in ("labels.csv", *[c["file"] for c in a["clips"]])
    )
    write_testset(bank, tmp_path / "c", clips_per_class=2, seed=6, empty_clips=2)
    assert (tmp_path / "a" / a["clips"][0]["file"]).read_bytes() != (
        tmp_path / "c" / a["clips"][0]["file"]
    ).read_bytes()


def test_cli_testset_without_a_bank_says_how_to_build_one(tmp_path):
    r = run_cli("soundbank", "testset", "--out", str(tmp_path / "t"), "--bank", str(tmp_path / "nobank"))
    assert r.returncode == 2 and "soundbank build" in r.stderr and "Traceback" not in r.stderr


def test_cli_bank_under_a_file_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "file").write_text("x")
    r = run_cli(
        "soundbank", "build", "--preset", "ci", "--out", str(tmp_path / "file/bank"), "--sources", str(tmp_path / "u")
    )
    assert r.returncode == 2 and "cannot write the sound bank" in r.stderr and "Traceback" not in r.stderr
