"""Commands of the dsp area."""

from __future__ import annotations

import typer

from . import app, console, fail
from .array import geometry_option, grid_option, with_array


@app.command()
def beamform(
    input: str = typer.Argument(..., help="A session directory or an HDF5 time-data file (Acoular layout)"),
    out: str = typer.Option(
        ...,
        "--out",
        help="Output .npy: frames x 36 x 48 x 512 float32 power (DualCam; "
        "frames x rows x cols x rate/24 for an array at another rate)",
    ),
    backend: str = typer.Option(
        None, help="auto (CuPy when a GPU is present)|numpy|cupy; default DUALCAM_BEAMFORM_BACKEND or auto"
    ),
    geometry_file: str = geometry_option(),
    grid: str = grid_option(),
):
    """Acoustic images of a session or an HDF5 time-data file (frames x 36 x 48 x 512, float32 Pa^2)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..config import get_settings
    from ..pipelines.offline import beamform_recording

    settings = with_array(get_settings(), geometry_file, grid)

    columns = (TextColumn("beamforming"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("beamform", total=None)
        shape = beamform_recording(
            input,
            out,
            settings.geometry(),
            backend=backend or settings.beamform_backend,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            cache_dir=settings.cache_dir,
        )
    console.print(f"wrote {out}: {' x '.join(map(str, shape))} float32", highlight=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(
    ctx: typer.Context,
    what: str = typer.Argument(
        ..., help="beamform|serve|decode|sim|record|soak (soak: --clients N --minutes M --live-minutes L)"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON"),
):
    """Run a benchmark and print its figures (ratios against a baseline measured in the same run)."""
    import importlib

    from ..bench import options

    try:
        module = importlib.import_module(f"dualcam_rt.bench.{what}")
    except ModuleNotFoundError:
        fail(f"unknown benchmark {what!r}")
    module.run(as_json=as_json, **options(ctx.args, module.run))
