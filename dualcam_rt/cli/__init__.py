"""The ``dualcam-rt`` command: one subcommand per user job.

Each area registers its commands from its own module (``acquisition``, ``dsp``, ``sessions``,
``training``, ``service``); errors a user can cause (``DualcamError``) become a one-line
message and exit code 2 (bad input) or 1 (failure), never a traceback.
"""

from __future__ import annotations

import sys

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


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error and exit (2: bad usage or input, 1: failure)."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


from . import acquisition, dsp, gate, score, sessions, service, soundbank, training  # noqa: E402,F401  (register commands)


def main() -> None:
    try:
        app()  # standalone: click prints usage errors itself and exits 2
    except DualcamError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)
