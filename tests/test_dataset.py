"""make-dataset: simulated sessions with MFCC volumes, a manifest, and leak-free splits."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from conftest import run_cli

from dualcam_rt.errors import BadInput
from dualcam_rt.geometry import get_geometry
from dualcam_rt.labels import CLASSES
from dualcam_rt.pipelines.dataset import PRESETS, make_dataset, session_specs
from dualcam_rt.sessions import open_session
from dualcam_rt.sessions.manifest import assign_splits, chunk_split


def test_presets_have_the_papers_shape():
    paper = session_specs(PRESETS["paper"])
    assert len(paper) == 378 and len({s["id"] for s in paper}) == 378
    assert Counter(s["label"] for s in paper) == {c: 27 for c in CLASSES}
    assert all(30 * 12 <= s["ticks"] <= 60 * 12 for s in paper)
    assert len(session_specs(PRESETS["small"])) == 378
    ci = session_specs(PRESETS["ci"])
    assert {s["scenario"] for s in ci} == {1, 2, 3} and {s["label"] for s in ci} == set(CLASSES)
    assert session_specs(PRESETS["paper"], seed=3) == session_specs(PRESETS["paper"], seed=3)


def test_splits_never_put_one_sequence_or_one_subject_in_two_splits():
    entries = [{"id": s["id"], "label": s["label"], "subject": s["subject"]} for s in session_specs(PRESETS["paper"])]
    assign_splits(entries)
    counts = Counter(e["split"] for e in entries)
    assert counts["train"] / 378 == pytest.approx(0.8, abs=0.03)
    assert counts["val"] == counts["test"] == 42  # 3 of the 27 sequences of each class
    for c in CLASSES:
        assert Counter(e["split"] for e in entries if e["label"] == c) == {"train": 21, "val": 3, "test": 3}
    by_subject = {}
    for e in entries:
        by_subject.setdefault(e["subject"], set()).add(e["subject_split"])
    assert all(len(v) == 1 for v in by_subject.values())
    assert Counter(v.pop() for v in by_subject.values()) == {"train": 7, "val": 1, "test": 1}


def test_official_chunk_split_covers_every_second_once():
    manifest = {"sessions": [{"id": "a", "seconds": 25.0}, {"id": "b", "seconds": 40.0}]}
    chunks = chunk_split(manifest)
    assert sorted((c["id"], c["start_s"]) for c in chunks) == [
        ("a", 0),
        ("a", 10),
        ("a", 20),
        ("b", 0),
        ("b", 10),
        ("b", 20),
        ("b", 30),
    ]
    assert sum(c["end_s"] - c["start_s"] for c in chunks) == 65.0
    assert chunks == chunk_split(manifest)


@pytest.mark.slow
def test_make_dataset_writes_sessions_with_mfcc_volumes_and_a_manifest(tmp_path):
    classes = ("typing",)
    manifest = make_dataset(tmp_path / "ds", "ci", workers=2, geometry=get_geometry(), scenarios=(1,), classes=classes)
    assert len(manifest["sessions"]) == 3  # 1 scenario x 1 class x 3 subjects
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text()) == manifest
    assert manifest["classes"] == list(CLASSES)
    for e in manifest["sessions"]:
        assert e["split"] in ("train", "val", "test") and e["subject_split"] in ("train", "val", "test")
        with open_session(tmp_path / "ds" / e["path"]) as s:
            assert (s.n_ticks, s.channels, s.n_video_frames) == (12, 1, 12)
            m = s.mfcc()
            assert m.shape == (12, 36, 48, 12) and m.dtype == np.float32 and np.isfinite(m).all()
            assert s.meta["label"] == e["label"] and s.meta["class_index"] == CLASSES.index(e["label"])
    assert Counter(e["subject_split"] for e in manifest["sessions"]) == {"train": 1, "val": 1, "test": 1}
    # a second run keeps the finished sessions and rewrites the same manifest
    again = make_dataset(tmp_path / "ds", "ci", workers=1, geometry=get_geometry(), scenarios=(1,), classes=classes)
    assert [e | {"x": 0} for e in again["sessions"]] == [e | {"x": 0} for e in manifest["sessions"]]


def test_make_dataset_refuses_an_unknown_preset(tmp_path):
    with pytest.raises(BadInput, match="unknown preset"):
        make_dataset(tmp_path / "ds", "huge", geometry=get_geometry())
    r = run_cli("make-dataset", "--out", str(tmp_path / "ds"), "--preset", "huge")
    assert r.returncode == 2 and "unknown preset" in r.stderr


def test_make_dataset_never_mixes_two_datasets_in_one_directory(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "manifest.json").write_text(json.dumps({"preset": "small", "config": {}, "seed": 0}))
    r = run_cli("make-dataset", "--out", str(tmp_path / "ds"), "--preset", "ci")
    assert r.returncode == 2 and "already holds the dataset of preset 'small'" in r.stderr
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["manifest.json"]
