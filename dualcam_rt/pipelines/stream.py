"""The stream predictor: one microphone's samples in, a prediction per hop out.

``StreamPredictor(model, sample_rate, hop_s)`` is owned by whoever feeds the stream (the live
device, a replayed session, a WebSocket client, the terminal). ``push(samples)`` windows the
stream (the model's window, one every ``hop_s``), makes each window's model input (incrementally
at the model's rate, ``inference.features.StreamFeatures``; resampled otherwise), runs the student
and gives back one ``Prediction`` per window. The WebSocket route runs many streams at once:
``push_batched(samples, batcher)`` hands the same inputs to a shared ``inference.stream.Batcher``.
Every prediction is made by ``decide``, from ``inference.predict.prediction`` (the rule ``/v1/predict``
answers by too): the one place a later rule (a "no action" answer, ``label=None`` with a ``reason``)
goes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from ..dsp.resample import resample
from ..inference.features import StreamFeatures
from ..inference.models import Model
from ..inference.predict import predict_batch, prediction
from ..inference.stream import Batcher, SlidingWindow


@dataclass(frozen=True)
class Prediction:
    """The student's answer for one window of a stream.

    ``t_s`` is the window's end on the stream's clock (s) and ``window_s`` its length (s; shorter
    than the model's window in the stream's first seconds). ``label`` is the top class, or None
    with a ``reason`` when no class is given; ``top_k`` and ``probabilities`` are the student's.
    ``onsets_s`` holds the sound events found in the window (stream seconds), when known.
    ``timing`` holds stage times in ms (features, inference, and queue/batch when batched).
    """

    t_s: float
    window_s: float
    label: str | None
    top_k: list[dict[str, Any]]
    probabilities: dict[str, float]
    reason: str | None = None
    onsets_s: tuple[float, ...] = ()
    timing: dict[str, float] = field(default_factory=dict)

    def answer(self) -> dict[str, Any]:
        """The JSON fields every consumer sends: label, top-k and every class's probability
        (and ``reason`` when there is no label)."""
        out: dict[str, Any] = {"label": self.label, "top_k": self.top_k, "probabilities": self.probabilities}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class Window:
    """One window waiting for the student: its end (stream samples), length, and how to make its input."""

    end: int
    samples: int
    make_input: Callable[[], np.ndarray]


class StreamPredictor:
    """Predictions every ``hop_s`` seconds over the last window of one mono stream at ``sample_rate``."""

    def __init__(self, model: Model, sample_rate: int, hop_s: float, top_k: int = 3):
        self.model, self.sample_rate, self.hop_s, self.top_k = model, int(sample_rate), hop_s, top_k
        self.window = SlidingWindow(model.seconds * sample_rate, hop_s * sample_rate)
        # incremental features at the model's own rate; windows at another rate are resampled whole
        self.features = StreamFeatures(model) if self.sample_rate == model.sample_rate else None

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
            out.append(Window(end, len(wave), make))
        return out

    def decide(self, window: Window, probs: np.ndarray, timing: dict[str, float]) -> Prediction:
        """The prediction of one window from the student's probabilities (n_classes,)."""
        return Prediction(t_s=window.end / self.sample_rate, window_s=window.samples / self.sample_rate,
                          **prediction(probs, self.model.classes, self.top_k), timing=timing)

    def push(self, samples: np.ndarray) -> list[Prediction]:
        """The predictions of the windows that ended inside ``samples``, computed in this thread."""
        out = []
        for w in self.windows(samples):
            probs, timing = predict_batch(self.model, [w.make_input])
            out.append(self.decide(w, probs[0], timing))
        return out

    async def push_batched(self, samples: np.ndarray, batcher: Batcher) -> AsyncIterator[Prediction]:
        """As ``push``, with each window's input and student run in ``batcher``'s shared batches;
        each prediction is given as soon as its batch is done."""
        for w in self.windows(samples):
            probs, timing = await batcher.predict(w.make_input)
            yield self.decide(w, probs, timing)


def _resampled_input(model: Model, wave: np.ndarray, rate: int) -> np.ndarray:
    """The model input of a window of a stream at another rate than the model's."""
    return model.features(resample(wave, rate, model.sample_rate))
