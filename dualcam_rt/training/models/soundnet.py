"""OurSoundNet: the student on the raw waveform, the 5-layer SoundNet plus a 3-layer head.

Input (batch, 110250) float32 from ``dualcam_rt.dsp.spectrogram.soundnet_input`` (5 s at
22,050 Hz in [-256, 256]). Five 1-D convolutions with batch norm and ReLU, as in the official
SoundNet5 (kernels 64/32/16/8/16, strides 2/2/2/2/12, padding 32/16/8/4/4, channels
32/64/128/256/1024, max-pool 8 after the first three), then fully convolutional layers conv6 (1024),
fc1 (1000) and the logits, averaged over the remaining time steps. The paper fine-tunes from
Flickr-SoundNet weights, which cannot be fetched here: this one trains from scratch.
"""

from __future__ import annotations

import torch
from torch import nn

from .common import walk_layers

CLIP_SAMPLES = 110_250
LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "fc1")


def _conv(c_in: int, c_out: int, k: int, s: int, p: int, pool: int = 0) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv1d(c_in, c_out, k, s, p), nn.BatchNorm1d(c_out), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool1d(pool))
    return nn.Sequential(*layers)


class OurSoundNet(nn.Module):
    layers = LAYERS

    def __init__(self, n_classes: int = 14, dropout: float = 0.5):
        super().__init__()
        self.conv1 = _conv(1, 32, 64, 2, 32, pool=8)
        self.conv2 = _conv(32, 64, 32, 2, 16, pool=8)
        self.conv3 = _conv(64, 128, 16, 2, 8, pool=8)
        self.conv4 = _conv(128, 256, 8, 2, 4)
        self.conv5 = _conv(256, 1024, 16, 12, 4)
        self.conv6 = nn.Sequential(nn.Conv1d(1024, 1024, 1), nn.ReLU())
        self.fc1 = nn.Sequential(nn.Conv1d(1024, 1000, 1), nn.ReLU(), nn.Dropout(dropout))
        self.logits = nn.Conv1d(1000, n_classes, 1)

    def layer_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each layer's activations (batch, channels, steps), in order, ending with the logits."""
        return walk_layers(self, x.unsqueeze(1), (*LAYERS, "logits"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_outputs(x)["logits"].mean(dim=2)
