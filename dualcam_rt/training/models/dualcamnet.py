"""DualCamNet: the teacher on acoustic images (MFCC volumes), LeNet style.

Input (batch, frames, 36, 48, 12) float32: per-pixel MFCC volumes at 12 frames per second, with
``frames`` a multiple of 12 (1 s = 12 frames). Frames are processed in groups of 12 by a temporal
convolution (kernel 7 over time, zero padding, 12 channels), then each frame by 2-D convolutions;
logits are computed per frame and averaged over the clip.

``variant="code"`` (default) follows the official code: 5x5 convs 32 and 64, each followed by a 2x2
max-pool of stride 2 (36x48 -> 18x24 -> 9x12), a 9x12 valid conv to 1024, 1x1 convs 1000 and 14,
no batch norm (~8.2 M parameters). ``variant="paper"`` follows the paper's text: batch norm after
the 5x5 convs and 2x2 max-pools of stride 1 that keep 36x48, so the 1024 conv spans 36x48
(~113 M parameters; only practical on a GPU).
"""

from __future__ import annotations

import torch
from torch import nn

from .common import init_plain

GROUP_FRAMES = 12  # frames per temporal group (1 s)
ROWS, COLS, N_MFCC = 36, 48, 12


class DualCamNet(nn.Module):
    feature_dim = 1024
    in_mean: torch.Tensor  # buffers: per-coefficient standardisation (set_input_stats)
    in_std: torch.Tensor

    def __init__(self, n_classes: int = 14, variant: str = "code", dropout: float = 0.5):
        super().__init__()
        if variant not in ("code", "paper"):
            raise ValueError(f"unknown DualCamNet variant {variant!r}")
        self.variant = variant
        # per-coefficient standardisation with training-set statistics, inside the exported graph
        self.register_buffer("in_mean", torch.zeros(N_MFCC))
        self.register_buffer("in_std", torch.ones(N_MFCC))
        self.conv1 = nn.Conv3d(N_MFCC, N_MFCC, (7, 1, 1), padding=(3, 0, 0))
        paper = variant == "paper"

        def block(c_in: int, c_out: int) -> nn.Sequential:
            layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 5, padding=2)]
            if paper:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU())
            # stride 1 with one row/column of padding keeps the size, as the paper describes
            layers += [nn.ZeroPad2d((0, 1, 0, 1)), nn.MaxPool2d(2, 1)] if paper else [nn.MaxPool2d(2, 2)]
            return nn.Sequential(*layers)

        self.conv2 = block(N_MFCC, 32)
        self.conv3 = block(32, 64)
        span = (ROWS, COLS) if paper else (ROWS // 4, COLS // 4)
        self.full1 = nn.Sequential(nn.Conv2d(64, 1024, span), nn.ReLU(), nn.Dropout(dropout))
        self.full2 = nn.Sequential(nn.Conv2d(1024, 1000, 1), nn.ReLU())
        self.full3 = nn.Conv2d(1000, n_classes, 1)
        init_plain(self, self.full3)

    def set_input_stats(self, x: torch.Tensor) -> None:
        """Fix the per-coefficient standardisation from training volumes (..., 12)."""
        flat = x.reshape(-1, N_MFCC).float()
        self.in_mean.copy_(flat.mean(dim=0))
        self.in_std.copy_(flat.std(dim=0).clamp_min(1e-6))

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame 1024-d features (batch, frames, 1024) of volumes (batch, frames, 36, 48, 12)."""
        b, t = x.shape[0], x.shape[1]
        g = t // GROUP_FRAMES
        x = (x - self.in_mean) / self.in_std
        # (b, t, h, w, c) -> (b*g, c, 12, h, w): the temporal conv never mixes two seconds
        z = x.reshape(b * g, GROUP_FRAMES, ROWS, COLS, N_MFCC).permute(0, 4, 1, 2, 3)
        z = torch.relu(self.conv1(z))
        z = z.permute(0, 2, 1, 3, 4).reshape(b * t, N_MFCC, ROWS, COLS)
        z = self.full1(self.conv3(self.conv2(z)))
        return z.reshape(b, t, -1)

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits (batch, classes) from per-frame features (batch, frames, 1024), averaged over frames."""
        b, t, d = feats.shape
        z = self.full3(self.full2(feats.reshape(b * t, d, 1, 1)))
        return z.reshape(b, t, -1).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.frame_features(x))
