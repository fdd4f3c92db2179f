"""Commands of the acquisition layer: geometry, simulate-device, probe."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from . import app, console, fail
from .array import geometry_option, grid_option, with_array


@app.command()
def geometry(
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON"),
    focus_distance: float = typer.Option(None, help="Grid distance in metres (default: settings, 2 m)"),
    geometry_file: str = geometry_option(),
    grid: str = grid_option(),
):
    """Microphone positions, acoustic grid, sample rate, FFT bins and camera model."""
    from ..config import get_settings

    s = with_array(get_settings(), geometry_file, grid)
    if focus_distance:  # --focus-distance overrides
        s = s.model_copy(update={"focus_distance_m": focus_distance})
    g = s.geometry()
    if as_json:
        print(json.dumps(g.to_dict()))
        return
    t = Table(title=f"{g.name} geometry", show_header=False)
    d = g.to_dict()
    for k in ("sample_rate", "block_samples", "fps", "nfft", "n_bins", "dead_channels", "min_mic_spacing_m"):
        t.add_row(k, str(d[k]))
    t.add_row("mics", f"{g.n_mics} capsules, x {g.mics[:, 0].min():+.3f}..{g.mics[:, 0].max():+.3f} m")
    t.add_row("grid", f"{d['grid']['rows']}x{d['grid']['cols']} at {g.focus_distance_m} m")
    t.add_row("frequencies", f"{g.frequencies[0]:.0f}..{g.frequencies[-1]:.0f} Hz, step {g.frequencies[1]:.0f} Hz")
    t.add_row("camera", f"{g.camera.width}x{g.camera.height}, HFOV {g.camera.hfov_deg} deg")
    console.file = __import__("sys").stdout
    console.print(t)


@app.command("simulate-device")
def simulate_device(
    port: int = typer.Option(7700, help="TCP port to listen on (0: any free port)"),
    host: str = typer.Option("127.0.0.1", help="Address to bind"),
    scenario: int = typer.Option(1, help="Acoustic scenario 1|2|3"),
    seed: int = typer.Option(0, help="Scene seed"),
    label: str = typer.Option(None, help="Action class the simulated subject performs"),
    subject: int = typer.Option(None, help="Subject index"),
    speed: str = typer.Option("1", help="1 for real time, a factor, or max (as fast as the client reads)"),
    encoding: str = typer.Option("int24", help="Audio sample format on the wire: int24|int16|float32"),
    impulse: list[int] = typer.Option([], help="Tick at which a click and a white flash happen (repeatable)"),
    drop_every: int = typer.Option(0, help="Fault injection: skip every Nth audio packet (0: never)"),
):
    """Run a simulated DualCam that serves the wire protocol over TCP."""
    from firmware_io import AudioEncoding

    from ..labels import SCENARIOS, class_index

    if encoding.upper() not in AudioEncoding.__members__:
        fail(f"encoding must be int24, int16 or float32, not {encoding!r}")
    if scenario not in SCENARIOS:
        fail(f"scenario must be 1, 2 or 3, not {scenario}")
    if label:
        class_index(label)
    if not 0 <= port <= 65535 or drop_every < 0:
        fail("port must be in 0..65535 and drop-every >= 0")
    from ..config import get_settings
    from ..devices.base import parse_speed
    from ..devices.simulator import SimulatedDualCam

    server = SimulatedDualCam(
        host,
        port,
        scenario=scenario,
        seed=seed,
        label=label,
        subject=subject,
        speed=parse_speed(speed),
        encoding=AudioEncoding[encoding.upper()],
        impulse_ticks=impulse,
        drop_every=drop_every,
        cache_dir=get_settings().cache_dir,
    )
    try:
        bound = server.start()
    except OSError as err:
        fail(f"cannot listen on {host}:{port}: {err.strerror or err}", code=1)
    console.print(
        f"simulated DualCam serving dualcam://{host}:{bound} (scenario {scenario}, seed {seed}, "
        f"speed {speed}, {encoding}); Ctrl-C stops it",
        highlight=False,
    )
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


@app.command()
def probe(
    uri: str = typer.Argument(..., help="Device URI, e.g. dualcam://127.0.0.1:7700"),
    seconds: float = typer.Option(3.0, help="How long to read"),
    timeout: float = typer.Option(None, help="Seconds a dualcam:// device may stay silent (default: settings, 2 s)"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
    geometry_file: str = geometry_option(),
    live: bool = typer.Option(
        False,
        "--live",
        help="Show each channel's level live while reading (tap each "
        "capsule in turn: its row should move, and only its row)",
    ),
):
    """Connect to a device, read for a while and report blocks, channels, rates, losses and each channel's level.

    One row per channel: rms and peak dBFS over the probe (and, with --geometry, the microphone that
    channel is in the geometry file), so a wrong channel order shows when each capsule is tapped in
    turn. Exits 1 (with a one-line message after the report) when the device does not answer,
    delivers no audio, has another number of channels than the geometry's microphones, or shows
    CRC errors, malformed packets, dropped bytes or lost packets.
    """
    from rich.console import Console
    from rich.live import Live

    from ..devices.probe import channel_levels, probe_device

    if not seconds > 0 or (timeout is not None and not timeout > 0):
        fail("--seconds and --timeout must be positive")
    from ..config import get_settings

    settings = get_settings()
    geometry = with_array(settings, geometry_file, None).geometry() if geometry_file else None
    view = Live(Table(), console=Console(), refresh_per_second=8) if live and not as_json else None

    def show(frame, device) -> None:  # the last block's levels, while reading
        if view is None:
            return
        full_scale = float(device.describe().get("full_scale_pa") or 20.0)
        view.update(_levels_table(f"{uri}: block {frame.index}", channel_levels(frame.audio, full_scale, geometry)))

    if view is not None:
        view.start()
    try:
        report = probe_device(
            uri,
            seconds,
            timeout or settings.connect_timeout_s,
            settings.cache_dir,
            geometry=geometry,
            on_frame=show if view is not None else None,
        )
    finally:
        if view is not None:
            view.stop()
    if as_json:
        print(json.dumps(report))
    else:
        t = Table(title=f"probe {uri}", show_header=False)
        for k, v in report.items():
            if k != "channel_levels":
                t.add_row(k, str(v))
        Console().print(t)
        Console().print(
            _levels_table(
                f"channel levels over {report['seconds']} s (re {report['full_scale_pa']:g} Pa full scale)",
                report["channel_levels"],
            )
        )
    if report["errors"]:
        fail("; ".join(report["errors"]), code=1)


def _levels_table(title: str, rows: list[dict]) -> Table:
    """Channel, its microphone (with a geometry), rms and peak dBFS and a bar of the peak (-60..0 dBFS)."""
    t = Table(title=title)
    with_mics = bool(rows) and "x_m" in rows[0]
    for col in ("channel", *(("mic x, y (m)",) if with_mics else ()), "rms dBFS", "peak dBFS", ""):
        t.add_column(col, justify="left" if col == "" else "right")
    for row in rows:
        peak = row["peak_dbfs"]
        bar = "#" * max(0, round((60 + peak) / 2)) if peak is not None else ""
        mic = (f"{row['x_m']:+.3f}, {row['y_m']:+.3f}" + (" dead" if row["dead"] else ""),) if with_mics else ()
        t.add_row(
            str(row["channel"]),
            *mic,
            "-" if row["rms_dbfs"] is None else f"{row['rms_dbfs']:.1f}",
            "-" if peak is None else f"{peak:.1f}",
            bar,
        )
    return t
