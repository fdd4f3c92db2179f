"""Commands of the sessions area: record, verify, replay, make-dataset, import-tfrecords, export-*."""

from __future__ import annotations

import json
import signal
import sys

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from . import app, console, fail
from .array import geometry_option, grid_option, with_array


def _progress() -> Progress:
    """A rich progress bar on a terminal; nothing otherwise (scripts get plain lines instead)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=False,
    )


def _sigterm_as_interrupt() -> None:
    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@app.command()
def record(
    uri: str = typer.Argument(..., help="Device URI, e.g. 'sim://?scenario=1' or dualcam://127.0.0.1:7700"),
    seconds: float = typer.Option(..., help="How long to record, seconds"),
    out: str = typer.Option(
        ..., "--out", help="Directory to create the session in (made, with its parents, if missing)"
    ),
    name: str = typer.Option(None, help="Session name (default LABEL-scK-sN-UTCTIME); no '/' or '..'"),
    label: str | None = typer.Option(None, help="Action class (default: the URI's label, if any)"),
    scenario: int = typer.Option(None, help="Scenario 1|2|3 (default: the URI's scenario, if any)"),
    subject: int = typer.Option(None, help="Subject index (default: the URI's subject, if any)"),
    channels: str = typer.Option("all", help="Device channels to store: 'all' or a list like '0' or '0,5,9'"),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout"),
    geometry_file: str = geometry_option(),
):
    """Record a dataset session from a device, with a progress bar and a summary."""
    from ..config import get_settings
    from ..devices import open_device, parse_uri
    from ..labels import class_index
    from ..sessions.format import new_session_dir
    from ..sessions.record import default_session_name, record_frames
    from ..sessions.writer import SessionWriter

    if not seconds > 0:
        fail("--seconds must be positive")
    _, _, query = parse_uri(uri)
    label = label or query.get("label") or None
    if label is not None:
        class_index(label)
    scenario = (
        scenario if scenario is not None else (int(query["scenario"]) if query.get("scenario", "").isdigit() else None)
    )
    subject = (
        subject if subject is not None else (int(query["subject"]) if query.get("subject", "").isdigit() else None)
    )
    try:
        chans = None if channels == "all" else [int(c) for c in channels.split(",")]
    except ValueError:
        fail(f"bad --channels {channels!r}: use 'all' or a comma-separated list of indices")
    settings = with_array(get_settings(), geometry_file, None)
    path = new_session_dir(out, name or default_session_name(label, scenario, subject))
    _sigterm_as_interrupt()
    geometry = settings.geometry()
    with open_device(
        uri, timeout=settings.connect_timeout_s, cache_dir=settings.cache_dir, geometry=geometry
    ) as device:
        meta = {"label": label, "scenario": scenario, "subject": subject, "device": device.describe()}
        # session.json keeps the array the device is (sim://?geometry=, --geometry), when its channels match
        geometry = device.geometry or geometry
        writer = SessionWriter(path, meta, channels=chans, geometry=geometry)
        total = max(1, round(seconds * 12))
        with _progress() as bar:
            task = bar.add_task(f"recording {path.name}", total=total)
            last_flushed = [0]

            def on_tick(n, w):
                bar.update(task, completed=n)
                if not console.is_terminal and w.ticks != last_flushed[0]:  # a line per durable second
                    last_flushed[0] = w.ticks
                    print(f"recorded {w.ticks} frames ({w.seconds:.1f} s) to {path}", file=sys.stderr, flush=True)

            summary = record_frames(device.frames(), writer, seconds, on_tick)
        summary["device_stats"] = device.stats.to_dict()
    if as_json:
        print(json.dumps(summary))
    else:
        console.print(
            f"[bold]{summary['status']}[/]: {summary['frames']} frames ({summary['seconds']:.2f} s), "
            f"{summary['video_frames']} video frames, {summary['drops']} dropped, "
            f"{summary['bytes'] / 1e6:.1f} MB, {summary['realtime_x']}x real time -> {path}",
            highlight=False,
        )


@app.command()
def verify(
    session: str = typer.Argument(..., help="Session directory"),
    repair: bool = typer.Option(False, "--repair", help="Repair a session cut short (keeps its intact part)"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
):
    """Check a session (and repair one cut short). Exit 1 when problems remain."""
    from ..sessions.verify import verify_session

    report = verify_session(session, repair=repair)
    if as_json:
        print(json.dumps(report))
    else:
        state = "[green]ok[/]" if report["ok"] else "[red]problems[/]"
        console.print(
            f"{report['id']}: {state}, {report['ticks']} ticks ({report['seconds']:.2f} s), "
            f"{report['channels']} channels, {report['video_frames']} video frames"
            + (", repaired" if report["repaired"] else ""),
            highlight=False,
        )
        for p in report["problems"]:
            console.print(f"  - {p}", highlight=False)
    if not report["ok"]:
        raise typer.Exit(1)


@app.command()
def replay(
    session: str = typer.Argument(..., help="Session directory"),
    speed: str = typer.Option("max", help="1 for real time, a factor, or max"),
    predict: bool = typer.Option(False, "--predict", help="Add the installed models' predictions"),
    model: str = typer.Option(
        None, help="Model to predict with (default: DUALCAM_DEFAULT_MODEL, else the first audio student)"
    ),
    localise: bool = typer.Option(
        True, help="Beamform each tick and localise the source (sessions of all the array's channels)"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the timeline as JSON"),
    geometry_file: str = geometry_option(),
    grid: str = grid_option(),
):
    """Push a session through the live stack and print its timeline."""
    from ..config import get_settings
    from ..inference.models import load_model_set
    from ..pipelines.replay import replay_timeline

    settings = with_array(get_settings(), geometry_file, grid)
    models = load_model_set(settings.models_dir, settings.ort_threads, settings.default_model) if predict else None
    result = replay_timeline(
        session,
        settings.geometry(),
        models,
        model,
        speed=speed,
        localise=localise,
        hop_s=settings.hop_s,
        mic_channel=settings.mic_channel,
        beamform_backend=settings.beamform_backend,
        cache_dir=settings.cache_dir,
    )
    if as_json:
        print(json.dumps(result))
        return
    from rich.table import Table

    t = Table(title=f"replay of {result['session']['session_id']}")
    for col in ("tick", "time_s", "video", "localisation", "prediction"):
        t.add_column(col)
    for row in result["timeline"]:
        loc = (row.get("localisation") or {}).get("source")
        pred = row.get("prediction")
        t.add_row(
            str(row["tick"]),
            f"{row['time_s']:.3f}",
            "yes" if row["video"] else "-",
            f"({loc['u_px']:.0f}, {loc['v_px']:.0f}) px, {loc['peak_db']:.1f} dB"
            if loc
            else "no source"
            if row.get("localisation")
            else "-",
            (
                f"{pred['label']} {pred['top_k'][0]['probability']:.2f}"
                if pred["label"]
                else (pred["reason"] or "").replace("_", " ")
            )
            if pred
            else "-",
        )
    console.file = sys.stdout
    console.print(t)


@app.command("make-dataset")
def make_dataset(
    out: str = typer.Option(..., "--out", help="Directory for the dataset (created; must be empty if it exists)"),
    preset: str = typer.Option("ci", help="ci|short|small|paper"),
    workers: int = typer.Option(2, help="Processes to use"),
    raw: bool = typer.Option(None, "--raw/--no-raw", help="Store all 128 raw channels (default: the preset's)"),
    seed: int = typer.Option(0, help="Base seed of the scenes and of the split shuffle"),
    sounds: str = typer.Option(
        None,
        help="real|procedural|mixed (default: real when a sound bank is built, "
        "else procedural; build one with `make soundbank`)",
    ),
    images: bool = typer.Option(
        True,
        "--images/--no-images",
        help="MFCC acoustic images from all 128 channels "
        "(teachers need them); --no-images renders microphone 0 alone (students only, ~50x faster)",
    ),
):
    """Generate the simulated dataset as sessions plus a manifest with splits."""
    from ..config import get_settings
    from ..pipelines.dataset import make_dataset as build

    settings = get_settings()
    manifest = build(
        out,
        preset=preset,
        workers=workers,
        raw=raw,
        seed=seed,
        progress=_progress(),
        geometry=settings.geometry(),
        cache_dir=settings.cache_dir,
        images=images,
        **({"sounds": sounds} if sounds else {}),
    )
    console.print(
        f"{len(manifest['sessions'])} sessions, "
        f"{sum(s['seconds'] for s in manifest['sessions']):.0f} s -> {out}/manifest.json",
        highlight=False,
    )


@app.command("import-tfrecords")
def import_tfrecords(
    src: str = typer.Argument(..., help="The published dataset's root (Location_*/Subject_*/Action_*/Data_*.tfrecord)"),
    out: str = typer.Option(..., "--out", help="Directory for the imported sessions and manifest"),
):
    """Convert the published DualCam TFRecords into sessions (no TensorFlow needed)."""
    from ..sessions.importer import import_tfrecords as run_import

    manifest = run_import(src, out, progress=_progress())
    console.print(f"imported {len(manifest['sessions'])} sequences -> {out}/manifest.json", highlight=False)


@app.command("export-wav")
def export_wav(
    session: str = typer.Argument(..., help="Session directory"),
    out: str = typer.Option(..., "--out", help="Output .wav"),
    channel: int = typer.Option(0, help="Device channel (microphone) to export"),
):
    """Write one microphone of a session to a WAV file (float32, pascal)."""
    from ..pipelines.export import export_wav as run

    console.print(f"wrote {run(session, out, channel)}", highlight=False)


@app.command("export-video")
def export_video(
    session: str = typer.Argument(..., help="Session directory"),
    out: str = typer.Option(..., "--out", help="Output .mp4"),
    overlay: bool = typer.Option(
        True, help="Draw the acoustic image (colour map, source marker, dB legend) over the video"
    ),
    range_db: float = typer.Option(
        None, "--range-db", help="dB below each frame's peak the colour map covers (default: DUALCAM_VIEW_RANGE_DB, 10)"
    ),
    band: str = typer.Option(None, help="Band summed, LO-HI Hz (default: DUALCAM_VIEW_BAND_HZ, 900-6400)"),
    margin_db: float = typer.Option(
        None,
        "--margin-db",
        help="Show a source only this many dB above the median pixel (default: DUALCAM_VIEW_MARGIN_DB, 5)",
    ),
    predict: bool = typer.Option(
        False, "--predict", help="Label the source with the installed student's latest prediction"
    ),
    model: str = typer.Option(
        None, help="Model to label with (default: DUALCAM_DEFAULT_MODEL, else the first audio student)"
    ),
    geometry_file: str = geometry_option(),
    grid: str = grid_option(),
):
    """Write a session's video, with the acoustic overlay, to MP4 (a session keeps the array it was recorded with)."""
    from ..config import get_settings
    from ..dsp.overlay import View, parse_band
    from ..inference.models import load_model_set
    from ..pipelines.export import export_video as run

    settings = with_array(get_settings(), geometry_file, grid)
    view = View(settings.view_band_hz, settings.view_range_db, settings.view_margin_db).changed(
        band_hz=parse_band(band) if band else None, range_db=range_db, margin_db=margin_db
    )
    student = (
        load_model_set(settings.models_dir, settings.ort_threads, settings.default_model).get(model)
        if predict
        else None
    )
    path = run(
        session,
        out,
        settings.geometry(),
        overlay=overlay,
        beamform_backend=settings.beamform_backend,
        cache_dir=settings.cache_dir,
        view=view,
        student=student,
        hop_s=settings.hop_s,
        mic_channel=settings.mic_channel,
    )
    console.print(f"wrote {path}", highlight=False)
