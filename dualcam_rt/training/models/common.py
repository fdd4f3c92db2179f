"""Helpers shared by the network families."""

from __future__ import annotations

import torch
from torch import nn


def init_plain(model: nn.Module, logits: nn.Module) -> None:
    """He-normal weights and zero biases, small logits: without batch norm, torch's default init
    shrinks the signal layer by layer and these deep ReLU stacks barely learn at lr 1e-4, while
    He-scaled logits start with a huge loss."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    assert isinstance(logits.weight, torch.Tensor)
    nn.init.normal_(logits.weight, std=0.01)


def walk_layers(model: nn.Module, z: torch.Tensor, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Each named layer's activations, in order, applying ``model.<name>`` to the previous one."""
    out = {}
    for name in names:
        z = getattr(model, name)(z)
        out[name] = z
    return out
