"""The ``dualcam-rt`` command: one subcommand per user job.

Each area registers its commands from its own module (``acquisition``, ``dsp``, ``sessions``,
``training``, ``service``); errors a user can cause (``DualcamError``) become a one-line
message and exit code 2 (bad input) or 1 (failure), never a traceback.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console

from ..errors import DualcamError

app = typer.Typer(
    name="dualcam-rt",
    help="Acquisition, beamforming, recording, training and real-time inference for DualCam acoustic cameras.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error and exit (2: bad usage or input, 1: failure)."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


# commands that run long enough for thread pools to matter (BLAS, numba, onnxruntime)
LONG_RUNNING = {
    "serve",
    "listen",
    "bench",
    "record",
    "replay",
    "make-dataset",
    "beamform",
    "export-video",
    "export-wav",
    "import-tfrecords",
    "simulate-device",
    "score",
    "calibrate-gate",
    "soundbank",
    "train",
    "distill",
    "evaluate",
    "quantize",
    "export",
}


@app.callback()
def _start(ctx: typer.Context) -> None:
    """Before a long-running command: hold BLAS and numba to the CPUs this process may use (onnxruntime
    sessions size themselves from the same budget), so a CPU quota or a taskset never runs more threads
    than CPUs."""
    if ctx.invoked_subcommand in LONG_RUNNING:
        import numpy  # noqa: F401  (its BLAS loaded first: the budget holds the libraries loaded so far)

        from ..threads import apply_cpu_budget

        apply_cpu_budget()


from . import acquisition, dsp, gate, score, service, sessions, soundbank, training  # noqa: E402,F401  (register commands)


def main() -> None:
    try:
        app()  # standalone: click prints usage errors itself and exits 2
    except DualcamError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)
