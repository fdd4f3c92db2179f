"""AVNet: audio-visual fusion of DualCamNet and ResNet-50 features.

Inputs: MFCC volumes (batch, frames, 36, 48, 12) and video frames (batch, video_frames, 3, h, w).
The paper concatenates the two networks' feature volumes and adds two fully convolutional layers
(1000, 14). Here the 1024-d DualCamNet features and the 2048-d ResNet-50 features are each
averaged over the clip before concatenation, because on CPU the visual branch sees only a few
frames per clip (not all 12 per second); with one video frame per audio frame this is the same as
averaging per-frame fused logits up to the ReLU.
"""

from __future__ import annotations

import torch
from torch import nn

from .dualcamnet import DualCamNet
from .resnet import ResNet50


class AVNet(nn.Module):
    def __init__(self, n_classes: int = 14, weights: str | None = None):
        super().__init__()
        self.audio = DualCamNet(n_classes)
        self.video = ResNet50(n_classes, weights=weights)
        self.fuse = nn.Sequential(nn.Linear(1024 + 2048, 1000), nn.ReLU(), nn.Linear(1000, n_classes))

    def set_input_stats(self, mfcc: torch.Tensor, frames: torch.Tensor) -> None:
        """Fix the acoustic branch's input standardisation from training volumes."""
        self.audio.set_input_stats(mfcc)

    def forward(self, mfcc: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        a = self.audio.frame_features(mfcc).mean(dim=1)
        v = self.video.frame_features(frames).mean(dim=1)
        return self.fuse(torch.cat([a, v], dim=1))
