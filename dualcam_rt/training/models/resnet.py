"""ResNet-50 and Temporal ResNet-50: the visual teachers, on a clip's video frames.

Input (batch, frames, 3, height, width) float32 RGB in [0, 1]; ImageNet mean/std normalisation is
inside the network. Logits are computed per frame and averaged over the clip. The network is the
standard bottleneck ResNet-50 (3, 4, 6, 3 blocks; 2048-d pooled features). Nothing pretrained
can be downloaded here: it trains from scratch, or loads a local state dict (``weights=``) whose
keys follow this module (the final ``fc`` is skipped when its class count differs).

Temporal ResNet-50 (after Garcia et al., ECCV 2018) adds a 3x1x1 convolution over time after each
residual stage, initialised to the identity so that it starts as the per-frame ResNet-50. It is
depthwise (one temporal filter per channel): a dense one (2048x2048x3 at the last stage), trained
from scratch with Adam at 1e-3, is thrown off the identity by the first step (every weight moves by
about the learning rate, and 2048 of them add up), and the network never leaves chance.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ...errors import BadInput

STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # (width, blocks, stride)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int):
        super().__init__()
        c_out = width * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(c_in, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, stride, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class TemporalConv(nn.Module):
    """A depthwise 3x1x1 convolution over frames, identity at initialisation."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0), groups=channels, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, 0, 1] = 1.0  # (out, in/groups, t, h, w): the centre tap

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        bt, c, h, w = x.shape
        z = x.reshape(bt // frames, frames, c, h, w).transpose(1, 2)
        return self.conv(z).transpose(1, 2).reshape(bt, c, h, w)


class ResNet50(nn.Module):
    feature_dim = 2048
    mean: torch.Tensor  # buffers: the RGB normalisation
    std: torch.Tensor

    def __init__(self, n_classes: int = 14, temporal: bool = False, weights: str | Path | None = None):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).reshape(1, 3, 1, 1))
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        )
        stages, temporal_convs, c_in = [], [], 64
        for width, blocks, stride in STAGES:
            layers = []
            for i in range(blocks):
                layers.append(Bottleneck(c_in, width, stride if i == 0 else 1))
                c_in = width * Bottleneck.expansion
            stages.append(nn.Sequential(*layers))
            temporal_convs.append(TemporalConv(c_in) if temporal else nn.Identity())
        self.stages = nn.ModuleList(stages)
        self.temporal = nn.ModuleList(temporal_convs) if temporal else None
        self.fc = nn.Linear(2048, n_classes)
        if weights:
            load_local_weights(self, weights)

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame pooled features (batch, frames, 2048) of frames (batch, frames, 3, h, w)."""
        b, t = x.shape[:2]
        z = (x.reshape(b * t, *x.shape[2:]) - self.mean) / self.std
        z = self.stem(z)
        for i, stage in enumerate(self.stages):
            z = stage(z)
            if self.temporal is not None:
                z = self.temporal[i](z, t)
        return z.mean(dim=(2, 3)).reshape(b, t, -1)

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.fc(feats).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.frame_features(x))


def load_local_weights(model: nn.Module, path: str | Path) -> None:
    """Load a user's local state dict into ``model``, skipping tensors whose shapes differ."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as err:
        raise BadInput(f"cannot read weights file {path}: {err}") from err
    state = state.get("model", state) if isinstance(state, dict) else state
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise BadInput(f"weights file {path} has no tensor matching {type(model).__name__}")
    model.load_state_dict(usable, strict=False)
