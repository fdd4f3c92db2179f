"""The simulated dataset: sessions from ``dualcam_rt.sim.Scene``, a manifest and its splits.

Like the paper's: 3 scenarios x 14 classes x 9 subjects. Each session stores the video as JPEG,
microphone 0 (or all 128 channels with ``raw``), and the MFCC acoustic images (ticks, 36, 48, 12)
computed from all 128 channels by the shared beamformer and ``mfcc_volume`` -- the same code the
service runs, so training sees what serving sees.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import random
import shutil
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..frame import SensorFrame
from ..errors import BadInput
from ..geometry import BLOCK_SAMPLES, FPS
from ..labels import CLASSES, N_SUBJECTS, SCENARIOS
from .format import META_FILE, write_json_atomic
from .writer import SessionWriter, utc_now


@dataclass(frozen=True)
class Preset:
    """How big a dataset to generate."""

    scenarios: tuple[int, ...] = tuple(SCENARIOS)
    classes: tuple[str, ...] = CLASSES
    subjects: int = N_SUBJECTS
    min_seconds: float = 30.0  # each clip's length is drawn uniformly in [min, max], in whole ticks
    max_seconds: float = 60.0
    raw: bool = False  # store all 128 channels (6.3 MB/s) instead of microphone 0 only


PRESETS = {
    # the paper's size: 378 sequences of 30-60 s, about 3 h
    "paper": Preset(),
    # a CPU afternoon: 378 sequences of 6 s (about 40 min of sound, 27k MFCC volumes)
    "small": Preset(min_seconds=6.0, max_seconds=6.0),
    # for tests: every class and scenario, 3 subjects (so that every split has one), 1 s clips
    "ci": Preset(subjects=3, min_seconds=1.0, max_seconds=1.0),
}

SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_SEED = 42  # the official code's shuffle seed


def session_specs(preset: Preset, seed: int = 0) -> list[dict]:
    """One spec per session (id, scenario, subject, label, scene seed, ticks), in a fixed order."""
    rng = random.Random(seed)
    specs = []
    for scenario in preset.scenarios:
        for subject in range(preset.subjects):
            for label in preset.classes:
                seconds = rng.uniform(preset.min_seconds, preset.max_seconds)
                specs.append({"id": f"sc{scenario}_s{subject}_{label}", "scenario": scenario, "subject": subject,
                              "label": label, "seed": seed * 1_000_003 + len(specs),
                              "ticks": max(1, round(seconds * FPS)), "raw": preset.raw})
    return specs


@lru_cache(maxsize=1)
def _beamformer():
    """One beamformer per process: its steering matrices take seconds to build."""
    from ..dsp.beamform import Beamformer

    return Beamformer(backend="numpy")


def render_session(spec: dict, out_dir: str) -> dict:
    """Simulate and write one session; returns its manifest entry (without splits)."""
    from ..dsp.mfcc import mfcc_volume
    from ..sim import Scene

    scene = Scene(scenario=spec["scenario"], seed=spec["seed"], label=spec["label"], subject=spec["subject"])
    beamformer = _beamformer()
    path = Path(out_dir) / spec["id"]
    meta = {"label": spec["label"], "scenario": spec["scenario"], "subject": spec["subject"],
            "scene_seed": spec["seed"], "device": {"uri": f"sim://?scenario={spec['scenario']}&seed={spec['seed']}"
                                                   f"&label={spec['label']}&subject={spec['subject']}",
                                                   "kind": "sim", "simulated": True}}
    writer = SessionWriter(path, meta, channels=None if spec["raw"] else [0], mfcc=True)
    tick = 0
    while tick < spec["ticks"]:
        batch = [scene.next_tick() for _ in range(min(FPS, spec["ticks"] - tick))]
        mfcc = mfcc_volume(beamformer.images(np.stack([b.audio for b in batch])))  # (n, 36, 48, 12)
        for b, volume in zip(batch, mfcc):
            writer.write(SensorFrame(index=tick, first_sample=tick * BLOCK_SAMPLES, timestamp=tick / FPS,
                                     audio=b.audio, video=b.video, video_timestamp=tick / FPS, truth=b.truth),
                         mfcc=volume)
            tick += 1
    m = writer.close()
    return _entry(path, Path(out_dir), m)


def _entry(path: Path, root: Path, meta: dict) -> dict:
    return {"id": meta["id"], "path": str(path.relative_to(root)), "label": meta["label"],
            "class_index": meta["class_index"], "scenario": meta["scenario"], "subject": meta["subject"],
            "seconds": meta["seconds"], "ticks": meta["ticks"], "channels": meta["channels"],
            "mfcc": bool(meta.get("mfcc"))}


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
    subject_split = {s: "val" if i < n_val else "test" if i < n_val + n_test else "train"
                     for i, s in enumerate(subjects)}
    for e in entries:
        e["subject_split"] = subject_split[e["subject"]]
    return {"split": f"whole sequences, {SPLIT_FRACTIONS} per class, shuffled with seed {seed}",
            "subject_split": {"subjects": {str(k): v for k, v in sorted(subject_split.items())},
                              "how": "whole subjects; no subject in two splits"},
            "chunk_split": "official-code style (1-s records in 10-s chunks, shuffled with seed 42, 80/10/10 "
                           "over chunks; leaks neighbouring chunks of a sequence across splits): "
                           "dualcam_rt.sessions.dataset.chunk_split(manifest)"}


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


def _check_same_dataset(out: Path, preset: str, config: dict, seed: int) -> None:
    """Refuse to mix two datasets in one directory (sessions of the same name would be reused)."""
    path = out / "manifest.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise BadInput(f"{path} is not a manifest ({err}); use another --out") from None
    if (old.get("preset"), old.get("config"), old.get("seed")) != (preset, config, seed):
        raise BadInput(f"{out} already holds the dataset of preset {old.get('preset')!r} with other settings; "
                       "use another --out")


def _finished(path: Path) -> dict | None:
    """The metadata of a session that was completely written earlier, else None."""
    try:
        meta = json.loads((path / META_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return meta if meta.get("status") == "complete" else None


def make_dataset(out: str | Path, preset: str = "ci", workers: int = 2, raw: bool | None = None,
                 seed: int = 0, progress=None, **overrides) -> dict:
    """Generate the dataset into ``out`` (created) and write ``out/manifest.json``; returns it.

    Sessions already complete in ``out`` (from an interrupted earlier run with the same preset)
    are kept; half-written ones are generated again. ``overrides`` change preset fields.
    """
    if preset not in PRESETS:
        raise BadInput(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    config = replace(PRESETS[preset], **({"raw": raw} if raw is not None else {}), **overrides)
    bad = [c for c in config.classes if c not in CLASSES]
    if bad:
        raise BadInput(f"unknown classes {bad}")
    out = Path(out)
    if not out.parent.is_dir():
        raise BadInput(f"directory {out.parent} does not exist")
    out.mkdir(exist_ok=True)
    config_json = json.loads(json.dumps(asdict(config)))
    _check_same_dataset(out, preset, config_json, seed)
    specs = session_specs(config, seed)
    entries, todo = [], []
    for spec in specs:
        meta = _finished(out / spec["id"])
        if meta is not None:
            if meta.get("ticks") != spec["ticks"] or meta.get("scene_seed") != spec["seed"]:
                raise BadInput(f"{out / spec['id']} holds a different session; use another --out")
            entries.append(_entry(out / spec["id"], out, meta))
        else:
            if (out / spec["id"]).exists():
                shutil.rmtree(out / spec["id"])  # a session this generator left half-written
            todo.append(spec)
    task = progress.add_task(f"make-dataset {preset}", total=len(specs), completed=len(entries)) if progress else None
    if progress:
        progress.start()
    try:
        if workers > 1 and len(todo) > 1:
            _beamformer()  # built once here and inherited by the forked workers (it takes seconds)
            with mp.get_context("fork").Pool(min(workers, len(todo))) as pool:
                for entry in pool.imap_unordered(_render_star, [(s, str(out)) for s in todo]):
                    entries.append(entry)
                    if progress:
                        progress.advance(task)
        else:
            for spec in todo:
                entries.append(render_session(spec, str(out)))
                if progress:
                    progress.advance(task)
    finally:
        if progress:
            progress.stop()
    order = {s["id"]: i for i, s in enumerate(specs)}
    entries.sort(key=lambda e: order[e["id"]])
    how = assign_splits(entries)
    manifest = {"preset": preset, "classes": list(CLASSES), "created_utc": utc_now(), "seed": seed,
                "config": config_json, "splits": how, "sessions": entries}
    write_json_atomic(out / "manifest.json", manifest)
    return manifest


def _render_star(args: tuple[dict, str]) -> dict:
    return render_session(*args)
