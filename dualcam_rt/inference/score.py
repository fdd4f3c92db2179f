"""Scores a folder of labelled clips with a student, through the path ``/v1/predict`` takes.

The folder holds audio files (WAV/FLAC/OGG, any rate and channel count) and ``labels.csv`` with a
``file,class`` header; an empty class means "no action". Each clip is decoded, mixed to mono and
resampled (``decode_audio``), its last ``model.seconds`` are classified (``predict_waves``) and
read back through the "no action" gate (``gated_answers``, files at full scale = 20 Pa): exactly
what the service answers. A prediction whose label is None (``silence`` or ``no_action``) counts
as "no action"; a label otherwise.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import BadInput, NotFound
from .audio import decode_audio
from .gate import FILE_FULL_SCALE_PA
from .models import Model
from .predict import gated_answers

NO_ACTION = "no_action"  # the name "no action" goes by in reports (labels.csv writes it as an empty class)
BATCH = 16


def read_labels(clips_dir: str | Path, classes: list[str]) -> list[tuple[Path, str, int]]:
    """(file, class or NO_ACTION, line number) of each row of ``clips_dir/labels.csv``.

    Raises NotFound / BadInput naming the file and line for a missing labels.csv or clip, a bad
    header or row, or a class the model does not know."""
    path = Path(clips_dir) / "labels.csv"
    if not Path(clips_dir).is_dir():
        raise NotFound(f"{clips_dir}: no such folder")
    if not path.is_file():
        raise NotFound(f"{path}: no such file (a CSV with the header file,class)")
    rows: list[tuple[Path, str, int]] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            for line, row in enumerate(csv.reader(fh), start=1):
                if line == 1:
                    if [c.strip().lower() for c in row] != ["file", "class"]:
                        raise BadInput(f"{path}:1: the header must be 'file,class', got {','.join(row)!r}")
                    continue
                if not row or not any(c.strip() for c in row):
                    continue
                if len(row) != 2:
                    raise BadInput(f"{path}:{line}: expected 2 columns (file,class), got {len(row)}")
                name, cls = row[0].strip(), row[1].strip()
                if cls and cls not in classes:
                    raise BadInput(
                        f"{path}:{line}: unknown class {cls!r}; the model knows: {', '.join(classes)} "
                        "(or empty for no action)"
                    )
                clip = Path(clips_dir) / name
                if not name or not clip.is_file():
                    raise NotFound(f"{path}:{line}: clip {name!r} does not exist in {clips_dir}")
                rows.append((clip, cls or NO_ACTION, line))
    except (UnicodeDecodeError, csv.Error) as err:
        raise BadInput(f"{path}: not a readable CSV ({err})") from None
    if not rows:
        raise BadInput(f"{path}: no clips listed")
    return rows


def score_clips(
    model: Model, clips_dir: str | Path, max_seconds: float = 600.0, progress: Callable[[int, int], None] | None = None
) -> dict:
    """Top-1 accuracy, per-class accuracy, no-action false alarms and misses, the confusion
    matrix and every clip's prediction (``predictions``), for the clips of ``clips_dir``."""
    rows = read_labels(clips_dir, model.classes)
    window = int(model.seconds * model.sample_rate)
    answers: list[dict] = []
    for start in range(0, len(rows), BATCH):
        waves = []
        for clip, _, line in rows[start : start + BATCH]:
            try:
                wave, _ = decode_audio(clip.read_bytes(), max_seconds, model.sample_rate)
            except BadInput as err:
                raise type(err)(f"{Path(clips_dir) / 'labels.csv'}:{line}: {clip.name}: {err}") from None
            waves.append(wave[-window:])
        answers.extend(gated_answers(model, waves, 1, FILE_FULL_SCALE_PA)[0])
        if progress:
            progress(len(answers), len(rows))
    predicted = [a["label"] or NO_ACTION for a in answers]
    # per clip: the gate's reason for no action (silence | no_action), the top action's probability
    # (None when the level gate kept the student from running) and the window's level
    clips = [
        {
            "file": clip.name,
            "class": cls,
            "predicted": p,
            "reason": a["reason"],
            "probability": a["top_k"][0]["probability"] if a["top_k"] else None,
            "level_db": a["level_db"],
        }
        for (clip, cls, _), p, a in zip(rows, predicted, answers)
    ]
    return summarise([cls for _, cls, _ in rows], predicted, model.classes, predictions=clips, model=model.name)


def summarise(truth: list[str], predicted: list[str], classes: list[str], **extra) -> dict:
    """The figures of ``score_clips`` from true and predicted labels (NO_ACTION for no action)."""
    labels = [*classes, NO_ACTION]
    index = {c: i for i, c in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(truth, predicted):
        confusion[index[t], index[p]] += 1
    per_class = {}
    for c in labels:
        n = int(confusion[index[c]].sum())
        if n:
            per_class[c] = {
                "clips": n,
                "correct": int(confusion[index[c], index[c]]),
                "accuracy": round(float(confusion[index[c], index[c]] / n), 4),
            }
    action = [i for i, t in enumerate(truth) if t != NO_ACTION]
    empty = [i for i, t in enumerate(truth) if t == NO_ACTION]
    false_alarms = sum(predicted[i] != NO_ACTION for i in empty)
    misses = sum(predicted[i] == NO_ACTION for i in action)
    return {
        **extra,
        "clips": len(truth),
        "top1_accuracy": round(float(np.trace(confusion) / len(truth)), 4),
        "per_class": per_class,
        "no_action": {
            "clips": len(empty),
            "false_alarms": int(false_alarms),
            "false_alarm_rate": round(false_alarms / len(empty), 4) if empty else None,
            "action_clips": len(action),
            "misses": int(misses),
            "miss_rate": round(misses / len(action), 4) if action else None,
        },
        "confusion": {"labels": labels, "matrix": confusion.tolist()},
    }


def write_scores(card_path: Path, result: dict, clips_dir: str | Path) -> None:
    """Record a ``score_clips`` result in the model card at ``card_path`` (``metrics.real_recordings``),
    with the test set's split and seed when the folder was made by ``dualcam-rt soundbank testset``."""
    card = json.loads(card_path.read_text())
    described = Path(clips_dir) / "testset.json"
    made_by = json.loads(described.read_text()) if described.is_file() else {}
    card.setdefault("metrics", {})["real_recordings"] = {
        "clips_dir": str(clips_dir),
        "test_set": (
            f"dualcam-rt soundbank testset --split {made_by.get('split')} --seed {made_by.get('seed')}"
            if made_by
            else "your own labelled clips"
        ),
        "clips": result["clips"],
        "top1_accuracy": result["top1_accuracy"],
        "per_class_accuracy": {k: v["accuracy"] for k, v in result["per_class"].items()},
        "no_action": result["no_action"],
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n")
