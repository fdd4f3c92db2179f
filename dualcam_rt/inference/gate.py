"""The "no action" gate, the onset detector and the debounced event list of a stream.

A window of one microphone gets a label only when something happens in it:

1. **Level** (reason ``silence``): the window's RMS level in dB SPL (re 20 µPa) of the window in Pa
   (``level_db``). Devices deliver Pa; audio files and PCM streams are digital (±1) and are taken
   as full scale = ``FILE_FULL_SCALE_PA`` (20 Pa, 120 dB SPL, the fixed input recipe's reference
   and ``mic://``'s default). Below ``silence_db`` the student is not run at all.
2. **Background class** (reason ``no_action``): when the card names one (trained on real
   ambience) and it is the top class. It is never a label; the actions' probabilities are
   reported raw (they sum to 1 minus the background's).
3. **Confidence** (reason ``no_action``): the top action's probability below ``min_confidence``.

A card carries ``"gate": {"background_class": str | null, "silence_db": float,
"min_confidence": float}`` (``dualcam-rt calibrate-gate`` writes it); a card without one gets
``DEFAULT_GATE`` (level only, at the noise floor of the calibration clips).

Events: ``onsets`` finds energy onsets in a window (stream seconds); ``Events`` reports each onset
of a labelled window once, so that one clap seen by ten overlapping windows is one event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..dsp.spectrogram import REFERENCE_PA
from ..errors import BadInput

P0_PA = 20e-6  # 0 dB SPL
FILE_FULL_SCALE_PA = REFERENCE_PA  # the pressure of digital full scale in uploads and PCM streams
# Level gate of cards without a "gate": just above the loudest microphone noise floor of the
# calibration clips (val-split folder, `calibrate-gate`): silence, not ambience, is cut.
DEFAULT_SILENCE_DB = 56.0
SILENCE = "silence"
NO_ACTION = "no_action"
ONSET_FRAME_S = 0.01  # energy envelope resolution
ONSET_CONTEXT_S = 0.2  # the background an onset rises above: the median of this much before it
ONSET_RISE_DB = 10.0
ONSET_REFRACTORY_S = 0.1  # two onsets closer than this are one
DEBOUNCE_S = 1.0  # onsets closer than this to one already seen belong to the same event


def level_db(wave: np.ndarray, pa_per_unit: float = 1.0) -> float:
    """RMS level (dB SPL re 20 µPa) of ``wave`` (samples,) in units of ``pa_per_unit`` Pa; -inf for zeros."""
    x = np.asarray(wave, dtype=np.float32)
    ms = float(np.dot(x, x)) / max(len(x), 1) * pa_per_unit**2
    return 10 * np.log10(ms / P0_PA**2) if ms > 0 else float("-inf")


@dataclass(frozen=True)
class Gate:
    """When a window gets no label (see the module docstring)."""

    silence_db: float = DEFAULT_SILENCE_DB
    min_confidence: float = 0.0
    background_class: str | None = None

    @classmethod
    def of(cls, card: dict) -> Gate:
        """The gate of a model card (``DEFAULT_GATE`` without a ``gate``); BadInput when malformed."""
        spec = card.get("gate")
        if spec is None:
            return DEFAULT_GATE
        try:
            gate = cls(
                float(spec.get("silence_db", DEFAULT_SILENCE_DB)),
                float(spec.get("min_confidence", 0.0)),
                spec.get("background_class"),
            )
        except (AttributeError, TypeError, ValueError):
            raise BadInput(
                f"model card gate must be {{silence_db, min_confidence, background_class}}, got {spec!r}"
            ) from None
        if gate.background_class is not None and gate.background_class not in card.get("classes", []):
            raise BadInput(f"model card gate: background class {gate.background_class!r} is not one of the classes")
        if not 0 <= gate.min_confidence <= 1:
            raise BadInput(f"model card gate: min_confidence must be in 0..1, got {gate.min_confidence}")
        return gate

    def card(self) -> dict:
        """The ``gate`` entry of a model card."""
        # rounded up: a calibrated threshold sits just above a measured clip and must stay above it
        return {
            "background_class": self.background_class,
            "silence_db": math.ceil(self.silence_db * 100) / 100,
            "min_confidence": math.ceil(self.min_confidence * 1e4) / 1e4,
            "level": "RMS dB SPL re 20 uPa of the window in Pa (files and PCM: full scale = 20 Pa)",
        }

    def actions(self, classes: list[str]) -> list[str]:
        """The classes that may be a label (all but the background class)."""
        return [c for c in classes if c != self.background_class]

    def silent(self, level: float) -> bool:
        return level < self.silence_db

    def decide(self, probs: np.ndarray, classes: list[str], top_k: int = 3) -> dict[str, Any]:
        """The answer of one window the student ran on: ``label`` (None with a ``reason`` for no
        action), the top-k actions and every action's probability (raw)."""
        keep = [i for i, c in enumerate(classes) if c != self.background_class]
        p = probs[keep]
        order = np.argsort(p)[::-1][:top_k]
        names = [classes[i] for i in keep]
        answer: dict[str, Any] = {
            "label": names[order[0]],
            "reason": None,
            "top_k": [{"label": names[i], "probability": round(float(p[i]), 6)} for i in order],
            "probabilities": {c: round(float(v), 6) for c, v in zip(names, p)},
        }
        if classes[int(np.argmax(probs))] == self.background_class or p[order[0]] < self.min_confidence:
            answer["label"], answer["reason"] = None, NO_ACTION
        return answer

    @staticmethod
    def silence_answer() -> dict[str, Any]:
        """The answer of a window below the level gate: the student did not run, so no probabilities."""
        return {"label": None, "reason": SILENCE, "top_k": [], "probabilities": {}}


DEFAULT_GATE = Gate()


def onsets(wave: np.ndarray, end: int, sample_rate: int, floor_db: float, pa_per_unit: float = 1.0) -> list[float]:
    """Energy onsets (stream seconds) in a window ``wave`` (samples,) of a stream ending at sample ``end``.

    The envelope is the level of 10-ms frames on the stream's own frame grid (so overlapping windows
    find the same onset at the same time); an onset is a frame at least ``ONSET_RISE_DB`` above the
    median of the ``ONSET_CONTEXT_S`` before it and louder than ``floor_db`` (dB SPL)."""
    frame = max(1, round(sample_rate * ONSET_FRAME_S))
    ctx = round(ONSET_CONTEXT_S / ONSET_FRAME_S)
    start = end - len(wave)
    skip = (-start) % frame
    n = (len(wave) - skip) // frame
    if n <= ctx:
        return []
    x = np.asarray(wave[skip : skip + n * frame], dtype=np.float32).reshape(n, frame)
    power = np.einsum("ij,ij->i", x, x) / frame * (pa_per_unit / P0_PA) ** 2
    level = 10 * np.log10(np.maximum(power, 1e-12))
    background = np.median(np.lib.stride_tricks.sliding_window_view(level[:-1], ctx), axis=1)
    hit = (level[ctx:] - background >= ONSET_RISE_DB) & (level[ctx:] >= floor_db)
    rising = np.flatnonzero(hit & ~np.concatenate([[False], hit[:-1]])) + ctx
    out: list[float] = []
    for i in rising:
        t = (start + skip + int(i) * frame) / sample_rate
        if not out or t - out[-1] >= ONSET_REFRACTORY_S:
            out.append(round(t, 4))
    return out


@dataclass
class Events:
    """The debounced event list of one stream: each onset seen in a labelled window is reported once.

    An onset within ``debounce_s`` of one already seen belongs to that event (and extends it, so a
    continuous sound whose onsets keep coming stays one event); any other is a new event, reported
    with the label of the window it was first seen in."""

    debounce_s: float = DEBOUNCE_S
    reported: list[dict[str, Any]] = field(default_factory=list)
    seen: list[float] = field(default_factory=list)

    def update(self, onsets_s: list[float], label: str | None, window_start_s: float) -> list[dict[str, Any]]:
        """The events new in one window (``label`` None: none); forgets onsets no later window can see."""
        self.seen = [t for t in self.seen if t >= window_start_s - self.debounce_s]
        if label is None:
            return []
        new = []
        for t in onsets_s:
            if not any(abs(t - s) < self.debounce_s for s in self.seen):
                new.append({"label": label, "onset_s": t})
            self.seen.append(t)
        self.reported.extend(new)
        del self.reported[:-100]  # the list a consumer may read back: the last 100 events
        return new
