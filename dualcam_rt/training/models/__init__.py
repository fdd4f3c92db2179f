"""The networks, by name: one module per family, one registry (``build_model``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ...errors import BadInput
from ...frame import InputKind
from ...labels import CLASSES
from .avnet import AVNet
from .dualcamnet import DualCamNet
from .hearnet import HearNet
from .resnet import ResNet50
from .soundnet import OurSoundNet


@dataclass(frozen=True)
class ModelSpec:
    """One registered network: its name, how to build it, the input it takes and its role."""

    name: str
    build: Callable[..., nn.Module]  # keyword options: variant=, weights= where they apply
    input_kind: InputKind
    role: str  # "teacher" | "student"


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "dualcamnet",
            lambda **kw: DualCamNet(len(CLASSES), variant=kw.get("variant") or "code"),
            InputKind.MFCC_VOLUME,
            "teacher",
        ),
        ModelSpec(
            "resnet50", lambda **kw: ResNet50(len(CLASSES), weights=kw.get("weights")), InputKind.VIDEO, "teacher"
        ),
        ModelSpec(
            "temporal_resnet50",
            lambda **kw: ResNet50(len(CLASSES), temporal=True, weights=kw.get("weights")),
            InputKind.VIDEO,
            "teacher",
        ),
        ModelSpec(
            "avnet", lambda **kw: AVNet(len(CLASSES), weights=kw.get("weights")), InputKind.AUDIO_VISUAL, "teacher"
        ),
        # students may learn a background class besides the actions (n_classes=15, training/augment.py)
        ModelSpec(
            "hearnet", lambda **kw: HearNet(kw.get("n_classes") or len(CLASSES)), InputKind.SPECTROGRAM, "student"
        ),
        ModelSpec(
            "soundnet", lambda **kw: OurSoundNet(kw.get("n_classes") or len(CLASSES)), InputKind.WAVEFORM, "student"
        ),
    )
}
ARCHITECTURES = {
    "dualcamnet": "DualCamNet",
    "resnet50": "ResNet-50",
    "temporal_resnet50": "Temporal ResNet-50",
    "avnet": "AVNet",
    "hearnet": "HearNet",
    "soundnet": "OurSoundNet",
}


def model_names(role: str | None = None) -> list[str]:
    """Registered model names, optionally only teachers or students."""
    return [n for n, spec in MODELS.items() if role in (None, spec.role)]


def input_kind(name: str) -> InputKind:
    """The input kind a model takes."""
    return model_spec(name).input_kind


def build_model(name: str, **options) -> nn.Module:
    """A freshly initialised network by registry name (``variant=`` / ``weights=`` where they apply)."""
    return model_spec(name).build(**options)


def model_spec(name: str) -> ModelSpec:
    """The registry entry of ``name``; BadInput for an unknown one."""
    if name not in MODELS:
        raise BadInput(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]
