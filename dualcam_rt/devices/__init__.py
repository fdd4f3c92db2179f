"""Devices: one interface (``Device`` yielding ``SensorFrame``s), chosen by URI.

``open_device(uri)`` resolves the scheme through ``DEVICE_KINDS``:
``dualcam://HOST:PORT``, ``sim://?scenario=K&seed=N&label=C&subject=S``, ``mic://default``
(``&camera=0`` adds a webcam) and ``replay://PATH``.
"""

from .base import Device, DeviceStats
from .registry import DEVICE_KINDS, open_device, parse_uri

__all__ = ["Device", "DeviceStats", "DEVICE_KINDS", "open_device", "parse_uri"]
