"""The array options of every command that images: ``--geometry FILE.xml`` and ``--grid ROWSxCOLS``.

They override the settings (``DUALCAM_GEOMETRY``, ``DUALCAM_GRID``) for one command; the edge then
builds the geometry once (``Settings.geometry()``) and hands it down.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ..config import Settings
from ..devices import parse_uri
from ..errors import BadInput
from ..geometry import Geometry

GEOMETRY_HELP = (
    "Acoular MicGeom XML of the microphone array, channel i = the file's i-th <pos> (default: "
    "DUALCAM_GEOMETRY, else the DualCam); a bare name Acoular ships, e.g. minidsp_uma-16.xml, "
    "is found in Acoular's xml folder"
)
GRID_HELP = "Acoustic pixels ROWSxCOLS over the camera's view (default: DUALCAM_GRID, 36x48)"


def geometry_option():
    return typer.Option(None, "--geometry", help=GEOMETRY_HELP)


def grid_option():
    return typer.Option(None, "--grid", help=GRID_HELP)


def with_array(settings: Settings, geometry: str | None, grid: str | None) -> Settings:
    """``settings`` with this command's ``--geometry`` and ``--grid``; BadInput (exit 2) at once when the
    file cannot be read or the grid is malformed, before any device is opened."""
    updates: dict = {}
    if geometry:
        updates["geometry_file"] = Path(geometry)
    if grid:
        updates["grid"] = grid
    settings = settings.model_copy(update=updates) if updates else settings
    settings.geometry()  # read the file and check the grid now
    return settings


def check_array_uri(uri: str, geometry: Geometry) -> None:
    """BadInput (exit 2, before anything starts) when a ``mic://`` URI asks for an array of another
    number of channels than ``geometry``'s microphones (one channel: predictions only, never imaged)."""
    scheme, _, query = parse_uri(uri)
    if scheme != "mic" or not query.get("channels", "").isdigit():
        return
    channels = int(query["channels"])
    if channels > 1 and channels != geometry.n_mics:
        raise BadInput(
            f"{uri} captures {channels} channels but the geometry {geometry.name} has {geometry.n_mics} "
            "microphones: give the array's geometry (--geometry FILE.xml or DUALCAM_GEOMETRY)"
        )
