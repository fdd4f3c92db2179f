"""ONNX export of trained students (and the DualCamNet teacher) with their model cards.

``models/<name>.onnx`` takes ``input`` (batch, ...) float32 with a dynamic batch axis and gives
``logits`` (batch, 14); input normalisation is inside the graph. ``models/<name>.json`` is the
card serving reads (schema: ``docs/training.md``). Export checks onnxruntime against PyTorch on
realistic inputs and records the largest difference in the card.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..dsp.spectrogram import feature_params, student_input
from ..errors import BadInput
from ..frame import InputKind
from ..geometry import SAMPLE_RATE
from .augment import BACKGROUND_CLASS
from .models import ARCHITECTURES
from .runs import load_run

EXPORTABLE = {"hearnet": [257, 500], "soundnet": [110250], "dualcamnet": [12, 36, 48, 12]}
OPSET = 17


def example_inputs(kind: InputKind | str, batch: int = 3, seed: int = 0) -> np.ndarray:
    """Realistic model inputs (batch, ...) float32: features of noisy tones, or random MFCC volumes."""
    rng = np.random.default_rng(seed)
    if InputKind(kind).one_microphone:
        t = np.arange(5 * SAMPLE_RATE) / SAMPLE_RATE
        waves = [np.sin(2 * np.pi * (300 + 400 * i) * t) + 0.2 * rng.standard_normal(t.size) for i in range(batch)]
        return np.stack([student_input(kind, w, SAMPLE_RATE) for w in waves])
    return rng.normal(0.0, 5.0, (batch, *EXPORTABLE["dualcamnet"])).astype(np.float32)


def export_onnx(model: torch.nn.Module, shape: list[int], path: Path) -> None:
    """Write ``model`` as ONNX with input ``input`` (batch, *shape) and output ``logits`` (batch, 14)."""
    model.eval()
    dummy = torch.zeros(2, *shape)
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )


def onnx_parity(model: torch.nn.Module, path: Path, x: np.ndarray) -> float:
    """Largest |onnxruntime - PyTorch| over the logits of ``x``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"input": x.astype(np.float32)})[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    return float(np.max(np.abs(got - ref)))


def _dataset_sounds(dataset: str | None) -> dict | None:
    """What the training dataset's sounds were (make-dataset's manifest 'sounds': per class real and
    procedural events, the bank's recordings), or None when unknown."""
    try:
        return json.loads((Path(dataset) / "manifest.json").read_text()).get("sounds") if dataset else None
    except (OSError, ValueError):
        return None


def export_run(run_dir: str | Path, out_dir: str | Path, name: str | None = None) -> dict:
    """Export a finished run to ``out_dir/<name>.onnx`` + ``<name>.json``; returns the card."""
    model, info = load_run(run_dir)
    arch = info["model"]
    if arch not in EXPORTABLE:
        raise BadInput(f"{arch} is not exported (only {', '.join(EXPORTABLE)}: the networks serving runs)")
    name = name or arch
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / f"{name}.onnx"
    export_onnx(model, EXPORTABLE[arch], onnx_path)
    kind = InputKind(info["input_kind"])
    parity = onnx_parity(model, onnx_path, example_inputs(kind))
    cfg = info["config"]
    feature = (
        feature_params(kind)
        if kind.one_microphone
        else {
            "frames": 12,
            "fps": 12,
            "mfcc": "per-pixel MFCC 1..12 of the 36x48x512 beamformed power (dualcam_rt.dsp.mfcc.mfcc_volume)",
            "normalisation": "per-coefficient standardisation, in the graph",
        }
    )
    if kind is InputKind.SPECTROGRAM:
        feature["normalisation"] = "per-bin standardisation (training-set mean and std), in the graph"
    card = {
        "name": name,
        "file": onnx_path.name,
        "architecture": ARCHITECTURES[arch],
        "classes": info["classes"],
        "input": {
            "name": "input",
            "kind": str(kind),
            "shape": [None, *EXPORTABLE[arch]],
            "sample_rate": SAMPLE_RATE,
            "seconds": 1.0 if kind is InputKind.MFCC_VOLUME else 5.0,
            "feature": feature,
        },
        "output": {"name": "logits", "shape": [None, len(info["classes"])]},
        "training": {
            "dataset": info.get("dataset"),
            "train_scenarios": info["train_scenarios"],
            "split_column": info["clip_options"]["split_column"],
            "train_clips": info["train_clips"],
            "val_clips": info["val_clips"],
            "epochs_run": info["epochs_run"],
            "best_epoch": info["best_epoch"],
            "batch_size": cfg["batch_size"],
            "lr": cfg["lr"],
            "seed": cfg["seed"],
            "supervision": ("distilled" if cfg["lam"] > 0 else "hard labels"),
            "lambda": cfg["lam"],
            "temperature": cfg["temperature"],
            "teacher": info.get("teacher_model"),
            "seconds_per_epoch": info.get("seconds_per_epoch"),
            "device": info.get("device"),
            "pretrained": "none (trained from scratch)",
            "augmentation": info.get("augmentation"),
            "spec_augment": cfg.get("spec_augment", False),
            "bank_clips": info.get("bank_clips"),
            "sounds": _dataset_sounds(info.get("dataset")),
        },
        "metrics": {"val_accuracy": info.get("best_val_accuracy"), **info.get("test", {}), "onnx_max_abs_diff": parity},
        "opset": OPSET,
        "reproduce": info.get("reproduce") or info.get("command"),
    }
    if BACKGROUND_CLASS in info["classes"]:  # the "no action" gate's background class (inference/gate.py)
        card["gate"] = {"background_class": BACKGROUND_CLASS}  # levels: `dualcam-rt calibrate-gate`
    (out / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    return card
