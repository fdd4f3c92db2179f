"""Commands of the sound bank: ``soundbank build`` (real recordings from the allow-listed packages)
and ``soundbank testset`` (a labelled folder of real-recording test clips for ``dualcam-rt score``)."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app, console

soundbank_app = typer.Typer(help="The bank of real recorded sounds the simulator and training draw from.",
                            no_args_is_help=True)
app.add_typer(soundbank_app, name="soundbank")


def _dirs(out: str | None, sources: str | None) -> tuple[Path, Path]:
    from ..config import get_settings

    cache = get_settings().cache_dir
    return Path(out) if out else cache / "soundbank", Path(sources) if sources else cache / "sound-sources"


def _progress(label: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console,
                    transient=True)


@soundbank_app.command("build")
def build(
    out: str = typer.Option(None, "--out", help="Bank directory (default: <cache_dir>/soundbank)"),
    preset: str = typer.Option("full", help="ci: the few small packages CI installs | full: the whole allow-list"),
    sources: str = typer.Option(None, "--sources", help="Where unpacked packages live (default: <cache_dir>/sound-sources)"),
    system_root: str = typer.Option("/", "--system-root", hidden=True, help="Root of the apt-installed packages (tests)"),
):
    """Build the sound bank: decode, resample to 12,288 Hz, cut into events, de-duplicate, split per recording."""
    from rich.table import Table

    from ..sim.soundbank import SPLITS, PackageRoots, build_bank

    out_dir, sources_dir = _dirs(out, sources)
    with _progress("decoding") as bar:
        task = bar.add_task("decode", total=None)
        manifest = build_bank(out_dir, PackageRoots(sources_dir, Path(system_root)), preset,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))
    table = Table(title=f"sound bank ({preset}): real recordings / events per split")
    for col in ("class", "recordings", "events", *SPLITS, "packages"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for cls, s in manifest["summary"].items():
        table.add_row(cls, str(s["recordings"]), str(s["events"]),
                      *(f"{s[f'{k}_recordings']} / {s[f'{k}_events']}" for k in SPLITS), str(len(s["packages"])))
    console.print(table)
    console.print(f"wrote {out_dir / 'manifest.json'}: {len(manifest['recordings'])} recordings, {len(manifest['events'])} events, "
                  f"{len(manifest['duplicates'])} duplicates removed, {len(manifest['skipped'])} files skipped", highlight=False)
    for s in manifest["skipped"]:
        console.print(f"  skipped {s['path']}: {s['reason']}", highlight=False, soft_wrap=True)
