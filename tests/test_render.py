"""Rendered video: each action's motion follows its sound events, and the frames alone are
enough to tell the classes apart on subjects never seen in training (what the visual teachers need)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dualcam_rt.geometry import get_geometry
from dualcam_rt.labels import CLASSES, N_SUBJECTS
from dualcam_rt.sim import render
from dualcam_rt.sim.actions import synthesize
from dualcam_rt.sim.rooms import subject_positions

CAMERA = get_geometry().camera
POSITIONS = subject_positions(get_geometry())
TEACHER_SIZE = (160, 120)  # (width, height): what the visual teachers are given (ClipOptions.frame_size)


def _frame(label: str, subject: int, time_s: float, events, scenario: int = 1, position: int = 7) -> np.ndarray:
    frame = render.background(scenario, 0, CAMERA)
    render.draw_subject(frame, CAMERA, POSITIONS[position], label, subject, time_s, events)
    return frame


def _near_source(frame: np.ndarray, position: int = 7, half: int = 60) -> np.ndarray:
    u, v = (int(c) for c in CAMERA.project(POSITIONS[position]))
    return frame[max(0, v - half) : v + half, max(0, u - half) : u + half].astype(int)


@pytest.mark.parametrize("label", CLASSES)
def test_the_pose_at_each_event_onset_differs_from_the_pose_between_events(label):
    _, events = synthesize(label, 0, 8.0, np.random.default_rng(3))
    onsets = sorted(a for a, _ in events)
    changed = []
    for (a, b), nxt in zip(sorted(events), onsets[1:]):
        if nxt - b < 0.2:
            continue  # no silence long enough to rest in
        between = (b + nxt) / 2
        at_onset = _near_source(_frame(label, 0, a + min(0.04, (b - a) / 2), events))  # as it sounds
        at_rest = _near_source(_frame(label, 0, between, events))
        changed.append(np.mean(np.abs(at_onset - at_rest).sum(2) > 40))
    assert len(changed) >= 2, f"{label}: too few silences between events"
    assert np.median(changed) > 0.01, f"{label}: onset and rest frames differ in {np.median(changed):.2%} of the pixels"


def test_a_frame_depends_only_on_when_it_falls_among_the_events():
    _, events = synthesize("hammering", 4, 4.0, np.random.default_rng(0))
    a = _frame("hammering", 4, 1.3, events)
    assert np.array_equal(a, _frame("hammering", 4, 1.3, events))
    shifted = [(s + 0.2, e + 0.2) for s, e in events]
    assert not np.array_equal(a, _frame("hammering", 4, 1.3, shifted))  # the swing follows the blows
    assert np.array_equal(a, _frame("hammering", 4, 1.5, shifted))


def test_clapping_hands_meet_at_each_onset():
    events = [(1.0, 1.02), (1.33, 1.35), (1.66, 1.68)]
    at_onset, between = _frame("clapping", 0, 1.33, events), _frame("clapping", 0, 1.5, events)
    skin = np.array(render.subject_look(0).skin)
    u, v = (int(c) for c in CAMERA.project(POSITIONS[7]))

    def palms_at_source(frame):  # skin-coloured pixels right at the source (the palms touch there)
        return np.mean(np.abs(frame[v - 4 : v + 4, u - 4 : u + 4].astype(int) - skin).sum(2) < 10)

    assert palms_at_source(at_onset) > 0.9 and palms_at_source(between) < 0.1


def test_a_long_take_of_claps_the_bank_could_not_split_is_clapped_through():
    events = [(1.0, 3.0)]  # one 2-s span of applause
    hits = render.split_long_events(events, render.HIT_PERIOD_S["clapping"])
    assert len(hits) == 6 and hits[0][0] == 1.0 and all(b <= 3.0 for _, b in hits)
    assert render.split_long_events(events, None) == events  # a texture stays one event
    skin = np.array(render.subject_look(0).skin)
    u, v = (int(c) for c in CAMERA.project(POSITIONS[7]))

    def palms_at_source(t):
        frame = _frame("clapping", 0, t, events)
        return np.mean(np.abs(frame[v - 4 : v + 4, u - 4 : u + 4].astype(int) - skin).sum(2) < 10)

    assert all(palms_at_source(a) > 0.9 for a, _ in hits[1:])
    assert all(palms_at_source(a + 0.16) < 0.1 for a, _ in hits[1:-1])


def test_subjects_look_different_and_act_with_their_own_hand():
    looks = [render.subject_look(s) for s in range(N_SUBJECTS)]
    assert len({(lk.shirt, lk.skin) for lk in looks}) == N_SUBJECTS
    assert {lk.hand for lk in looks} == {-1, 1}
    assert max(lk.height for lk in looks) - min(lk.height for lk in looks) > 0.1


def _teacher_frames(subjects, clips: int = 4, per_clip: int = 2):
    """Whole frames at the teachers' size (RGB uint8) and their labels: per clip (a random room,
    position and 4-s performance), one frame near an event onset and one at a random time."""
    images, labels = [], []
    for subject in subjects:
        for k, label in enumerate(CLASSES):
            for clip in range(clips):
                rng = np.random.default_rng([subject, k, clip])
                _, events = synthesize(label, subject, 4.0, rng)
                onsets = [a for a, _ in events if 0.5 < a < 3.5] or [2.0]
                times = list(rng.choice(onsets, per_clip // 2) + rng.uniform(-1 / 24, 1 / 24, per_clip // 2))
                times += list(rng.uniform(0.5, 3.5, per_clip - per_clip // 2))
                scenario, position = int(rng.integers(1, 4)), int(rng.integers(len(POSITIONS)))
                bg = render.background(scenario, int(rng.integers(1000)), CAMERA)
                for t in times:
                    frame = bg.copy()
                    render.draw_subject(frame, CAMERA, POSITIONS[position], label, subject, float(t), events)
                    small = cv2.resize(frame, TEACHER_SIZE, interpolation=cv2.INTER_AREA)
                    images.append(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
                    labels.append(k)
    return np.stack(images), np.array(labels)


@pytest.mark.train
def test_a_small_cnn_on_rendered_frames_alone_names_the_action_of_unseen_subjects():
    torch = pytest.importorskip("torch")
    from torch import nn

    torch.manual_seed(0)
    torch.set_num_threads(1)
    x_train, y_train = _teacher_frames(range(6))
    x_test, y_test = _teacher_frames(range(6, N_SUBJECTS))

    def tensor(x):
        return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0

    def block(cin, cout, stride):
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    net = nn.Sequential(
        *block(3, 16, 2),
        *block(16, 32, 2),
        *block(32, 48, 2),
        *block(48, 64, 1),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(64, len(CLASSES)),
    )
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    xt, yt = tensor(x_train), torch.from_numpy(y_train)
    for _ in range(10):
        net.train()
        for idx in torch.randperm(len(xt)).split(32):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        accuracy = float((net(tensor(x_test)).argmax(1).numpy() == y_test).mean())
    chance = 1 / len(CLASSES)
    print(f"held-out subjects: accuracy {accuracy:.3f}, chance {chance:.3f}")
    assert accuracy >= 3 * chance


def test_a_scene_draws_each_frame_at_its_tick_among_its_own_events(tmp_path):
    from dualcam_rt.geometry import FPS
    from dualcam_rt.sim import Scene

    scene = Scene(
        1,
        seed=4,
        label="clapping",
        subject=0,
        positions=(7,),
        components=("subject",),
        cache_dir=tmp_path,
        sounds="procedural",
    )
    ticks = [scene.next_tick() for _ in range(36)]
    onsets = np.array([a for a, _ in scene.events(0, 3)])
    skin = np.array(render.subject_look(0).skin)
    u, v = (int(c) for c in CAMERA.project(POSITIONS[7]))
    touching, apart = [], []
    for i, t in enumerate(ticks):
        to_onset = np.min(np.abs(onsets - (i + 0.5) / FPS))  # the frame shows the middle of its tick
        palms = np.mean(np.abs(t.video[v - 4 : v + 4, u - 4 : u + 4].astype(int) - skin).sum(2) < 10)
        if to_onset < 0.03:
            touching.append(palms)
        elif to_onset > 0.1:
            apart.append(palms)
    assert len(touching) >= 3 and len(apart) >= 3
    assert min(touching) > 0.9 and max(apart) < 0.1
