"""Commands of the service area: ``serve`` (HTTP/WebSocket service) and ``listen`` (microphone → terminal)."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app, console, fail
from .array import check_array_uri, geometry_option, grid_option, with_array


@app.command()
def serve(
    uri: str = typer.Argument(None, help="Device URI (default: settings' device_uri, falling back to sim://)"),
    host: str = typer.Option(None, help="Bind address (default: settings, 127.0.0.1)"),
    port: int = typer.Option(None, help="Port (default: settings, 8000)"),
    models_dir: str = typer.Option(None, help="Directory of ONNX students and their cards (default: settings)"),
    no_device: bool = typer.Option(False, "--no-device", help="Open no device: serve /v1/predict and /v1/stream only"),
    geometry_file: str = geometry_option(),
    grid: str = grid_option(),
):
    """Run the HTTP/WebSocket service on a live device (dashboard at /)."""
    import uvicorn

    from ..config import get_settings
    from ..devices import parse_uri
    from ..server.app import create_app
    from ..server.run import uvicorn_config

    settings = with_array(get_settings(), geometry_file, grid)
    if models_dir:
        settings = settings.model_copy(update={"models_dir": Path(models_dir)})
    if uri:
        parse_uri(uri)  # a bad URI is the caller's mistake: exit 2 before starting anything
        if settings.imaging and not no_device:
            check_array_uri(uri, settings.geometry())
    host, port = host or settings.host, port or settings.port
    if not 1 <= port <= 65535:
        fail(f"port must be in 1..65535, not {port}")
    what = "uploads and streams only" if no_device else (uri or settings.device_uri)
    console.print(f"dualcam-rt serving {what} on http://{host}:{port} (dashboard at /)")
    config = uvicorn_config(create_app(settings, uri, live=not no_device), host, port, settings.max_ws_frame_bytes)
    uvicorn.Server(config).run()


@app.command()
def listen(
    uri: str = typer.Argument("mic://default", help="Microphone URI (mic://default, mic://NAME) or any device URI"),
    model: str = typer.Option(None, help="Model name (default: DUALCAM_DEFAULT_MODEL, else the first audio student)"),
    models_dir: str = typer.Option(None, help="Directory of ONNX students and their cards (default: settings)"),
    hop: float = typer.Option(None, help="Seconds between predictions (default: settings, 0.5)"),
    seconds: float = typer.Option(None, help="Stop after this many seconds (default: until Ctrl-C)"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON prediction per line instead of the live view"),
):
    """Live classification from a microphone, with a live terminal view."""
    from ..config import get_settings
    from ..inference.models import load_model_set
    from ..pipelines.listen import listen as run_listen

    settings = get_settings()
    if hop is not None and not 0.05 <= hop <= 10:
        fail(f"--hop must be in 0.05..10 s, not {hop}")
    models = load_model_set(
        Path(models_dir) if models_dir else settings.models_dir, settings.ort_threads, settings.default_model
    )
    run_listen(
        uri,
        models,
        settings.geometry(),
        model_name=model,
        hop_s=hop or settings.hop_s,
        seconds=seconds,
        as_json=as_json,
        mic_channel=settings.mic_channel,
    )
