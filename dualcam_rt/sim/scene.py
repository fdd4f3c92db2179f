"""A scene: one subject performing an action in front of the sensor, in one of three rooms.

Sound components ("emitters") each have a source signal (Pa at 1 m, synthesised in independent
4-s chunks seeded by (seed, component, chunk), so any stretch can be regenerated) and positions
from a cached set. The subject dwells 3-6 s at a position, then walks to another one; its sound
is cross-faded between the two positions' RIRs over 0.5 s while the figure walks across.

Audio is rendered a segment at a time (1 s in the echoic room, 0.25 s where RIRs are short, so
no tick waits long for its segment): every emitter's segment is multiplied in the
frequency domain with its RIRs' spectra, the products are summed over emitters, and one inverse
FFT per microphone gives the segment plus a reverberant tail that is overlap-added into the next
one. Incoherent noise (capsule self-noise; wind outdoors) is added per microphone; dead channels
are zero. Levels: interferers and the outdoor background are scaled, once per scene, to their
configured power ratio below the subject at microphone 0, measured on an independent 16-s
realisation of each signal (the subject at its first position, interferers while active; the
ambient sounds' realisation is the same for every scene, so it is measured once per process).
Over a few seconds the ratio wanders with the action's rhythm (an intermittent sound's power does).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft
from scipy.signal import lfilter

from ..errors import BadInput
from ..geometry import BLOCK_SAMPLES, FPS, Geometry, get_geometry
from ..labels import CLASSES, N_SUBJECTS, class_index
from . import render
from .actions import synthesize
from .ambience import AMBIENCE, wind_filter
from .real_sounds import RealAction, check_split, real_ambience, resolve_sounds, subject_share
from .rooms import Scenario, get_scenario, room_impulse_responses, subject_positions

CHUNK_S = 4.0  # source signals are synthesised in independent chunks of this length
CHUNK_XFADE_S = 0.1  # stationary sounds (hum, traffic) cross-fade from one chunk into the next
MIN_SEGMENT_TICKS, MAX_SEGMENT_TICKS = 3, FPS  # audio is rendered about twice the RIR's length at a time
CALIBRATION_S = 16.0  # length of the independent realisation the levels are set on
DWELL_S = (3.0, 6.0)  # how long a subject stays at one position
CROSSFADE_S = 0.5  # the walk to the next position
SELF_NOISE_PA = 5e-4  # MEMS capsule self-noise, rms (about 28 dB SPL)
IMPULSE_PA = 20.0  # the clock-alignment click, peak at 1 m
BACKGROUND_MIX_DB = {"traffic": 0.0, "voices": -5.0, "wind": -3.0}  # shares of the outdoor background
SPECTRA_CACHE_BYTES = 100e6  # RIR spectra kept in memory per scene (12 MB each in scenario 2, 7 MB in 3)
COMPONENTS = ("subject", "interferers", "background", "self_noise")


@dataclass(frozen=True)
class SceneTick:
    audio: np.ndarray  # (n_mics, 1024) float32, pascal
    video: np.ndarray  # (480, 640, 3) uint8 BGR
    truth: dict


@dataclass
class _Emitter:
    """One sound component: a signal source and the (cached) positions it radiates from."""

    name: str
    # (rng, seconds) -> (Pa, events), and for the subject (Pa, events, "real" | "procedural")
    make: Callable[[np.random.Generator, float], tuple]
    positions_m: np.ndarray  # (P, 3)
    key: int  # component id in the seed sequence
    far: bool = False
    stationary: bool = False  # a continuous sound: chunks overlap and cross-fade (no seam clicks)
    gain: float = 1.0
    chunks: OrderedDict = field(default_factory=OrderedDict)

    def chunk(self, seed: int, k: int) -> tuple:
        if k not in self.chunks:
            seconds = CHUNK_S + (CHUNK_XFADE_S if self.stationary else 0.0)
            self.chunks[k] = self.make(np.random.default_rng([seed, self.key, 1, k]), seconds)
            while len(self.chunks) > 3:
                self.chunks.popitem(last=False)
        return self.chunks[k]

    def signal(self, seed: int, start: int, n: int, fs: int) -> np.ndarray:
        """Samples start..start+n of the source signal (Pa at 1 m)."""
        chunk_n, fade_n = int(CHUNK_S * fs), int(CHUNK_XFADE_S * fs)
        out = np.empty(n)
        pos = start
        while pos < start + n:
            k, off = divmod(pos, chunk_n)
            take = min(chunk_n - off, start + n - pos)
            piece = self.chunk(seed, k)[0][off : off + take]
            if self.stationary and k > 0 and off < fade_n:  # equal-power fade from chunk k-1's overhang
                m = min(take, fade_n - off)
                angle = (off + np.arange(m)) / fade_n * (np.pi / 2)
                prev = self.chunk(seed, k - 1)[0][chunk_n + off : chunk_n + off + m]
                piece = piece.copy()
                piece[:m] = piece[:m] * np.sin(angle) + prev * np.cos(angle)
            out[pos - start : pos - start + take] = piece
            pos += take
        return out

    def calibration_signal(self, seed: int) -> np.ndarray:
        """An independent CALIBRATION_S realisation of the source signal (never streamed)."""
        return np.concatenate(
            [
                self.make(np.random.default_rng([seed, self.key, 2, k]), CHUNK_S)[0]
                for k in range(int(CALIBRATION_S / CHUNK_S))
            ]
        )


_AMBIENCE_POWER: dict[tuple, float] = {}  # calibration powers of ambient sounds, shared by all scenes


def _power_at(dry: np.ndarray, rir0: np.ndarray) -> float:
    """Mean power of dry convolved with one microphone's RIR."""
    n = len(dry) + len(rir0)
    return float(np.mean(sfft.irfft(sfft.rfft(dry, n) * sfft.rfft(rir0, n), n)[: len(dry)] ** 2))


class Scene:
    """A deterministic scene for a seed; ``next_tick()`` gives the next 1/12 s of audio and video.

    ``label`` (a class name) defaults to ``CLASSES[seed % 14]`` and ``subject`` (0..8) to
    ``(seed // 14) % 9``. ``impulse_ticks`` adds, at those ticks, a click at the source on the
    tick's first sample and a white video frame (the clock-alignment test). ``components``
    selects what is rendered (``COMPONENTS``; all by default), e.g. ``("subject",)`` for the clean
    reference of the same scene. ``positions`` restricts the subject to these indices of
    ``rooms.subject_positions`` (one index: the subject never moves). ``cache_dir`` overrides the
    settings' RIR cache directory.

    ``sounds`` is ``real`` (the subject's takes and the ambience from the sound bank ``bank``: an
    open SoundBank or its directory, default ``<cache_dir>/soundbank``), ``procedural`` (the
    generators of ``actions``) or ``mixed`` (a labelled share of procedural chunks); None means
    real when a bank exists, else procedural with a warning. The subject draws the takes of bank
    ``split`` it shares, disjointly, with ``split_subjects`` (default: all nine); see ``real_sounds``.
    """

    def __init__(
        self,
        scenario: int = 1,
        seed: int = 0,
        label: str | None = None,
        subject: int | None = None,
        geometry: Geometry | None = None,
        impulse_ticks: Sequence[int] = (),
        components: Sequence[str] = COMPONENTS,
        positions: Sequence[int] | None = None,
        cache_dir=None,
        sounds: str | None = None,
        bank=None,
        split: str = "train",
        split_subjects: Sequence[int] | None = None,
    ):
        self.config: Scenario = get_scenario(scenario)
        self.scenario, self.seed = self.config.index, int(seed)
        self.label = CLASSES[self.seed % len(CLASSES)] if label is None else label
        class_index(self.label)  # BadInput for an unknown class
        self.subject = (self.seed // len(CLASSES)) % N_SUBJECTS if subject is None else int(subject)
        if not 0 <= self.subject < N_SUBJECTS:
            raise BadInput(f"subject must be 0..{N_SUBJECTS - 1}, got {subject}")
        unknown = set(components) - set(COMPONENTS)
        if unknown:
            raise BadInput(f"unknown scene components {sorted(unknown)}; known: {', '.join(COMPONENTS)}")
        self.components = tuple(components)
        self.geometry = geometry or get_geometry()
        self.fs = self.geometry.sample_rate
        self.impulse_ticks = set(int(t) for t in impulse_ticks)
        self.cache_dir = cache_dir
        self.split_subjects = check_split(split, split_subjects, self.subject)
        self.split = split
        self.sounds, self._bank = resolve_sounds(sounds, bank, cache_dir)
        self.tick = 0
        self._positions = subject_positions(self.geometry)
        allowed = range(len(self._positions)) if positions is None else [int(p) for p in positions]
        if not allowed or not all(0 <= p < len(self._positions) for p in allowed):
            raise BadInput(f"positions must be indices 0..{len(self._positions) - 1}, got {positions!r}")
        self._path = _SubjectPath(np.random.default_rng([self.seed, 0, 3]), len(self._positions), allowed, self.fs)
        self._emitters = self._build_emitters()
        self._spectra: OrderedDict = OrderedDict()
        rir_samples = int(round(self.config.rir_seconds * self.fs))
        self._segment_ticks = int(
            np.clip(np.ceil(2 * rir_samples / BLOCK_SAMPLES), MIN_SEGMENT_TICKS, MAX_SEGMENT_TICKS)
        )
        seg = self._segment_ticks * BLOCK_SAMPLES
        self._nfft = sfft.next_fast_len(seg + rir_samples)
        self._tail = np.zeros((self.geometry.n_mics, self._nfft - seg), np.float32)
        self._segment = np.zeros((self.geometry.n_mics, 0), np.float32)
        self._noise_rng = np.random.default_rng([self.seed, 0, 4])
        self._wind_ba = wind_filter(self.fs)
        self._wind_state = np.zeros((self.geometry.n_mics, 2))
        self._wind_gain = 0.0
        self._calibrate()
        self._background = render.background(self.scenario, self.seed, self.geometry.camera)
        self._segment = self._render_segment(0)  # so that the first tick (and a copy's) comes at once

    def __deepcopy__(self, memo: dict) -> Scene:
        """A copy that shares what never changes after set-up (the sound bank and the real-sound
        sources, which hold every take of a split) and copies the streaming state."""
        shared = [
            self._bank,
            *self.subject_takes,
            *(e.make for e in self._emitters if not isinstance(e.make, _ProceduralAmbience)),
        ]
        memo.update({id(x): x for x in shared if x is not None})
        new = object.__new__(Scene)
        memo[id(self)] = new
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new

    # --- set-up ------------------------------------------------------------------------------

    def _build_emitters(self) -> list[_Emitter]:
        fs, label, subject = self.fs, self.label, self.subject
        if self._bank is None:
            action = lambda rng, s: (*synthesize(label, subject, s, rng, fs), "procedural")  # noqa: E731
            self.subject_takes = []
        else:
            self.subject_takes = subject_share(self._bank.takes(label, self.split), subject, self.split_subjects)
            action = RealAction(label, subject, self.subject_takes, fs, mode=self.sounds)
        self.procedural_share = getattr(action, "share", 1.0)
        ambient = {}  # one source per sound name, so that the members of a group share their calibration
        for it in self.config.interferers + self.config.background:
            if it.name not in ambient:
                real = (
                    None
                    if self._bank is None
                    else real_ambience(self._bank, self.split, it.name, fs, self.subject_takes)
                )
                ambient[it.name] = _ambience(it.name, fs) if real is None else real
        self.real_ambience = sorted(n for n, make in ambient.items() if not isinstance(make, _ProceduralAmbience))
        emitters = [_Emitter("subject", action, self._positions, key=1)]
        for i, it in enumerate(self.config.interferers):
            emitters.append(
                _Emitter(
                    f"interferer:{it.name}",
                    ambient[it.name],
                    np.asarray(it.positions_m),
                    key=10 + i,
                    far=it.far,
                    stationary=True,
                )
            )
        for i, bg in enumerate(self.config.background):
            for j, pos in enumerate(bg.positions_m):
                emitters.append(
                    _Emitter(
                        f"background:{bg.name}",
                        ambient[bg.name],
                        np.asarray([pos]),
                        key=20 + 10 * i + j,
                        far=bg.far,
                        stationary=True,
                    )
                )
        return emitters

    def _rir(self, emitter: _Emitter, p: int) -> np.ndarray:
        return room_impulse_responses(
            self.config, emitter.positions_m[p], self.geometry, self.cache_dir, far=emitter.far
        )

    def _calibrate(self) -> None:
        """Set interferer and background gains from their power ratio to the subject at mic 0."""
        if not self.config.interferers and self.config.snr_db is None:
            return  # nothing to set
        subject = self._emitters[0]
        p_subject = _power_at(subject.calibration_signal(self.seed), self._rir(subject, self._path.position_at(0))[0])
        backgrounds = [e for e in self._emitters if e.name.startswith("background:")]
        for it, e in zip(self.config.interferers, self._emitters[1:]):
            e.gain = np.sqrt(p_subject / self._ambience_power(e, e) * 10 ** (-it.sir_db / 10))
        if self.config.snr_db is None:
            return
        p_background = p_subject * 10 ** (-self.config.snr_db / 10)
        shares = {k: 10 ** (v / 10) for k, v in BACKGROUND_MIX_DB.items()}
        total = sum(shares.values())
        for name in ("traffic", "voices"):
            group = [e for e in backgrounds if e.name == f"background:{name}"]
            for e in group:  # one generator per group: calibrated on the first member's realisation
                e.gain = np.sqrt(p_background * shares[name] / total / len(group) / self._ambience_power(e, group[0]))
        b, a = self._wind_ba
        unit = lfilter(b, a, np.random.default_rng([self.seed, 0, 5]).standard_normal(int(CALIBRATION_S * self.fs)))
        self._wind_gain = float(np.sqrt(p_background * shares["wind"] / total / np.mean(unit**2)))

    def _ambience_power(self, emitter: _Emitter, source: _Emitter) -> float:
        """Power at mic 0 of an ambient sound's calibration realisation from source (seed 0, so
        it is the same for every scene and computed once per process)."""
        if emitter.name.split(":")[1] in self.real_ambience:  # depends on the bank and split: not shared
            return _power_at(source.calibration_signal(0), self._rir(emitter, 0)[0])
        key = (self.scenario, emitter.name, emitter.positions_m[0].tobytes(), self.geometry.mics.tobytes())
        if key not in _AMBIENCE_POWER:
            _AMBIENCE_POWER[key] = _power_at(source.calibration_signal(0), self._rir(emitter, 0)[0])
        return _AMBIENCE_POWER[key]

    # --- audio -------------------------------------------------------------------------------

    def _spectrum(self, emitter: _Emitter, p: int) -> np.ndarray:
        key = (emitter.key, p)
        if key not in self._spectra:
            self._spectra[key] = sfft.rfft(self._rir(emitter, p), self._nfft, axis=1, workers=1).astype(np.complex64)
            while len(self._spectra) * self._spectra[key].nbytes > SPECTRA_CACHE_BYTES:
                self._spectra.popitem(last=False)
        self._spectra.move_to_end(key)
        return self._spectra[key]

    def _weights(self, emitter: _Emitter, start: int, n: int) -> list[tuple[int, np.ndarray | None]]:
        """(position index, per-sample weight or None for 1) pairs that make up this stretch."""
        if emitter.name == "subject":
            return self._path.weights(start, n)
        if emitter.name == "interferer:traffic":
            return _passing(start, n, self.fs, len(emitter.positions_m))
        return [(0, None)]

    def _render_segment(self, start: int) -> np.ndarray:
        n = self._segment_ticks * BLOCK_SAMPLES
        acc = None
        for e in self._emitters:
            group = {"subject": "subject", "interferer": "interferers", "background": "background"}[
                e.name.split(":")[0]
            ]
            if group not in self.components or e.gain == 0:
                continue
            x = (e.signal(self.seed, start, n, self.fs) * e.gain).astype(np.float32)
            if e.name == "subject":
                for t in self.impulse_ticks:
                    if start <= t * BLOCK_SAMPLES < start + n:
                        x[t * BLOCK_SAMPLES - start] += IMPULSE_PA
            for p, w in self._weights(e, start, n):
                xs = sfft.rfft(x if w is None else x * w.astype(np.float32), self._nfft, workers=1)  # complex64
                h = self._spectrum(e, p)
                acc = h * xs if acc is None else acc + h * xs
        if acc is None:
            y = np.zeros((self.geometry.n_mics, self._nfft), np.float32)
        else:
            y = sfft.irfft(acc, self._nfft, axis=1, workers=1)
        y[:, : self._tail.shape[1]] += self._tail
        self._tail = y[:, n:].copy()
        out = y[:, :n]
        white = self._noise_rng.standard_normal(out.shape, dtype=np.float32)  # independent per capsule
        if "self_noise" in self.components:
            out += white * SELF_NOISE_PA
        if self._wind_gain and "background" in self.components:  # wind: the same draw, low-passed
            wind, self._wind_state = lfilter(*self._wind_ba, white, axis=1, zi=self._wind_state)
            out += wind.astype(np.float32) * np.float32(self._wind_gain)
        out[~self.geometry.active] = 0.0
        return out

    # --- the tick ----------------------------------------------------------------------------

    def next_tick(self) -> SceneTick:
        """The next tick: audio (n_mics, 1024) float32 Pa, video (480, 640, 3) uint8 BGR, truth."""
        tick = self.tick
        if self._segment.shape[1] == 0:
            self._segment = self._render_segment(tick * BLOCK_SAMPLES)
        audio, self._segment = self._segment[:, :BLOCK_SAMPLES], self._segment[:, BLOCK_SAMPLES:]
        self.tick += 1
        truth = self.truth(tick)
        frame = self._background.copy()
        if tick in self.impulse_ticks:
            render.flash(frame)
        else:
            time_s = (tick + 0.5) / FPS  # the frame shows the middle of its tick
            render.draw_subject(
                frame,
                self.geometry.camera,
                truth["source_m"],
                self.label,
                self.subject,
                time_s,
                self.events(time_s - render.EVENT_CONTEXT_S, time_s + render.EVENT_CONTEXT_S),
            )
        return SceneTick(np.ascontiguousarray(audio), frame, truth)

    def truth(self, tick: int) -> dict:
        """Ground truth of a tick: class, subject, source position (m, px), events overlapping it."""
        start = tick * BLOCK_SAMPLES
        weights = self._path.weights(start + BLOCK_SAMPLES // 2, 1)
        pos = sum((w if w is not None else 1.0) * self._positions[p] for p, w in weights)
        pos = np.asarray(pos, float).ravel()
        t0, t1 = tick / FPS, (tick + 1) / FPS
        events = [[round(a, 4), round(b, 4)] for a, b in self.events(t0, t1)]
        cam = self.geometry.camera
        interferers = [
            {"name": e.name.split(":")[1], "source_m": self._where(e, start + BLOCK_SAMPLES // 2)}
            for e in self._emitters
            if e.name.startswith("interferer:")
        ]
        return {
            "tick": tick,
            "time_s": t0,
            "label": self.label,
            "class_index": class_index(self.label),
            "subject": self.subject,
            "scenario": self.scenario,
            "source_m": [round(float(v), 4) for v in pos],
            "source_px": [round(float(v), 2) for v in cam.project(pos)],
            "moving": any(w is not None for _, w in self._path.weights(start, BLOCK_SAMPLES)),
            "active": bool(events),
            "events": events,
            "impulse": tick in self.impulse_ticks,
            "sound": self._emitters[0].chunk(self.seed, int(t0 // CHUNK_S))[2],
            "interferers": interferers,
        }

    def sound_sources(self, seconds: float) -> dict[str, int]:
        """How many of the subject's events in its first ``seconds`` are real takes and how many procedural."""
        counts = {"real": 0, "procedural": 0}
        for k in range(int(np.ceil(seconds / CHUNK_S))):
            _, events, source = self._emitters[0].chunk(self.seed, k)
            counts[source] += sum(1 for a, _ in events if a + k * CHUNK_S < seconds)
        return counts

    def _where(self, emitter: _Emitter, sample: int) -> list[float] | None:
        """An emitter's position (m) at a sample, None while it is silent (no passing vehicle)."""
        weights = [(p, 1.0 if w is None else float(w[0])) for p, w in self._weights(emitter, sample, 1)]
        total = sum(w for _, w in weights)
        if total <= 0:
            return None
        return [round(float(v), 3) for v in sum(w * emitter.positions_m[p] for p, w in weights) / total]

    def dry_signal(self, start_sample: int, n_samples: int) -> np.ndarray:
        """The subject's source signal (Pa at 1 m, float64) before the room: the clean reference."""
        return self._emitters[0].signal(self.seed, start_sample, n_samples, self.fs)

    def events(self, t0_s: float, t1_s: float) -> list[tuple[float, float]]:
        """The subject's event spans [(onset_s, end_s), ...] (scene seconds) that overlap t0_s..t1_s."""
        out = []
        for k in range(max(0, int(t0_s // CHUNK_S)), int(t1_s // CHUNK_S) + 1):
            for a, b in self._emitters[0].chunk(self.seed, k)[1]:
                a, b = a + k * CHUNK_S, b + k * CHUNK_S
                if a < t1_s and b > t0_s:
                    out.append((a, b))
        return out


class _ProceduralAmbience:
    """One of ``ambience.AMBIENCE`` as an emitter source, ``(rng, seconds) -> (Pa, [])``."""

    def __init__(self, name: str, fs: int):
        self.make, self.fs = AMBIENCE[name], fs

    def __call__(self, rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, list]:
        return self.make(rng, seconds, self.fs), []


_ambience = _ProceduralAmbience


class _SubjectPath:
    """Where the subject stands over time: dwell at a cached position, cross-fade to a neighbour."""

    def __init__(self, rng: np.random.Generator, n_positions: int, allowed: Sequence[int], fs: int):
        self.rng, self.n, self.allowed, self.fs = rng, n_positions, list(allowed), fs
        self.starts = [0]  # sample at which the walk to positions[i] begins
        self.index = [int(rng.choice(self.allowed))]

    def _extend(self, until: int) -> None:
        while self.starts[-1] <= until and len(self.allowed) > 1:
            dwell = int(self.rng.uniform(*DWELL_S) * self.fs)
            cur = self.index[-1]
            near = [(cur + d) % self.n for d in (-5, -1, 1, 5)]  # next column or row of the set
            options = [p for p in near if p in self.allowed] or [p for p in self.allowed if p != cur]
            nxt = int(self.rng.choice(options))
            self.starts.append(self.starts[-1] + dwell)
            self.index.append(nxt)

    def position_at(self, sample: int) -> int:
        return max(self.weights(sample, 1), key=lambda pw: 1.0 if pw[1] is None else float(pw[1][0]))[0]

    def weights(self, start: int, n: int) -> list[tuple[int, np.ndarray | None]]:
        self._extend(start + n)
        fade = int(CROSSFADE_S * self.fs)
        t = start + np.arange(n)
        out = []
        for i, s in enumerate(self.starts):
            if s >= start + n:
                break
            nxt = self.starts[i + 1] if i + 1 < len(self.starts) else None
            if nxt is not None and nxt + fade <= start:
                continue  # faded out before this stretch
            # weight of position i: ramps up over [s, s + fade], down over [next, next + fade]
            up = np.ones(n) if i == 0 else np.clip((t - s) / fade, 0, 1)
            down = np.ones(n) if nxt is None else np.clip(1 - (t - nxt) / fade, 0, 1)
            w = up * down
            if w.max() <= 0:
                continue
            out.append((self.index[i], None if w.min() >= 1 else w))
        return out


PASS_PERIOD_S, PASS_S = 16.0, 6.0


def _passing(start: int, n: int, fs: int, n_positions: int) -> list[tuple[int, np.ndarray | None]]:
    """A vehicle passing every 16 s, crossing the cached positions in 6 s (silent in between)."""
    t = (start + np.arange(n)) / fs
    phase = (t % PASS_PERIOD_S) / PASS_S  # 0..1 while passing
    passing = phase < 1
    direction = (t // PASS_PERIOD_S) % 2 == 1
    where = np.where(direction, 1 - phase, phase) * (n_positions - 1)
    envelope = np.where(passing, np.sin(np.pi * np.clip(phase, 0, 1)) ** 0.5, 0.0)
    out = []
    for p in range(n_positions):
        w = np.clip(1 - np.abs(where - p), 0, 1) * envelope
        if w.max() > 0:
            out.append((p, w))
    return out
