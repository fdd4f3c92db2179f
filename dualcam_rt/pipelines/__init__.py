"""The only package that composes devices, DSP, models and sessions (docs/architecture.md).

Two stages, used by every consumer: ``stream.StreamPredictor`` (one microphone -> a prediction per
hop) and ``imaging.ImagingStage`` (beamform -> band energy -> source position -> overlay). Built
from them: the live pipeline (``live``) and its recorder (``recorder``), ``listen``, ``replay``,
``export``, ``dataset`` (make-dataset), ``offline`` (beamform a recording) and ``quantize``.
Every function takes the geometry, cache folder and models its caller (an edge) built once.
"""
