"""`dualcam-rt score`: figures on labelled clips, the same answers as /v1/predict, one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from conftest import free_port, run_cli

from dualcam_rt.config import REPO_MODELS_DIR, Settings
from dualcam_rt.errors import BadInput
from dualcam_rt.inference.models import load_models
from dualcam_rt.inference.score import NO_ACTION, score_clips, summarise
from dualcam_rt.inference.tiny import band_of, write_tiny_model
from dualcam_rt.labels import CLASSES
from dualcam_rt.server.app import create_app
from dualcam_rt.server.run import BackgroundServer
from dualcam_rt.sim.soundbank import PackageRoots, SoundBank, build_bank
from dualcam_rt.sim.testset import write_testset


def _tone_hz(cls: str) -> float:
    """A tone the tone-bands model puts in class ``cls`` (the middle of its band)."""
    return float(np.median([f for f in np.arange(50, 11_000, 5.0) if band_of(f) == CLASSES.index(cls)]))


def _clips(folder: Path, rows: list[tuple[str, str, float | None]], rate: int = 16_000) -> Path:
    """Write ``(file, class, tone Hz or None for silence)`` clips and their labels.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, _, hz in rows:
        t = np.arange(5 * rate) / rate
        wave = 0.3 * np.sin(2 * np.pi * hz * t) if hz else 1e-4 * np.random.default_rng(0).standard_normal(len(t))
        sf.write(str(folder / name), wave, rate)
    with open(folder / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("file", "class"), *[(n, c) for n, c, _ in rows]])
    return folder


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("models")
    write_tiny_model(d)
    return d


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    # bands below the 6,144 Hz the clips keep at 12,288 Hz
    snap, speak = _tone_hz("snapping_fingers"), _tone_hz("speaking")
    return _clips(
        tmp_path_factory.mktemp("tones"),
        [
            ("k1.wav", "snapping_fingers", snap),
            ("k2.wav", "snapping_fingers", snap),
            ("c1.wav", "speaking", speak),
            ("c2.wav", "speaking", snap),  # c2 sounds like snapping
            ("quiet.wav", "", None),
        ],
    )  # no action: 40 dB SPL, below the default level gate


def test_score_counts_hits_misses_and_false_alarms(tiny_dir, tones):
    model = load_models(tiny_dir)["tone-bands"]
    result = score_clips(model, tones)
    assert result["clips"] == 5 and result["top1_accuracy"] == 0.8
    assert result["per_class"]["snapping_fingers"] == {"clips": 2, "correct": 2, "accuracy": 1.0}
    assert result["per_class"]["speaking"] == {"clips": 2, "correct": 1, "accuracy": 0.5}
    assert result["no_action"] == {
        "clips": 1,
        "false_alarms": 0,
        "false_alarm_rate": 0.0,
        "action_clips": 4,
        "misses": 0,
        "miss_rate": 0.0,
    }
    labels, matrix = result["confusion"]["labels"], np.array(result["confusion"]["matrix"])
    assert matrix[labels.index(NO_ACTION), labels.index(NO_ACTION)] == 1  # silence: the gate, not the model
    assert matrix.sum() == 5 and matrix[labels.index("speaking"), labels.index("snapping_fingers")] == 1
    assert {c["file"]: c["predicted"] for c in result["predictions"]}["c2.wav"] == "snapping_fingers"


def test_a_none_label_counts_as_no_action():
    result = summarise(
        ["clapping", NO_ACTION, NO_ACTION, "typing"], ["clapping", NO_ACTION, "typing", NO_ACTION], list(CLASSES)
    )
    assert result["top1_accuracy"] == 0.5
    assert result["per_class"][NO_ACTION] == {"clips": 2, "correct": 1, "accuracy": 0.5}
    assert result["no_action"]["false_alarms"] == 1 and result["no_action"]["misses"] == 1
    assert result["no_action"]["miss_rate"] == 0.5


def test_score_gives_what_v1_predict_answers_for_each_clip(tmp_path_factory):
    """Real-recording test clips from the ci bank, the shipped default student, over real HTTP."""
    bank_dir = tmp_path_factory.mktemp("bank")
    build_bank(bank_dir, PackageRoots(tmp_path_factory.mktemp("none")), "ci")
    clips = tmp_path_factory.mktemp("clips")
    write_testset(SoundBank.open(bank_dir), clips, clips_per_class=1, seed=3, empty_clips=1)
    r = run_cli("score", str(clips), "--json", env={"DUALCAM_MODELS_DIR": str(REPO_MODELS_DIR)})
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    rows = list(csv.DictReader((clips / "labels.csv").read_text().splitlines()))
    assert result["clips"] == len(rows) >= 5
    with BackgroundServer(create_app(Settings(models_dir=REPO_MODELS_DIR), live=False), free_port()) as base:
        for clip in result["predictions"]:
            answer = httpx.post(
                f"{base}/v1/predict?model={result['model']}", content=(clips / clip["file"]).read_bytes(), timeout=30
            ).json()
            assert (answer["label"] or NO_ACTION) == clip["predicted"]  # a null label (the gate) is no action
            assert (answer["reason"], answer["level_db"]) == (clip["reason"], clip["level_db"])
            if answer["top_k"]:
                assert answer["top_k"][0]["probability"] == pytest.approx(clip["probability"], abs=1e-5)
            else:  # the level gate: the student did not run
                assert clip["probability"] is None and clip["reason"] == "silence"
    assert any(c["reason"] == "silence" for c in result["predictions"])  # the silence clip


def test_score_plot_writes_a_png(tiny_dir, tones, tmp_path):
    out = tmp_path / "confusion.png"
    r = run_cli("score", str(tones), "--plot", str(out), env={"DUALCAM_MODELS_DIR": str(tiny_dir)})
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "top-1 accuracy 0.800" in r.stderr and "0/1 false alarms" in r.stderr


def test_score_card_records_the_figures_in_the_model_card(tiny_dir, tones, tmp_path):
    import shutil

    models = tmp_path / "models"
    shutil.copytree(tiny_dir, models)
    (tones / "testset.json").write_text(json.dumps({"split": "test", "seed": 7}))
    try:
        r = run_cli("score", str(tones), "--card", "--json", env={"DUALCAM_MODELS_DIR": str(models)})
    finally:
        (tones / "testset.json").unlink()
    assert r.returncode == 0, r.stderr
    figures = json.loads(r.stdout)
    (card_file,) = [p for p in models.glob("*.json") if json.loads(p.read_text()).get("name") == figures["model"]]
    recorded = json.loads(card_file.read_text())["metrics"]["real_recordings"]
    assert recorded["top1_accuracy"] == figures["top1_accuracy"] == pytest.approx(0.8)
    assert recorded["test_set"] == "dualcam-rt soundbank testset --split test --seed 7"
    assert recorded["no_action"] == figures["no_action"] and recorded["clips"] == 5
    assert recorded["per_class_accuracy"]["speaking"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "labels, error",
    [
        (None, "labels.csv: no such file"),
        ("file,class\nk1.wav,juggling\n", "labels.csv:2: unknown class 'juggling'"),
        ("file,class\nk1.wav,typing\ngone.wav,typing\n", "labels.csv:3: clip 'gone.wav' does not exist"),
        ("name,label\nk1.wav,typing\n", "labels.csv:1: the header must be 'file,class'"),
        ("file,class\nk1.wav,typing,extra\n", "labels.csv:2: expected 2 columns"),
        ("file,class\nbroken.wav,typing\n", "labels.csv:2: broken.wav: "),
        ("file,class\n", "labels.csv: no clips listed"),
    ],
)
def test_bad_clip_folders_name_the_file_and_line(tiny_dir, tones, tmp_path, labels, error):
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "k1.wav").write_bytes((tones / "k1.wav").read_bytes())
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    if labels is not None:
        (folder / "labels.csv").write_text(labels)
    with pytest.raises(BadInput) as err:
        score_clips(load_models(tiny_dir)["tone-bands"], folder)
    assert error in str(err.value) and "\n" not in str(err.value)


def _one_line_error(r, *needles: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_cli_bad_folder_and_bad_plot_are_one_line_errors(tiny_dir, tones, tmp_path):
    (tmp_path / "labels.csv").write_text("file,class\nk1.wav,juggling\n")
    env = {"DUALCAM_MODELS_DIR": str(tiny_dir)}
    _one_line_error(run_cli("score", str(tmp_path), env=env), "labels.csv:2", "juggling")
    _one_line_error(run_cli("score", str(tones), "--plot", "out.jpg", env=env), ".png")
