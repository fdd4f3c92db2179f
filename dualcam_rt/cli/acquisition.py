"""Commands of the acquisition layer: geometry, simulate-device, probe."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from ..geometry import get_geometry
from . import app, console, fail


@app.command()
def geometry(
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON"),
    focus_distance: float = typer.Option(None, help="Grid distance in metres (default: settings, 2 m)"),
):
    """Microphone positions, acoustic grid, sample rate, FFT bins and camera model."""
    from ..config import get_settings

    s = get_settings()
    g = get_geometry(focus_distance or s.focus_distance_m, tuple(s.dead_channels))
    if as_json:
        print(json.dumps(g.to_dict()))
        return
    t = Table(title="DualCam geometry", show_header=False)
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
    port: int = typer.Option(7700, help="TCP port to listen on"),
    host: str = typer.Option("127.0.0.1", help="Address to bind"),
    scenario: int = typer.Option(1, help="Acoustic scenario 1|2|3"),
    seed: int = typer.Option(0, help="Scene seed"),
):
    """Run a simulated DualCam that serves the wire protocol over TCP."""
    fail("simulate-device is not available yet (acquisition issue in progress)")


@app.command()
def probe(
    uri: str = typer.Argument(..., help="Device URI, e.g. dualcam://127.0.0.1:7700"),
    seconds: float = typer.Option(3.0, help="How long to read"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
):
    """Connect to a device, read for a while and report blocks, channels, rates, losses."""
    fail("probe is not available yet (acquisition issue in progress)")
