"""Student training clips made straight from the sound bank's takes: thousands of 5-s windows of
what a microphone hears, where a simulated dataset has a few hundred sessions.

``bank_clips(bank, split, config, seed)`` gives ``config.clips_per_class`` clips (microphone 0, Pa,
12,288 Hz) per action class from the bank's takes of ``split`` (train for training, val for early
stopping; never test), and as many "no action" clips. Each action clip:

1. **Takes**: one take at a random time (``single_p``), or takes one after another at the class's
   pace (``real_sounds.GAP_S``) times a tempo of 0.5-2; each take pitch-shifted by 0.85-1.18
   (resampled, so it is also stretched), long takes (speech) cut from a random offset, ±3 dB, and
   now and then a second take layered over it (``layer_p``). A thin class draws a labelled share
   of its clips from the procedural generator (``real_sounds.procedural_share``).
2. **Room**: one of a pool of pyroomacoustics rooms (``augment.room_pool``: 2.5-25 m, RT60 below
   0.6 s or 1-3 s) or none (close microphone, outdoors).
3. **Level**: a peak from -55 to -3 dBFS (full scale is 20 Pa, as the serving path reads files and
   microphones): quiet speech across a room to a clap next to a laptop.
4. **Microphone**: real ambience of the split at 5-35 dB SNR, EQ tilt, high-pass, optionally a
   low-pass at 2.5-5.5 kHz (``lowpass_p``, off by default), a noise floor at -95 to -60 dBFS rms, and now
   and then hard clipping (``augment``'s steps).

"No action" clips (``BACKGROUND_CLASS``): the split's ambience through a room, a quiet room, mains
hum, broadband noise, or ambience plus hum, at -90 to -20 dBFS rms over the same noise floors.

The chain is drawn once per clip (the clips are features computed once, so an epoch costs only the
network); a larger ``clips_per_class`` buys variety. ``describe()`` records what was drawn, per
class the real takes and the procedural share, for the run record and the model card.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..geometry import SAMPLE_RATE
from ..labels import CLASSES
from ..sim.actions import synthesize
from ..sim.ambience import hum
from ..sim.real_sounds import GAP_S, pitch_shift, procedural_share
from .augment import BACKGROUND_CLASS, add_at_snr, eq_tilt, hard_clip, highpass, lowpass, reverberate, room_pool

FULL_SCALE_PA = 20.0  # digital full scale, as dsp.spectrogram.REFERENCE_PA
MAX_TAKE_S = 4.0  # longer takes (sentences) are cut to this from a random offset


@dataclass(frozen=True)
class BankClipConfig:
    """How many clips and the ranges of each random step (see the module docstring)."""

    clips_per_class: int = 600
    seconds: float = 5.0
    single_p: float = 0.3
    tempo: tuple[float, float] = (0.5, 2.0)
    pitch: tuple[float, float] = (0.85, 1.18)
    layer_p: float = 0.1
    room_p: float = 0.8
    rooms: int = 48
    peak_dbfs: tuple[float, float] = (-55.0, -3.0)
    ambience_p: float = 0.5
    snr_db: tuple[float, float] = (5.0, 35.0)
    eq_p: float = 0.5
    tilt_db_per_octave: tuple[float, float] = (-3.0, 3.0)
    highpass_p: float = 0.4
    highpass_hz: tuple[float, float] = (40.0, 300.0)
    lowpass_p: float = 0.0  # off: with it, a wider pitch and --spec-augment the validation accuracy was lower
    lowpass_hz: tuple[float, float] = (2500.0, 5500.0)
    noise_floor_dbfs: tuple[float, float] = (-95.0, -60.0)
    clip_p: float = 0.08
    clip_db: tuple[float, float] = (1.0, 9.0)
    procedural_scale: float = 0.5  # times real_sounds.procedural_share: the takes are augmented far more here
    background_dbfs: dict = field(
        default_factory=lambda: {"ambience": (-80.0, -20.0), "hum": (-85.0, -35.0), "noise": (-90.0, -30.0)}
    )

    def to_dict(self) -> dict:
        return asdict(self)


def _dbfs(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    """A level drawn uniformly in dB, in Pa (full scale ``FULL_SCALE_PA``)."""
    return FULL_SCALE_PA * 10 ** (rng.uniform(*lo_hi) / 20)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) + 1e-12


def _looped(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.resize(np.roll(np.asarray(x, np.float32), -int(rng.integers(len(x)))), n)


class BankClipMaker:
    """Draws the clips of one split (see the module docstring); ``make(label)`` -> (wave, source)."""

    def __init__(self, bank, split: str, config: BankClipConfig, seed: int, cache_dir: str | Path | None = None):
        self.config, self.split = config, split
        self.n = int(round(config.seconds * SAMPLE_RATE))
        self.rng = np.random.default_rng([seed, 31, ("train", "val", "test").index(split)])
        self.takes = {c: [np.asarray(t.audio, np.float32) for t in bank.takes(c, split)] for c in CLASSES}
        self.ambience = [np.asarray(t.audio, np.float32) for t in bank.ambience(split) if len(t.audio)]
        self.rirs = room_pool(config.rooms, seed=seed, cache_dir=cache_dir)[0] if config.room_p > 0 else []

    def classes(self, background: bool = True) -> list[str]:
        """The action classes this split can give clips of (those with takes), then the background."""
        return [c for c in CLASSES if self.takes[c]] + ([BACKGROUND_CLASS] if background else [])

    # -- the dry sound ----------------------------------------------------------------------

    def _take(self, label: str) -> np.ndarray:
        rng, c = self.rng, self.config
        x = self.takes[label][int(rng.integers(len(self.takes[label])))]
        cut = int(MAX_TAKE_S * SAMPLE_RATE)
        if len(x) > cut:
            start = int(rng.integers(len(x) - cut))
            x = x[start : start + cut]
        return pitch_shift(x, rng.uniform(*c.pitch)).astype(np.float32) * np.float32(10 ** (rng.uniform(-3, 3) / 20))

    def _real(self, label: str) -> np.ndarray:
        rng, c, n = self.rng, self.config, self.n
        out = np.zeros(n, np.float32)
        if rng.random() < c.single_p:
            take = self._take(label)[:n]
            start = int(rng.integers(max(1, n - len(take))))
            out[start : start + len(take)] += take
            return out
        t, tempo = int(rng.uniform(0.0, 0.6) * SAMPLE_RATE), rng.uniform(*c.tempo)
        while t < n:
            take = self._take(label)
            if rng.random() < c.layer_p:  # two takes at once (two hands, two speakers)
                other = self._take(label)[: len(take)]
                take = take.copy()
                take[: len(other)] += other * np.float32(10 ** (rng.uniform(-6, 0) / 20))
            piece = take[: n - t]
            out[t : t + len(piece)] += piece
            gap = GAP_S[label] / tempo * max(0.2, 1 + 0.3 * rng.standard_normal())
            t += len(take) + int(gap * SAMPLE_RATE)
        return out

    def _procedural(self, label: str) -> np.ndarray:
        wave, _ = synthesize(label, int(self.rng.integers(9)), self.config.seconds, self.rng, SAMPLE_RATE)
        return np.resize(np.asarray(wave, np.float32), self.n)

    def _background(self) -> tuple[np.ndarray, str]:
        rng, c, n = self.rng, self.config, self.n
        kinds = (["ambience", "ambience", "ambience+hum"] if self.ambience else []) + ["quiet", "hum", "noise"]
        kind = kinds[int(rng.integers(len(kinds)))]
        x = np.zeros(n, np.float32)
        if kind.startswith("ambience"):
            amb = _looped(self.ambience[int(rng.integers(len(self.ambience)))], n, rng)
            x = self._room(amb) * np.float32(_dbfs(rng, c.background_dbfs["ambience"]) / _rms(amb))
        if kind.endswith("hum"):
            h = np.asarray(hum(rng, c.seconds, SAMPLE_RATE)[:n], np.float32)
            x = x + h * np.float32(_dbfs(rng, c.background_dbfs["hum"]) / _rms(h))
        if kind == "noise":  # white to brown
            w = eq_tilt(rng.standard_normal(n).astype(np.float32), rng.uniform(-6.0, 0.0))
            x = w * np.float32(_dbfs(rng, c.background_dbfs["noise"]) / _rms(w))
        return x, kind

    # -- room and microphone ----------------------------------------------------------------

    def _room(self, x: np.ndarray) -> np.ndarray:
        if self.rirs and self.rng.random() < self.config.room_p:
            return reverberate(x, self.rirs[int(self.rng.integers(len(self.rirs)))])
        return x

    def _microphone(self, x: np.ndarray, action: bool) -> np.ndarray:
        rng, c, n = self.rng, self.config, self.n
        if action and self.ambience and rng.random() < c.ambience_p:
            x = add_at_snr(x, self.ambience[int(rng.integers(len(self.ambience)))], rng.uniform(*c.snr_db), rng)
        if rng.random() < c.eq_p:
            x = eq_tilt(x, rng.uniform(*c.tilt_db_per_octave))
        if rng.random() < c.highpass_p:
            x = highpass(x, rng.uniform(*c.highpass_hz))
        if c.lowpass_p > 0 and rng.random() < c.lowpass_p:  # no draw when off: the same clips as without the step
            x = lowpass(x, rng.uniform(*c.lowpass_hz))
        floor = eq_tilt(rng.standard_normal(n).astype(np.float32), rng.uniform(-3.0, 0.0))
        x = x + floor * np.float32(_dbfs(rng, c.noise_floor_dbfs) / _rms(floor))
        if rng.random() < c.clip_p:
            x = hard_clip(x, rng.uniform(*c.clip_db))
        x = np.clip(x, -FULL_SCALE_PA, FULL_SCALE_PA)  # the converter's full scale
        return np.roll(x, int(rng.integers(n))).astype(np.float32)  # the student loops a window anyway

    def make(self, label: str) -> tuple[np.ndarray, str]:
        """One clip of ``label`` (a class or ``BACKGROUND_CLASS``) and what it was made of
        (``real``, ``procedural``, or the background kind)."""
        if label == BACKGROUND_CLASS:
            x, kind = self._background()
            return self._microphone(x, action=False), kind
        share = self.config.procedural_scale * procedural_share(len(self.takes[label]))
        source = "procedural" if not self.takes[label] or self.rng.random() < share else "real"
        dry = self._procedural(label) if source == "procedural" else self._real(label)
        wet = self._room(dry)
        wet = wet * np.float32(_dbfs(self.rng, self.config.peak_dbfs) / (np.max(np.abs(wet)) + 1e-12))
        return self._microphone(wet, action=True), source


@dataclass
class BankClipSet:
    """The clips of one split: waves (n, samples) float32 Pa, labels (index into CLASSES, the
    background ``len(CLASSES)``), and per class how many were real and procedural."""

    waves: np.ndarray
    labels: np.ndarray
    sources: dict[str, dict[str, int]]
    real_takes: dict[str, int]

    def describe(self) -> dict:
        return {"clips": int(len(self.labels)), "real_takes": self.real_takes, "sources": self.sources}


def bank_clips(
    bank,
    split: str,
    config: BankClipConfig | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    clips_per_class: int | None = None,
    background: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> BankClipSet:
    """``clips_per_class`` (default the config's) clips of every class with takes in ``split``, and
    with ``background`` as many no-action clips; ``progress(done, total)`` is called after each clip."""
    config = config or BankClipConfig()
    maker = BankClipMaker(bank, split, config, seed, cache_dir)
    per_class = config.clips_per_class if clips_per_class is None else clips_per_class
    plan = [label for label in maker.classes(background) for _ in range(per_class)]
    waves = np.empty((len(plan), maker.n), np.float32)
    sources: dict[str, Counter] = {label: Counter() for label in maker.classes(background)}
    for i, label in enumerate(plan):
        waves[i], source = maker.make(label)
        sources[label][source] += 1
        if progress is not None:
            progress(i + 1, len(plan))
    index = {c: i for i, c in enumerate([*CLASSES, BACKGROUND_CLASS])}
    return BankClipSet(
        waves=waves,
        labels=np.asarray([index[label] for label in plan], np.int64),
        sources={k: dict(v) for k, v in sources.items()},
        real_takes={c: len(maker.takes[c]) for c in CLASSES},
    )
