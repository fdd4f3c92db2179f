"""Calibrating the "no action" gate of a student on a folder of labelled clips.

``calibrate_gate(model, clips_dir)`` measures every clip as the service does (``decode_audio``,
the last ``model.seconds``, files at full scale = 20 Pa): its level, the top action's probability
and whether the card's background class wins. It then picks the level gate ``silence_db`` and the
confidence threshold ``min_confidence`` that label at most ``max_false_alarm`` of the no-action
clips (silence and ambience) as an action with the fewest action clips labelled null; ties go to
the lowest false-alarm rate, then to the highest thresholds. When the only such gate labels no
action clip at all (a student as sure of ambience as of actions: the students shipped before the
background class), the target is not met (``target_met`` false) and the gate falls back to the
level gate alone, calibrated on the silence clips (``silence*`` files): silence is still "no
action", ambience is not. ``balanced=True`` (``calibrate-gate --balanced``) picks instead the gate
with the smallest false-alarm rate plus miss rate: the operating point for a student that cannot
meet the limit without missing most actions (``target_met`` then says whether it met it anyway).
Calibrate on clips made from the
bank's **val** split (``dualcam-rt soundbank testset --split val``), never on the test split
that ``dualcam-rt score`` reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInput
from .audio import decode_audio
from .gate import FILE_FULL_SCALE_PA, Gate, level_db
from .models import Model
from .predict import predict_waves
from .score import BATCH, NO_ACTION, read_labels

MAX_FALSE_ALARM = 0.02
OBJECTIVES = {False: "fewest misses at <= {} false alarms", True: "false alarm rate + miss rate"}


def measure_clips(
    model: Model, clips_dir: str | Path, max_seconds: float = 600.0, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Per clip of ``clips_dir``: ``level_db``, ``top_probability`` (of the actions), ``background``
    (the background class is the top class) and ``empty`` (labelled no action)."""
    rows = read_labels(clips_dir, model.classes)
    background = Gate.of(model.card).background_class
    window = int(model.seconds * model.sample_rate)
    levels, tops, bg = [], [], []
    for start in range(0, len(rows), BATCH):
        waves = [
            decode_audio(clip.read_bytes(), max_seconds, model.sample_rate)[0][-window:]
            for clip, _, _ in rows[start : start + BATCH]
        ]
        probs, _ = predict_waves(model, waves)
        for w, p in zip(waves, probs):
            keep = [i for i, c in enumerate(model.classes) if c != background]
            levels.append(level_db(w, FILE_FULL_SCALE_PA))
            tops.append(float(p[keep].max()))
            bg.append(model.classes[int(np.argmax(p))] == background)
        if progress:
            progress(len(levels), len(rows))
    return {
        "level_db": np.array(levels),
        "top_probability": np.array(tops),
        "background": np.array(bg),
        "empty": np.array([cls == NO_ACTION for _, cls, _ in rows]),
        "files": [c.name for c, _, _ in rows],
    }


def error_rates(m: dict[str, Any], silence_db: float, min_confidence: float) -> dict:
    """False alarms (no-action clips labelled an action) and misses (action clips labelled null)."""
    labelled = (m["level_db"] >= silence_db) & ~m["background"] & (m["top_probability"] >= min_confidence)
    empty, action = m["empty"], ~m["empty"]
    silent = m["level_db"] < silence_db
    return {
        "no_action_clips": int(empty.sum()),
        "false_alarms": int((labelled & empty).sum()),
        "false_alarm_rate": round(float((labelled & empty).sum() / max(empty.sum(), 1)), 4),
        "action_clips": int(action.sum()),
        "misses": int((~labelled & action).sum()),
        "miss_rate": round(float((~labelled & action).sum() / max(action.sum(), 1)), 4),
        "action_clips_below_level_gate": int((silent & action).sum()),
    }


def choose_gate(
    m: dict[str, Any],
    background_class: str | None = None,
    max_false_alarm: float = MAX_FALSE_ALARM,
    balanced: bool = False,
) -> tuple[Gate, dict]:
    """The gate meeting ``max_false_alarm`` with the fewest misses (see the module docstring), and its
    rates; ``balanced``: the gate with the smallest false-alarm rate plus miss rate, whatever its
    false alarms (for a student whose limit would cost most actions)."""
    if not m["empty"].any() or m["empty"].all():
        raise BadInput("calibration needs both no-action clips (empty class) and action clips")
    finite = m["level_db"][np.isfinite(m["level_db"])]
    # candidates: a threshold just above each observed value (labels flip only there), and none
    levels = np.unique(np.concatenate([[-np.inf], np.nextafter(finite, np.inf)]))
    confidences = np.unique(np.concatenate([[0.0], np.nextafter(m["top_probability"], np.inf)]))
    best, best_key = None, None
    for s in levels:
        for c in confidences:
            r = error_rates(m, s, c)
            if not balanced and r["false_alarm_rate"] > max_false_alarm:
                continue
            total = r["false_alarm_rate"] + r["miss_rate"] if balanced else 0.0
            key = (total, r["misses"], r["false_alarms"], -s, -c)
            if best_key is None or key < best_key:
                best, best_key = (s, c, r), key
    assert best is not None  # the highest thresholds label nothing: some candidate always meets the limit
    s, c, rates = best
    return Gate(float(s) if np.isfinite(s) else -200.0, float(min(c, 1.0)), background_class), rates


def calibrate_gate(
    model: Model,
    clips_dir: str | Path,
    max_false_alarm: float = MAX_FALSE_ALARM,
    max_seconds: float = 600.0,
    progress: Callable[[int, int], None] | None = None,
    balanced: bool = False,
) -> dict:
    """The calibrated gate of ``model`` on ``clips_dir`` (``gate``: the card entry) and its error rates
    there, next to those of the card's current gate."""
    description = Path(clips_dir) / "testset.json"
    split = json.loads(description.read_text()).get("split", "test") if description.is_file() else None
    if split == "test":
        raise BadInput(
            f"{clips_dir} was made from the bank's test split (testset.json): calibrate on a val-split "
            "folder (dualcam-rt soundbank testset --split val) so that score stays an honest test"
        )
    m = measure_clips(model, clips_dir, max_seconds, progress)
    current = Gate.of(model.card)
    gate, rates = choose_gate(m, current.background_class, max_false_alarm, balanced)
    silence = np.array([f.startswith("silence") for f in m["files"]]) & m["empty"]
    target_met = rates["false_alarm_rate"] <= max_false_alarm and rates["misses"] < rates["action_clips"]
    if not balanced and not target_met and silence.any():
        quiet = {k: (v[silence | ~m["empty"]] if k != "files" else v) for k, v in m.items()}
        gate, _ = choose_gate(
            {**quiet, "top_probability": np.ones_like(quiet["top_probability"])},
            current.background_class,
            max_false_alarm,
        )
        gate = Gate(gate.silence_db, 0.0, current.background_class)
        rates = error_rates(m, gate.silence_db, gate.min_confidence)
    return {
        "model": model.name,
        "clips_dir": str(clips_dir),
        "split": split,
        "clips": len(m["files"]),
        "max_false_alarm": max_false_alarm,
        "objective": OBJECTIVES[balanced].format(max_false_alarm),
        "target_met": target_met,
        "gate": gate.card(),
        "rates": rates,
        "silence_rates": error_rates(
            {k: (v[silence | ~m["empty"]] if k != "files" else v) for k, v in m.items()},
            gate.silence_db,
            gate.min_confidence,
        ),
        "before": error_rates(m, current.silence_db, current.min_confidence),
        "loudest_silence_clip_db": round(float(m["level_db"][silence].max()), 2) if silence.any() else None,
    }


def write_gate(card_path: Path, result: dict) -> None:
    """Write a calibration's gate (and how it was measured) into the model card at ``card_path``."""
    card = json.loads(card_path.read_text())
    card["gate"] = {
        **result["gate"],
        "calibration": {
            k: result[k]
            for k in (
                "clips_dir",
                "split",
                "clips",
                "max_false_alarm",
                "objective",
                "target_met",
                "rates",
                "silence_rates",
            )
        },
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n")
