"""The manifest of a dataset of sessions: one entry per session, the splits, and how they were made.

``make-dataset`` (simulated sessions) and ``import-tfrecords`` (the published dataset) both write
``<dataset>/manifest.json`` with ``write_manifest``; training reads it back (docs/sessions.md).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from ..labels import CLASSES
from .format import META_FILE, write_json_atomic
from .writer import utc_now

MANIFEST_FILE = "manifest.json"
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_SEED = 42  # the official code's shuffle seed


def manifest_entry(path: Path, root: Path, meta: dict) -> dict:
    """The manifest entry of the session at ``path`` (inside dataset ``root``) from its metadata."""
    return {
        "id": meta["id"],
        "path": str(path.relative_to(root)),
        "label": meta["label"],
        "class_index": meta["class_index"],
        "scenario": meta["scenario"],
        "subject": meta["subject"],
        "seconds": meta["seconds"],
        "ticks": meta["ticks"],
        "channels": meta["channels"],
        "mfcc": bool(meta.get("mfcc")),
    }


def assign_splits(entries: list[dict], seed: int = SPLIT_SEED) -> dict:
    """Set each entry's ``split`` and ``subject_split``; returns how they were made.

    ``split``: whole sequences, 80/10/10 within each class (shuffled with ``seed``), so one
    sequence never lands in two splits. ``subject_split``: whole subjects, so no test subject
    was ever seen in training (with 9 subjects: 7 train, 1 val, 1 test).
    """
    rng = random.Random(seed)
    by_class: dict[str, list[dict]] = {}
    for e in sorted(entries, key=lambda e: e["id"]):
        by_class.setdefault(e["label"], []).append(e)
    for group in by_class.values():
        rng.shuffle(group)
        n_val, n_test = _held_out(len(group))
        for i, e in enumerate(group):
            e["split"] = "val" if i < n_val else "test" if i < n_val + n_test else "train"
    subjects = sorted({e["subject"] for e in entries})
    rng.shuffle(subjects)
    n_val, n_test = _held_out(len(subjects))
    subject_split = {
        s: "val" if i < n_val else "test" if i < n_val + n_test else "train" for i, s in enumerate(subjects)
    }
    for e in entries:
        e["subject_split"] = subject_split[e["subject"]]
    return {
        "split": f"whole sequences, {SPLIT_FRACTIONS} per class, shuffled with seed {seed}",
        "subject_split": {
            "subjects": {str(k): v for k, v in sorted(subject_split.items())},
            "how": "whole subjects; no subject in two splits",
        },
        "chunk_split": "official-code style (1-s records in 10-s chunks, shuffled with seed 42, 80/10/10 "
        "over chunks; leaks neighbouring chunks of a sequence across splits): "
        "dualcam_rt.sessions.manifest.chunk_split(manifest)",
    }


def _held_out(n: int) -> tuple[int, int]:
    """(val, test) counts for a group of n: 10 % each, at least one each when n >= 3."""
    if n < 3:
        return 0, 0
    return max(1, round(n * SPLIT_FRACTIONS[1])), max(1, round(n * SPLIT_FRACTIONS[2]))


def chunk_split(manifest: dict, chunk_s: float = 10.0, seed: int = SPLIT_SEED) -> list[dict]:
    """The official code's split, for comparability: each sequence cut into ``chunk_s`` chunks,
    all chunks shuffled with ``seed`` and split 80/10/10 -- so one sequence spans several splits."""
    chunks = []
    for e in sorted(manifest["sessions"], key=lambda e: e["id"]):
        start = 0.0
        while start < e["seconds"] - 1e-9:
            chunks.append({"id": e["id"], "start_s": start, "end_s": min(start + chunk_s, e["seconds"])})
            start += chunk_s
    random.Random(seed).shuffle(chunks)
    n_train = round(len(chunks) * SPLIT_FRACTIONS[0])
    n_val = round(len(chunks) * SPLIT_FRACTIONS[1])
    for i, c in enumerate(chunks):
        c["split"] = "train" if i < n_train else "val" if i < n_train + n_val else "test"
    return chunks


def finished_session(path: Path) -> dict | None:
    """The metadata of a session that was completely written earlier, else None."""
    try:
        meta = json.loads((path / META_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return meta if meta.get("status") == "complete" else None


def write_manifest(root: Path, fields: dict[str, Any], entries: list[dict]) -> dict:
    """Assign the splits of ``entries``, write ``root/manifest.json`` (``fields`` first, then the
    classes, creation time, splits and sessions) and return it."""
    how = assign_splits(entries)
    manifest = {**fields, "classes": list(CLASSES), "created_utc": utc_now(), "splits": how, "sessions": entries}
    write_json_atomic(Path(root) / MANIFEST_FILE, manifest)
    return manifest
