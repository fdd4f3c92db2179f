"""Simulated DualCam scenes (the project's data source when no sensor is attached).

``Scene(...).next_tick()`` renders one sensor tick: the 128-channel audio block the array would
record, the camera frame, and the ground truth. The device ``sim://`` and the wire-protocol
simulator ``dualcam-rt simulate-device`` both stream from it. Modules: ``actions`` (the 14
sound generators), ``ambience`` (interferers, background), ``rooms`` (scenarios, RIRs and their
cache), ``render`` (camera frames), ``scene`` (the streaming mix), ``figures`` (doc images).
See docs/simulation.md.
"""

from .scene import Scene, SceneTick

__all__ = ["Scene", "SceneTick"]
