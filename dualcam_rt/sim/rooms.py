"""The three acoustic scenarios and their room impulse responses (pyroomacoustics, cached on disk).

Camera coordinates (x right, y up, z forward, metres; see ``geometry``) map into each room as
``room = origin + (x, z, y)``: the sensor hangs at ``origin`` looking along the room's y axis.

- 1 anechoic: direct path only (image-source order 0).
- 2 indoor open space, RT60 0.8 s: a 14 x 11 x 3.6 m shoebox whose wall absorption comes from
  ``pra.inverse_sabine``. The image-source model runs to order ``ism_order`` (the early,
  spatially coherent reflections that smear an acoustic image); after ``mixing_time_s`` it hands
  over to a late tail of independent Gaussian noise per microphone decaying at the configured
  RT60 (the statistical model of a diffuse late field, Polack 1988), its level matched to the
  image-source energy at the hand-over. A full-order image-source run takes ~12 s per position
  for 128 microphones and still measures 1.2 s, so it is neither fast nor closer to the target.
- 3 outdoor terrace: direct path plus one reflection from a hard floor (all other surfaces
  absorb fully), diffuse background noise at ``snr_db`` (see ``scene``).

RIRs are (n_mics, rir_samples) float32 at 12,288 Hz with pyroomacoustics' 1/r spreading, so a
source signal given in Pa at 1 m arrives in Pa at the microphone.
They are cached as .npy under ``<cache_dir>/sim-rir/`` (``cache_dir`` handed down by the caller,
default ``config.DEFAULT_CACHE_DIR``) keyed by a hash of the scenario's room,
the microphone positions, the source position and the sample rate.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..config import DEFAULT_CACHE_DIR
from ..errors import BadInput
from ..geometry import Geometry
from ..labels import SCENARIOS

RIR_VERSION = 2  # bump when the way RIRs are computed changes (invalidates the cache)


@dataclass(frozen=True)
class Interferer:
    """A competing sound at fixed or moving positions (camera coordinates, metres)."""

    name: str  # "voice" | "hum" | "traffic"
    positions_m: tuple[tuple[float, float, float], ...]
    sir_db: float  # subject-to-interferer power ratio at microphone 0
    far: bool = False  # tens of metres away: RIRs lose the common propagation delay


@dataclass(frozen=True)
class Scenario:
    """One acoustic scenario's configuration; ``ROOMS[k]`` holds the three shipped ones (their names
    are ``labels.SCENARIOS``')."""

    index: int
    name: str
    room_dim_m: tuple[float, float, float]
    origin_m: tuple[float, float, float]  # where the sensor sits in the room
    ism_order: int  # image-source order
    rir_seconds: float  # RIR length kept (the late tail past it is below -60 dB)
    rt60_s: float | None = None  # reverberant rooms: target RT60, absorption via inverse Sabine
    mixing_time_s: float = 0.08  # hand-over from image sources to the statistical late tail
    floor_absorption: float | None = None  # outdoor: floor absorbs this, everything else all
    snr_db: float | None = None  # outdoor: subject-to-background ratio at microphone 0
    interferers: tuple[Interferer, ...] = ()
    background: tuple[Interferer, ...] = ()  # distant sources making the diffuse noise


ROOMS: dict[int, Scenario] = {
    1: Scenario(1, SCENARIOS[1], (8.0, 8.0, 4.0), (4.0, 1.0, 1.5), ism_order=0, rir_seconds=0.04),
    2: Scenario(
        2,
        SCENARIOS[2],
        (14.0, 11.0, 3.6),
        (7.0, 1.5, 1.5),
        ism_order=12,
        rir_seconds=0.9,
        rt60_s=0.8,
        interferers=(
            Interferer("voice", ((2.3, 0.1, 5.0),), sir_db=8.0),  # a colleague at the view's right edge
            Interferer("hum", ((-3.0, 1.9, 3.0),), sir_db=12.0),
        ),
    ),  # a ceiling vent, out of view
    3: Scenario(
        3,
        SCENARIOS[3],
        (140.0, 140.0, 40.0),
        (70.0, 70.0, 1.5),
        ism_order=1,
        rir_seconds=0.08,
        floor_absorption=0.05,
        snr_db=5.0,
        interferers=(
            Interferer("voice", ((-2.5, 0.1, 6.0),), sir_db=8.0),
            Interferer(
                "traffic", tuple((x, -1.3, 25.0) for x in (-30.0, -15.0, 0.0, 15.0, 30.0)), sir_db=6.0, far=True
            ),
        ),  # a road behind the terrace
        background=(
            Interferer("traffic", ((-50.0, -1.3, 45.0), (55.0, -1.3, -40.0), (0.0, -1.3, -60.0)), 0.0, True),
            Interferer("voices", ((-18.0, 0.0, 12.0), (20.0, 0.0, -15.0)), 0.0, True),
        ),
    ),
}


def get_scenario(index: int) -> Scenario:
    """The shipped scenario 1, 2 or 3."""
    try:
        return ROOMS[int(index)]
    except (KeyError, ValueError):
        raise BadInput(f"scenario must be one of {sorted(ROOMS)}, got {index!r}") from None


# Where subjects stand: 5 columns across the view x 3 distances, hands at two heights; rounded
# to the centimetre so positions are stable cache keys.
SUBJECT_DISTANCES_M = (2.0, 2.6, 3.2)
SUBJECT_COLUMNS = (0.2, 0.35, 0.5, 0.65, 0.8)  # fractions of the image width
SUBJECT_HAND_HEIGHTS_M = (-0.25, -0.05)  # relative to the camera (about 1.5 m above the floor)


def subject_positions(geometry: Geometry) -> np.ndarray:
    """The cached set of subject (hand) positions, (15, 3) metres, all >= 2 m and in view."""
    cam = geometry.camera
    out = []
    for i, z in enumerate(SUBJECT_DISTANCES_M):
        for j, col in enumerate(SUBJECT_COLUMNS):
            x = (col * cam.width - cam.cx) / cam.fx * z
            out.append((round(x, 2), SUBJECT_HAND_HEIGHTS_M[(i + j) % 2], z))
    return np.asarray(out)


def warm_cache(scenario: Scenario, geometry: Geometry, cache_dir: str | Path | None = None) -> int:
    """Compute (or load) every RIR a scene of this scenario can use; returns how many there are."""
    sources = [(p, False) for p in subject_positions(geometry)]
    sources += [(p, it.far) for it in scenario.interferers + scenario.background for p in it.positions_m]
    for position, far in sources:
        room_impulse_responses(scenario, position, geometry, cache_dir, far=far)
    return len(sources)


def _to_room(scenario: Scenario, points_cam: np.ndarray) -> np.ndarray:
    p = np.atleast_2d(points_cam)
    return np.asarray(scenario.origin_m) + np.stack([p[:, 0], p[:, 2], p[:, 1]], axis=1)


def _cache_path(scenario: Scenario, geometry: Geometry, position_m, cache_dir: Path) -> Path:
    key = json.dumps(
        {
            "v": RIR_VERSION,
            "scenario": asdict(scenario),
            "fs": geometry.sample_rate,
            "mics": np.round(geometry.mics, 5).tolist(),
            "pos": [round(float(v), 3) for v in position_m],
        },
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha1(key.encode()).hexdigest()[:20]
    return Path(cache_dir) / "sim-rir" / f"s{scenario.index}-{digest}.npy"


def room_impulse_responses(
    scenario: Scenario, position_m, geometry: Geometry, cache_dir: str | Path | None = None, far: bool = False
) -> np.ndarray:
    """RIRs (n_mics, rir_samples) float32 from a source at position_m (camera coords) to every mic.

    ``far`` sources (background, traffic) have their common propagation delay removed so their
    RIRs fit the same length; a constant delay does not change a noise-like signal.
    """
    path = _cache_path(scenario, geometry, position_m, Path(cache_dir or DEFAULT_CACHE_DIR))
    if path.exists():
        try:
            return np.load(path)
        except (OSError, ValueError):
            pass  # a torn file from a killed writer: recompute it
    rir = _compute(scenario, np.asarray(position_m, float), geometry, far, seed=int(path.stem[3:11], 16))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, rir)
    os.replace(tmp, path)  # atomic: concurrent scenes never read half a file
    return rir


def _compute(scenario: Scenario, position_m: np.ndarray, geometry: Geometry, far: bool, seed: int) -> np.ndarray:
    import pyroomacoustics as pra

    fs = geometry.sample_rate
    n_out = int(round(scenario.rir_seconds * fs))
    if scenario.rt60_s is not None:
        absorption, _ = pra.inverse_sabine(scenario.rt60_s, scenario.room_dim_m)
        materials = pra.Material(absorption)
    elif scenario.floor_absorption is not None:
        materials = pra.make_materials(
            floor=scenario.floor_absorption, ceiling=1.0, east=1.0, west=1.0, north=1.0, south=1.0
        )
    else:
        materials = pra.Material(1.0)
    room = pra.ShoeBox(
        list(scenario.room_dim_m), fs=fs, materials=materials, max_order=scenario.ism_order, air_absorption=False
    )
    room.add_microphone_array(_to_room(scenario, geometry.mics).T)
    room.add_source(_to_room(scenario, position_m)[0])
    room.compute_rir()
    n_max = max(len(r[0]) for r in room.rir)
    rir = np.zeros((geometry.n_mics, max(n_max, n_out)))
    for m, per_source in enumerate(room.rir):
        rir[m, : len(per_source[0])] = per_source[0]
    rir = rir[:, pra.constants.get("frac_delay_length") // 2 :]  # pra centres its delay filters: undo that lag
    if far:  # drop the shared bulk delay, keep 64 samples of lead-in for the delay filters
        first = int(np.argmax(np.abs(rir).max(axis=0) > 1e-3 * np.abs(rir).max()))
        rir = rir[:, max(0, first - 64) :]
    if len(rir[0]) < n_out:
        rir = np.pad(rir, ((0, 0), (0, n_out - len(rir[0]))))
    rir = rir[:, :n_out]
    if scenario.rt60_s is not None:
        rir = _add_late_tail(rir, scenario, fs, np.random.default_rng(seed))
    return rir.astype(np.float32)


def _add_late_tail(rir: np.ndarray, scenario: Scenario, fs: int, rng: np.random.Generator) -> np.ndarray:
    """Cross-fade the image-source RIR into a diffuse tail decaying 60 dB per RT60."""
    n = rir.shape[1]
    t = np.arange(n) / fs
    t_mix = scenario.mixing_time_s
    decay = np.exp(-3 * np.log(10) * t / scenario.rt60_s)  # amplitude: -60 dB at t = RT60
    # the tail's level: image-source energy in the window before t_mix, over the whole array
    # (a diffuse field has the same level everywhere; one mic's few reflections are a noisy estimate)
    w = (t >= 0.5 * t_mix) & (t < t_mix)
    ism_energy = np.mean(rir[:, w] ** 2)
    tail_energy = np.mean(decay[w] ** 2)
    tail = rng.standard_normal(rir.shape) * decay * np.sqrt(ism_energy / tail_energy)
    fade = np.clip((t - 0.5 * t_mix) / (0.5 * t_mix), 0, 1)  # 0 before t_mix/2, 1 from t_mix
    return rir * (1 - fade) + tail * fade
