"""The documentation's spectrogram images: ``python -m dualcam_rt.sim.figures [OUT_DIR]``.

- ``classes.png``: the fourteen action sounds of subject 0 (source signal at 1 m, 4 s each);
- ``subjects.png``: one class (clapping, speaking, whistling) performed by three subjects;
- ``scenarios.png``: one scene per scenario (speaking, subject 0) at microphone 0, beside the
  camera frame of the same moment: direct sound, then echoes, then noise and interferers.

matplotlib is needed (the ``train`` extra has it); nothing else in the package imports it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.signal import spectrogram

from ..geometry import FPS, SAMPLE_RATE
from ..labels import CLASSES
from .actions import synthesize

SECONDS = 4.0


def _show(ax, x: np.ndarray, title: str) -> None:
    f, t, s = spectrogram(x, SAMPLE_RATE, nperseg=256, noverlap=192)
    db = 10 * np.log10(s + 1e-12)
    ax.pcolormesh(t, f / 1000, db, vmin=db.max() - 70, vmax=db.max(), shading="auto", cmap="magma")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)


def make(out_dir: str | Path = "docs/spectrograms") -> list[Path]:
    """Write the images into out_dir; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, axes = plt.subplots(4, 4, figsize=(12, 9), sharex=True, sharey=True)
    for ax, label in zip(axes.flat, CLASSES):
        x, _ = synthesize(label, 0, SECONDS, np.random.default_rng([0, 1]))
        _show(ax, x, label)
    for ax in axes.flat[len(CLASSES) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("kHz", fontsize=8)
    fig.suptitle("The fourteen action sounds (subject 0, source at 1 m, dB, 70 dB range)")
    fig.tight_layout()
    paths.append(out / "classes.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)

    fig, axes = plt.subplots(3, 3, figsize=(10, 7), sharex=True, sharey=True)
    for row, label in zip(axes, ("clapping", "speaking", "whistling")):
        for ax, subject in zip(row, (0, 1, 5)):
            x, _ = synthesize(label, subject, SECONDS, np.random.default_rng([0, 1]))
            _show(ax, x, f"{label}, subject {subject}")
    fig.suptitle("Per-subject variation (tempo, resonances, voice and whistle pitch)")
    fig.tight_layout()
    paths.append(out / "subjects.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)

    from .scene import Scene

    fig, axes = plt.subplots(3, 2, figsize=(11, 10), gridspec_kw={"width_ratios": [1, 1.4]})
    for row, scenario in zip(axes, (1, 2, 3)):
        scene = Scene(scenario, seed=0, label="speaking", subject=0, positions=(7,))
        ticks = [scene.next_tick() for _ in range(int(SECONDS * FPS))]
        row[0].imshow(ticks[len(ticks) // 2].video[:, :, ::-1])
        u, v = ticks[0].truth["source_px"]
        row[0].plot([u], [v], "c+", ms=12)
        row[0].set_title(f"scenario {scenario}: {scene.config.name}", fontsize=9)
        row[0].axis("off")
        _show(row[1], np.concatenate([t.audio[0] for t in ticks]), f"scenario {scenario}, microphone 0")
        row[1].set_ylabel("kHz", fontsize=8)
    fig.suptitle("One speaking subject in the three scenarios (+: the acoustic source's pixel)")
    fig.tight_layout()
    paths.append(out / "scenarios.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)
    return paths


if __name__ == "__main__":
    for p in make(*sys.argv[1:2]):
        print(p)
