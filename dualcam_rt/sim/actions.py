"""The fourteen action classes as procedural sound generators, with per-subject variation.

Every generator returns the sound pressure (Pa) a microphone 1 m from the hands would record,
as float64 at the given sample rate, plus the time spans (s) of its events. One line each:

- clapping: 2–4 claps/s; 6–12 ms noise bursts through the cupped-hands resonance (0.75–2 kHz).
- snapping_fingers: ~1.5 snaps/s; 2–3 ms bursts, 2–5 kHz, brighter and shorter than a clap.
- speaking: syllables at ~4/s: glottal pulses at F0 95–230 Hz through vowel formants (< 3 kHz).
- whistling: a melody of 150–400 ms notes, one partial at 0.9–2.8 kHz with vibrato; a line spectrum.
- playing_kendama: ball-on-wood ticks in pairs, 1–3 kHz cup modes ringing ~25 ms.
- clicking: single and double pen/mouse clicks, < 2 ms, plastic modes at 3–5.5 kHz.
- typing: 4–8 keystrokes/s, irregular: a 150–500 Hz key-bottom thud plus a 1.5–4 kHz click.
- knocking: groups of 2–4 knocks at ~5/s on a door: panel modes at 80–520 Hz.
- hammering: ~1.5 blows/s on metal: broadband hit plus inharmonic ringing at 1.8–5 kHz (~120 ms).
- peanut_breaking: every ~1.5 s a 60–150 ms cluster of 3–10 shell micro-cracks, 1.5–5 kHz.
- paper_ripping: 0.5–1.5 s rips: dense crackle (400–1500 cracks/s) over 0.8–5 kHz noise.
- plastic_crumpling: 1–2 s bouts of sparse, irregular crackles, 2–6 kHz, the brightest texture.
- paper_shaking: 1.5–3 s rustle: 0.4–3.5 kHz noise, amplitude-modulated at the 3–6 Hz shake rate.
- stick_dropping: a drop then 3–5 bounces at shrinking gaps, each ringing bar modes f1 x (1, 2.76, 5.40), f1 250–770 Hz.

``docs/simulation.md`` lists the spectral signature each one is tested for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import BadInput
from ..geometry import SAMPLE_RATE
from ..labels import CLASSES, N_SUBJECTS

Events = list[tuple[float, float]]


@dataclass(frozen=True)
class Traits:
    """How one subject performs: scale factors on pitch, tempo and level, voice and whistle pitch."""

    pitch: float  # multiplies resonance frequencies (hand size, prop)
    tempo: float  # multiplies event rates
    level_db: float  # added to every event's level
    f0_hz: float  # speaking fundamental
    whistle_hz: float  # centre of the whistled melody
    formant_scale: float  # vocal-tract length


def subject_traits(subject: int) -> Traits:
    """The fixed traits of subject 0..8 (deterministic; odd subjects have higher voices)."""
    if not 0 <= subject < N_SUBJECTS:
        raise BadInput(f"subject must be 0..{N_SUBJECTS - 1}, got {subject}")
    r = np.random.default_rng(9000 + subject)
    high_voice = subject % 2 == 1
    return Traits(
        pitch=float(r.uniform(0.85, 1.18)),
        tempo=float(r.uniform(0.8, 1.25)),
        level_db=float(r.uniform(-3, 3)),
        f0_hz=float(r.uniform(180, 230) if high_voice else r.uniform(95, 135)),
        whistle_hz=float(r.uniform(1200, 2000)),
        formant_scale=float(r.uniform(1.05, 1.18) if high_voice else r.uniform(0.92, 1.04)),
    )


# --- building blocks ------------------------------------------------------------------------


def band_noise(rng: np.random.Generator, n: int, lo_hz: float, hi_hz: float, fs: int) -> np.ndarray:
    """Unit-rms white noise confined to lo..hi Hz (brick-wall in the FFT domain)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / fs)
    spec[(f < lo_hz) | (f > hi_hz)] = 0
    x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _modes(freqs_hz, taus_s, amps, n: int, fs: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of exponentially decaying sinusoids (the ringing of struck objects), random phases."""
    t = np.arange(n) / fs
    out = np.zeros(n)
    for f, tau, a in zip(freqs_hz, taus_s, amps):
        if f < fs / 2:
            out += a * np.exp(-t / tau) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return out


def _burst(rng, n: int, lo_hz: float, hi_hz: float, tau_s: float, fs: int) -> np.ndarray:
    """A band-limited noise burst with a fast attack and exponential decay."""
    t = np.arange(n) / fs
    return band_noise(rng, n, lo_hz, hi_hz, fs) * np.exp(-t / tau_s) * (1 - np.exp(-t / 0.0004))


def _resonate(x: np.ndarray, f_hz: float, q: float, fs: int) -> np.ndarray:
    """Two-pole resonator at f_hz with quality q, unity peak gain (scipy's iirpeak)."""
    from scipy.signal import iirpeak, lfilter

    b, a = iirpeak(min(f_hz, 0.45 * fs), q, fs=fs)
    return lfilter(b, a, x)


def _add(out: np.ndarray, event: np.ndarray, start: int) -> int:
    """Add event at sample start, cut at the end of out; returns the samples placed."""
    n = max(0, min(len(event), len(out) - start))
    out[start : start + n] += event[:n]
    return n


def _peak(x: np.ndarray, pa: float) -> np.ndarray:
    return x * (pa / (np.max(np.abs(x)) + 1e-12))


def _rms(x: np.ndarray, pa: float) -> np.ndarray:
    return x * (pa / (np.sqrt(np.mean(x**2)) + 1e-12))


def _onsets(rng, seconds: float, rate_hz: float, jitter: float, start_s: float = 0.1) -> np.ndarray:
    """Event times (s) at roughly rate_hz with relative timing jitter, inside 0..seconds."""
    times, t = [], start_s + rng.uniform(0, 1 / rate_hz)
    while t < seconds:
        times.append(t)
        t += (1 / rate_hz) * max(0.2, 1 + jitter * rng.standard_normal())
    return np.asarray(times)


def _impacts(seconds, fs, rng, times, make_event, level_pa) -> tuple[np.ndarray, Events]:
    """Place one event per onset time; events are scaled to level_pa peak each."""
    out = np.zeros(int(round(seconds * fs)))
    events: Events = []
    for t0 in times:
        ev = _peak(make_event(), level_pa * 10 ** (rng.uniform(-2, 2) / 20))
        placed = _add(out, ev, int(t0 * fs))
        if placed:
            events.append((float(t0), float(t0 + placed / fs)))
    return out, events


# --- the fourteen generators -----------------------------------------------------------------


def clapping(rng, tr: Traits, seconds: float, fs: int):
    res = rng.uniform(900, 1700) * tr.pitch

    def clap():
        n = int(rng.uniform(0.006, 0.012) * fs) + int(0.02 * fs)
        x = _burst(rng, n, 300, 5500, rng.uniform(0.003, 0.005), fs)
        return 0.35 * x + _resonate(x, res * rng.uniform(0.95, 1.05), 4, fs)

    return _impacts(seconds, fs, rng, _onsets(rng, seconds, 3.0 * tr.tempo, 0.08), clap, 2.0)


def snapping_fingers(rng, tr: Traits, seconds: float, fs: int):
    res = rng.uniform(2600, 3600) * tr.pitch

    def snap():
        n = int(0.015 * fs)
        x = _burst(rng, n, 1500, 6000, rng.uniform(0.0015, 0.0025), fs)
        return 0.3 * x + _resonate(x, res, 3, fs)

    return _impacts(seconds, fs, rng, _onsets(rng, seconds, 1.5 * tr.tempo, 0.25), snap, 1.0)


_VOWELS = (
    (730, 1090, 2440),
    (270, 2290, 3010),
    (300, 870, 2240),
    (530, 1840, 2480),
    (640, 1190, 2390),
    (490, 1350, 1690),
    (660, 1720, 2410),
)  # Peterson & Barney (male) F1-F3


def speaking(rng, tr: Traits, seconds: float, fs: int):
    n_total = int(round(seconds * fs))
    out = np.zeros(n_total)
    events: Events = []
    t = rng.uniform(0.05, 0.3)
    while t < seconds - 0.3:
        n_syll = int(rng.integers(3, 9))  # a phrase of 3-8 syllables, then a pause
        for _ in range(n_syll):
            dur = rng.uniform(0.12, 0.3) / tr.tempo
            n = int(dur * fs)
            # glottal pulse train with jitter and a falling-rising intonation
            f0 = tr.f0_hz * (1 + 0.12 * np.sin(np.linspace(0, np.pi, n) + rng.uniform(-1, 1)))
            phase = np.cumsum(f0 / fs)
            pulses = np.diff(np.floor(phase), prepend=0.0) * (1 + 0.1 * rng.standard_normal(n))
            src = np.convolve(pulses, np.exp(-np.arange(40) / 6.0))[:n]  # smooth glottal shape
            f1, f2, f3 = np.asarray(_VOWELS[rng.integers(len(_VOWELS))]) * tr.formant_scale
            voiced = _resonate(src, f1, 5, fs) + 0.5 * _resonate(src, f2, 8, fs) + 0.2 * _resonate(src, f3, 10, fs)
            env = np.sin(np.linspace(0, np.pi, n)) ** 0.6
            syll = voiced * env
            if rng.random() < 0.3:  # a fricative onset (s, f, sh)
                nf = int(0.06 * fs)
                fric = band_noise(rng, nf, 2500, 5800, fs) * np.hanning(nf) * 0.15 * np.std(voiced)
                syll[:nf] += fric[: min(nf, n)]
            placed = _add(out, _rms(syll, 0.06 * rng.uniform(0.7, 1.3)), int(t * fs))
            if placed:  # each syllable is an event (the mouth opens with it)
                events.append((float(t), float(t + placed / fs)))
            t += dur + rng.uniform(0.01, 0.06)
        t += rng.uniform(0.3, 1.0)
    return out, events


def whistling(rng, tr: Traits, seconds: float, fs: int):
    n_total = int(round(seconds * fs))
    out = np.zeros(n_total)
    events: Events = []
    t = rng.uniform(0.05, 0.3)
    while t < seconds - 0.5:
        start, n_notes = t, int(rng.integers(4, 10))
        f_track, dur_total = [], 0.0
        for _ in range(n_notes):
            dur = rng.uniform(0.15, 0.4) / tr.tempo
            semitone = rng.integers(-7, 8)
            f_track.append(np.full(int(dur * fs), tr.whistle_hz * 2 ** (semitone / 12)))
            dur_total += dur
        f = np.concatenate(f_track)
        f = np.convolve(f, np.ones(200) / 200, mode="same")  # glide between notes
        f[:100], f[-100:] = f[100], f[-101]
        f *= 1 + 0.006 * np.sin(2 * np.pi * 5.5 * np.arange(len(f)) / fs)  # vibrato
        f = np.clip(f, 900, 2800)
        tone = np.sin(2 * np.pi * np.cumsum(f) / fs)
        breath = 0.03 * band_noise(rng, len(f), 1000, 4000, fs)
        env = np.minimum(1, np.minimum(np.arange(len(f)), np.arange(len(f))[::-1]) / (0.03 * fs))
        placed = _add(out, _rms((tone + breath) * env, 0.1), int(t * fs))
        events.append((float(start), float(start + placed / fs)))
        t += dur_total + rng.uniform(0.4, 1.2)
    return out, events


def playing_kendama(rng, tr: Traits, seconds: float, fs: int):
    cup = np.array([1150, 1720, 2550]) * tr.pitch

    def tick():
        n = int(0.08 * fs)
        hit = _burst(rng, n, 500, 5000, 0.0008, fs)
        return 0.3 * hit + _modes(cup * rng.uniform(0.97, 1.03, 3), (0.025, 0.018, 0.012), (1, 0.7, 0.4), n, fs, rng)

    times = []
    for t0 in _onsets(rng, seconds, 0.9 * tr.tempo, 0.3):  # catch, then a second cup 0.2-0.5 s later
        times += [t0, t0 + rng.uniform(0.2, 0.5)]
    return _impacts(seconds, fs, rng, [t for t in times if t < seconds], tick, 0.6)


def clicking(rng, tr: Traits, seconds: float, fs: int):
    def click():
        n = int(0.012 * fs)
        hit = _burst(rng, n, 2500, 6000, 0.0005, fs)
        return 0.5 * hit + _modes(np.array([3400, 4700]) * tr.pitch, (0.0015, 0.001), (1, 0.8), n, fs, rng)

    times = []
    for t0 in _onsets(rng, seconds, 1.2 * tr.tempo, 0.4):
        times.append(t0)
        if rng.random() < 0.4:  # double click
            times.append(t0 + rng.uniform(0.1, 0.16))
    return _impacts(seconds, fs, rng, [t for t in times if t < seconds], click, 0.25)


def typing(rng, tr: Traits, seconds: float, fs: int):
    def key():
        n = int(0.03 * fs)
        thud = _modes([rng.uniform(150, 500) * tr.pitch], [0.006], [1], n, fs, rng)
        click = _burst(rng, n, 1500, 4000, 0.0012, fs)
        return 0.8 * thud + click

    times = []
    t = 0.1
    while t < seconds:  # bursts of words, short pauses between
        n_keys = int(rng.integers(3, 12))
        times += list(t + np.cumsum(rng.uniform(0.08, 0.22, n_keys) / tr.tempo))
        t = times[-1] + rng.uniform(0.15, 0.5)
    return _impacts(seconds, fs, rng, [t for t in times if t < seconds], key, 0.3)


def knocking(rng, tr: Traits, seconds: float, fs: int):
    panel = np.array([95, 180, 310, 440]) * tr.pitch

    def knock():
        n = int(0.12 * fs)
        hit = _burst(rng, n, 80, 1200, 0.002, fs)
        return 0.3 * hit + _modes(
            panel * rng.uniform(0.97, 1.03, 4), (0.03, 0.025, 0.02, 0.015), (1, 0.9, 0.6, 0.35), n, fs, rng
        )

    times = []
    for t0 in _onsets(rng, seconds, 0.6 * tr.tempo, 0.3):
        times += list(t0 + np.arange(rng.integers(2, 5)) * rng.uniform(0.17, 0.22))
    return _impacts(seconds, fs, rng, [t for t in times if t < seconds], knock, 1.5)


def hammering(rng, tr: Traits, seconds: float, fs: int):
    ring = np.array([1850, 2900, 3700, 4800]) * rng.uniform(0.95, 1.05)  # the nail/plate, not the hand

    def blow():
        n = int(0.3 * fs)
        hit = _burst(rng, n, 200, 6000, 0.002, fs)
        return 0.6 * hit + _modes(ring, (0.12, 0.09, 0.07, 0.05), (1, 0.8, 0.6, 0.4), n, fs, rng)

    return _impacts(seconds, fs, rng, _onsets(rng, seconds, 1.5 * tr.tempo, 0.1), blow, 4.0)


def peanut_breaking(rng, tr: Traits, seconds: float, fs: int):
    def crack():
        n = int(rng.uniform(0.06, 0.15) * fs) + int(0.01 * fs)
        x = np.zeros(n)
        for _ in range(int(rng.integers(3, 11))):
            c = _burst(rng, int(0.006 * fs), 1500, 5000, 0.0006, fs) * rng.uniform(0.3, 1)
            _add(x, _resonate(c, 2800 * tr.pitch, 2, fs) + 0.5 * c, int(rng.uniform(0, n - 0.01 * fs)))
        return x

    return _impacts(seconds, fs, rng, _onsets(rng, seconds, 0.7 * tr.tempo, 0.3), crack, 0.3)


def _crackle(rng, n: int, rate_hz: float, lo_hz: float, hi_hz: float, fs: int) -> np.ndarray:
    """Poisson micro-clicks at rate_hz with random sizes, band-limited to lo..hi Hz."""
    imp = np.zeros(n)
    k = rng.poisson(rate_hz * n / fs)
    imp[rng.integers(0, n, k)] = rng.pareto(2.5, k) + 0.2
    spec = np.fft.rfft(imp)
    f = np.fft.rfftfreq(n, 1 / fs)
    spec[(f < lo_hz) | (f > hi_hz)] = 0
    return np.fft.irfft(spec, n)


def _textures(rng, seconds, fs, dur_range, gap_range, make, level_rms) -> tuple[np.ndarray, Events]:
    out = np.zeros(int(round(seconds * fs)))
    events: Events = []
    t = rng.uniform(0.05, 0.4)
    while t < seconds - 0.2:
        n = int(rng.uniform(*dur_range) * fs)
        placed = _add(out, _rms(make(n), level_rms * 10 ** (rng.uniform(-2, 2) / 20)), int(t * fs))
        events.append((float(t), float(t + placed / fs)))
        t += n / fs + rng.uniform(*gap_range)
    return out, events


def paper_ripping(rng, tr: Traits, seconds: float, fs: int):
    def rip(n):
        env = np.linspace(0.5, 1, n) * np.minimum(1, (n - np.arange(n)) / (0.02 * fs))
        tex = _crackle(rng, n, rng.uniform(400, 1500) * tr.tempo, 800, 5000, fs)
        tex = tex / (np.std(tex) + 1e-12) + 0.5 * band_noise(rng, n, 800, 5000, fs)
        return tex * env

    return _textures(rng, seconds, fs, (0.5, 1.5), (0.5, 1.5), rip, 0.12)


def plastic_crumpling(rng, tr: Traits, seconds: float, fs: int):
    def crumple(n):
        tex = _crackle(rng, n, rng.uniform(40, 120) * tr.tempo, 2000, 6000, fs)
        slow = np.convolve(rng.random(n) < 8 / fs, np.ones(int(0.15 * fs)), mode="same")  # clustered bursts
        return tex * (0.3 + slow)

    return _textures(rng, seconds, fs, (1.0, 2.0), (0.4, 1.2), crumple, 0.06)


def paper_shaking(rng, tr: Traits, seconds: float, fs: int):
    def shake(n):
        rate = rng.uniform(3, 6) * tr.tempo
        t = np.arange(n) / fs
        mod = np.abs(np.sin(np.pi * rate * t)) ** 2
        return band_noise(rng, n, 400, 3500, fs) * (0.1 + mod)

    return _textures(rng, seconds, fs, (1.5, 3.0), (0.5, 1.5), shake, 0.06)


def stick_dropping(rng, tr: Traits, seconds: float, fs: int):
    out = np.zeros(int(round(seconds * fs)))
    events: Events = []
    for t0 in _onsets(rng, seconds, 0.45 * tr.tempo, 0.3, start_s=0.2):  # pick up, drop again
        f1 = rng.uniform(300, 650) * tr.pitch
        gap, t, amp, start = rng.uniform(0.15, 0.3), t0, 1.0, int(t0 * fs)
        end = start
        for _ in range(int(rng.integers(3, 6))):
            n = int(0.12 * fs)
            hit = _burst(rng, n, 200, 6000, 0.001, fs)
            ev = 0.4 * hit + _modes(f1 * np.array([1, 2.76, 5.40]), (0.04, 0.025, 0.015), (1, 0.7, 0.5), n, fs, rng)
            s = int(t * fs)
            end = s + _add(out, _peak(ev, 2.0 * amp), s)
            t += gap
            gap *= rng.uniform(0.5, 0.7)
            amp *= rng.uniform(0.4, 0.7)
        if end > start:
            events.append((start / fs, end / fs))
    return out, events


GENERATORS: dict[str, Callable] = {
    "clapping": clapping,
    "snapping_fingers": snapping_fingers,
    "speaking": speaking,
    "whistling": whistling,
    "playing_kendama": playing_kendama,
    "clicking": clicking,
    "typing": typing,
    "knocking": knocking,
    "hammering": hammering,
    "peanut_breaking": peanut_breaking,
    "paper_ripping": paper_ripping,
    "plastic_crumpling": plastic_crumpling,
    "paper_shaking": paper_shaking,
    "stick_dropping": stick_dropping,
}
assert tuple(GENERATORS) == CLASSES  # one generator per class, in class-index order


def synthesize(
    label: str, subject: int, seconds: float, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE
) -> tuple[np.ndarray, Events]:
    """The action sound (Pa at 1 m, float64, seconds * sample_rate samples) and its event spans (s)."""
    if label not in GENERATORS:
        raise BadInput(f"unknown class {label!r}; known: {', '.join(CLASSES)}")
    tr = subject_traits(subject)
    wave, events = GENERATORS[label](rng, tr, seconds, sample_rate)
    fade = int(0.01 * sample_rate)  # an event cut by the end of the clip dies away, not clicks
    wave[-fade:] *= np.cos(np.linspace(0, np.pi / 2, fade))
    return wave * 10 ** (tr.level_db / 20), events
