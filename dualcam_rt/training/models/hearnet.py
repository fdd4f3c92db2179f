"""HearNet: the student on one microphone's amplitude spectrogram, a 1-D CNN over time.

Input (batch, 257, 500) float32 from ``dualcam_rt.dsp.spectrogram.hearnet_input`` (257 frequency
bins as channels, 500 time steps). Three convolutions (kernels 11, 5, 3; 128, 256, 256 filters;
zero padding; ReLU) each followed by max-pooling by 5 (500 -> 100 -> 20 -> 4), then conv4 spanning
the 4 remaining steps (1024), conv5 1x1 (1024), fc1 (1000) and the logits (~3.9 M parameters).

Per-bin standardisation (mean and standard deviation of each bin over the training set) lives
inside the network as buffers, so the exported ONNX graph takes the raw spectrogram and serving
needs no statistics file. SPEC's option is per-bin min-max; on dB magnitudes it blows the
resampler's leakage in the bins above 6 kHz up to full range and HearNet barely learns (val acc
0.07-0.36 after 6 epochs on the synthetic tones of tests/test_training.py, against 1.0 with the
z-score, measured by P), so the buffers ``in_min``/``in_range`` hold mean/std instead.
"""

from __future__ import annotations

import torch
from torch import nn

from .common import init_plain, walk_layers

N_FREQ, N_FRAMES = 257, 500
LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc1")


class HearNet(nn.Module):
    layers = LAYERS
    in_min: torch.Tensor  # buffers: per-bin mean and std (set_input_stats)
    in_range: torch.Tensor

    def __init__(self, n_classes: int = 14, dropout: float = 0.5):
        super().__init__()
        self.register_buffer("in_min", torch.zeros(N_FREQ, 1))
        self.register_buffer("in_range", torch.ones(N_FREQ, 1))
        self.conv1 = nn.Sequential(nn.Conv1d(N_FREQ, 128, 11, padding=5), nn.ReLU(), nn.MaxPool1d(5))
        self.conv2 = nn.Sequential(nn.Conv1d(128, 256, 5, padding=2), nn.ReLU(), nn.MaxPool1d(5))
        self.conv3 = nn.Sequential(nn.Conv1d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool1d(5))
        self.conv4 = nn.Sequential(nn.Conv1d(256, 1024, N_FRAMES // 125), nn.ReLU())
        self.conv5 = nn.Sequential(nn.Conv1d(1024, 1024, 1), nn.ReLU())
        self.fc1 = nn.Sequential(nn.Conv1d(1024, 1000, 1), nn.ReLU(), nn.Dropout(dropout))
        self.logits = nn.Conv1d(1000, n_classes, 1)
        init_plain(self, self.logits)

    def set_input_stats(self, x: torch.Tensor) -> None:
        """Fix the per-bin standardisation from training inputs (n, 257, 500): mean and std per bin."""
        self.in_min.copy_(x.mean(dim=(0, 2)).reshape(N_FREQ, 1))
        self.in_range.copy_(x.std(dim=(0, 2)).reshape(N_FREQ, 1).clamp_min(1e-3))

    def layer_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each layer's activations (batch, channels, steps), in order, ending with the logits."""
        return walk_layers(self, (x - self.in_min) / self.in_range, (*LAYERS, "logits"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_outputs(x)["logits"].mean(dim=2)
