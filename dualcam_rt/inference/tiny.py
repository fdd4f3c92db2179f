"""A tiny but real ONNX student for tests and benchmarks when no trained model is at hand.

"tone-bands": HearNet's spectrogram input (B, 257, 500) → mean over time → log1p → a fixed
linear layer whose class c sums the c-th of 14 equal frequency bands (0 - 11,025 Hz) → logits
(B, 14). A pure tone is therefore classified by its frequency, which lets tests check that audio
really travelled through the service. Its card follows the schema of the trained students.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..dsp.spectrogram import N_FRAMES, N_FREQ, TARGET_RATE, Recipe, feature_params
from ..frame import InputKind
from ..labels import CLASSES


def band_of(frequency_hz: float) -> int:
    """The class index the tone-bands model gives a pure tone of ``frequency_hz``."""
    bin_index = int(round(frequency_hz / (TARGET_RATE / 512)))
    return min(bin_index * len(CLASSES) // N_FREQ, len(CLASSES) - 1)


def write_tiny_model(models_dir: str | Path, name: str = "tone-bands") -> Path:
    """Write ``<name>.onnx`` and its card ``<name>.json`` into ``models_dir``; the card's path comes back."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_classes = len(CLASSES)
    weights = np.zeros((N_FREQ, n_classes), np.float32)
    weights[np.arange(N_FREQ), np.arange(N_FREQ) * n_classes // N_FREQ] = 1.0
    weights /= weights.sum(axis=0, keepdims=True)  # mean over each band
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean"], axes=[2], keepdims=0),
        helper.make_node("Add", ["mean", "one"], ["shifted"]),
        helper.make_node("Log", ["shifted"], ["level"]),
        helper.make_node("MatMul", ["level", "weights"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, N_FREQ, N_FRAMES])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, n_classes])],
        initializer=[
            numpy_helper.from_array(np.array(1.0, np.float32), "one"),
            numpy_helper.from_array(weights, "weights"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    out = Path(models_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(model, out / f"{name}.onnx")
    card = {
        "name": name,
        "file": f"{name}.onnx",
        "architecture": "tone-bands (test stand-in)",
        "classes": list(CLASSES),
        "input": {
            "name": "input",
            "kind": InputKind.SPECTROGRAM,
            "shape": [None, N_FREQ, N_FRAMES],
            "sample_rate": 12_288,
            "seconds": 5.0,  # its log1p graph wants linear magnitudes
            "feature": feature_params(InputKind.SPECTROGRAM, Recipe("max_abs", "linear")),
        },
        "output": {"name": "logits", "shape": [None, n_classes]},
        "training": {"note": "not trained: fixed band-energy weights"},
        "metrics": {},
        "reproduce": 'python -c "from dualcam_rt.inference.tiny import write_tiny_model; '
        f"write_tiny_model('models', '{name}')\"",
    }
    (out / f"{name}.json").write_text(json.dumps(card, indent=2))
    return out / f"{name}.json"
