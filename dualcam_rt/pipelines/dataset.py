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
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInput
from ..frame import SensorFrame
from ..geometry import BLOCK_SAMPLES, FPS, Geometry
from ..labels import CLASSES, N_SUBJECTS, SCENARIOS, class_index
from ..sessions.manifest import MANIFEST_FILE, assign_splits, finished_session, manifest_entry, write_manifest
from ..sessions.writer import SessionWriter
from ..sim import Scene
from ..sim.real_sounds import resolve_sounds
from .imaging import ImagingStage


@dataclass(frozen=True)
class Preset:
    """How big a dataset to generate."""

    scenarios: tuple[int, ...] = tuple(SCENARIOS)
    classes: tuple[str, ...] = CLASSES
    subjects: int = N_SUBJECTS
    min_seconds: float = 30.0  # each clip's length is drawn uniformly in [min, max], in whole ticks
    max_seconds: float = 60.0
    raw: bool = False  # store all 128 channels (6.3 MB/s) instead of microphone 0 only
    sounds: str | None = None  # real | procedural | mixed (sim.real_sounds); None: real when a sound bank exists
    images: bool = True  # MFCC acoustic images from all 128 channels (teachers); False: microphone 0 alone
    #                      is rendered and stored (students only, ~50x cheaper)


PRESETS = {
    # the paper's size: 378 sequences of 30-60 s, about 3 h
    "paper": Preset(),
    # a CPU afternoon: 378 sequences of 6 s (about 40 min of sound, 27k MFCC volumes)
    "small": Preset(min_seconds=6.0, max_seconds=6.0),
    # the small preset's sequences cut to 2 s: a teacher and its distilled student on a busy CPU (~1.2 s CPU each)
    "short": Preset(min_seconds=2.0, max_seconds=2.0),
    # for tests: every class and scenario, 3 subjects (so that every split has one), 1 s clips
    "ci": Preset(subjects=3, min_seconds=1.0, max_seconds=1.0),
}


def session_specs(preset: Preset, seed: int = 0) -> list[dict]:
    """One spec per session (id, scenario, subject, label, scene seed, ticks), in a fixed order."""
    rng = random.Random(seed)
    specs: list[dict] = []
    for scenario in preset.scenarios:
        for subject in range(preset.subjects):
            for label in preset.classes:
                seconds = rng.uniform(preset.min_seconds, preset.max_seconds)
                specs.append(
                    {
                        "id": f"sc{scenario}_s{subject}_{label}",
                        "scenario": scenario,
                        "subject": subject,
                        "label": label,
                        "seed": seed * 1_000_003 + len(specs),
                        "ticks": max(1, round(seconds * FPS)),
                        "raw": preset.raw,
                        "images": preset.images,
                    }
                )
    return specs


# The imaging stage of the dataset being made: built once (its steering takes seconds) before the
# workers fork, so that they inherit it.
_imaging: ImagingStage | None = None


def render_session(spec: dict, out_dir: str, imaging: ImagingStage, cache_dir: str | Path | None = None) -> dict:
    """Simulate and write one session; returns its manifest entry (without splits)."""
    images = spec.get("images", True)
    mic0 = Geometry(mics=imaging.geometry.mics[:1], dead_channels=())  # students need microphone 0 only
    scene = Scene(
        scenario=spec["scenario"],
        seed=spec["seed"],
        label=spec["label"],
        subject=spec["subject"],
        cache_dir=cache_dir,
        sounds=spec["sounds"],
        bank=spec["bank"],
        split=spec["bank_split"],
        split_subjects=spec["split_subjects"],
        geometry=None if images else mic0,
    )
    path = Path(out_dir) / spec["id"]
    sounds = {
        "mode": scene.sounds,
        "bank_split": spec["bank_split"],
        "real_ambience": scene.real_ambience,
        **scene.sound_sources(spec["ticks"] / FPS),
    }  # events of real takes and procedural ones
    meta = {
        "label": spec["label"],
        "scenario": spec["scenario"],
        "subject": spec["subject"],
        "scene_seed": spec["seed"],
        "sounds": sounds,
        "device": {
            "uri": f"sim://?scenario={spec['scenario']}&seed={spec['seed']}"
            f"&label={spec['label']}&subject={spec['subject']}&sounds={scene.sounds}",
            "kind": "sim",
            "simulated": True,
        },
    }
    writer = SessionWriter(path, meta, channels=None if spec["raw"] else [0], mfcc=images, geometry=imaging.geometry)
    tick = 0
    while tick < spec["ticks"]:
        batch = [scene.next_tick() for _ in range(min(FPS, spec["ticks"] - tick))]
        mfcc = imaging.mfcc(np.stack([b.audio for b in batch])) if images else [None] * len(batch)  # (n, 36, 48, 12)
        for b, volume in zip(batch, mfcc):
            writer.write(
                SensorFrame(
                    index=tick,
                    first_sample=tick * BLOCK_SAMPLES,
                    timestamp=tick / FPS,
                    audio=b.audio,
                    video=b.video,
                    video_timestamp=tick / FPS,
                    truth=b.truth,
                ),
                mfcc=volume,
            )
            tick += 1
    m = writer.close()
    return {**manifest_entry(path, Path(out_dir), m), "sounds": sounds}


def _check_same_dataset(out: Path, preset: str, config: dict, seed: int) -> None:
    """Refuse to mix two datasets in one directory (sessions of the same name would be reused)."""
    path = out / MANIFEST_FILE
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise BadInput(f"{path} is not a manifest ({err}); use another --out") from None
    if (old.get("preset"), old.get("config"), old.get("seed")) != (preset, config, seed):
        raise BadInput(
            f"{out} already holds the dataset of preset {old.get('preset')!r} with other settings; use another --out"
        )


def make_dataset(
    out: str | Path,
    preset: str = "ci",
    workers: int = 2,
    raw: bool | None = None,
    seed: int = 0,
    progress=None,
    *,
    geometry: Geometry,
    cache_dir: str | Path | None = None,
    bank=None,
    **overrides,
) -> dict:
    """Generate the dataset into ``out`` (created) and write ``out/manifest.json``; returns it.

    The MFCC volumes are beamformed with ``geometry``; ``cache_dir`` keeps the beamformer's steering
    and the rooms' impulse responses between runs. Sessions already complete in ``out`` (from an
    interrupted earlier run with the same preset) are kept; half-written ones are generated again.
    ``overrides`` change preset fields (``sounds=real|procedural|mixed`` among them; the sound bank
    is ``bank`` or ``<cache_dir>/soundbank``). Each subject draws the bank's takes of its subject
    split (train, val or test, the manifest's ``subject_split``), disjoint from the other subjects'.
    """
    if preset not in PRESETS:
        raise BadInput(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    changes: dict[str, Any] = {"raw": raw} if raw is not None else {}
    config = replace(PRESETS[preset], **changes, **overrides)
    for c in config.classes:
        class_index(c)  # BadInput for an unknown class
    if config.raw and not config.images:
        raise BadInput("raw (all 128 channels) needs the 128-channel rendering: drop --no-images")
    sounds, bank = resolve_sounds(config.sounds, bank, cache_dir)
    config = replace(config, sounds=sounds)
    out = Path(out)
    if not out.parent.is_dir():
        raise BadInput(f"directory {out.parent} does not exist")
    out.mkdir(exist_ok=True)
    config_json = json.loads(json.dumps(asdict(config)))
    _check_same_dataset(out, preset, config_json, seed)
    specs = session_specs(config, seed)
    # the subject split the manifest will get (same function, same entries), so that every subject
    # draws takes of its own split: no recording heard in training is heard by a val/test subject
    subject_split = assign_splits([dict(s) for s in specs])["subject_split"]["subjects"]
    for spec in specs:
        split = subject_split[str(spec["subject"])]
        spec.update(
            sounds=sounds,
            bank=str(bank.root) if bank else None,
            bank_split=split,
            split_subjects=[int(s) for s, v in subject_split.items() if v == split],
        )
    entries, todo = [], []
    for spec in specs:
        meta = finished_session(out / spec["id"])
        if meta is not None:
            if meta.get("ticks") != spec["ticks"] or meta.get("scene_seed") != spec["seed"]:
                raise BadInput(f"{out / spec['id']} holds a different session; use another --out")
            entries.append({**manifest_entry(out / spec["id"], out, meta), "sounds": meta.get("sounds")})
        else:
            if (out / spec["id"]).exists():
                shutil.rmtree(out / spec["id"])  # a session this generator left half-written
            todo.append(spec)
    task = progress.add_task(f"make-dataset {preset}", total=len(specs), completed=len(entries)) if progress else None
    if progress:
        progress.start()
    global _imaging
    try:
        if todo:
            _imaging = ImagingStage(geometry, "numpy", cache_dir)
        if workers > 1 and len(todo) > 1:
            with mp.get_context("fork").Pool(min(workers, len(todo))) as pool:  # the workers inherit _imaging
                for entry in pool.imap_unordered(_render_star, [(s, str(out), cache_dir) for s in todo]):
                    entries.append(entry)
                    if progress:
                        progress.advance(task)
        else:
            for spec in todo:
                entries.append(_render_star((spec, str(out), cache_dir)))
                if progress:
                    progress.advance(task)
    finally:
        _imaging = None
        if progress:
            progress.stop()
    order = {s["id"]: i for i, s in enumerate(specs)}
    entries.sort(key=lambda e: order[e["id"]])
    return write_manifest(
        out,
        {"preset": preset, "seed": seed, "config": config_json, "sounds": _sounds_summary(sounds, bank, entries)},
        entries,
    )


def _sounds_summary(sounds: str, bank, entries: list[dict]) -> dict:
    """Per class: events from real takes and procedural ones, and the bank's real recordings."""
    per_class = {}
    for label in CLASSES:
        counts = [e["sounds"] for e in entries if e["label"] == label and e.get("sounds")]
        real, procedural = sum(c["real"] for c in counts), sum(c["procedural"] for c in counts)
        per_class[label] = {
            "real_events": real,
            "procedural_events": procedural,
            "procedural_share": round(procedural / (real + procedural), 3) if real + procedural else None,
        }
        if bank is not None:
            per_class[label]["bank_recordings"] = bank.summary().get(label, {}).get("recordings", 0)
    return {"mode": sounds, "bank": str(bank.root) if bank else None, "per_class": per_class}


def _render_star(args: tuple[dict, str, str | Path | None]) -> dict:
    spec, out_dir, cache_dir = args
    assert _imaging is not None  # set by make_dataset before the workers fork
    return render_session(spec, out_dir, _imaging, cache_dir)
