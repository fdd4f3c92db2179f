"""A labelled folder of real-recording test clips, for ``dualcam-rt score``.

``write_testset(bank, out_dir, clips_per_class, seed)`` takes the bank's **test-split** takes
only (``split="val"``: the val-split takes, for calibrating thresholds) and plays them in
pyroomacoustics shoebox rooms unlike the three scenarios of ``rooms`` (smaller: 2.5-7 x 2.5-6 x
2.3-3.2 m, RT60 0.2-0.65 s from inverse Sabine, image sources to order 40; the scenarios are an
8 x 8 x 4 m anechoic room, a 14 x 11 x 3.6 m hall at 0.8 s and an open terrace), heard by one
microphone 0.5-3 m from the source, as the DualCam students hear one
microphone. Each clip is 5 s, mono, 16-bit WAV at 12,288 Hz:

- action clips: takes of one class one after another (0.15-0.8 s apart) at a level of
  -35 to -12 dBFS peak, over a microphone noise floor at -75 to -65 dBFS RMS and, for half of
  them, a test-split ambience at 10-25 dB SNR;
- ambience-only clips (test-split ambience through a room, at -45 to -25 dBFS RMS) and silence
  clips (the noise floor alone): class "" (no action).

``labels.csv`` (``file,class``) lists them; ``testset.json`` records the seed, the bank's
manifest hash, each clip's room, distance and takes, and the classes with no test take (which
get no clips). The same bank and seed give the same files.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import fftconvolve

from ..errors import BadInput
from ..geometry import SAMPLE_RATE
from ..labels import CLASSES
from .soundbank import SoundBank, Take

CLIP_SECONDS = 5.0
ROOM_RANGES_M = ((2.5, 7.0), (2.5, 6.0), (2.3, 3.2))
RT60_RANGE_S = (0.2, 0.65)
MAX_ISM_ORDER = 40
TESTSET_SPLITS = ("val", "test")  # never train: clips for scoring or calibrating


def random_room(rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A room impulse response (n,) float32 from a random source to one microphone in a random
    test room, and the room's description (size, RT60, positions)."""
    import pyroomacoustics as pra

    dims = np.array([rng.uniform(*r) for r in ROOM_RANGES_M])
    rt60 = float(rng.uniform(*RT60_RANGE_S))
    absorption, order = pra.inverse_sabine(rt60, dims)
    margin = 0.4
    while True:  # a source and a microphone 0.5-3 m apart, both 0.4 m from every wall
        src = np.array([rng.uniform(margin, d - margin) for d in dims])
        mic = np.array([rng.uniform(margin, d - margin) for d in dims])
        if 0.5 <= np.linalg.norm(src - mic) <= 3.0:
            break
    room = pra.ShoeBox(
        list(dims),
        fs=SAMPLE_RATE,
        materials=pra.Material(absorption),
        max_order=min(int(order), MAX_ISM_ORDER),
        air_absorption=False,
    )
    room.add_source(list(src))
    room.add_microphone(list(mic))
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float32)
    info = {
        "size_m": [round(float(d), 2) for d in dims],
        "rt60_s": round(rt60, 3),
        "source_m": [round(float(v), 2) for v in src],
        "mic_m": [round(float(v), 2) for v in mic],
        "distance_m": round(float(np.linalg.norm(src - mic)), 2),
    }
    return rir, info


def _sequence(takes: list[Take], n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """``n`` samples of takes one after another (random takes, gaps and per-take gain ±3 dB)."""
    out = np.zeros(n, dtype=np.float32)
    used: list[str] = []
    t = int(rng.uniform(0.0, 0.5) * SAMPLE_RATE)
    while t < n:
        take = takes[int(rng.integers(len(takes)))]
        piece = take.audio[: n - t] * np.float32(10 ** (rng.uniform(-3, 3) / 20))
        out[t : t + len(piece)] += piece
        used.append(take.row["file"])
        t += len(take.audio) + int(rng.uniform(0.15, 0.8) * SAMPLE_RATE)
    return out, used


def _ambience(takes: list[Take], n: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """``n`` samples of one ambience take (looped when shorter), from a random offset."""
    take = takes[int(rng.integers(len(takes)))]
    reps = int(np.ceil((n + len(take.audio)) / len(take.audio)))
    start = int(rng.integers(len(take.audio)))
    return np.tile(take.audio, reps)[start : start + n].astype(np.float32), take.row["file"]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) + 1e-12


def _db(lo: float, hi: float, rng: np.random.Generator) -> float:
    return float(10 ** (rng.uniform(lo, hi) / 20))


def write_testset(
    bank: SoundBank,
    out_dir: str | Path,
    clips_per_class: int = 12,
    seed: int = 0,
    empty_clips: int | None = None,
    split: str = "test",
) -> dict:
    """Write the test clips, ``labels.csv`` and ``testset.json`` into ``out_dir``; returns the
    description (also in ``testset.json``). ``empty_clips`` ambience-only and as many silence
    clips (default: ``clips_per_class`` each). ``split="val"`` takes the val-split takes instead:
    a folder for calibrating thresholds (``dualcam-rt calibrate-gate``) that never sees the test takes."""
    if split not in TESTSET_SPLITS:
        raise BadInput(f"split must be one of {', '.join(TESTSET_SPLITS)}, not {split!r}")
    import soundfile as sf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(CLIP_SECONDS * SAMPLE_RATE)
    ambience = bank.ambience(split)
    empty_clips = clips_per_class if empty_clips is None else empty_clips
    rows, clips, missing = [], [], []

    def write(name: str, wave: np.ndarray, label: str, info: dict) -> None:
        sf.write(str(out / name), np.clip(wave, -1, 1), SAMPLE_RATE, subtype="PCM_16")
        rows.append((name, label))
        clips.append({"file": name, "class": label, **info})

    def noise_floor() -> np.ndarray:
        return (rng.standard_normal(n) * _db(-75, -65, rng)).astype(np.float32)

    for cls in CLASSES:
        takes = bank.takes(cls, split)
        if not takes:
            missing.append(cls)
            continue
        for k in range(clips_per_class):
            rir, room = random_room(rng)
            dry, used = _sequence(takes, n, rng)
            wet = fftconvolve(dry, rir)[:n]
            wet *= _db(-35, -12, rng) / (np.max(np.abs(wet)) + 1e-12)
            info: dict[str, Any] = {"room": room, "takes": used}
            if ambience and rng.random() < 0.5:
                amb, amb_file = _ambience(ambience, n, rng)
                snr_db = float(rng.uniform(10, 25))
                wet += amb * (_rms(wet) / _rms(amb) / 10 ** (snr_db / 20))
                info.update(ambience=amb_file, snr_db=round(snr_db, 2))
            write(f"{cls}_{k:03d}.wav", wet + noise_floor(), cls, info)
    for k in range(empty_clips if ambience else 0):
        rir, room = random_room(rng)
        amb, amb_file = _ambience(ambience, n, rng)
        wet = fftconvolve(amb, rir)[:n]
        wet *= _db(-45, -25, rng) / _rms(wet)
        write(f"ambience_{k:03d}.wav", wet + noise_floor(), "", {"room": room, "ambience": amb_file})
    for k in range(empty_clips):
        write(f"silence_{k:03d}.wav", noise_floor(), "", {})

    with open(out / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("file", "class"))
        writer.writerows(rows)
    manifest_hash = hashlib.sha256((bank.root / "manifest.json").read_bytes()).hexdigest()[:20]
    description = {
        "seed": seed,
        "split": split,
        "sample_rate": SAMPLE_RATE,
        "clip_seconds": CLIP_SECONDS,
        "bank": str(bank.root),
        "bank_manifest_hash": manifest_hash,
        "classes_without_test_takes": missing,
        "clips": clips,
        "rooms": {"size_m": ROOM_RANGES_M, "rt60_s": RT60_RANGE_S, "max_ism_order": MAX_ISM_ORDER},
    }
    (out / "testset.json").write_text(json.dumps(description, indent=1, sort_keys=True) + "\n")
    return description
