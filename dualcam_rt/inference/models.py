"""Model cards and onnxruntime sessions: ``load_models(dir)`` gives every student ready to run.

A model is ``models/<name>.onnx`` plus its card ``models/<name>.json`` (schema in
``docs/api.md``); the card says which input the network expects (``spectrogram``, ``waveform``
or ``mfcc_volume``) and which classes its logits stand for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..dsp.spectrogram import Recipe, student_input
from ..errors import BadInput, NotFound
from ..frame import InputKind
from ..threads import cpu_budget
from .gate import Gate

PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")  # priority order


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities (..., n_classes) float32 from logits."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


@dataclass
class Model:
    """One loaded student: its card, its onnxruntime session and the providers it really got."""

    name: str
    card: dict
    session: Any  # onnxruntime.InferenceSession (untyped)

    @property
    def classes(self) -> list[str]:
        return list(self.card["classes"])

    @property
    def kind(self) -> InputKind:
        return InputKind(self.card["input"]["kind"])

    @property
    def recipe(self):
        """The input level recipe the student was trained with (``dsp.spectrogram.Recipe``)."""
        return Recipe.of(self.card["input"].get("feature"))

    @property
    def seconds(self) -> float:
        return float(self.card["input"].get("seconds", 5.0))

    @property
    def sample_rate(self) -> int:
        return int(self.card["input"].get("sample_rate", 12_288))

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Logits (B, n_classes) float32 of a batch of model inputs (B, ...)."""
        name = self.session.get_inputs()[0].name
        return self.session.run(None, {name: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    def features(self, wave: np.ndarray) -> np.ndarray:
        """The model input (no batch axis) for one clip of the microphone at ``sample_rate``."""
        if not self.kind.one_microphone:
            raise BadInput(f"model {self.name!r} takes {self.kind!r} input, not a microphone signal")
        return student_input(self.kind, wave, self.sample_rate, self.recipe)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "architecture": self.card.get("architecture"),
            "classes": self.classes,
            "input": self.card["input"],
            "output": self.card.get("output"),
            "providers": self.providers,
            "metrics": self.card.get("metrics", {}),
            "audio": self.kind.one_microphone,
        }


def read_card(path: Path) -> dict:
    """The model card at ``path``, checked for the fields serving relies on."""
    try:
        card = json.loads(path.read_text())
        InputKind(card["input"]["kind"]), card["classes"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise BadInput(f"unreadable model card {path}: {err}") from err
    try:
        Gate.of(card)  # a malformed gate fails at load time, not at the first prediction
    except BadInput as err:
        raise BadInput(f"{path}: {err}") from None
    return card


def open_session(onnx_path: Path, threads: int = 0):
    """An onnxruntime session on CUDA when available, CPU otherwise, with ``threads`` intra-op threads
    (0: ``cpu_budget()``; ORT itself would size its pool to the whole host and ignore quotas)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or cpu_budget()
    opts.inter_op_num_threads = 1
    # idle intra-op threads sleep instead of spinning: they share the cores with the feature threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    available = set(ort.get_available_providers())
    providers = [p for p in PROVIDERS if p in available]
    return ort.InferenceSession(str(onnx_path), sess_options=opts, providers=providers)


def load_models(models_dir: Path, threads: int = 0) -> dict[str, Model]:
    """Every model of ``models_dir`` that has both a card and an ONNX file, by name (sorted)."""
    models: dict[str, Model] = {}
    for card_path in sorted(Path(models_dir).glob("*.json")):
        card = read_card(card_path)
        onnx_path = card_path.parent / card.get("file", card_path.with_suffix(".onnx").name)
        if not onnx_path.exists():
            continue
        name = card.get("name", card_path.stem)
        models[name] = Model(name, card, open_session(onnx_path, threads))
    return models


def load_model_set(models_dir: Path, threads: int = 0, default: str | None = None) -> ModelSet:
    """The students of ``models_dir`` with ``default`` (a name) as the default when it is there;
    NotFound when the directory holds no audio student."""
    models = ModelSet(load_models(models_dir, threads), default)
    if models.default is None:
        raise NotFound(
            f"no models are installed in {models_dir} "
            "(train and export one with 'dualcam-rt export', or set DUALCAM_MODELS_DIR)"
        )
    return models


class ModelSet:
    """The loaded models of a service and the default one (the first audio student)."""

    def __init__(self, models: dict[str, Model], default: str | None = None):
        self.models = models
        audio = [m for m in models.values() if m.kind.one_microphone]
        self.default = default if default in models else (audio[0].name if audio else None)

    def get(self, name: str | None = None) -> Model:
        """The model called ``name`` (the default one when None); NotFound otherwise."""
        name = name or self.default
        if name is None:
            raise NotFound("no audio model is loaded")
        if name not in self.models:
            raise NotFound(f"unknown model {name!r}; loaded: {', '.join(self.models) or 'none'}")
        return self.models[name]

    def __len__(self) -> int:
        return len(self.models)
