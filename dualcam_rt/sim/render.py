"""Camera frames of a scene: a per-scenario background and the subject drawn in perspective.

Everything is placed with the sensor's own camera model (``geometry.Camera.project``), so the
part of the figure that makes the sound (hands and prop, or the mouth for speaking and
whistling) is drawn exactly at the acoustic source's projected pixel. Only that part moves
while the subject stays put (the action's motion); the whole figure moves when the subject walks
to another position. Frames are (480, 640, 3) uint8 BGR and depend only on the scene's seed.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..geometry import Camera

CAMERA_HEIGHT_M = 1.5  # above the floor; the floor is the plane y = -1.5
VOICE_CLASSES = ("speaking", "whistling")  # the sound comes from the mouth, not the hands
SHIRTS = ((40, 40, 160), (150, 80, 30), (40, 120, 40), (20, 140, 200), (120, 40, 120),
          (90, 90, 90), (160, 140, 40), (30, 60, 110), (200, 200, 200))  # BGR, one per subject
SKINS = ((140, 170, 220), (100, 130, 180), (70, 95, 140), (150, 180, 230), (90, 120, 170),
         (120, 150, 200), (60, 80, 120), (130, 160, 210), (110, 140, 190))
PROPS = {  # class -> (kind, BGR colour, width m, height m)
    "playing_kendama": ("kendama", (40, 40, 210), 0.07, 0.18),
    "clicking": ("bar", (200, 90, 20), 0.14, 0.015),
    "typing": ("box", (50, 50, 50), 0.40, 0.12),
    "knocking": ("box", (40, 80, 130), 0.30, 0.45),
    "hammering": ("hammer", (150, 150, 150), 0.12, 0.28),
    "peanut_breaking": ("ellipse", (130, 190, 220), 0.05, 0.025),
    "paper_ripping": ("box", (245, 245, 245), 0.21, 0.30),
    "plastic_crumpling": ("crumple", (230, 210, 170), 0.18, 0.14),
    "paper_shaking": ("box", (235, 240, 240), 0.21, 0.30),
    "stick_dropping": ("bar", (30, 90, 150), 0.04, 0.5),
}


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
            cv2.rectangle(img, (x, horizon - bh), (x + bw, horizon), tuple(int(v) for v in rng.integers(110, 160, 3)), -1)
            x += bw + int(rng.integers(0, 15))
        img[horizon:] = (150, 165, 175)
        for z in (2.2, 2.8, 3.6, 5.0, 7.5, 12.0):
            v = int(camera.cy + camera.fy * CAMERA_HEIGHT_M / z)
            cv2.line(img, (0, v), (w, v), (120, 130, 140), 1)
        rail_v = int(camera.cy + camera.fy * 0.5 / 10.0)
        cv2.line(img, (0, rail_v), (w, rail_v), (60, 60, 60), 3)
    gain = rng.uniform(0.9, 1.1)
    return np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def draw_subject(frame: np.ndarray, camera: Camera, source_m: np.ndarray, label: str, subject: int,
                 motion_m: np.ndarray) -> None:
    """Draw the subject in place so that its sounding part sits at source_m (+ motion_m)."""
    src = np.asarray(source_m, float)
    body_z = src[2] + 0.25  # the torso stands a little behind the hands
    if label in VOICE_CLASSES:
        head = np.array([src[0], src[1] + 0.04, src[2]])
        hands = np.array([src[0], src[1] - 0.45, src[2] - 0.05]) + motion_m
        mouth = src + motion_m * 0.2
    else:
        head = np.array([src[0], src[1] + 0.42, body_z])
        hands = src + motion_m
        mouth = None
    shoulder_y = head[1] - 0.2
    hip_y = shoulder_y - 0.55
    s = camera.fx / body_z  # pixels per metre at the body

    def px(x, y, z=body_z):
        u, v = camera.project(np.array([x, y, z]))
        return int(round(u)), int(round(v))

    trousers = (60, 50, 40)
    for dx in (-0.1, 0.1):  # legs
        cv2.line(frame, px(src[0] + dx * 0.5, hip_y), px(src[0] + dx, -CAMERA_HEIGHT_M), trousers, max(2, int(0.12 * s)))
    shirt, skin = SHIRTS[subject % 9], SKINS[subject % 9]
    cv2.rectangle(frame, px(src[0] - 0.2, shoulder_y), px(src[0] + 0.2, hip_y), shirt, -1)
    cv2.circle(frame, px(head[0], head[1], head[2]), max(3, int(0.11 * camera.fx / head[2])), skin, -1)
    hand_px = camera.project(hands)
    for dx in (-0.2, 0.2):  # arms from the shoulders to the hands
        cv2.line(frame, px(src[0] + dx, shoulder_y), (int(hand_px[0]), int(hand_px[1])), shirt, max(2, int(0.08 * s)))
    if mouth is not None:
        m = camera.project(mouth)
        cv2.ellipse(frame, (int(m[0]), int(m[1])), (max(2, int(0.03 * s)), max(1, int(0.015 * s))), 0, 0, 360,
                    (40, 40, 150), -1)
    _draw_prop(frame, camera, hands, label)
    r = max(2, int(0.045 * camera.fx / hands[2]))
    for dx in (-0.04, 0.04):
        c = camera.project(hands + [dx, 0, 0])
        cv2.circle(frame, (int(round(c[0])), int(round(c[1]))), r, skin, -1)


def _draw_prop(frame: np.ndarray, camera: Camera, at_m: np.ndarray, label: str) -> None:
    """The action's prop, centred on the hands."""
    if label not in PROPS:
        return
    kind, colour, w_m, h_m = PROPS[label]
    u, v = camera.project(at_m)
    s = camera.fx / at_m[2]
    hw, hh = max(1, int(w_m * s / 2)), max(1, int(h_m * s / 2))
    c = (int(round(u)), int(round(v)))
    if kind == "box":
        cv2.rectangle(frame, (c[0] - hw, c[1] - hh), (c[0] + hw, c[1] + hh), colour, -1)
    elif kind == "bar":
        cv2.line(frame, (c[0] - hw, c[1] - hh), (c[0] + hw, c[1] + hh), colour, max(2, int(0.02 * s)))
    elif kind == "ellipse":
        cv2.ellipse(frame, c, (hw, hh), 0, 0, 360, colour, -1)
    elif kind == "crumple":
        angles = np.linspace(0, 2 * np.pi, 9)[:-1]
        radii = np.array([1.0, 0.7, 0.95, 0.6, 1.0, 0.75, 0.9, 0.65])
        pts = np.stack([c[0] + hw * radii * np.cos(angles), c[1] + hh * radii * np.sin(angles)], 1)
        cv2.fillPoly(frame, [pts.astype(np.int32)], colour)
    elif kind == "kendama":
        cv2.line(frame, (c[0], c[1] - hh), (c[0], c[1] + hh), (40, 90, 140), max(2, int(0.025 * s)))
        cv2.circle(frame, (c[0], c[1] - hh), hw, colour, -1)
    elif kind == "hammer":
        cv2.line(frame, (c[0], c[1] - hh), (c[0], c[1] + hh), (40, 90, 140), max(2, int(0.025 * s)))
        cv2.rectangle(frame, (c[0] - hw, c[1] - hh - max(2, hw // 2)), (c[0] + hw, c[1] - hh + max(2, hw // 2)), colour, -1)


def flash(frame: np.ndarray) -> None:
    """Turn the frame white (the visual half of a clock-alignment impulse)."""
    frame[:] = 255
