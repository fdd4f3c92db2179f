"""The networks, by name: one module per family, one registry (``build_model``)."""

from __future__ import annotations

from torch import nn

from ...errors import BadInput
from ...labels import CLASSES
from .avnet import AVNet
from .dualcamnet import DualCamNet
from .hearnet import HearNet
from .resnet import ResNet50
from .soundnet import OurSoundNet

# name -> (builder, input kind, role); the input kinds are those of ``training.data``
MODELS = {
    "dualcamnet": (lambda **kw: DualCamNet(len(CLASSES), variant=kw.get("variant") or "code"), "mfcc_volume", "teacher"),
    "resnet50": (lambda **kw: ResNet50(len(CLASSES), weights=kw.get("weights")), "video", "teacher"),
    "temporal_resnet50": (lambda **kw: ResNet50(len(CLASSES), temporal=True, weights=kw.get("weights")), "video", "teacher"),
    "avnet": (lambda **kw: AVNet(len(CLASSES), weights=kw.get("weights")), "audio_visual", "teacher"),
    "hearnet": (lambda **kw: HearNet(len(CLASSES)), "spectrogram", "student"),
    "soundnet": (lambda **kw: OurSoundNet(len(CLASSES)), "waveform", "student"),
}
ARCHITECTURES = {"dualcamnet": "DualCamNet", "resnet50": "ResNet-50", "temporal_resnet50": "Temporal ResNet-50",
                 "avnet": "AVNet", "hearnet": "HearNet", "soundnet": "OurSoundNet"}


def model_names(role: str | None = None) -> list[str]:
    """Registered model names, optionally only teachers or students."""
    return [n for n, (_, _, r) in MODELS.items() if role in (None, r)]


def input_kind(name: str) -> str:
    """The input kind a model takes ("mfcc_volume", "video", "audio_visual", "spectrogram", "waveform")."""
    return _entry(name)[1]


def build_model(name: str, **options) -> nn.Module:
    """A freshly initialised network by registry name (``variant=`` / ``weights=`` where they apply)."""
    return _entry(name)[0](**options)


def _entry(name: str):
    if name not in MODELS:
        raise BadInput(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]
