"""URI → device resolution, one entry per device kind (each kind lives in its own module)."""

from __future__ import annotations

import importlib
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import BadInput
from .base import Device

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


def open_device(uri: str, **options) -> Device:
    """Open the device a URI names; ``options`` go to that kind's constructor."""
    scheme, location, query = parse_uri(uri)
    return device_class(scheme).from_uri(uri, location, query, **options)
