"""Commands of the service area."""

from __future__ import annotations

import typer

from . import app, fail


@app.command()
def serve(
    uri: str = typer.Argument(None, help="Device URI (default: settings' device_uri, falling back to sim://)"),
    host: str = typer.Option(None, help="Bind address (default 127.0.0.1)"),
    port: int = typer.Option(None, help="Port (default 8000)"),
):
    """Run the HTTP/WebSocket service."""
    fail("serve is not available yet (service issue in progress)")


@app.command()
def listen(uri: str = typer.Argument("mic://default", help="Microphone URI")):
    """Live classification from a microphone in the terminal."""
    fail("listen is not available yet (service issue in progress)")
