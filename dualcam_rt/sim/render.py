"""Camera frames of a scene: a per-scenario background and the subject performing its action.

Everything is placed with the sensor's own camera model, so the part of the figure that makes
the sound (the hands and the action's prop, or the mouth for speaking and whistling) is drawn at
the acoustic source's projected pixel. The action's motion is driven by its sound events: the
renderer gets the event spans ``[(onset_s, end_s), ...]`` near the frame's time and poses the
figure from where that time falls among them (hands meet at each clap's onset, a hammer lands on
each blow, a sheet tears while the rip sounds, the mouth opens with each syllable). One
readable pose and prop per class; per-subject colours, height and handedness. Frames are
(480, 640, 3) uint8 BGR, drawn with OpenCV primitives at full size (well under 1 ms a frame),
and depend only on their arguments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..geometry import FPS, Camera, get_geometry
from ..labels import CLASSES
from .actions import synthesize
from .rooms import subject_positions

CAMERA_HEIGHT_M = 1.5  # above the floor; the floor is the plane y = -1.5
EVENT_CONTEXT_S = 1.5  # a frame's pose depends on the events at most this far before or after it
VOICE_CLASSES = ("speaking", "whistling")  # the sound comes from the mouth, not the hands
SHIRTS = (
    (40, 40, 160),
    (150, 80, 30),
    (40, 120, 40),
    (20, 140, 200),
    (120, 40, 120),
    (90, 90, 90),
    (160, 140, 40),
    (30, 60, 110),
    (200, 200, 200),
)  # BGR, one per subject
SKINS = (
    (140, 170, 220),
    (100, 130, 180),
    (70, 95, 140),
    (150, 180, 230),
    (90, 120, 170),
    (120, 150, 200),
    (60, 80, 120),
    (130, 160, 210),
    (110, 140, 190),
)
TROUSERS = (
    (60, 50, 40),
    (40, 40, 40),
    (110, 80, 50),
    (70, 90, 100),
    (30, 30, 80),
    (100, 100, 110),
    (50, 70, 50),
    (140, 120, 90),
    (20, 20, 20),
)
HAIR = (
    (20, 20, 20),
    (30, 50, 90),
    (40, 40, 40),
    (60, 110, 160),
    (10, 10, 10),
    (120, 120, 130),
    (20, 30, 60),
    (80, 130, 190),
    (30, 30, 30),
)
LEFT_HANDED = (2, 5, 8)  # subjects who act with the left hand (one in three, in training and test alike)
WOOD, DARK_WOOD, METAL = (40, 90, 140), (30, 60, 95), (150, 150, 155)


def background(scenario: int, seed: int, camera: Camera | None = None) -> np.ndarray:
    """The empty scene for a scenario, (H, W, 3) uint8 BGR, with small per-seed variation."""
    camera = camera or Camera()
    rng = np.random.default_rng([seed, 77])
    h, w = camera.height, camera.width
    img = np.zeros((h, w, 3), np.uint8)
    horizon = int(camera.cy)
    if scenario == 1:  # anechoic chamber: foam wedges on every surface, a wire-mesh floor
        img[:] = (70, 62, 58)
        cell = 32
        for r in range(0, h, cell):
            for c in range(0, w, cell):
                shade = 80 + 25 * ((r // cell + c // cell) % 2)
                pts = np.array([[c, r], [c + cell, r], [c + cell // 2, r + cell]], np.int32)
                cv2.fillConvexPoly(img, pts, (shade, shade - 8, shade - 12))
        for z in (2.5, 3.5, 5.0, 8.0):
            v = int(camera.cy + camera.fy * CAMERA_HEIGHT_M / z)
            cv2.line(img, (0, v), (w, v), (150, 150, 150), 1)
        for x in np.arange(-4, 4.1, 0.8):
            p0 = camera.project(np.array([x, -CAMERA_HEIGHT_M, 1.6]))
            p1 = camera.project(np.array([x, -CAMERA_HEIGHT_M, 30.0]))
            cv2.line(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1), (150, 150, 150), 1)
    elif scenario == 2:  # open-plan office: back wall, floor, ceiling, windows, furniture
        back = 9.5
        ceil_v = int(camera.cy - camera.fy * 2.1 / back)
        floor_v = int(camera.cy + camera.fy * CAMERA_HEIGHT_M / back)
        img[:ceil_v] = (225, 230, 235)
        img[ceil_v:floor_v] = (175, 200, 215)
        img[floor_v:] = (60, 100, 150)
        for k in range(4):
            x0 = int(40 + k * 160 + rng.integers(-10, 10))
            cv2.rectangle(img, (x0, ceil_v + 20), (x0 + 100, floor_v - 70), (235, 215, 180), -1)
            cv2.rectangle(img, (x0, ceil_v + 20), (x0 + 100, floor_v - 70), (120, 120, 120), 2)
        for x in (-3.0, 2.5):
            desk = camera.project(np.array([[x, -0.75, 6.0], [x + 1.4, -CAMERA_HEIGHT_M, 6.0]]))
            cv2.rectangle(img, tuple(desk[0].astype(int)), tuple(desk[1].astype(int)), (70, 90, 110), -1)
        for z in (3.0, 4.5, 6.5):
            v = int(camera.cy + camera.fy * CAMERA_HEIGHT_M / z)
            cv2.line(img, (0, v), (w, v), (50, 85, 130), 1)
    else:  # terrace: sky, skyline on the horizon, stone tiles, a railing
        for r in range(horizon):
            img[r] = (235 - r // 4, 200 - r // 6, 150 - r // 6)
        x = 0
        while x < w:
            bw, bh = int(rng.integers(30, 80)), int(rng.integers(15, 70))
            cv2.rectangle(
                img, (x, horizon - bh), (x + bw, horizon), tuple(int(v) for v in rng.integers(110, 160, 3)), -1
            )
            x += bw + int(rng.integers(0, 15))
        img[horizon:] = (150, 165, 175)
        for z in (2.2, 2.8, 3.6, 5.0, 7.5, 12.0):
            v = int(camera.cy + camera.fy * CAMERA_HEIGHT_M / z)
            cv2.line(img, (0, v), (w, v), (120, 130, 140), 1)
        rail_v = int(camera.cy + camera.fy * 0.5 / 10.0)
        cv2.line(img, (0, rail_v), (w, rail_v), (60, 60, 60), 3)
    gain = rng.uniform(0.9, 1.1)
    return np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Look:
    """How a subject looks: BGR colours, a height factor and the hand they act with."""

    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    height: float  # multiplies the body's proportions
    hand: int  # +1 right-handed, -1 left-handed: one-handed actions are mirrored


def subject_look(subject: int) -> Look:
    """The fixed appearance of subject 0..8."""
    r = np.random.default_rng(7000 + subject)
    k = subject % len(SHIRTS)
    return Look(
        SHIRTS[k],
        TROUSERS[k],
        SKINS[k],
        HAIR[k],
        height=float(r.uniform(0.9, 1.1)),
        hand=-1 if subject in LEFT_HANDED else 1,
    )


@dataclass(frozen=True)
class Timing:
    """Where a frame's time falls among the action's events (seconds; inf where there is none)."""

    time_s: float
    since: float  # since the latest onset at or before the frame
    until: float  # to the next onset after the frame
    since_end: float  # since the latest event ended (0 while one sounds)
    progress: float | None  # 0..1 through the event sounding now, None between events
    event_id: int  # a stable number of the latest event (its onset in ms): which key, which hand

    @property
    def gap(self) -> float:
        """Time between the latest onset and the next (inf at either end)."""
        return self.since + self.until


def event_timing(time_s: float, events: Sequence[tuple[float, float]]) -> Timing:
    """The Timing of time_s among event spans [(onset_s, end_s), ...] (any order)."""
    inf = math.inf
    last, until, since_end = None, inf, inf
    for a, b in events:
        if a <= time_s:
            if last is None or a > last[0]:
                last = (a, b)
            if b <= time_s:
                since_end = min(since_end, time_s - b)
        else:
            until = min(until, a - time_s)
    if last is None:
        return Timing(time_s, inf, until, inf, None, 0)
    sounding = time_s < last[1]
    progress = (time_s - last[0]) / max(last[1] - last[0], 1e-6) if sounding else None
    return Timing(time_s, time_s - last[0], until, 0.0 if sounding else since_end, progress, int(round(last[0] * 1000)))


def _smooth(x: float) -> float:
    """0..1 -> 0..1 with zero slope at both ends (an eased motion)."""
    x = min(1.0, max(0.0, x))
    return x * x * (3 - 2 * x)


class _Figure:
    """The subject in one frame; positions are metre offsets (dx, dy, dz) from the source, with dx
    towards the acting hand (mirrored for left-handers), dy up, dz away from the camera."""

    def __init__(self, frame: np.ndarray, camera: Camera, source_m, look: Look, label: str):
        self.frame, self.look = frame, look
        self.x0, self.y0, self.z0 = (float(v) for v in source_m)
        self.fx, self.fy, self.cx, self.cy = camera.fx, camera.fy, camera.cx, camera.cy
        self.scale = camera.fx / self.z0  # pixels per metre at the source
        h = look.height
        if label in VOICE_CLASSES:  # the mouth is at the source: the head is centred just above it
            self.shoulder_dy, self.body_dx, self.body_dz = 0.04 - 0.2 * h, 0.0, 0.0
        else:
            shoulders_above_hands, self.body_dx = LAYOUT[label]
            self.shoulder_dy, self.body_dz = shoulders_above_hands * h, 0.25
        self.hip_dy = self.shoulder_dy - 0.55 * h
        self.floor_dy = -CAMERA_HEIGHT_M - self.y0

    def p(self, dx: float, dy: float, dz: float = 0.0) -> tuple[int, int]:
        z = self.z0 + dz
        return (
            int(round(self.cx + self.fx * (self.x0 + self.look.hand * dx) / z)),
            int(round(self.cy - self.fy * (self.y0 + dy) / z)),
        )

    def n(self, metres: float) -> int:
        return max(1, int(round(metres * self.scale)))

    def line(self, a, b, colour, width_m: float) -> None:
        cv2.line(self.frame, self.p(*a), self.p(*b), colour, self.n(width_m), cv2.LINE_AA)

    def poly(self, points, colour) -> None:
        cv2.fillPoly(self.frame, [np.array([self.p(*q) for q in points], np.int32)], colour, cv2.LINE_AA)

    def rect(self, x0: float, y0: float, x1: float, y1: float, colour, dz: float = 0.0) -> None:
        self.poly([(x0, y0, dz), (x1, y0, dz), (x1, y1, dz), (x0, y1, dz)], colour)

    def disc(self, centre, radius_m: float, colour) -> None:
        cv2.circle(self.frame, self.p(*centre), self.n(radius_m), colour, -1, cv2.LINE_AA)

    def ellipse(self, centre, rx: float, ry: float, colour, angle_deg: float = 0.0, arc=(0, 360)) -> None:
        cv2.ellipse(
            self.frame,
            self.p(*centre),
            (self.n(rx), self.n(ry)),
            self.look.hand * angle_deg,
            arc[0],
            arc[1],
            colour,
            -1,
            cv2.LINE_AA,
        )

    def body(self) -> None:
        """Legs, torso, neck and head; the arms come with the action."""
        h, bx, bz, sh, hip = self.look.height, self.body_dx, self.body_dz, self.shoulder_dy, self.hip_dy
        for side in (-1, 1):
            self.line((bx + 0.07 * side, hip, bz), (bx + 0.11 * side, self.floor_dy, bz), self.look.trousers, 0.12)
        self.poly(
            [(bx - 0.2 * h, sh, bz), (bx + 0.2 * h, sh, bz), (bx + 0.16 * h, hip, bz), (bx - 0.16 * h, hip, bz)],
            self.look.shirt,
        )
        self.line((bx, sh, bz), (bx, sh + 0.08 * h, bz), self.look.skin, 0.07)
        self.head = (bx, sh + 0.2 * h, bz)
        self.disc(self.head, 0.105 * h, self.look.skin)
        self.ellipse((bx, sh + 0.22 * h, bz), 0.11 * h, 0.1 * h, self.look.hair, arc=(180, 360))

    def shoulder(self, side: int) -> tuple[float, float, float]:
        return (self.body_dx + 0.19 * self.look.height * side, self.shoulder_dy, self.body_dz)

    def arm(self, side: int, hand, hand_radius_m: float = 0.045, elbow_out: bool = False, elbow=None) -> None:
        """An arm from the shoulder on side (+1 acting, -1 other) to a hand at (dx, dy, dz), through
        elbow if given, else through the elbow two-link inverse kinematics finds in the picture plane
        (bent down, or outwards with elbow_out)."""
        shoulder = self.shoulder(side)
        if elbow is None:
            elbow = self._elbow(side, shoulder, hand, elbow_out)
        self.line(shoulder, elbow, self.look.shirt, 0.085)
        self.line(elbow, hand, self.look.skin, 0.07)
        if hand_radius_m:
            self.disc(hand, hand_radius_m, self.look.skin)

    def _elbow(self, side: int, shoulder, hand, elbow_out: bool) -> tuple[float, float, float]:
        (sx, sy, sz), (hx, hy, hz) = shoulder, hand
        upper, fore = 0.29 * self.look.height, 0.27 * self.look.height
        d = max(math.hypot(hx - sx, hy - sy), 1e-6)
        base = math.atan2(hy - sy, hx - sx)
        if d >= upper + fore:
            angles = [base]
        else:
            bend = math.acos(min(1.0, (upper * upper + d * d - fore * fore) / (2 * upper * d)))
            angles = [base + bend, base - bend]
        if elbow_out:
            a = max(angles, key=lambda a: side * math.cos(a))
        else:  # the lower elbow; of two about as low, the outer one (elbows never cross the chest)
            a = min(angles, key=lambda a: math.sin(a) - 0.3 * side * math.cos(a))
        return (sx + upper * math.cos(a), sy + upper * math.sin(a), (sz + hz) / 2)

    def resting_arm(self, side: int) -> None:
        """The arm not in use, hanging by the side."""
        h = self.look.height
        self.arm(side, (self.body_dx + 0.25 * h * side, self.shoulder_dy - 0.52 * h, self.body_dz - 0.05))

    def stand(self, top_dy: float, x0: float, x1: float, colour=DARK_WOOD) -> None:
        """A small table in front of the subject: its top at top_dy, one leg down to the floor."""
        self.line(((x0 + x1) / 2, top_dy, -0.02), ((x0 + x1) / 2, self.floor_dy, -0.02), colour, 0.05)
        self.rect(x0, top_dy, x1, top_dy - 0.035, colour, dz=-0.02)


# class -> the usual time between its hits (s), for spans that hold several (split_long_events);
# textures (rips, crumples, rustles), whistled phrases and a stick's bounces are one long event
HIT_PERIOD_S = {
    "clapping": 0.33,
    "snapping_fingers": 0.6,
    "speaking": 0.25,
    "playing_kendama": 0.35,
    "clicking": 0.4,
    "typing": 0.17,
    "knocking": 0.2,
    "hammering": 0.65,
    "peanut_breaking": 0.5,
}
# class -> (shoulders above the hands in metres per unit height, body centre's offset towards the
# acting side); the voice classes place the head at the source instead
LAYOUT = {
    "clapping": (0.24, 0.0),
    "snapping_fingers": (0.02, -0.3),
    "playing_kendama": (0.2, -0.14),
    "clicking": (0.3, -0.22),
    "typing": (0.3, 0.0),
    "knocking": (0.05, -0.34),
    "hammering": (0.32, 0.1),
    "peanut_breaking": (0.22, 0.0),
    "paper_ripping": (0.34, 0.0),
    "plastic_crumpling": (0.24, 0.0),
    "paper_shaking": (0.24, 0.0),
    "stick_dropping": (0.3, -0.3),
}


def _clapping(f: _Figure, tm: Timing) -> None:
    if tm.gap < 1.0:  # hands open and close once per clap interval, meeting at each onset
        spread = math.sin(math.pi * tm.since / tm.gap) ** 3  # (cubed: the frame nearest a clap shows it)
    else:
        spread = _smooth(min(tm.since, tm.until) / 0.15)
    d = 0.02 + 0.13 * spread
    for side in (-1, 1):
        # elbows held still at the sides, forearms level: only the forearms and palms move
        f.arm(side, (side * d, 0.0, 0.0), hand_radius_m=0, elbow=(side * 0.24 * f.look.height, -0.02, 0.12))
        f.ellipse((side * d, 0.0, 0.0), 0.03, 0.08, f.look.skin)  # a palm seen edge-on


def _snapping_fingers(f: _Figure, tm: Timing) -> None:
    drop = 0.035 * math.exp(-tm.since / 0.08) if tm.since < 1 else 0.0  # the hand jerks down with the snap
    hand = (0.0, -drop, 0.0)
    f.resting_arm(-1)
    f.arm(1, hand, hand_radius_m=0.05)
    if tm.since < 0.17:  # the middle finger has struck the palm
        f.line((0.0, 0.03 - drop), (-0.05, -0.02 - drop), f.look.skin, 0.022)
    else:  # finger pressed up against the thumb, ready
        f.line((0.0, 0.03 - drop), (0.012, 0.1 - drop), f.look.skin, 0.022)
        f.line((-0.02, 0.02 - drop), (-0.005, 0.08 - drop), f.look.skin, 0.022)


def _speaking(f: _Figure, tm: Timing) -> None:
    env = math.sin(math.pi * tm.progress) ** 0.6 if tm.progress is not None else 0.0  # the syllable's envelope
    h = f.look.height
    f.resting_arm(-1)
    f.arm(1, (0.22 * h, f.shoulder_dy - 0.32 * h + 0.12 * env, -0.12))  # a hand gesturing with the voice
    f.ellipse((0.0, -0.045 - 0.025 * env), 0.06 * h, 0.045 * h, f.look.skin)  # the jaw drops
    f.ellipse((0.0, -0.005 - 0.012 * env), 0.032, 0.004 + 0.026 * env, (40, 30, 120))


def _whistling(f: _Figure, tm: Timing) -> None:
    h = f.look.height
    for side in (-1, 1):  # hands on the hips
        f.arm(side, (side * 0.17 * h, f.hip_dy + 0.05, 0.0), elbow_out=True)
    if tm.progress is not None:  # lips pursed, cheeks filled
        for side in (-1, 1):
            f.disc((side * 0.07 * h, 0.0), 0.04 * h, f.look.skin)
        f.disc((0.0, -0.005), 0.02, (110, 100, 190))
        f.disc((0.0, -0.005), 0.008, (30, 20, 60))
    else:
        f.line((-0.025, -0.005), (0.025, -0.005), (60, 60, 130), 0.008)


def _playing_kendama(f: _Figure, tm: Timing) -> None:
    cup, hang = (0.0, 0.03), (0.06, -0.3)
    if tm.gap < 0.8:  # in flight from cup to cup, a free-fall parabola g*gap^2/8 high
        s = tm.since / tm.gap
        ball = (0.0, cup[1] + 4 * 1.23 * tm.gap**2 * s * (1 - s))
    elif tm.until < 0.35:  # swung up from the string onto the cup
        s = 1 - tm.until / 0.35
        ball = (hang[0] * (1 - s), hang[1] + (cup[1] - hang[1]) * s + 0.6 * s * (1 - s))
    elif tm.since < 0.25:
        ball = cup
    else:  # hanging on its string, swinging a little
        ball = (hang[0] + 0.03 * math.sin(2 * math.pi * 1.2 * tm.time_s), hang[1])
    f.resting_arm(-1)
    f.line((0.0, -0.17), (0.0, 0.0), WOOD, 0.025)  # the ken: handle, cross-piece, cup
    f.line((-0.05, -0.07), (0.05, -0.07), WOOD, 0.03)
    f.ellipse((0.0, 0.0), 0.035, 0.015, DARK_WOOD)
    f.line((0.05, -0.07), ball, (200, 200, 200), 0.004)
    f.disc(ball, 0.032, (40, 40, 210))
    f.arm(1, (0.0, -0.12, -0.02))


def _clicking(f: _Figure, tm: Timing) -> None:
    press = 1.0 - _smooth(min(tm.since, tm.until) / 0.08)  # 1 at each click, 0 between
    f.stand(-0.035, -0.16, 0.16)
    f.rect(-0.16, -0.025, 0.16, -0.045, (90, 40, 40), dz=-0.03)  # mouse pad
    f.ellipse((0.0, -0.01, -0.04), 0.055, 0.03, (235, 235, 235))
    dark = int(80 * press)
    f.ellipse((0.0, 0.0 - 0.006 * press, -0.04), 0.04, 0.012, (140 - dark, 130 - dark, 120 - dark))
    f.resting_arm(-1)
    f.arm(1, (0.02, 0.035 - 0.015 * press, -0.05), hand_radius_m=0.04)
    f.line((0.0, 0.03 - 0.015 * press, -0.05), (-0.01, 0.006 + 0.02 * (1 - press), -0.05), f.look.skin, 0.018)


def _typing(f: _Figure, tm: Timing) -> None:
    rows, cols = 3, 12
    f.stand(-0.05, -0.26, 0.26)
    f.rect(-0.23, -0.05, 0.23, 0.05, (45, 45, 50), dz=-0.03)
    key = tm.event_id % (rows * cols)
    pressed = tm.since < 0.1
    for r in range(rows):
        for c in range(cols):
            x, y = -0.2 + c * 0.0364, 0.03 - r * 0.028
            lit = pressed and r * cols + c == key
            f.rect(x, y, x + 0.029, y - 0.02, (250, 250, 250) if lit else (150, 150, 155), dz=-0.03)
    kx, ky = -0.2 + (key % cols) * 0.0364 + 0.015, 0.03 - (key // cols) * 0.028
    dip = 0.025 * _smooth(1 - tm.since / 0.1) if pressed else 0.0
    typing_side = 1 if kx > 0 else -1
    for side in (-1, 1):
        if side == typing_side and tm.since < 0.3:  # this hand moved over the key and struck it
            f.arm(side, (kx, ky + 0.045 - dip, -0.05), hand_radius_m=0.04)
        else:
            f.arm(side, (side * 0.1, 0.05, -0.05), hand_radius_m=0.04)


def _knocking(f: _Figure, tm: Timing) -> None:
    f.rect(0.03, f.floor_dy, 0.6, 0.75, (40, 75, 120), dz=0.02)  # a door beside the subject
    f.rect(0.08, -0.6, 0.55, -0.05, (35, 65, 105), dz=0.02)
    f.rect(0.08, 0.05, 0.55, 0.7, (35, 65, 105), dz=0.02)
    f.disc((0.5, -0.02, 0.02), 0.025, (60, 170, 200))
    back = _smooth(min(tm.since, tm.until) / 0.09)  # the knuckles touch the door at each onset
    f.resting_arm(-1)
    fist = (-0.11 * back, 0.035 * back, -0.02)
    f.arm(1, fist, hand_radius_m=0.05)
    f.line((fist[0] + 0.02, fist[1] + 0.03, -0.03), (fist[0] + 0.035, fist[1] - 0.02, -0.03), (60, 80, 110), 0.012)


def _hammering(f: _Figure, tm: Timing) -> None:
    f.stand(-0.1, -0.18, 0.18)
    f.rect(-0.14, 0.0, 0.14, -0.1, DARK_WOOD, dz=-0.02)  # a block with a metal plate on it
    f.rect(-0.11, 0.01, 0.11, -0.005, (170, 170, 175), dz=-0.03)
    if tm.gap < 1.3:  # one swing per blow: up, and down onto the plate at the onset
        lift = math.sin(math.pi * tm.since / tm.gap) ** 0.8
    elif tm.since < 0.4 or tm.until < 0.4:
        lift = _smooth(min(tm.since, tm.until) / 0.3)
    else:
        lift = 0.0 if tm.until == math.inf else 1.0
    phi = math.radians(110 * lift)
    hand = (0.27 - 0.06 * lift, 0.04 + 0.15 * lift, -0.05)
    head = (hand[0] - 0.27 * math.cos(phi), hand[1] + 0.27 * math.sin(phi) - 0.01, -0.05)
    f.resting_arm(-1)
    f.line(hand, head, WOOD, 0.024)
    nx, ny = math.sin(phi) * 0.05, math.cos(phi) * 0.05  # the head lies across the handle
    f.line((head[0] - nx, head[1] - ny, -0.05), (head[0] + nx, head[1] + ny, -0.05), (80, 80, 85), 0.045)
    f.arm(1, hand)


def _peanut_breaking(f: _Figure, tm: Timing) -> None:
    f.stand(-0.27, -0.12, 0.12)
    f.ellipse((0.0, -0.22, -0.03), 0.13, 0.06, (220, 200, 170), arc=(0, 180))  # a bowl of shells
    f.ellipse((0.0, -0.22, -0.03), 0.13, 0.02, (110, 160, 200))
    split = _smooth(tm.since / 0.08) if tm.since < 0.4 else 0.0
    tan = (110, 170, 205)
    for side in (-1, 1):
        f.arm(side, (side * (0.065 + 0.04 * split), -0.01 - 0.01 * split, -0.03), hand_radius_m=0.04)
    for side in (-1, 1):
        f.ellipse((side * (0.024 + 0.035 * split), 0.005 + 0.01 * split, -0.06), 0.032, 0.021, tan, 25 * split * side)
    if split > 0.5:
        for k, (x, y) in enumerate(((-0.02, -0.05), (0.01, -0.08), (0.03, -0.11))):
            f.disc((x, y + 0.2 * (tm.since - 0.08) * k, -0.06), 0.008, (80, 130, 170))


def _paper_ripping(f: _Figure, tm: Timing) -> None:
    if tm.progress is not None:
        torn = tm.progress  # the tear runs down the sheet while the rip sounds
    else:
        torn = 1.0 if tm.since_end < 0.25 else 0.0  # the halves, then the next sheet
    top, bottom, hw = 0.15, -0.15, 0.105
    spread = 0.08 * torn
    tip = top - (top - bottom) * torn
    zig = [(0.008 * (-1) ** k, top - (top - tip) * k / 6) for k in range(7)]
    white = (245, 245, 245)
    for side in (-1, 1):
        outline = [(side * (hw + spread), top + 0.02 * torn), (side * spread * 0.5, top)]
        outline += [(side * spread * 0.5 * (1 - k / 6) + x, y) for k, (x, y) in enumerate(zig)]
        outline += [(0.0, bottom), (side * hw, bottom)]
        f.poly([(x, y, -0.02) for x, y in outline], white)
    for side in (-1, 1):
        f.arm(side, (side * (hw + spread), top + 0.02 * torn, -0.04), hand_radius_m=0.04)


def _plastic_crumpling(f: _Figure, tm: Timing) -> None:
    frame_index = int(round(tm.time_s * FPS))
    crumpling = tm.progress is not None
    r = np.random.default_rng([7, frame_index if crumpling else tm.event_id])
    squeeze = 0.25 * abs(math.sin(2 * math.pi * 2.5 * tm.time_s)) if crumpling else 0.0
    rx, ry = 0.1 * (1 - squeeze), 0.08 * (1 + 0.5 * squeeze)
    angles = np.linspace(0, 2 * np.pi, 13)[:-1]
    radii = r.uniform(0.65, 1.05, 12)
    outline = [(rx * k * math.cos(a), ry * k * math.sin(a), -0.03) for a, k in zip(angles, radii)]
    f.poly(outline, (235, 220, 200))
    for _ in range(4):  # creases
        a, b = r.uniform(-0.7, 0.7, 2), r.uniform(-0.7, 0.7, 2)
        f.line((a[0] * rx, a[1] * ry, -0.04), (b[0] * rx, b[1] * ry, -0.04), (190, 170, 150), 0.006)
    for side in (-1, 1):
        f.arm(side, (side * (rx + 0.02), 0.0, -0.04), hand_radius_m=0.045)


def _paper_shaking(f: _Figure, tm: Timing) -> None:
    if tm.progress is not None:  # a newspaper shaken at ~4 Hz while it rustles
        w = 2 * math.pi * 4.3 * tm.time_s
        dx, dy, tilt = 0.04 * math.sin(w), 0.025 * math.sin(w + 1.3), 0.06 * math.sin(w + 2.1)
    else:
        dx = dy = tilt = 0.0
    hw, hh = 0.2, 0.14

    def at(x, y):  # a point of the sheet, shaken and tilted
        return (dx + x - tilt * y, dy + y + tilt * x, -0.03)

    for side in (-1, 1):  # the elbows stay put: the forearms shake the paper
        f.arm(side, at(side * (hw + 0.01), 0.0), hand_radius_m=0, elbow=(side * 0.27 * f.look.height, -0.06, 0.1))
    f.poly([at(-hw, hh), at(hw, hh), at(hw, -hh), at(-hw, -hh)], (215, 220, 220))
    f.line(at(-0.17, 0.1), at(0.17, 0.1), (60, 60, 60), 0.03)  # headline, then columns of text
    for k in range(5):
        y = 0.05 - k * 0.04
        f.line(at(-0.17, y), at(-0.02, y), (140, 140, 140), 0.01)
        f.line(at(0.02, y), at(0.17, y), (140, 140, 140), 0.01)
    for side in (-1, 1):
        f.disc(at(side * (hw + 0.005), 0.0), 0.045, f.look.skin)


def _stick_dropping(f: _Figure, tm: Timing) -> None:
    hold = 0.22  # the stick's height above the table while held
    released = (0.05, hold + 0.05, -0.05)
    if tm.until <= 0.3:  # falling onto the table (the first impact is the onset)
        lift, hand = 4.9 * tm.until**2, released
    elif tm.progress is not None:  # bouncing, lower each time
        lift = 0.08 * math.exp(-tm.since / 0.15) * abs(math.sin(math.pi * tm.since / 0.13))
        hand = released
    elif tm.since_end == math.inf:
        lift, hand = hold, None
    elif tm.since_end < 0.6:  # lying; the hand comes down to it
        lift = 0.0
        s = _smooth((tm.since_end - 0.25) / 0.35)
        hand = (0.05, released[1] + (0.05 - released[1]) * s, -0.05)
    else:  # picked up again
        lift, hand = hold * _smooth((tm.since_end - 0.6) / 0.4), None
    f.stand(-0.0, -0.3, 0.35)
    tilt = 0.04 * math.sin(tm.since * 40) if tm.progress is not None else 0.0
    y = lift + 0.02
    f.line((-0.2, y - tilt, -0.05), (0.3, y + tilt, -0.05), (30, 90, 150), 0.028)
    f.resting_arm(-1)
    f.arm(1, hand if hand is not None else (0.05, y + 0.02, -0.06))


ACTIONS: dict[str, Callable[[_Figure, Timing], None]] = {
    "clapping": _clapping,
    "snapping_fingers": _snapping_fingers,
    "speaking": _speaking,
    "whistling": _whistling,
    "playing_kendama": _playing_kendama,
    "clicking": _clicking,
    "typing": _typing,
    "knocking": _knocking,
    "hammering": _hammering,
    "peanut_breaking": _peanut_breaking,
    "paper_ripping": _paper_ripping,
    "plastic_crumpling": _plastic_crumpling,
    "paper_shaking": _paper_shaking,
    "stick_dropping": _stick_dropping,
}
assert set(ACTIONS) == set(LAYOUT) | set(VOICE_CLASSES)


def draw_subject(
    frame: np.ndarray,
    camera: Camera,
    source_m,
    label: str,
    subject: int,
    time_s: float,
    events: Sequence[tuple[float, float]],
) -> None:
    """Draw the subject in place, its sounding part at source_m (m), posed for time_s (s) among
    the action's event spans [(onset_s, end_s), ...] within EVENT_CONTEXT_S of it."""
    fig = _Figure(frame, camera, source_m, subject_look(subject), label)
    fig.body()
    ACTIONS[label](fig, event_timing(time_s, split_long_events(events, HIT_PERIOD_S.get(label))))


def split_long_events(events: Sequence[tuple[float, float]], period_s: float | None) -> list[tuple[float, float]]:
    """Events of a repetitive action longer than 1.5 periods (a real take whose hits could not be
    told apart) as one hit per period_s through the span, each sounding 0.8 of a period."""
    if period_s is None:
        return list(events)
    out = []
    for a, b in events:
        if b - a <= 1.5 * period_s:
            out.append((a, b))
        else:
            out += [(t, min(b, t + 0.8 * period_s)) for t in np.arange(a, b - 0.5 * period_s, period_s)]
    return out


def flash(frame: np.ndarray) -> None:
    """Turn the frame white (the visual half of a clock-alignment impulse)."""
    frame[:] = 255


def frame_grid(size: tuple[int, int] = (160, 120), frames: int = 8, closeup: bool = False) -> np.ndarray:
    """One row per class of whole frames resized to size (width, height), as the visual teachers
    see them (closeup: the full-resolution region of that size around the hands instead), frames
    ticks 1/12 s apart from 3 ticks before one of the action's onsets; BGR uint8."""
    camera = get_geometry().camera
    positions = subject_positions(get_geometry())
    offsets_s = (np.arange(frames) - 3) / FPS
    w, h = size
    margin = 150
    grid = np.full((h * len(CLASSES), margin + w * len(offsets_s), 3), 255, np.uint8)
    for row, label in enumerate(CLASSES):
        subject, scenario = row % 9, 1 + row % 3
        _, events = synthesize(label, subject, 4.0, np.random.default_rng([row, 5]))
        onset = min((a for a, _ in events), key=lambda a: abs(a - 2.0))
        bg = background(scenario, row, camera)
        for col, dt in enumerate(offsets_s):
            frame = bg.copy()
            draw_subject(frame, camera, positions[7], label, subject, onset + dt, events)
            if closeup:
                u, v = (int(c) for c in camera.project(positions[7]))
                top, left = v - 2 * h // 3, u - w // 2
                tile = frame[top : top + h, left : left + w]
            else:
                tile = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
            grid[row * h : (row + 1) * h, margin + col * w : margin + (col + 1) * w] = tile
        cv2.putText(grid, label, (4, row * h + h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for col, dt in enumerate(offsets_s):
        cv2.putText(
            grid,
            f"{dt * 1000:+.0f} ms",
            (margin + col * w + 4, 14),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return grid


def write_frame_grid(out_dir: str = "docs/frames") -> list[str]:
    """Write frame_grid() as <out_dir>/grid.png and its close-up as closeup.png; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, grid in (("grid.png", frame_grid()), ("closeup.png", frame_grid((200, 200), closeup=True))):
        paths.append(str(out / name))
        cv2.imwrite(paths[-1], grid, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return paths
