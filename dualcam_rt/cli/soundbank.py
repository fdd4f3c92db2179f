"""Commands of the sound bank: ``soundbank build`` (real recordings from the allow-listed packages)
and ``soundbank testset`` (a labelled folder of real-recording test clips for ``dualcam-rt score``)."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app, console, fail

soundbank_app = typer.Typer(
    help="The bank of real recorded sounds the simulator and training draw from.", no_args_is_help=True
)
app.add_typer(soundbank_app, name="soundbank")


def _dirs(out: str | None, sources: str | None) -> tuple[Path, Path]:
    from ..config import get_settings
    from ..sim.soundbank import default_bank_dir, default_sources_dir

    cache = get_settings().cache_dir
    return Path(out) if out else default_bank_dir(cache), Path(sources) if sources else default_sources_dir(cache)


def _progress(label: str):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console, transient=True
    )


@soundbank_app.command("build")
def build(
    out: str = typer.Option(None, "--out", help="Bank directory (default: <cache_dir>/soundbank)"),
    preset: str = typer.Option("full", help="ci: the few small packages CI installs | full: the whole allow-list"),
    sources: str = typer.Option(
        None, "--sources", help="Where unpacked packages live (default: <cache_dir>/sound-sources)"
    ),
    system_root: str = typer.Option(
        "/", "--system-root", hidden=True, help="Root of the apt-installed packages (tests)"
    ),
):
    """Build the sound bank: decode, resample to 12,288 Hz, cut into events, de-duplicate, split per recording."""
    from rich.table import Table

    from ..sim.soundbank import SPLITS, PackageRoots, build_bank

    out_dir, sources_dir = _dirs(out, sources)
    try:
        with _progress("decoding") as bar:
            task = bar.add_task("decode", total=None)
            manifest = build_bank(
                out_dir,
                PackageRoots(sources_dir, Path(system_root)),
                preset,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except OSError as err:
        fail(f"cannot write the sound bank to {out_dir}: {err.strerror or err}")
    table = Table(title=f"sound bank ({preset}): real recordings / events per split")
    for col in ("class", "recordings", "events", *SPLITS, "packages"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for cls, s in manifest["summary"].items():
        table.add_row(
            cls,
            str(s["recordings"]),
            str(s["events"]),
            *(f"{s[f'{k}_recordings']} / {s[f'{k}_events']}" for k in SPLITS),
            str(len(s["packages"])),
        )
    console.print(table)
    console.print(
        f"wrote {out_dir / 'manifest.json'}: {len(manifest['recordings'])} recordings, "
        f"{len(manifest['events'])} events, {len(manifest['duplicates'])} duplicates removed, "
        f"{len(manifest['skipped'])} files skipped",
        highlight=False,
        soft_wrap=True,
    )
    for s in manifest["skipped"]:
        console.print(f"  skipped {s['path']}: {s['reason']}", highlight=False, soft_wrap=True)


@soundbank_app.command("testset")
def testset(
    out: str = typer.Option(..., "--out", help="Folder for the clips and labels.csv"),
    clips_per_class: int = typer.Option(12, "--clips-per-class", min=1, help="Clips per class with test takes"),
    empty_clips: int = typer.Option(
        None, "--empty-clips", min=0, help="Ambience-only and silence clips, each (default: --clips-per-class)"
    ),
    seed: int = typer.Option(0, help="Random seed (the same bank and seed give the same clips)"),
    bank: str = typer.Option(None, "--bank", help="Sound bank directory (default: <cache_dir>/soundbank)"),
    split: str = typer.Option(
        "test", "--split", help="Takes of this split: test (scoring) or val (calibrating thresholds)"
    ),
):
    """Write real-recording test clips (test-split takes in unseen rooms, plus ambience and silence) and labels.csv."""
    from collections import Counter

    from ..sim.soundbank import SoundBank
    from ..sim.testset import write_testset

    bank_dir, _ = _dirs(bank, None)
    sound_bank = SoundBank.open(bank_dir)
    try:
        with _progress("rendering") as bar:
            bar.add_task("render", total=None)
            description = write_testset(sound_bank, out, clips_per_class, seed, empty_clips, split)
    except OSError as err:
        fail(f"cannot write the test set to {out}: {err.strerror or err}")
    counts = Counter(c["class"] or "(no action)" for c in description["clips"])
    console.print(
        f"wrote {len(description['clips'])} clips and labels.csv to {out}: "
        + ", ".join(f"{k} {v}" for k, v in counts.items()),
        highlight=False,
        soft_wrap=True,
    )
    if description["classes_without_test_takes"]:
        console.print(
            f"no {split} takes (no clips) for: " + ", ".join(description["classes_without_test_takes"]),
            highlight=False,
            soft_wrap=True,
        )
