"""ONNX export: parity with PyTorch, dynamic batch, cards serving can load, the shipped students."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the train extra; always installed by `make test`
ort = pytest.importorskip("onnxruntime")

from dualcam_rt.errors import BadInput  # noqa: E402
from dualcam_rt.training.export import EXPORTABLE, example_inputs, export_onnx, export_run, onnx_parity  # noqa: E402
from dualcam_rt.training.models import build_model, input_kind  # noqa: E402

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


@pytest.mark.parametrize("name", sorted(EXPORTABLE))
def test_onnxruntime_matches_pytorch_to_1e_4_for_any_batch_size(name, tmp_path):
    torch.manual_seed(0)
    model = build_model(name).eval()
    if hasattr(model, "set_input_stats"):  # as training does: raw spectrograms reach ~5e4
        model.set_input_stats(torch.from_numpy(example_inputs(input_kind(name), batch=4, seed=1)))
    path = tmp_path / f"{name}.onnx"
    export_onnx(model, EXPORTABLE[name], path)
    for batch in (1, 3):  # the batch axis is dynamic
        x = example_inputs(input_kind(name), batch=batch)
        assert onnx_parity(model, path, x) < 1e-4


def test_an_exported_student_loads_in_the_service_and_classifies_a_clip(tmp_path):
    from test_training import synthetic_clips

    from dualcam_rt.inference.models import load_models
    from dualcam_rt.training.engine import TrainConfig, fit

    clips = synthetic_clips()
    fit(
        TrainConfig("hearnet", epochs=1, batch_size=8, threads=1),
        clips.select("train"),
        clips.select("val"),
        tmp_path / "run",
        progress=False,
    )
    card = export_run(tmp_path / "run", tmp_path / "models", name="tiny-hearnet")
    assert card["input"]["shape"] == [None, 257, 500] and card["output"]["shape"] == [None, 14]
    assert card["input"]["feature"]["win_samples"] == 440 and card["input"]["sample_rate"] == 12288
    model = load_models(tmp_path / "models")["tiny-hearnet"]
    logits = model.logits(model.features(clips.mic[0])[None])
    assert logits.shape == (1, 14) and np.all(np.isfinite(logits))


def test_a_visual_teacher_is_not_exported(tmp_path):
    from test_training import synthetic_clips

    from dualcam_rt.training.engine import TrainConfig, fit

    clips = synthetic_clips()
    fit(
        TrainConfig("resnet50", epochs=1, batch_size=8, threads=1),
        clips.select("train"),
        clips.select("val"),
        tmp_path / "run",
        progress=False,
    )
    with pytest.raises(BadInput, match="not exported"):
        export_run(tmp_path / "run", tmp_path / "models")


def test_the_shipped_hearnet_classifies_out_of_the_box():
    card = json.loads((MODELS_DIR / "hearnet.json").read_text())
    onnx_path = MODELS_DIR / card["file"]
    assert onnx_path.stat().st_size < 20 * 1024 * 1024
    assert card["input"]["kind"] == "spectrogram" and len(card["classes"]) == 15  # 14 actions and no_action
    assert card["gate"]["background_class"] == card["classes"][-1] == "no_action"
    assert card["reproduce"].startswith("dualcam-rt ") and card["metrics"]["onnx_max_abs_diff"] < 1e-4
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = example_inputs("spectrogram", batch=2)
    (logits,) = sess.run(["logits"], {"input": x})
    assert logits.shape == (2, 15) and np.all(np.isfinite(logits))


def test_the_shipped_hearnet_recognises_fresh_simulated_actions(tmp_path, monkeypatch):
    """Scenes with a seed the dataset never used: the shipped student must name most of them."""
    from dualcam_rt.dsp.spectrogram import Recipe, hearnet_input
    from dualcam_rt.sim import Scene

    monkeypatch.setenv("DUALCAM_CACHE_DIR", str(tmp_path))
    sess = ort.InferenceSession(str(MODELS_DIR / "hearnet.onnx"), providers=["CPUExecutionProvider"])
    card = json.loads((MODELS_DIR / "hearnet.json").read_text())
    classes = ["clapping", "speaking", "whistling", "typing", "paper_ripping", "knocking"]
    inputs = []
    for i, label in enumerate(classes):
        scene = Scene(scenario=1, seed=12_345 + i, label=label, subject=i % 9, cache_dir=tmp_path)
        wave = np.concatenate([scene.next_tick().audio[0] for _ in range(60)])  # 5 s of microphone 0
        inputs.append(hearnet_input(wave, recipe=Recipe.of(card["input"]["feature"])))  # the level it was trained at
    (logits,) = sess.run(["logits"], {"input": np.stack(inputs)})
    predicted = [card["classes"][k] for k in logits.argmax(1)]
    assert sum(p == c for p, c in zip(predicted, classes)) >= 5, predicted
