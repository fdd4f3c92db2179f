"""Actions and ambience drawn from the real-recording sound bank (``sim.soundbank``).

- Actions: each subject draws a disjoint share of the class's takes of one bank split (the split
  its subject is in: train subjects train takes, val/test subjects val/test takes; takes are
  shared round-robin only where a class has fewer takes than the split has subjects) and
  performs them with its own traits: level (``level_db``), tempo (the silence between takes is
  divided by ``tempo``) and pitch (a small resample-based shift, ``sqrt(pitch)``: 0.92-1.09).
  Each take is levelled to the class's level at 1 m (peak for impacts, rms for continuous sounds,
  the procedural generators' levels), +-2 dB per event. Each hit inside a take (``hits``: three
  knocks, a word's syllables) is one event span, the spans the video poses the subject on.
- ``mixed``: a 4-s chunk of the subject's sound is procedural with a per-class probability
  (``procedural_share``: more for thin classes), so the dataset holds a labelled share of them.
- Ambience: scenario 2's ventilation and scenario 3's traffic and crowd are real recordings of
  the bank's ambience (unit rms each, looped from random offsets with 0.1-s equal-power
  cross-fades); the interfering talker is the bank's speech takes. A sound with no real
  recording of its kind stays procedural. The scene scales all of them to its configured ratios.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from ..config import DEFAULT_CACHE_DIR
from ..errors import BadInput
from ..labels import CLASSES, N_SUBJECTS
from .actions import Events, subject_traits, synthesize
from .soundbank import SoundBank, default_bank_dir

SOUNDS = ("real", "procedural", "mixed")
SPLITS = ("train", "val", "test")
BUILD_HINT = "build one with `make soundbank` or `dualcam-rt soundbank build`"

# (measure, Pa at 1 m) as the procedural generators level each class, and the mean silence (s)
# between the end of one take and the next onset at tempo 1.
LEVEL = {
    "clapping": ("peak", 2.0),
    "snapping_fingers": ("peak", 1.0),
    "speaking": ("rms", 0.06),
    "whistling": ("rms", 0.1),
    "playing_kendama": ("peak", 0.6),
    "clicking": ("peak", 0.25),
    "typing": ("peak", 0.3),
    "knocking": ("peak", 1.5),
    "hammering": ("peak", 4.0),
    "peanut_breaking": ("peak", 0.3),
    "paper_ripping": ("rms", 0.12),
    "plastic_crumpling": ("rms", 0.06),
    "paper_shaking": ("rms", 0.06),
    "stick_dropping": ("peak", 2.0),
}
GAP_S = {
    "clapping": 0.25,
    "snapping_fingers": 0.6,
    "speaking": 0.5,
    "whistling": 0.7,
    "playing_kendama": 0.4,
    "clicking": 0.7,
    "typing": 0.1,
    "knocking": 0.8,
    "hammering": 0.5,
    "peanut_breaking": 1.2,
    "paper_ripping": 0.9,
    "plastic_crumpling": 0.7,
    "paper_shaking": 0.9,
    "stick_dropping": 1.5,
}
assert set(LEVEL) == set(GAP_S) == set(CLASSES)
CROSSFADE_S = 0.1
FADE_OUT_S = 0.01  # a take cut by the end of a chunk dies away instead of clicking
HIT_FRAME_S = 0.005  # the energy envelope that finds the hits inside a take (three knocks: three events)
HIT_GATE_DB = -25.0  # a hit is where the envelope is within this of the take's loudest frame
HIT_GAP_S = 0.04  # quieter stretches shorter than this do not split a hit

# the bank's ambience categories each procedural sound is replaced by
AMBIENCE_KINDS = {
    "hum": ("appliance", "machine"),  # no real ventilation recording exists: appliances, machines
    "traffic": ("traffic",),
    "voices": ("crowd", "children", "indoor"),
}  # babble: crowds, a schoolyard, taverns


def procedural_share(n_takes: int) -> float:
    """The share of procedural chunks in ``mixed`` for a class with ``n_takes`` real takes (0.5 to ~0.1)."""
    return float(min(0.5, 0.1 + 2.0 / max(n_takes, 1)))


@lru_cache(maxsize=4)
def _open_bank(path: str) -> SoundBank:
    return SoundBank.open(path)


def resolve_sounds(sounds: str | None, bank, cache_dir: str | Path | None):
    """(mode, bank or None): ``sounds`` None means real when a bank exists, else procedural (warned).

    ``bank`` is an open SoundBank, a bank directory, or None for ``<cache_dir>/soundbank`` (``cache_dir``
    None: ``config.DEFAULT_CACHE_DIR``, as the rooms' cache).
    """
    if sounds is not None and sounds not in SOUNDS:
        raise BadInput(f"sounds must be one of {', '.join(SOUNDS)}, got {sounds!r}")
    if sounds == "procedural":
        return "procedural", None
    if bank is None or isinstance(bank, (str, Path)):
        if bank is None:
            bank = default_bank_dir(Path(cache_dir or DEFAULT_CACHE_DIR))
        path = Path(bank)
        if not (path / "manifest.json").is_file():
            if sounds is not None:
                raise BadInput(f"sounds={sounds} needs a sound bank, and {path} holds none; {BUILD_HINT}")
            warnings.warn(f"no sound bank in {path}: the simulator uses procedural sounds; {BUILD_HINT}", stacklevel=3)
            return "procedural", None
        bank = _open_bank(str(path.resolve()))
    return sounds or "real", bank


def _take_id(take) -> str:
    row = take.row
    return str(row.get("content_hash") or row.get("file") or id(take))


def subject_share(takes: Sequence, subject: int, split_subjects: Sequence[int]) -> list:
    """The subject's disjoint share of ``takes`` among the subjects of its split (round-robin by rank)."""
    ranked = sorted(set(int(s) for s in split_subjects) | {int(subject)})
    rank, n = ranked.index(int(subject)), len(ranked)
    ordered = sorted(takes, key=_take_id)
    if len(ordered) >= n:
        return ordered[rank::n]
    return [ordered[rank % len(ordered)]] if ordered else []


def pitch_shift(x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` resampled so that, played at the same rate, every frequency is multiplied by ``factor``
    (and the duration divided by it)."""
    f = Fraction(factor).limit_denominator(64)
    if f == 1:
        return np.asarray(x, float)
    return resample_poly(np.asarray(x, float), f.denominator, f.numerator)


def hits(x: np.ndarray, fs: int) -> list[tuple[int, int]]:
    """The (start, end) samples of the hits inside a take: stretches of its 5-ms energy envelope
    within ``HIT_GATE_DB`` of its loudest frame, joined across gaps shorter than ``HIT_GAP_S``."""
    frame = max(1, int(HIT_FRAME_S * fs))
    n = len(x) // frame
    if n == 0:
        return [(0, len(x))] if len(x) else []
    energy = np.mean(np.asarray(x[: n * frame], float).reshape(n, frame) ** 2, axis=1)
    loud = energy > energy.max() * 10 ** (HIT_GATE_DB / 10)
    spans: list[list[int]] = []
    for i in np.flatnonzero(loud).tolist():
        if spans and i - spans[-1][1] <= HIT_GAP_S * fs / frame:
            spans[-1][1] = i + 1
        else:
            spans.append([i, i + 1])
    return [(a * frame, min(b * frame, len(x))) for a, b in spans]


def _level(x: np.ndarray, label: str) -> np.ndarray:
    measure, pa = LEVEL[label]
    size = np.max(np.abs(x)) if measure == "peak" else np.sqrt(np.mean(x**2))
    return x * (pa / (size + 1e-12))


class RealAction:
    """The subject's sound, ``(rng, seconds) -> (Pa at 1 m, event spans (s), "real" | "procedural")``."""

    def __init__(
        self, label: str, subject: int, takes: Sequence, fs: int, mode: str = "real", share: float | None = None
    ):
        self.label, self.subject, self.fs = label, subject, fs
        tr = subject_traits(subject)
        self.traits = tr
        factor = float(np.sqrt(tr.pitch))
        self.takes = [_level(pitch_shift(t.audio, factor), label) for t in takes]
        self.takes = [t for t in self.takes if len(t)]
        self.hits = [hits(t, fs) for t in self.takes]
        if mode == "procedural" or not self.takes:
            self.share = 1.0  # nothing real of this class in this split: procedural, and labelled so
        else:
            self.share = (procedural_share(len(takes)) if share is None else share) if mode == "mixed" else 0.0

    def __call__(self, rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, Events, str]:
        if rng.random() < self.share:
            wave, spans = synthesize(self.label, self.subject, seconds, rng, self.fs)
            return wave, spans, "procedural"
        fs, tr = self.fs, self.traits
        out = np.zeros(int(round(seconds * fs)))
        events: Events = []
        t = rng.uniform(0.05, 0.4)
        while t < seconds - 0.05:
            k = int(rng.integers(len(self.takes)))
            take = self.takes[k]
            start = int(t * fs)
            n = max(0, min(len(take), len(out) - start))
            out[start : start + n] += take[:n] * 10 ** (rng.uniform(-2, 2) / 20)
            events += [(float(t + a / fs), float(t + min(b, n) / fs)) for a, b in self.hits[k] if a < n]
            t += len(take) / fs + GAP_S[self.label] / tr.tempo * max(0.2, 1 + 0.3 * rng.standard_normal())
        fade = int(FADE_OUT_S * fs)
        out[-fade:] *= np.cos(np.linspace(0, np.pi / 2, fade))
        return out * 10 ** (tr.level_db / 20), events, "real"


class RealAmbience:
    """A stationary sound looped from recordings, ``(rng, seconds) -> Pa`` (unit rms before the scene's gain)."""

    def __init__(self, recordings: Sequence[np.ndarray], fs: int, pause_s: tuple[float, float] = (0.0, 0.0)):
        self.fs, self.pause_s = fs, pause_s
        self.recordings = [
            r / (np.sqrt(np.mean(r**2)) + 1e-12)
            for r in (np.asarray(x, float) for x in recordings)
            if len(r) > 2 * CROSSFADE_S * fs
        ]
        if not self.recordings:
            raise BadInput("no ambience recording longer than two cross-fades")

    def __call__(self, rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, list]:
        n, fade = int(round(seconds * self.fs)), int(CROSSFADE_S * self.fs)
        out = np.zeros(n + fade)
        pos = 0
        first = True
        while pos < n:
            rec = self.recordings[int(rng.integers(len(self.recordings)))]
            piece = rec[int(rng.integers(0, max(1, len(rec) - 2 * fade))) if first else 0 :]
            piece = piece[: n + fade - pos].copy()
            m = min(fade, len(piece))
            angle = np.linspace(0, np.pi / 2, m)
            if not first:  # equal-power cross-fade out of what is there into the new piece
                out[pos : pos + m] *= np.cos(angle)
                piece[:m] *= np.sin(angle)
            out[pos : pos + len(piece)] += piece
            pos += max(len(piece) - fade, 1) + int(rng.uniform(*self.pause_s) * self.fs)
            first = False
        return out[:n], []


def ambience_recordings(bank, split: str, kind: str) -> list[np.ndarray]:
    """The bank's ambience recordings (12,288 Hz) of one of ``AMBIENCE_KINDS`` in a split."""
    return [np.asarray(t.audio, float) for t in bank.ambience(split) if t.row.get("category") in AMBIENCE_KINDS[kind]]


def real_ambience(bank, split: str, name: str, fs: int, subject_takes: Sequence = ()):
    """A RealAmbience for the scenario sound ``name`` (voice | hum | traffic | voices), or None
    when the bank has nothing of that kind in the split (the procedural one stays)."""
    if name == "voice":  # another talker: the split's speech takes the subject does not perform
        own = {_take_id(t) for t in subject_takes}
        takes = [t for t in bank.takes("speaking", split) if _take_id(t) not in own] or bank.takes("speaking", split)
        return RealAmbience([t.audio for t in takes], fs, pause_s=(0.1, 0.6)) if takes else None
    recordings = ambience_recordings(bank, split, name)
    return RealAmbience(recordings, fs) if recordings else None


def check_split(split: str, split_subjects: Sequence[int] | None, subject: int) -> list[int]:
    """The subjects sharing the subject's split (all subjects when not given); BadInput for bad values."""
    if split not in SPLITS:
        raise BadInput(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    subjects = list(range(N_SUBJECTS)) if split_subjects is None else [int(s) for s in split_subjects]
    if not all(0 <= s < N_SUBJECTS for s in subjects):
        raise BadInput(f"split subjects must be 0..{N_SUBJECTS - 1}, got {split_subjects!r}")
    return sorted(set(subjects) | {subject})
