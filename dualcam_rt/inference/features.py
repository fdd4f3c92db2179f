"""A stream's student input at every hop, computed incrementally instead of from scratch.

``student_input`` resamples the whole 5 s window (12,288 → 22,050 Hz) at every hop, which is
three quarters of its cost. Resampling is linear and time-invariant on its polyphase grid, so for
a window that starts on that grid (a multiple of ``down`` = 2,048 input samples, 1/6 s) the
resampled window equals the resampled stream except within the filter's reach of the window's
left edge. ``StreamFeatures`` keeps the resampled stream, resamples only the newest samples
(plus the filter's reach, ~10 samples, of context) per hop, redoes the left edge's first grid
block, then normalises and scales as ``soundnet_input`` does. A window shorter than 5 s (the
stream's first seconds) is looped to 5 s by the plain path, so its resampled form is periodic:
one period of the resampled stream, its seam redone, is tiled. The result equals
``model.features(window)`` to float32 rounding (the clip is normalised after resampling rather
than before; tests check the agreement). Windows off the grid, or of a stream at another rate,
take the plain path.
"""

from __future__ import annotations

import numpy as np

from ..dsp.resample import polyphase, ratio, reach
from ..dsp.spectrogram import CLIP_SAMPLES, TARGET_RATE, input_gain, spectrogram_of
from ..frame import InputKind
from .models import Model
from .stream import AppendBuffer


class StreamFeatures:
    """The model input for windows ending at each hop of one stream at the model's sample rate."""

    def __init__(self, model: Model):
        self.model = model
        self.up, self.down = ratio(model.sample_rate, TARGET_RATE)
        self.window_samples = int(round(model.seconds * model.sample_rate))
        self.reach = reach(self.up, self.down) + 1  # input samples the lowpass spans each side, and a margin
        self.incremental = (
            model.kind.one_microphone
            and self.window_samples % self.down == 0
            and self._out(self.window_samples) == CLIP_SAMPLES
        )
        self.x = AppendBuffer()  # input history; x[0] is stream sample x_base
        self.x_base = 0
        self.y = AppendBuffer()  # resampled stream; y[0] is the output of input sample y_base (on the grid)
        self.y_base = 0
        self.y_end = 0  # input samples resampled so far (the last ones with a zero-padded right edge)
        self.incremental_hits = 0
        self.looped_hits = 0

    def _out(self, n_in: int) -> int:
        """Outputs before input position ``n_in`` (output k sits at input position k * down / up)."""
        return -(-n_in * self.up // self.down)

    def push(self, samples: np.ndarray) -> None:
        """Append the stream's next samples (mono, at the model's rate)."""
        self.x.extend(samples)

    def at(self, end: int, window: np.ndarray) -> np.ndarray:
        """The model input of ``window`` (the stream's samples up to ``end``)."""
        start = end - self.window_samples
        if (
            self.incremental
            and self.x_base == 0
            and len(window) == end
            and end % self.down == 0
            and 2 * self.down <= end < self.window_samples
            and self.down > 2 * self.reach
        ):
            return self._looped(end)
        if not self.incremental or start < 0 or start % self.down or len(window) != self.window_samples:
            return self.model.features(window)
        # the window's left edge sees zeros before it, not the stream: its first grid block is redone
        edge = self._resample_until(end, self._input(start, start + self.down + self.reach))[: self._out(self.down)]
        lo = self._out(start - self.y_base)
        y = self.y.view()[lo : lo + CLIP_SAMPLES].copy()
        y[: len(edge)] = edge
        model_input = self._model_input(y, self._input(start, end))
        self._forget_before(start + self.window_samples // 2)
        self.incremental_hits += 1
        return model_input

    def skip(self, end: int) -> None:
        """The window ending at ``end`` needs no input (the "no action" gate): forget the history it
        would have let go, so a quiet stream's buffers stay one window long."""
        self._forget_before(end - self.window_samples + self.window_samples // 2)

    def _looped(self, end: int) -> np.ndarray:
        """The model input of the stream's first ``end`` samples looped to the window's length, as the
        plain path makes it: periodic, so one period of the resampled stream is tiled; only the seam
        (the end running into the start) and the cut at the window's end are resampled anew."""
        d, n = self.down, self.window_samples
        x = self._input(0, end)
        # one polyphase call: the seam with context, zeros, then the clip's last two grid blocks
        # (on the grid, zeros after them as in the plain path, where the looped clip stops at n samples)
        tail = x[np.arange(n - 2 * d, n) % end]
        edges = self._resample_until(
            end, np.concatenate([x[end - 2 * d :], x[: d + self.reach], np.zeros(d - self.reach, np.float32), tail])
        )
        seam = edges[self._out(d) : self._out(3 * d)]  # positions end - d..end, then 0..d, of the looped clip
        period = self.y.view()[: self._out(end)].copy()  # y_base == 0: no history dropped yet
        head = period[: self._out(d)].copy()  # the first block sees zeros before it in the plain path too
        period[self._out(end - d) :] = seam[: self._out(d)]
        period[: self._out(d)] = seam[self._out(d) :]
        y = np.resize(period, CLIP_SAMPLES)
        y[: self._out(d)] = head
        y[self._out(n - d) :] = edges[self._out(5 * d) : self._out(6 * d)]
        self.looped_hits += 1
        return self._model_input(y, x)

    def _model_input(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The resampled window ``y`` scaled by ``input_gain`` of its input ``x`` (the model's recipe), as
        ``soundnet_input`` does, then the model's input kind made of it."""
        recipe = self.model.recipe
        y *= np.float32(input_gain(x, recipe))  # in place
        return spectrogram_of(y, recipe.magnitude) if self.model.kind == InputKind.SPECTROGRAM else y

    def _input(self, a: int, b: int) -> np.ndarray:
        return self.x.view()[a - self.x_base : b - self.x_base]

    def _resample_until(self, end: int, edge: np.ndarray) -> np.ndarray:
        """Extend the resampled stream to ``end``; give back the outputs of ``edge`` (starting on the
        grid, resampled alone: zeros before and after it). One ``polyphase`` call does both: ``edge``,
        zeros (wider than the filter's reach, sized so the new input lands on the grid) and the new input."""
        if self.y_end == 0 or self.y_end - 2 * self.reach < self.y_base:
            first = keep = self.y_base = max(self.x_base + (-self.x_base) % self.down, 0)
            self.y = AppendBuffer()
        else:  # the last ``reach`` outputs had a zero-padded right edge: redo them, with ``reach`` of context
            keep = self.y_end - self.reach
            first = keep - self.reach
        pad = (first - self.y_base - len(edge)) % self.down
        pad += self.down if pad < 2 * self.reach else 0
        pre = len(edge) + pad  # pre = first - y_base (mod down): the new input stays on the grid
        both = polyphase(np.concatenate([edge, np.zeros(pad, np.float32), self._input(first, end)]), self.up, self.down)
        offset = (first - self.y_base - pre) * self.up // self.down  # y index of both[0] (exact: on the grid)
        j0, j1 = self._out(keep - self.y_base), self._out(end - self.y_base)
        self.y.cut(j0)  # in place: appends and this cut copy only the new outputs, not the whole stream
        self.y.extend(both[j0 - offset : j1 - offset])
        self.y_end = end
        return both[: self._out(len(edge))]

    def _forget_before(self, sample: int) -> None:
        """Drop history no later window can need (keep two grid blocks of context)."""
        keep = (sample - self.window_samples // 2) // self.down * self.down - 2 * self.down
        if keep > self.y_base and keep > self.x_base:
            self.y.drop(self._out(keep - self.y_base))
            self.y_base = keep
            self.x.drop(keep - self.x_base)
            self.x_base = keep
