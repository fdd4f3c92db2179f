"""Commands of the dsp area."""

from __future__ import annotations

import typer

from . import app, fail


@app.command()
def beamform(
    input: str = typer.Argument(..., help="A session directory or an HDF5 time-data file (Acoular layout)"),
    out: str = typer.Option(..., "--out", help="Output .npy: frames x 36 x 48 x 512 float32 power"),
    backend: str = typer.Option("auto", help="auto|numpy|cupy"),
):
    """Acoustic images of a session or an HDF5 time-data file."""
    fail("beamform is not available yet (beamformer issue in progress)")


@app.command()
def bench(
    what: str = typer.Argument(..., help="beamform|serve|decode|sim|record"),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON"),
):
    """Run a benchmark and print its figures (ratios against a baseline measured in the same run)."""
    import importlib

    try:
        module = importlib.import_module(f"dualcam_rt.bench.{what}")
    except ModuleNotFoundError:
        fail(f"unknown benchmark {what!r}")
    module.run(as_json=as_json)
