"""Student training clips made straight from the sound bank: split-pure, levelled, reproducible."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from dualcam_rt.labels import CLASSES
from dualcam_rt.sim.soundbank import PackageRoots, SoundBank, build_bank
from dualcam_rt.training.augment import BACKGROUND_CLASS
from dualcam_rt.training.bank_clips import FULL_SCALE_PA, BankClipConfig, BankClipMaker, bank_clips

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_cli  # noqa: E402
from test_training import FAST, dataset  # noqa: E402, F401  (the dataset fixture)

CONFIG = BankClipConfig(rooms=3)  # a small room pool: the suite computes it once


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> SoundBank:
    """The ci bank (a few small allow-listed packages the suite installs)."""
    out = tmp_path_factory.mktemp("bank")
    build_bank(out, PackageRoots(out / "no-unpacked-sources"), preset="ci")
    return SoundBank.open(out)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_a_split_draws_only_its_own_takes_and_names_its_classes(bank, cache):
    for split in ("train", "val"):
        maker = BankClipMaker(bank, split, CONFIG, seed=0, cache_dir=cache)
        for cls in CLASSES:
            mine = {t.row["content_hash"] for t in bank.takes(cls, split)}
            assert len(maker.takes[cls]) == len(mine)
            others = [t.audio for s in ("train", "val", "test") if s != split for t in bank.takes(cls, s)]
            for audio in others:  # no take of another split is among this split's
                assert not any(len(a) == len(audio) and np.array_equal(a, audio) for a in maker.takes[cls])
        assert maker.classes() == [c for c in CLASSES if bank.takes(c, split)] + [BACKGROUND_CLASS]
        assert maker.classes(background=False)[-1] != BACKGROUND_CLASS


def test_clips_are_levelled_within_their_ranges_and_labelled_per_class(bank, cache):
    made = bank_clips(bank, "train", CONFIG, seed=0, cache_dir=cache, clips_per_class=6)
    classes = [*CLASSES, BACKGROUND_CLASS]
    names = [classes[i] for i in made.labels]
    assert made.waves.shape == (len(names), int(CONFIG.seconds * 12288)) and made.waves.dtype == np.float32
    assert {n: names.count(n) for n in set(names)} == {c: 6 for c in made.sources}
    assert np.abs(made.waves).max() <= FULL_SCALE_PA  # clipped at the converter's full scale, never above
    peak_db = 20 * np.log10(np.abs(made.waves).max(axis=1) / FULL_SCALE_PA)
    action = made.labels < len(CLASSES)
    lo, hi = CONFIG.peak_dbfs
    assert np.all(peak_db[action] > lo - 12) and np.all(peak_db[action] < hi + 12)  # EQ and ambience move it a little
    assert np.median(peak_db[action]) == pytest.approx((lo + hi) / 2, abs=12)
    # every class's clips say what they were made of, and thin classes carry a procedural share
    assert all(sum(v.values()) == 6 for v in made.sources.values())
    assert set(made.sources[BACKGROUND_CLASS]) <= {"ambience", "ambience+hum", "quiet", "hum", "noise"}
    thin = [c for c, n in made.real_takes.items() if 0 < n <= 2 and c in made.sources]
    assert thin and sum(made.sources[c].get("procedural", 0) for c in thin) > 0


def test_the_same_seed_gives_the_same_clips_and_another_seed_others(bank, cache):
    one = bank_clips(bank, "train", CONFIG, seed=3, cache_dir=cache, clips_per_class=1, background=False)
    again = bank_clips(bank, "train", CONFIG, seed=3, cache_dir=cache, clips_per_class=1, background=False)
    other = bank_clips(bank, "train", CONFIG, seed=4, cache_dir=cache, clips_per_class=1, background=False)
    assert np.array_equal(one.waves, again.waves)
    assert not np.allclose(one.waves, other.waves)
    assert BACKGROUND_CLASS not in one.sources


def test_train_with_bank_clips_adds_them_to_the_training_and_validation_clips(dataset, bank, tmp_path):  # noqa: F811
    from dualcam_rt.training.data import ClipOptions, load_clips

    own = load_clips(dataset, ClipOptions(split_column="subject_split"), need_mfcc=False, need_video=False)
    args = ["train", "hearnet", "--data", str(dataset), "--split", "subject_split", *FAST, "--bank", str(bank.root)]
    r = run_cli(*args, "--out", str(tmp_path / "run"), "--bank-clips", "2", "--background", timeout=240)
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    drawn = info["bank_clips"]
    assert drawn["bank"] == str(bank.root) and drawn["train"]["clips"] > 0 and drawn["val"]["clips"] > 0
    background = info["train_clips"] - int(np.sum(own.split == "train")) - drawn["train"]["clips"]
    assert background >= 1 and info["classes"][-1] == BACKGROUND_CLASS  # train --background's own clips
    assert info["val_clips"] > int(np.sum(own.split == "val")) + drawn["val"]["clips"] - 1


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--bank-clips", "2", "--bank", "/nonexistent"], "needs a sound bank"),
        (["--bank-clips", "2"], "for students"),
        (["--bank-clips", "-3"], "greater than or equal to 0"),
    ],
)
def test_bank_clips_errors_are_one_line(dataset, extra, needle, tmp_path):  # noqa: F811
    model = "dualcamnet" if needle == "for students" else "hearnet"
    r = run_cli("train", model, "--data", str(dataset), "--out", str(tmp_path / "x"), *FAST, *extra)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
