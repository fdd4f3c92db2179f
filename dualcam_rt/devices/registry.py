"""URI → device resolution, one entry per device kind (each kind lives in its own module)."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import BadInput, DeviceError
from ..geometry import Geometry
from .base import Device

log = logging.getLogger(__name__)

# scheme -> "module:Class"; modules are imported on first use so that, e.g., sounddevice
# is only needed by mic://.
DEVICE_KINDS = {
    "dualcam": "dualcam_rt.devices.dualcam:DualCamDevice",
    "sim": "dualcam_rt.devices.sim:SimDevice",
    "mic": "dualcam_rt.devices.mic:MicDevice",
    "replay": "dualcam_rt.devices.replay:ReplayDevice",
}


def parse_uri(uri: str) -> tuple[str, str, dict[str, str]]:
    """Split a device URI into (scheme, location, query); each query key keeps its last value."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in DEVICE_KINDS:
        raise BadInput(f"unknown device URI {uri!r}: expected one of " + ", ".join(f"{s}://" for s in DEVICE_KINDS))
    location = unquote(parts.netloc + parts.path)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return scheme, location, query


class DeviceKind(Protocol):
    """A device class as the registry uses it: each kind builds itself from its parsed URI."""

    def from_uri(self, uri: str, location: str, query: dict, **options: Any) -> Device: ...


def device_class(scheme: str) -> DeviceKind:
    module, cls = DEVICE_KINDS[scheme].split(":")
    return getattr(importlib.import_module(module), cls)


def open_device(
    uri: str,
    fallback_uri: str | None = None,
    timeout: float | None = None,
    cache_dir: str | Path | None = None,
    geometry: Geometry | None = None,
    **options,
) -> Device:
    """Open the device a URI names; ``options`` go to that kind's constructor.

    ``timeout`` (s) bounds how long a ``dualcam://`` device may take to answer (default
    ``config.DEFAULT_CONNECT_TIMEOUT_S``). With a ``fallback_uri`` (a ``sim://`` URI) a ``dualcam://``
    device that does not answer is replaced by that device with a warning, and its ``describe()``
    then says ``"fallback": true``. The service enables this; probe and record do not.
    ``cache_dir`` is where a ``sim://`` device keeps its rooms' impulse responses; ``geometry`` the
    array a ``sim://`` device simulates unless its URI names one (``?geometry=FILE``).
    """
    scheme, location, query = parse_uri(uri)
    if fallback_uri is not None:
        parse_uri(fallback_uri)  # a bad fallback is a configuration mistake, reported before any wait
    try:
        return device_class(scheme).from_uri(
            uri, location, query, **_options(scheme, options, timeout, cache_dir, geometry)
        )
    except DeviceError as err:
        if fallback_uri is None or scheme != "dualcam":
            raise
        log.warning("%s; falling back to the simulated sensor %s", err, fallback_uri)
        t_scheme, t_location, t_query = parse_uri(fallback_uri)
        device = device_class(t_scheme).from_uri(
            fallback_uri, t_location, t_query, **_options(t_scheme, {}, timeout, cache_dir, geometry)
        )
        device.fallback_from = {"uri": uri, "reason": str(err)}
        return device


def _options(
    scheme: str, options: dict, timeout: float | None, cache_dir: str | Path | None, geometry: Geometry | None = None
) -> dict:
    """The constructor options of one device kind: the timeout is a dualcam:// one, the cache and the
    geometry sim:// ones."""
    if scheme == "dualcam" and timeout is not None:
        options = {**options, "timeout": timeout}
    if scheme == "sim" and cache_dir is not None:
        options = {**options, "cache_dir": cache_dir}
    if scheme == "sim" and geometry is not None:
        options = {**options, "geometry": geometry}
    return options
