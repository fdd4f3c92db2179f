"""``dualcam-rt calibrate-gate``: pick a student's "no action" thresholds on labelled clips and write them
into its card."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from . import app, console, fail


@app.command("calibrate-gate")
def calibrate_gate(
    clips: str = typer.Option(
        ...,
        "--clips",
        help="Labelled clips (labels.csv; empty class = no action), from the "
        "val split: dualcam-rt soundbank testset --split val",
    ),
    model: str = typer.Option(
        None, "--model", help="Student to calibrate (default: DUALCAM_DEFAULT_MODEL or the first)"
    ),
    max_false_alarm: float = typer.Option(
        0.02, "--max-false-alarm", min=0.0, max=1.0, help="Share of no-action clips that may be labelled an action"
    ),
    balanced: bool = typer.Option(
        False,
        "--balanced",
        help="Pick the gate with the smallest false-alarm rate + miss rate instead (when the "
        "--max-false-alarm limit would cost most actions)",
    ),
    write: bool = typer.Option(True, "--write/--dry-run", help="Write the gate into the model card"),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON"),
):
    """Calibrate the level gate and confidence threshold: <= --max-false-alarm, fewest action clips missed."""
    from ..config import get_settings
    from ..inference.calibrate import calibrate_gate as calibrate
    from ..inference.calibrate import write_gate
    from ..inference.models import load_model_set
    from ..inference.score import read_labels
    from .soundbank import _progress

    settings = get_settings()
    student = load_model_set(settings.models_dir, settings.ort_threads, settings.default_model).get(model)
    read_labels(clips, student.classes)  # bad input stops here, before any clip is decoded
    with _progress("measuring") as bar:
        task = bar.add_task("measure", total=None)
        result = calibrate(
            student,
            clips,
            max_false_alarm,
            settings.max_upload_seconds,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            balanced=balanced,
        )
    if write:
        card = card_path(settings.models_dir, student.name)
        try:
            write_gate(card, result)
        except OSError as err:
            fail(f"cannot write {card}: {err.strerror or err}", code=1)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    g, r, b = result["gate"], result["rates"], result["before"]
    console.print(
        f"{student.name}: silence_db {g['silence_db']:.1f} dB SPL, min_confidence {g['min_confidence']:.3f}, "
        f"background class {g['background_class']}; on {result['clips']} clips: false alarms "
        f"{r['false_alarms']}/{r['no_action_clips']} ({r['false_alarm_rate']:.3f}), misses {r['misses']}/"
        f"{r['action_clips']} ({r['miss_rate']:.3f}); before: {b['false_alarm_rate']:.3f} / {b['miss_rate']:.3f}"
        + (f"; written to {card}" if write else " (dry run)"),
        highlight=False,
        soft_wrap=True,
    )
    if not result["target_met"]:
        console.print(
            f"[yellow]target not met:[/] no gate keeps any action clip at <= {max_false_alarm:.0%} false alarms "
            "(the student is as sure of ambience as of actions); fell back to the level gate on the silence "
            f"clips: silence false alarms {result['silence_rates']['false_alarm_rate']:.3f}",
            soft_wrap=True,
        )


def card_path(models_dir: str | Path, name: str) -> Path:
    """The card file of the loaded model ``name`` in ``models_dir`` (exit 1 when there is none)."""
    for p in Path(models_dir).glob("*.json"):
        if json.loads(p.read_text()).get("name", p.stem) == name:
            return p
    fail(f"no card of {name!r} in {models_dir}", code=1)
