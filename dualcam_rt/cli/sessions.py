"""Commands of the sessions area."""

from __future__ import annotations

import typer

from . import app, fail


@app.command()
def record(
    uri: str = typer.Argument(..., help="Device URI"),
    seconds: float = typer.Option(..., help="How long to record"),
    out: str = typer.Option(..., "--out", help="Directory to create the session in"),
    label: str = typer.Option(None, help="Action class"),
    scenario: int = typer.Option(None, help="Scenario 1|2|3"),
    subject: int = typer.Option(None, help="Subject index"),
):
    """Record a dataset session, with a progress bar."""
    fail("record is not available yet (sessions issue in progress)")


@app.command()
def verify(session: str = typer.Argument(...), repair: bool = typer.Option(False, "--repair")):
    """Check a session (and repair one cut short)."""
    fail("verify is not available yet (sessions issue in progress)")


@app.command()
def replay(
    session: str = typer.Argument(...),
    speed: str = typer.Option("max", help="1 for real time, a factor, or max"),
    predict: bool = typer.Option(False, "--predict"),
    as_json: bool = typer.Option(False, "--json"),
):
    """Push a session through the live stack."""
    fail("replay is not available yet (sessions issue in progress)")


@app.command("make-dataset")
def make_dataset(out: str = typer.Option(..., "--out"), preset: str = typer.Option("ci", help="ci|small|paper")):
    """Generate the simulated dataset as sessions plus a manifest with splits."""
    fail("make-dataset is not available yet (sessions issue in progress)")
