"""import-tfrecords: the published dataset's GZIP TFRecords become sessions, without TensorFlow.

The TFRecords are written here by a small encoder of the same schema as the official code
(tf.train.SequenceExample with int64 context and bytes feature lists)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import struct

import numpy as np
import pytest
from conftest import run_cli

from dualcam_rt.errors import BadInput
from dualcam_rt.labels import CLASSES
from dualcam_rt.sessions import open_session
from dualcam_rt.sessions.tfrecord import masked_crc32c, parse_sequence_example, read_records


# -- a minimal protobuf/TFRecord encoder (independent of the decoder under test) ----------------
def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:  # length-delimited
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def int64_feature(*values: int) -> bytes:
    return field(3, field(1, b"".join(varint(v) for v in values)))  # Int64List, packed


def bytes_feature(value: bytes) -> bytes:
    return field(1, field(1, value))


def float_feature(*values: float) -> bytes:
    return field(2, field(1, struct.pack(f"<{len(values)}f", *values)))


def sequence_example(context: dict[str, bytes], lists: dict[str, list[bytes]]) -> bytes:
    ctx = b"".join(field(1, field(1, k.encode()) + field(2, v)) for k, v in context.items())
    fl = b"".join(
        field(1, field(1, k.encode()) + field(2, b"".join(field(1, f) for f in feats))) for k, feats in lists.items()
    )
    return field(1, ctx) + field(2, fl)


def tfrecord(records: list[bytes]) -> bytes:
    out = b""
    for r in records:
        header = struct.pack("<Q", len(r))
        out += header + struct.pack("<I", masked_crc32c(header)) + r + struct.pack("<I", masked_crc32c(r))
    return out


def one_second(action: int, location: int, subject: int, rng) -> tuple[bytes, dict]:
    mfcc = rng.standard_normal((12, 36, 48, 12)).astype("<f4")
    audio = rng.integers(-(2**20), 2**20, (12, 1, 1024)).astype("<i4")
    video = np.zeros((12, 480, 640, 3), np.uint8)
    for i in range(12):
        video[i, :, :, :] = (20 * i, 100, 200 - 10 * i)
    context = {
        "action": int64_feature(action),
        "location": int64_feature(location),
        "subject": int64_feature(subject),
        "audio_image/height": int64_feature(36),
        "audio_image/width": int64_feature(48),
        "audio_image/depth": int64_feature(12),
        "audio_data/mics": int64_feature(1),
        "audio_data/samples": int64_feature(1024),
        "video/height": int64_feature(480),
        "video/width": int64_feature(640),
        "video/depth": int64_feature(3),
    }
    lists = {
        "audio/image": [bytes_feature(m.tobytes()) for m in mfcc],
        "audio/data": [bytes_feature(a.tobytes()) for a in audio],
        "video/image": [bytes_feature(v.tobytes()) for v in video],
    }
    return sequence_example(context, lists), {"mfcc": mfcc, "audio": audio, "video": video}


def write_published_layout(root, sequences: dict[tuple[int, int, int], int], seed: int = 0) -> dict:
    """GZIP TFRecords at Location_0L/Subject_0S/Action_0AA/Data_0NN.tfrecord; returns what was written."""
    rng = np.random.default_rng(seed)
    written = {}
    for (loc, subj, action), seconds in sequences.items():
        d = root / f"Location_{loc:02d}" / f"Subject_{subj:02d}" / f"Action_{action:03d}"
        d.mkdir(parents=True)
        parts = []
        for n in range(seconds):
            record, arrays = one_second(action, loc, subj, rng)
            (d / f"Data_{n + 1:03d}.tfrecord").write_bytes(gzip.compress(tfrecord([record])))
            parts.append(arrays)
        written[(loc, subj, action)] = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return written


def test_decoder_reads_back_what_the_encoder_wrote(tmp_path):
    ctx = {"a": int64_feature(7, -3, 2**40), "b": float_feature(1.5, -2.0)}
    lists = {"x": [bytes_feature(b"one"), bytes_feature(b"")], "y": [int64_feature(5)]}
    (tmp_path / "r.tfrecord").write_bytes(gzip.compress(tfrecord([sequence_example(ctx, lists)] * 2)))
    records = list(read_records(tmp_path / "r.tfrecord"))
    assert len(records) == 2
    context, feature_lists = parse_sequence_example(records[0])
    assert context == {"a": [7, -3, 2**40], "b": [1.5, -2.0]}
    assert feature_lists == {"x": [[b"one"], [b""]], "y": [[5]]}


def test_corrupt_tfrecord_is_a_clear_error(tmp_path):
    record, _ = one_second(0, 0, 0, np.random.default_rng(0))
    data = bytearray(tfrecord([record]))
    data[100] ^= 0xFF
    (tmp_path / "bad.tfrecord").write_bytes(bytes(data))
    with pytest.raises(BadInput, match="CRC mismatch"):
        list(read_records(tmp_path / "bad.tfrecord"))


def test_import_turns_each_published_sequence_into_a_session(tmp_path):
    src = tmp_path / "published"
    written = write_published_layout(src, {(0, 1, 3): 2, (2, 0, 13): 1})
    r = run_cli("import-tfrecords", str(src), "--out", str(tmp_path / "sessions"))
    assert r.returncode == 0, r.stderr
    assert importlib.util.find_spec("tensorflow") is None  # imported without TensorFlow installed
    manifest = json.loads((tmp_path / "sessions" / "manifest.json").read_text())
    assert [e["id"] for e in manifest["sessions"]] == [f"sc1_s1_{CLASSES[3]}", f"sc3_s0_{CLASSES[13]}"]
    e = manifest["sessions"][0]
    assert (e["label"], e["class_index"], e["scenario"], e["subject"], e["seconds"]) == (CLASSES[3], 3, 1, 1, 2.0)
    assert all(x["split"] in ("train", "val", "test") for x in manifest["sessions"])
    with open_session(tmp_path / "sessions" / e["path"]) as s:
        w = written[(0, 1, 3)]
        assert s.n_ticks == 24 and s.channels == 1 and s.n_video_frames == 24
        np.testing.assert_array_equal(s.mfcc(), w["mfcc"])
        np.testing.assert_array_equal(s.mic(0), w["audio"].reshape(-1).astype(np.float32))
        assert np.abs(s.video_frame(13).astype(int) - w["video"][13].astype(int)).max() <= 3
        assert s.labels == [{"label": CLASSES[3], "start_s": 0.0, "end_s": 2.0}]
        assert s.meta["source"]["path"] == "Location_00/Subject_01/Action_003"
    assert run_cli("verify", str(tmp_path / "sessions" / e["path"])).returncode == 0


def test_import_of_a_directory_without_tfrecords_says_so(tmp_path):
    r = run_cli("import-tfrecords", str(tmp_path), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "no .tfrecord files" in r.stderr
