"""Losses of the training engine: generalized distillation (Lopez-Paz et al.) as the official code has it.

The teacher's soft labels are s = softmax(f_t(x*) / T); the student minimises
(1 - lam) * CE(y, softmax(f_s(x))) + lam * CE(s, softmax(f_s(x))): two plain softmax
cross-entropies, the student's logits not divided by T and no T^2 factor (the paper's best:
T = 1, lam = 0.5). lam = 0 is training on hard labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_labels_from_logits(teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The teacher's soft labels softmax(logits / T), (n, classes), rows summing to 1."""
    return torch.softmax(teacher_logits / temperature, dim=1)


def distillation_loss(logits: torch.Tensor, labels: torch.Tensor, soft: torch.Tensor, lam: float) -> torch.Tensor:
    """(1 - lam) * CE(y, softmax(logits)) + lam * CE(soft, softmax(logits)), averaged over the batch.

    ``logits`` (n, classes) of the student, ``labels`` (n,) class indices, ``soft`` (n, classes)
    the teacher's soft labels (ignored when lam is 0)."""
    hard = F.cross_entropy(logits, labels)
    if lam == 0.0:
        return hard
    imitation = -(soft * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    return (1 - lam) * hard + lam * imitation
