"""What a laptop or USB microphone does to a sound, applied on the fly to training waves (NumPy only).

``Augmenter(rng)(wave)`` gives a new version of one clip (microphone 0, Pa, 12,288 Hz), the
steps in the order a real recording goes through them, each with its own probability:

1. ``room``: convolved with one of a pool of pyroomacoustics shoebox rooms whose sizes
   (2.5-25 m) and measured RT60s (below 0.6 s or 1-3 s) lie beyond the three scenarios
   (anechoic, 0.8 s, outdoors); the direct path is kept at unit gain and at time 0. The pool is
   computed once (``room_pool``; ~0.1 s a room) and cached on disk when a cache dir is given.
2. ``ambience``: a real ambience recording (the sound bank's, train split; looped) added at
   0-30 dB SNR against the clip's mean power.
3. ``eq``: a spectral tilt of -3..+3 dB per octave about 1 kHz (cheap capsules, placement).
4. ``highpass``: a 4th-order Butterworth high-pass at 40-400 Hz (laptop mics, wind filters).
5. ``gain``: -30..+6 dB (a quiet speaker across the room, a mic with its gain up).
6. ``clip``: hard clipping 1-12 dB below the clip's peak (a saturated preamp).
7. ``shift``: a circular time shift (the clip is looped to 5 s by the feature code anyway).

The background class (``BACKGROUND_CLASS``, ``with_background``): clips in which no action
happens, for a student to learn "nothing is happening" besides the 14 actions: real ambience
recordings of the bank (each split's own), a quiet room (capsule self-noise), mains hum and
broadband noise, at random levels (``BACKGROUND_DB_SPL``), plus capsule self-noise. The
augmentation then treats them like every other training clip.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

from ..dsp.spectrogram import Recipe, student_input
from ..errors import BadInput
from ..geometry import SAMPLE_RATE
from ..labels import CLASSES
from ..sim.ambience import hum

SCENARIO_RT60_S = (0.0, 0.8)  # anechoic and scenario 2; the outdoor terrace has no reverberant field
RT60_EXCLUDED_S = (0.6, 1.0)  # pooled rooms measure outside this band around scenario 2's 0.8 s
RT60_MAX_S = 3.0  # and below this (a cathedral is not a place anyone records from)
POOL_VERSION = 1  # bump when the pool's recipe changes (invalidates the disk cache)
BACKGROUND_CLASS = "no_action"
BACKGROUND_DB_SPL = {"ambience": (40.0, 75.0), "hum": (40.0, 65.0), "noise": (30.0, 70.0)}  # rms levels
SELF_NOISE_PA = 5e-4  # capsule self-noise, rms (~28 dB SPL), as the simulator's
P0_PA = 20e-6


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each step (see the module docstring)."""

    room_p: float = 0.5
    ambience_p: float = 0.7
    snr_db: tuple[float, float] = (0.0, 30.0)
    eq_p: float = 0.5
    tilt_db_per_octave: tuple[float, float] = (-3.0, 3.0)
    highpass_p: float = 0.5
    highpass_hz: tuple[float, float] = (40.0, 400.0)
    gain_p: float = 1.0
    gain_db: tuple[float, float] = (-30.0, 6.0)
    clip_p: float = 0.15
    clip_db: tuple[float, float] = (1.0, 12.0)  # clip level below the peak
    shift_p: float = 1.0
    rooms: int = 12  # size of the RIR pool

    def to_dict(self) -> dict:
        return asdict(self)


# --- the steps, each a plain function --------------------------------------------------------


def apply_gain(x: np.ndarray, gain_db: float) -> np.ndarray:
    return x * np.float32(10 ** (gain_db / 20))


def hard_clip(x: np.ndarray, below_peak_db: float) -> np.ndarray:
    """``x`` clipped at ``below_peak_db`` under its peak (silence stays silence)."""
    level = np.max(np.abs(x)) * 10 ** (-below_peak_db / 20)
    return np.clip(x, -level, level) if level > 0 else x


def eq_tilt(x: np.ndarray, db_per_octave: float, fs: int = SAMPLE_RATE) -> np.ndarray:
    """A spectral tilt: gain ``db_per_octave * log2(f / 1 kHz)`` dB (flat below 50 Hz)."""
    spec = np.fft.rfft(x)
    f = np.maximum(np.fft.rfftfreq(len(x), 1 / fs), 50.0)
    return np.fft.irfft(spec * 10 ** (db_per_octave * np.log2(f / 1000.0) / 20), len(x)).astype(x.dtype)


def highpass(x: np.ndarray, cutoff_hz: float, fs: int = SAMPLE_RATE, order: int = 4) -> np.ndarray:
    """A Butterworth high-pass (``order`` poles, -3 dB at ``cutoff_hz``)."""
    return sosfilt(butter(order, cutoff_hz, "highpass", fs=fs, output="sos"), x).astype(x.dtype)


def lowpass(x: np.ndarray, cutoff_hz: float, fs: int = SAMPLE_RATE, order: int = 4) -> np.ndarray:
    """A Butterworth low-pass (``order`` poles, -3 dB at ``cutoff_hz``): a band-limited capsule or codec."""
    return sosfilt(butter(order, cutoff_hz, "lowpass", fs=fs, output="sos"), x).astype(x.dtype)


def add_at_snr(x: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` plus ``noise`` (looped from a random offset to ``x``'s length) at ``snr_db`` below
    ``x``'s mean power."""
    start = int(rng.integers(len(noise)))
    n = np.resize(np.roll(np.asarray(noise, np.float64), -start), len(x))
    p_x, p_n = np.mean(np.asarray(x, np.float64) ** 2), np.mean(n**2)
    if p_x == 0 or p_n == 0:
        return x
    return (x + n * np.sqrt(p_x / p_n * 10 ** (-snr_db / 10))).astype(x.dtype)


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``x`` through a room (its RIR with the direct path at sample 0, gain 1), same length."""
    return fftconvolve(x, rir)[: len(x)].astype(x.dtype)


# --- the room pool ---------------------------------------------------------------------------


def _draw_room(rng: np.random.Generator, fs: int) -> tuple[np.ndarray, dict]:
    import pyroomacoustics as pra

    small = rng.random() < 0.5
    if small:  # small, damped rooms: offices, bedrooms, cars
        dim = rng.uniform((2.5, 2.5, 2.2), (6.0, 5.0, 3.0))
        target = rng.uniform(0.15, 0.55)
    else:  # halls, stairwells, kitchens with hard walls
        dim = rng.uniform((8.0, 6.0, 3.0), (25.0, 18.0, 8.0))
        target = rng.uniform(1.0, 1.8)  # shoebox image sources measure longer than Sabine's target
    absorption, order = pra.inverse_sabine(target, dim)
    room = pra.ShoeBox(
        list(dim), fs=fs, materials=pra.Material(absorption), max_order=min(order, 60), air_absorption=False
    )
    mic, src = rng.uniform(0.15, 0.85, (2, 3)) * dim
    room.add_microphone_array(mic.reshape(3, 1))
    room.add_source(src)
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], np.float64)
    rt60 = float(pra.experimental.measure_rt60(rir, fs, decay_db=30))
    direct = int(np.argmax(np.abs(rir)))
    rir = rir[max(0, direct - 8) :] / np.abs(rir[direct])  # direct path at unit gain, ~time 0
    return rir.astype(np.float32), {
        "dim_m": [round(float(v), 2) for v in dim],
        "rt60_s": round(rt60, 3),
        "distance_m": round(float(np.linalg.norm(mic - src)), 2),
    }


def room_pool(
    n: int = 12, seed: int = 0, fs: int = SAMPLE_RATE, cache_dir: str | Path | None = None
) -> tuple[list[np.ndarray], list[dict]]:
    """``n`` RIRs (float32) of rooms unlike the scenarios, and their descriptions (size, measured RT60).

    Rooms whose measured RT60 falls in ``RT60_EXCLUDED_S`` or above ``RT60_MAX_S`` are drawn again.
    """
    path = None
    if cache_dir is not None:
        key = json.dumps({"v": POOL_VERSION, "n": n, "seed": seed, "fs": fs}, sort_keys=True)
        path = Path(cache_dir) / "augment" / f"rooms-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    return [z[f"rir{i}"] for i in range(n)], json.loads(str(z["info"]))
            except (OSError, ValueError, KeyError):
                pass  # a torn file: compute again
    rng = np.random.default_rng([seed, 7])
    rirs: list[np.ndarray] = []
    info: list[dict] = []
    while len(rirs) < n:
        rir, desc = _draw_room(rng, fs)
        if not RT60_EXCLUDED_S[0] <= desc["rt60_s"] <= RT60_EXCLUDED_S[1] and desc["rt60_s"] <= RT60_MAX_S:
            rirs.append(rir)
            info.append(desc)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        arrays: dict[str, Any] = {f"rir{i}": r for i, r in enumerate(rirs)}
        np.savez(tmp, info=json.dumps(info), **arrays)
        os.replace(tmp, path)
    return rirs, info


# --- the augmenter ---------------------------------------------------------------------------


class Augmenter:
    """A random microphone-and-room chain over training waves; ``augmenter(wave, rng)`` -> new wave.

    ``ambience`` are recordings (12,288 Hz) to add as background, e.g. ``bank_ambience(bank)``;
    without any, that step is skipped.
    """

    def __init__(
        self,
        config: AugmentConfig | None = None,
        ambience: list[np.ndarray] | None = None,
        cache_dir: str | Path | None = None,
        fs: int = SAMPLE_RATE,
    ):
        self.config = config or AugmentConfig()
        self.fs = fs
        self.ambience = [np.asarray(a, np.float32) for a in (ambience or []) if len(a) and np.any(a)]
        self.rirs, self.rooms = (
            room_pool(self.config.rooms, fs=fs, cache_dir=cache_dir) if self.config.room_p > 0 else ([], [])
        )

    def describe(self) -> dict:
        """What the augmentation does, for the run's record and the model card."""
        return {**self.config.to_dict(), "ambience_recordings": len(self.ambience), "pool_rooms": self.rooms}

    def __call__(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        x = np.asarray(wave, np.float32)
        if x.ndim != 1:
            raise BadInput(f"augmentation takes one microphone (samples,), got shape {x.shape}")
        if self.rirs and rng.random() < c.room_p:
            x = reverberate(x, self.rirs[int(rng.integers(len(self.rirs)))])
        if self.ambience and rng.random() < c.ambience_p:
            x = add_at_snr(x, self.ambience[int(rng.integers(len(self.ambience)))], rng.uniform(*c.snr_db), rng)
        if rng.random() < c.eq_p:
            x = eq_tilt(x, rng.uniform(*c.tilt_db_per_octave), self.fs)
        if rng.random() < c.highpass_p:
            x = highpass(x, rng.uniform(*c.highpass_hz), self.fs)
        if rng.random() < c.gain_p:
            x = apply_gain(x, rng.uniform(*c.gain_db))
        if rng.random() < c.clip_p:
            x = hard_clip(x, rng.uniform(*c.clip_db))
        if rng.random() < c.shift_p:
            x = np.roll(x, int(rng.integers(len(x))))
        return x


def augmented_input(
    kind, wave: np.ndarray, augmenter: Augmenter, rng: np.random.Generator, recipe: Recipe = Recipe()
) -> np.ndarray:
    """A student's input (``dsp.spectrogram.student_input``) of a freshly augmented version of ``wave``."""
    return student_input(kind, augmenter(wave, rng), augmenter.fs, recipe)


def background_waves(
    n: int, samples: int, rng: np.random.Generator, ambience: Sequence[np.ndarray] = (), fs: int = SAMPLE_RATE
) -> np.ndarray:
    """``n`` clips (n, samples) float32 Pa in which no action happens (see the module docstring)."""
    kinds = (["ambience"] * 5 if len(ambience) else []) + ["quiet"] * 2 + ["hum"] * 1 + ["noise"] * 2
    out = np.empty((n, samples), np.float32)
    for i in range(n):
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "ambience":
            x = np.resize(np.roll(ambience[int(rng.integers(len(ambience)))], -int(rng.integers(samples))), samples)
        elif kind == "hum":
            x = hum(rng, samples / fs, fs)[:samples]
        elif kind == "noise":  # white to brown: a random spectral slope
            x = eq_tilt(rng.standard_normal(samples).astype(np.float32), rng.uniform(-6.0, 0.0), fs)
        else:
            x = np.zeros(samples)
        x = np.asarray(x, np.float64)
        if kind != "quiet" and np.any(x):
            x *= P0_PA * 10 ** (rng.uniform(*BACKGROUND_DB_SPL[kind]) / 20) / np.sqrt(np.mean(x**2))
        out[i] = x + SELF_NOISE_PA * rng.standard_normal(samples)
    return out


def with_background(clips, waves: dict[str, np.ndarray]):
    """``clips`` (a students' ``training.data.Clips``, no MFCC or video) plus background clips per split
    (``{"train": (n, samples), ...}``), labelled ``len(CLASSES)`` (BACKGROUND_CLASS)."""
    parts = [(split, w) for split, w in waves.items() if len(w)]
    if not parts:
        return clips
    mic = np.concatenate([w for _, w in parts])
    tags = np.concatenate([np.full(len(w), split) for split, w in parts])
    return clips.extended(mic, np.full(len(mic), len(CLASSES)), tags, "background")


def bank_ambience(bank, split: str = "train") -> list[np.ndarray]:
    """The sound bank's ambience recordings of a split (train only for training)."""
    return [np.asarray(t.audio, np.float32) for t in bank.ambience(split)]


# --- SpecAugment -----------------------------------------------------------------------------

SPEC_MASKS = 2  # frequency masks and time masks per draw (Park et al. 2019, LibriSpeech "LB" policy)
SPEC_MAX_BINS = 24  # widest frequency mask, bins of 43 Hz (~1 kHz)
SPEC_MAX_FRAMES = 40  # longest time mask, frames of 10 ms (0.4 s)


def spec_augment(spec: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of a spectrogram (bins, frames) with ``SPEC_MASKS`` random frequency bands and time
    spans set to its mean: a student cannot lean on one band or one moment of a take."""
    out = np.array(spec, copy=True)
    fill = out.mean()
    bins, frames = out.shape
    for _ in range(SPEC_MASKS):
        width = int(rng.integers(SPEC_MAX_BINS + 1))
        start = int(rng.integers(max(1, bins - width)))
        out[start : start + width] = fill
        span = int(rng.integers(SPEC_MAX_FRAMES + 1))
        start = int(rng.integers(max(1, frames - span)))
        out[:, start : start + span] = fill
    return out
