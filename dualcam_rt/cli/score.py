"""``dualcam-rt score``: how a student does on a folder of labelled clips (your own recordings)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from . import app, console, fail


@app.command()
def score(
    clips_dir: str = typer.Argument(
        ..., help="Folder with audio clips and labels.csv (file,class; empty class = no action)"
    ),
    model: str = typer.Option(
        None, "--model", help="Student to score (default: DUALCAM_DEFAULT_MODEL or the first audio student)"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON"),
    plot: str = typer.Option(None, "--plot", help="Write the confusion matrix as a PNG (needs matplotlib)"),
    card: bool = typer.Option(False, "--card", help="Record the figures in the model card (metrics.real_recordings)"),
):
    """Score a student on labelled clips: top-1 and per-class accuracy, no-action false alarms and misses, confusion."""
    from rich.table import Table

    from ..config import get_settings
    from ..inference.models import load_model_set
    from ..inference.score import read_labels, score_clips

    if plot is not None:
        if not plot.lower().endswith(".png"):
            fail(f"--plot must name a .png file, got {plot!r}")
        try:
            import matplotlib
        except ImportError:
            fail("--plot needs matplotlib: pip install matplotlib (or the train extra)")
    settings = get_settings()
    student = load_model_set(settings.models_dir, settings.ort_threads, settings.default_model).get(model)
    read_labels(clips_dir, student.classes)  # bad input stops here, before any clip is decoded
    from .soundbank import _progress

    with _progress("scoring") as bar:
        task = bar.add_task("score", total=None)
        result = score_clips(
            student,
            clips_dir,
            settings.max_upload_seconds,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if plot is not None:
        _plot(result, Path(plot), matplotlib)
    if card:
        from ..inference.score import write_scores
        from .gate import card_path

        path = card_path(settings.models_dir, student.name)
        try:
            write_scores(path, result, clips_dir)
        except OSError as err:
            fail(f"cannot write {path}: {err.strerror or err}", code=1)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    table = Table(title=f"{result['model']} on {result['clips']} clips of {clips_dir}")
    for col in ("class", "clips", "correct", "accuracy"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for cls, s in result["per_class"].items():
        table.add_row(cls, str(s["clips"]), str(s["correct"]), f"{s['accuracy']:.3f}")
    typer.echo("")
    console.print(table)
    na = result["no_action"]

    def rate(r: float | None) -> str:
        return "n/a" if r is None else f"{r:.3f}"

    console.print(
        f"top-1 accuracy {result['top1_accuracy']:.3f}; no action: {na['false_alarms']}/{na['clips']} false alarms "
        f"({rate(na['false_alarm_rate'])}), {na['misses']}/{na['action_clips']} action clips missed "
        f"({rate(na['miss_rate'])})" + (f"; confusion matrix: {plot}" if plot else ""),
        highlight=False,
    )


def _plot(result: dict, path: Path, matplotlib) -> None:
    """The confusion matrix (rows: true class, columns: predicted, counts) as a PNG."""
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, matrix = result["confusion"]["labels"], np.array(result["confusion"]["matrix"])
    fig, ax = plt.subplots(figsize=(8, 7), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    for (i, j), n in np.ndenumerate(matrix):
        if n:
            ax.text(
                j, i, str(n), ha="center", va="center", fontsize=7, color="white" if n > matrix.max() / 2 else "black"
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{result['model']}: top-1 {result['top1_accuracy']:.3f} on {result['clips']} clips")
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as err:
        fail(f"cannot write {path}: {err.strerror or err}")
    finally:
        plt.close(fig)
