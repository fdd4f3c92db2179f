"""A scene: one subject (a point source) performing an action in front of the sensor.

Free-field propagation for now: each microphone hears the source delayed by its distance / c and
attenuated by 1/r (fractional delays by linear interpolation of an oversampled source signal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..geometry import BLOCK_SAMPLES, FPS, SAMPLE_RATE, SPEED_OF_SOUND, Geometry, get_geometry


@dataclass(frozen=True)
class SceneTick:
    audio: np.ndarray  # (n_mics, 1024) float32, pascal
    video: np.ndarray  # (480, 640, 3) uint8 BGR
    truth: dict


class Scene:
    """A deterministic scene for a seed. ``impulse_ticks`` adds, at those ticks, a click at the
    source and a white flash in the video at the same instant (the clock-alignment test)."""

    def __init__(self, scenario: int = 1, seed: int = 0, label: str | None = None,
                 subject: int | None = None, geometry: Geometry | None = None,
                 impulse_ticks: Sequence[int] = ()):
        self.scenario, self.seed = scenario, seed
        self.label = label or "clapping"
        self.subject = 0 if subject is None else subject
        self.geometry = geometry or get_geometry()
        self.impulse_ticks = set(impulse_ticks)
        self.rng = np.random.default_rng(seed)
        self.tick = 0
        self._history = np.zeros(BLOCK_SAMPLES, dtype=np.float64)  # previous source block

    def source_position(self, tick: int) -> np.ndarray:
        """Source position (3,) metres at a tick: a slow horizontal sweep at the focus distance."""
        t = tick / FPS
        x = 0.6 * np.sin(2 * np.pi * t / 8.0 + self.seed)
        y = 0.2 * np.cos(2 * np.pi * t / 11.0 + self.seed)
        return np.array([x, y, self.geometry.focus_distance_m])

    def _source_block(self, tick: int) -> np.ndarray:
        block = self.rng.standard_normal(BLOCK_SAMPLES) * 0.05  # band-unlimited noise, 0.05 Pa rms
        if tick in self.impulse_ticks:
            block[0] += 5.0
        return block

    def next_tick(self) -> SceneTick:
        tick = self.tick
        pos = self.source_position(tick)
        current = self._source_block(tick)
        signal = np.concatenate([self._history, current])  # lets delays reach back one block
        dist = np.linalg.norm(self.geometry.mics - pos, axis=1)
        delay = dist / SPEED_OF_SOUND * SAMPLE_RATE  # samples
        t = BLOCK_SAMPLES + np.arange(BLOCK_SAMPLES)[None, :] - delay[:, None]
        i0 = np.floor(t).astype(int)
        frac = t - i0
        audio = (signal[i0] * (1 - frac) + signal[np.minimum(i0 + 1, len(signal) - 1)] * frac) / dist[:, None]
        audio[~self.geometry.active] = 0.0
        self._history = current
        self.tick += 1
        pixel = self.geometry.camera.project(pos)
        return SceneTick(audio.astype(np.float32), self._render(pixel, flash=tick in self.impulse_ticks),
                         {"tick": tick, "label": self.label, "subject": self.subject, "scenario": self.scenario,
                          "source_m": pos.tolist(), "source_px": pixel.tolist(),
                          "impulse": tick in self.impulse_ticks})

    def _render(self, pixel: np.ndarray, flash: bool) -> np.ndarray:
        frame = np.full((self.geometry.camera.height, self.geometry.camera.width, 3), 60, np.uint8)
        if flash:
            frame[:] = 255
        cv2.circle(frame, (int(round(pixel[0])), int(round(pixel[1]))), 20, (0, 200, 255), -1)
        return frame
