"""A stream's student input at every hop, computed incrementally instead of from scratch.

``student_input`` resamples the whole 5 s window (12,288 → 22,050 Hz) at every hop, which is
three quarters of its cost. Resampling is linear and time-invariant on its polyphase grid, so for
a window that starts on that grid (a multiple of ``down`` = 2,048 input samples, 1/6 s) the
resampled window equals the resampled stream except within the filter's reach of the window's
left edge. ``StreamFeatures`` keeps the resampled stream, resamples only the newest samples
(plus one grid block of context) per hop, redoes the left edge, then normalises and scales as
``soundnet_input`` does. The result equals ``model.features(window)`` to float32 rounding (the
clip is normalised after resampling rather than before; tests check the agreement). Windows
shorter than 5 s (the stream's first seconds), off the grid, or of a stream at another rate take
the plain path.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import resample_poly

from ..dsp.spectrogram import CLIP_SAMPLES, SCALE, _lowpass, _ratio, spectrogram_of
from .models import Model


class StreamFeatures:
    """The model input for windows ending at each hop of one stream at the model's sample rate."""

    def __init__(self, model: Model):
        self.model = model
        self.up, self.down = _ratio(model.sample_rate)
        self.window_samples = int(round(model.seconds * model.sample_rate))
        self.incremental = model.kind in ("spectrogram", "waveform") and CLIP_SAMPLES == self._out(self.window_samples)
        self.x = np.zeros(0, np.float32)  # input history; x[0] is stream sample x_base
        self.x_base = 0
        self.y = np.zeros(0, np.float32)  # resampled stream; y[0] is the output of input sample y_base (on the grid)
        self.y_base = 0
        self.y_end = 0  # input samples resampled so far (the last ones with a zero-padded right edge)
        self.incremental_hits = 0

    def _out(self, n_in: int) -> int:
        """Output samples of ``n_in`` input samples (exact for multiples of ``down``)."""
        return n_in * self.up // self.down

    def push(self, samples: np.ndarray) -> None:
        """Append the stream's next samples (mono, at the model's rate)."""
        self.x = np.concatenate([self.x, samples.astype(np.float32)])

    def at(self, end: int, window: np.ndarray) -> np.ndarray:
        """The model input of ``window`` (the stream's samples up to ``end``)."""
        start = end - self.window_samples
        if not self.incremental or start < 0 or start % self.down or len(window) != self.window_samples:
            return self.model.features(window)
        # the window's left edge sees zeros before it, not the stream: one grid block there is redone
        edge = self._resample_until(end, self._input(start, start + 2 * self.down))
        lo = self._out(start - self.y_base)
        y = self.y[lo:lo + CLIP_SAMPLES].copy()
        y[:len(edge)] = edge
        peak = np.max(np.abs(self._input(start, end)))
        if peak > 0:
            y /= peak
        self._forget_before(start + self.window_samples // 2)
        self.incremental_hits += 1
        waveform = (y * SCALE).astype(np.float32)
        return spectrogram_of(waveform) if self.model.kind == "spectrogram" else waveform

    def _input(self, a: int, b: int) -> np.ndarray:
        return self.x[a - self.x_base:b - self.x_base]

    def _resample_until(self, end: int, edge: np.ndarray) -> np.ndarray:
        """Extend the resampled stream to ``end``; give back the first grid block's outputs of ``edge``
        (two grid blocks resampled alone). One ``resample_poly`` call does both: ``edge``, a grid block
        of zeros (far wider than the filter's reach) and the new input, all on the grid."""
        # redo from one grid block before the previous end: those outputs had a zero-padded right edge
        first = max(self.y_base, (self.y_end // self.down - 2) * self.down)
        if self.y_end == 0 or first < self.x_base:
            first = self.y_base = max(self.x_base + (-self.x_base) % self.down, 0)
            self.y = np.zeros(0, np.float32)
        both = resample_poly(np.concatenate([edge, np.zeros(self.down, np.float32), self._input(first, end)]),
                             self.up, self.down, window=_lowpass(self.up, self.down))
        seg = both[self._out(len(edge) + self.down):]
        keep_from = 0 if first == self.y_base else self._out(self.down)  # the left context's outputs are edge-affected
        at = self._out(first - self.y_base) + keep_from
        self.y = np.concatenate([self.y[:at], seg[keep_from:self._out(end - first)]])
        self.y_end = end
        return both[:self._out(self.down)]

    def _forget_before(self, sample: int) -> None:
        """Drop history no later window can need (keep two grid blocks of context)."""
        keep = (sample - self.window_samples // 2) // self.down * self.down - 2 * self.down
        if keep > self.y_base and keep > self.x_base:
            self.y = self.y[self._out(keep - self.y_base):]
            self.y_base = keep
            self.x = self.x[keep - self.x_base:]
            self.x_base = keep
