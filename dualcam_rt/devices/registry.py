"""URI → device resolution, one entry per device kind (each kind lives in its own module)."""

from __future__ import annotations

import importlib
import logging
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import BadInput, DeviceError
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
        raise BadInput(f"unknown device URI {uri!r}: expected one of "
                       + ", ".join(f"{s}://" for s in DEVICE_KINDS))
    location = unquote(parts.netloc + parts.path)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return scheme, location, query


def device_class(scheme: str) -> type[Device]:
    module, cls = DEVICE_KINDS[scheme].split(":")
    return getattr(importlib.import_module(module), cls)


def open_device(uri: str, fallback: bool = False, timeout: float | None = None, **options) -> Device:
    """Open the device a URI names; ``options`` go to that kind's constructor.

    ``timeout`` (s) bounds how long a ``dualcam://`` device may take to answer (default: the
    ``connect_timeout_s`` setting). With ``fallback=True`` a ``dualcam://`` device that does not
    answer is replaced by the ``fallback_uri`` setting (a ``sim://`` device) with a warning, and
    its ``describe()`` then says ``"fallback": true``. The service enables this; probe and record
    do not.
    """
    scheme, location, query = parse_uri(uri)
    if scheme == "dualcam" and timeout is not None:
        options["timeout"] = timeout
    try:
        return device_class(scheme).from_uri(uri, location, query, **options)
    except DeviceError as err:
        if not (fallback and scheme == "dualcam"):
            raise
        from ..config import get_settings

        target = get_settings().fallback_uri
        log.warning("%s; falling back to the simulated sensor %s", err, target)
        t_scheme, t_location, t_query = parse_uri(target)
        device = device_class(t_scheme).from_uri(target, t_location, t_query)
        device.fallback_from = {"uri": uri, "reason": str(err)}
        return device
