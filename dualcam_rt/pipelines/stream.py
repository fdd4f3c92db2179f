"""The stream predictor: one microphone's samples in, a prediction per hop out.

``StreamPredictor(model, sample_rate, hop_s)`` is owned by whoever feeds the stream (the live
device, a replayed session, a WebSocket client, the terminal). ``push(samples)`` windows the
stream (the model's window, one every ``hop_s``), makes each window's model input (incrementally
at the model's rate, ``inference.features.StreamFeatures``; resampled otherwise), runs the student
and gives back one ``Prediction`` per window. The WebSocket route runs many streams at once:
``push_batched(samples, batcher)`` hands the same inputs to a shared ``inference.stream.Batcher``.

The "no action" gate (``inference.gate``) is applied here, once, for every consumer: a window
below the model's level gate is answered ``silence`` without computing its input or running the
student (a quiet stream costs a level measurement per hop); otherwise ``Gate.decide`` may answer
``no_action``. Each loud window's energy onsets feed the stream's debounced event list, so one
clap seen by ten overlapping windows is reported as one event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from ..dsp.resample import resample
from ..inference.features import StreamFeatures
from ..inference.gate import Events, Gate, level_db, onsets
from ..inference.models import Model
from ..inference.predict import predict_batch
from ..inference.stream import Batcher, SlidingWindow


@dataclass(frozen=True)
class Prediction:
    """The student's answer for one window of a stream.

    ``t_s`` is the window's end on the stream's clock (s) and ``window_s`` its length (s; shorter
    than the model's window in the stream's first seconds). ``label`` is the top action, or None
    with a ``reason`` (``silence``: below the level gate, the student did not run, ``top_k`` and
    ``probabilities`` are empty; ``no_action``: the background class or too little confidence).
    ``level_db`` is the window's level (dB SPL; None for digital silence), ``onsets_s`` the energy
    onsets found in it (stream seconds) and ``events`` the events first reported by this window
    (``{"label", "onset_s"}``). ``timing`` holds stage times in ms (features, inference, and
    queue/batch when batched; zeros when the student did not run).
    """

    t_s: float
    window_s: float
    label: str | None
    top_k: list[dict[str, Any]]
    probabilities: dict[str, float]
    reason: str | None = None
    level_db: float | None = None
    onsets_s: tuple[float, ...] = ()
    events: tuple[dict[str, Any], ...] = ()
    timing: dict[str, float] = field(default_factory=dict)

    def answer(self) -> dict[str, Any]:
        """The JSON fields every consumer sends: label, reason (None when labelled), top-k, every
        action's probability, level, the window's newest onset (``onset_s``, None without one) and
        the events new in this window."""
        return {
            "label": self.label,
            "reason": self.reason,
            "top_k": self.top_k,
            "probabilities": self.probabilities,
            "level_db": self.level_db,
            "onset_s": self.onsets_s[-1] if self.onsets_s else None,
            "events": list(self.events),
        }


@dataclass(frozen=True)
class Window:
    """One window waiting for the student: its end (stream samples), its samples, their level
    (dB SPL) and how to make its input."""

    end: int
    wave: np.ndarray
    level_db: float
    make_input: Callable[[], np.ndarray]


class StreamPredictor:
    """Predictions every ``hop_s`` seconds over the last window of one mono stream at ``sample_rate``,
    in units of ``pa_per_unit`` Pa (devices: 1; files and PCM: ``gate.FILE_FULL_SCALE_PA``)."""

    def __init__(self, model: Model, sample_rate: int, hop_s: float, top_k: int = 3, pa_per_unit: float = 1.0):
        self.model, self.sample_rate, self.hop_s, self.top_k = model, int(sample_rate), hop_s, top_k
        self.pa_per_unit = pa_per_unit
        self.gate = Gate.of(model.card)
        self.events = Events()
        self.window = SlidingWindow(int(model.seconds * sample_rate), int(hop_s * sample_rate))
        # incremental features at the model's own rate; windows at another rate are resampled whole
        self.features = StreamFeatures(model) if self.sample_rate == model.sample_rate else None
        self.skipped = 0  # windows below the level gate: no input computed, no student run

    @property
    def samples_pushed(self) -> int:
        return self.window.total

    def windows(self, samples: np.ndarray) -> list[Window]:
        """Append ``samples`` (mono, float) to the stream; the windows that ended inside them."""
        if self.features is not None:
            self.features.push(samples)
        out = []
        for end, wave in self.window.push(samples):
            if self.features is not None:
                make = partial(self.features.at, end, wave)
            else:
                make = partial(_resampled_input, self.model, wave, self.sample_rate)
            out.append(Window(end, wave, level_db(wave, self.pa_per_unit), make))
        return out

    def silent(self, window: Window) -> Prediction | None:
        """The ``silence`` prediction of a window below the level gate (and its features skipped), else None."""
        if not self.gate.silent(window.level_db):
            return None
        self.skipped += 1
        if self.features is not None:
            self.features.skip(window.end)
        self.events.update([], None, (window.end - len(window.wave)) / self.sample_rate)
        return self._prediction(window, self.gate.silence_answer(), [], {"features_ms": 0.0, "inference_ms": 0.0})

    def decide(self, window: Window, probs: np.ndarray, timing: dict[str, float]) -> Prediction:
        """The prediction of one window the student ran on, from its probabilities (n_classes,)."""
        answer = self.gate.decide(probs, self.model.classes, self.top_k)
        found = onsets(window.wave, window.end, self.sample_rate, self.gate.silence_db, self.pa_per_unit)
        return self._prediction(window, answer, found, timing)

    def _prediction(self, window: Window, answer: dict, found: list[float], timing: dict[str, float]) -> Prediction:
        start_s = (window.end - len(window.wave)) / self.sample_rate
        new = self.events.update(found, answer["label"], start_s)
        return Prediction(
            t_s=window.end / self.sample_rate,
            window_s=len(window.wave) / self.sample_rate,
            **answer,
            level_db=round(window.level_db, 2) if np.isfinite(window.level_db) else None,
            onsets_s=tuple(found),
            events=tuple(new),
            timing=timing,
        )

    def push(self, samples: np.ndarray) -> list[Prediction]:
        """The predictions of the windows that ended inside ``samples``, computed in this thread."""
        out = []
        for w in self.windows(samples):
            p = self.silent(w)
            if p is None:
                probs, timing = predict_batch(self.model, [w.make_input])
                p = self.decide(w, probs[0], timing)
            out.append(p)
        return out

    async def push_batched(self, samples: np.ndarray, batcher: Batcher) -> AsyncIterator[Prediction]:
        """As ``push``, with each loud window's input and student run in ``batcher``'s shared
        batches; each prediction is given as soon as its batch is done."""
        for w in self.windows(samples):
            p = self.silent(w)
            if p is None:
                probs, timing = await batcher.predict(w.make_input)
                p = self.decide(w, probs, timing)
            yield p


def _resampled_input(model: Model, wave: np.ndarray, rate: int) -> np.ndarray:
    """The model input of a window of a stream at another rate than the model's."""
    return model.features(resample(wave, rate, model.sample_rate))
