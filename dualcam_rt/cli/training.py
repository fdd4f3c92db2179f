"""Commands of the training area."""

from __future__ import annotations

import typer

from . import app, fail


_MSG = "the offline training module is not available yet (training issue in progress)"


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train():
    """Train a teacher (DualCamNet, ResNet-50, Temporal ResNet-50, AVNet) or a student."""
    fail(_MSG)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def distill():
    """Distil a student (HearNet, OurSoundNet) from a teacher's soft labels."""
    fail(_MSG)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def evaluate():
    """Cross-scenario evaluation: the paper's tables."""
    fail(_MSG)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def export():
    """Export trained students (and DualCamNet) to ONNX with model cards."""
    fail(_MSG)
