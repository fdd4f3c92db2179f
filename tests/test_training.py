"""Offline training: teachers, students, distillation, resume, early stopping, DDP, the tables.

The CLI tests run through a real subprocess on a tiny dataset of real sessions written with the
sessions area's writer (tones instead of beamformed scenes, so that it takes a second to build
and the classes are learnable in two epochs).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the train extra; always installed by `make test`

from conftest import CLI, free_port, run_cli  # noqa: E402

from dualcam_rt.errors import BadInput  # noqa: E402
from dualcam_rt.training.data import ClipOptions, Clips, load_clips  # noqa: E402
from dualcam_rt.training.engine import TrainConfig, fit  # noqa: E402
from dualcam_rt.training.losses import distillation_loss, soft_labels_from_logits  # noqa: E402
from dualcam_rt.training.models import build_model  # noqa: E402
from dualcam_rt.training.runs import load_run  # noqa: E402

CLASSES_USED = ("clapping", "whistling")
FAST = [
    "--epochs",
    "2",
    "--batch-size",
    "8",
    "--mfcc-seconds",
    "1",
    "--video-frames",
    "1",
    "--frame-size",
    "32x24",
    "--threads",
    "1",
    "--quiet",
]


def tone_session(root: Path, name: str, label: str, scenario: int, subject: int, ticks: int = 12) -> dict:
    """Write one real session (microphone 0, MFCC volumes, JPEG video) whose class is easy to hear
    and see, with the sessions area's writer; returns its manifest entry."""
    from dualcam_rt.frame import SensorFrame
    from dualcam_rt.labels import class_index
    from dualcam_rt.sessions import SessionWriter

    k = class_index(label)
    rng = np.random.default_rng(hash((name, scenario)) % 2**32)
    with SessionWriter(root / name, {"label": label, "scenario": scenario, "subject": subject}, mfcc=True) as w:
        for t in range(ticks):
            n = np.arange(t * 1024, (t + 1) * 1024) / 12288
            audio = (np.sin(2 * np.pi * (400 + 300 * k) * n) + 0.2 * scenario * rng.standard_normal(1024))[None]
            video = np.full((480, 640, 3), 40 * scenario, np.uint8)
            video[100:200, 50 * k : 50 * k + 100] = 255
            mfcc = rng.standard_normal((36, 48, 12)).astype(np.float32)
            mfcc[..., k % 12] += 3
            w.write(
                SensorFrame(
                    index=t,
                    first_sample=t * 1024,
                    timestamp=t / 12,
                    audio=audio.astype(np.float32),
                    video=video,
                    video_timestamp=t / 12,
                ),
                mfcc=mfcc,
            )
    return {
        "id": name,
        "path": name,
        "label": label,
        "class_index": k,
        "scenario": scenario,
        "subject": subject,
        "seconds": ticks / 12,
    }


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """A ci-sized dataset of real sessions: 3 scenarios x 3 subjects x 2 classes of 1 s, with the
    manifest's two split columns assigned by the dataset code itself."""
    from dualcam_rt.sessions.manifest import assign_splits

    root = tmp_path_factory.mktemp("data") / "ci2"
    root.mkdir()
    entries = [
        tone_session(root, f"sc{sc}_s{su}_{label}", label, sc, su)
        for sc in (1, 2, 3)
        for su in range(3)
        for label in CLASSES_USED
    ]
    assign_splits(entries)
    from dualcam_rt.labels import CLASSES

    (root / "manifest.json").write_text(json.dumps({"preset": "test", "classes": list(CLASSES), "sessions": entries}))
    return root


def synthetic_clips(n: int = 28, seed: int = 0) -> Clips:
    """Clips whose class is easy to hear (a tone per class) and see in the MFCC volumes."""
    rng = np.random.default_rng(seed)
    label = np.arange(n) % 14
    t = np.arange(5 * 12288) / 12288
    mic = np.stack([np.sin(2 * np.pi * (300 + 200 * k) * t) + 0.3 * rng.standard_normal(t.size) for k in label])
    mfcc = rng.standard_normal((n, 12, 36, 48, 12)).astype(np.float16)
    mfcc[np.arange(n), :, :, :, label % 12] += 3
    split = np.array(["train", "train", "val", "test"])[np.arange(n) // (n // 4) % 4]
    return Clips(
        label=label,
        scenario=np.ones(n, int),
        subject=np.zeros(n, int),
        split=split,
        session=np.array([f"s{i}" for i in range(n)]),
        mic=mic.astype(np.float32),
        mfcc=mfcc,
        frames=rng.integers(0, 255, (n, 1, 24, 32, 3), dtype=np.uint8),
        options=ClipOptions(mfcc_seconds=1),
    )


# -- models ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,shapes,params_m",
    [
        ("dualcamnet", [(2, 24, 36, 48, 12)], 8.18),
        ("hearnet", [(2, 257, 500)], 3.86),
        ("soundnet", [(2, 110250)], 6.75),
        ("resnet50", [(2, 2, 3, 24, 32)], 23.54),
        ("temporal_resnet50", [(2, 3, 3, 24, 32)], None),
        ("avnet", [(2, 12, 36, 48, 12), (2, 1, 3, 24, 32)], None),
    ],
)
def test_every_network_gives_14_logits_per_clip_with_the_papers_size(name, shapes, params_m):
    model = build_model(name).eval()
    with torch.no_grad():
        logits = model(*[torch.randn(*s) for s in shapes])
    assert logits.shape == (2, 14) and torch.isfinite(logits).all()
    if params_m:
        assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(params_m, abs=0.01)


def test_temporal_resnet_starts_as_the_per_frame_resnet():
    torch.manual_seed(0)
    plain = build_model("resnet50").eval()
    temporal = build_model("temporal_resnet50").eval()
    temporal.load_state_dict(plain.state_dict(), strict=False)  # temporal convs keep their identity init
    x = torch.rand(1, 3, 3, 24, 32)
    with torch.no_grad():
        torch.testing.assert_close(temporal(x), plain(x), rtol=1e-4, atol=1e-4)


def test_temporal_resnet_trains_from_scratch_with_the_teachers_adam():
    # Its temporal convs once were dense: Adam's first steps at 1e-3 took them off the identity (here
    # the loss went 3.0, 1.1, 11.8, 14.1) and the network stayed at chance in every table.
    torch.manual_seed(0)
    model = build_model("temporal_resnet50")
    x, y = torch.rand(4, 2, 3, 32, 32), torch.arange(4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert max(losses) < 2 * losses[0], losses
    assert losses[-1] < 0.5 * losses[0], losses


def test_dualcamnet_never_mixes_two_seconds_in_its_temporal_conv():
    model = build_model("dualcamnet").eval()
    x = torch.randn(1, 24, 36, 48, 12)
    y = x.clone()
    y[:, 12:] = torch.randn(1, 12, 36, 48, 12)  # change the second second only
    with torch.no_grad():
        fx, fy = model.frame_features(x), model.frame_features(y)
    torch.testing.assert_close(fx[:, :12], fy[:, :12])
    assert not torch.allclose(fx[:, 12:], fy[:, 12:])


def test_paper_variant_of_dualcamnet_keeps_the_spatial_size():
    model = build_model("dualcamnet", variant="paper")
    assert model.full1[0].kernel_size == (36, 48)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


# -- losses and the engine -------------------------------------------------------------------


def test_distillation_loss_is_the_papers_mixture_of_two_cross_entropies():
    torch.manual_seed(0)
    logits, labels = torch.randn(5, 14), torch.randint(0, 14, (5,))
    soft = torch.softmax(torch.randn(5, 14), dim=1)
    logp = torch.log_softmax(logits, dim=1)
    hard = -logp[torch.arange(5), labels].mean()
    imitation = -(soft * logp).sum(1).mean()
    torch.testing.assert_close(distillation_loss(logits, labels, soft, 0.5), 0.5 * hard + 0.5 * imitation)
    torch.testing.assert_close(distillation_loss(logits, labels, soft, 0.0), hard)
    torch.testing.assert_close(distillation_loss(logits, labels, soft, 1.0), imitation)


def test_a_student_learns_an_easy_task(tmp_path):
    clips = synthetic_clips(56)
    info = fit(
        TrainConfig("hearnet", epochs=4, batch_size=8, threads=1),
        clips.select("train"),
        clips.select("val"),
        tmp_path / "run",
        progress=False,
    )  # the paper's student lr, 1e-4
    assert info["history"][-1]["loss"] < info["history"][0]["loss"]
    assert info["best_val_accuracy"] > 0.5  # chance is 1/14


def test_the_same_seed_trains_the_same_weights(tmp_path):
    clips = synthetic_clips()
    runs = [
        fit(
            TrainConfig("hearnet", epochs=1, batch_size=4, threads=1, seed=3),
            clips.select("train"),
            clips.select("val"),
            tmp_path / f"r{i}",
            progress=False,
        )["_model"]
        for i in range(2)
    ]
    for a, b in zip(runs[0].state_dict().values(), runs[1].state_dict().values()):
        torch.testing.assert_close(a, b)


def test_early_stopping_ends_a_run_that_stops_improving(tmp_path):
    clips = synthetic_clips()
    info = fit(
        TrainConfig("hearnet", epochs=10, batch_size=8, lr=0.0, patience=2, threads=1),
        clips.select("train"),
        clips.select("val"),
        tmp_path / "run",
        progress=False,
    )
    assert info["epochs_run"] == 3 and info["best_epoch"] == 1  # lr 0: never better than epoch 1


def test_a_killed_run_resumes_where_its_checkpoint_left_off(tmp_path):
    clips = synthetic_clips()
    cfg = {"batch_size": 8, "threads": 1, "seed": 1}
    full = fit(
        TrainConfig("hearnet", epochs=3, **cfg),
        clips.select("train"),
        clips.select("val"),
        tmp_path / "a",
        progress=False,
    )
    fit(
        TrainConfig("hearnet", epochs=1, **cfg),
        clips.select("train"),
        clips.select("val"),
        tmp_path / "b",
        progress=False,
    )
    resumed = fit(
        TrainConfig("hearnet", epochs=3, **cfg),
        clips.select("train"),
        clips.select("val"),
        tmp_path / "b",
        resume=True,
        progress=False,
    )
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert resumed["history"][0] == {**full["history"][0], "seconds": resumed["history"][0]["seconds"]}
    assert resumed["history"][-1]["loss"] == pytest.approx(full["history"][-1]["loss"], rel=1e-4)


def test_a_run_whose_network_changed_shape_is_refused_clearly_and_retrained(tmp_path):
    clips = synthetic_clips()
    cfg = TrainConfig("hearnet", epochs=1, batch_size=8, threads=1)
    fit(cfg, clips.select("train"), clips.select("val"), tmp_path / "run", progress=False)
    for name in ("best.pt", "last.pt"):  # as an older dualcam-rt's network would have left them
        ckpt = torch.load(tmp_path / "run" / name, weights_only=False)
        key = next(iter(ckpt["model"]))
        ckpt["model"][key] = ckpt["model"][key][:1]
        torch.save(ckpt, tmp_path / "run" / name)
    with pytest.raises(BadInput, match="do not fit today's hearnet network"):
        load_run(tmp_path / "run")
    info = fit(cfg, clips.select("train"), clips.select("val"), tmp_path / "run", resume=True, progress=False)
    assert [h["epoch"] for h in info["history"]] == [1]  # started afresh, not a traceback
    assert load_run(tmp_path / "run")[1]["model"] == "hearnet"


def test_load_run_gives_back_the_best_weights(tmp_path):
    clips = synthetic_clips()
    info = fit(
        TrainConfig("dualcamnet", epochs=1, batch_size=8, threads=1),
        clips.select("train"),
        clips.select("val"),
        tmp_path / "run",
        progress=False,
    )
    model, meta = load_run(tmp_path / "run")
    assert meta["model"] == "dualcamnet"
    x = torch.from_numpy(clips.mfcc[:2].astype(np.float32))
    with torch.no_grad():
        torch.testing.assert_close(model(x), info["_model"].eval()(x))


# -- the command line on real sessions -------------------------------------------------------


def test_clips_come_from_the_manifest_with_labels_scenarios_and_splits(dataset):
    clips = load_clips(dataset, ClipOptions(mfcc_seconds=1, video_frames=1, frame_size=(32, 24)))
    assert len(clips) == 18 and set(clips.label) == {0, 3} and set(clips.scenario) == {1, 2, 3}
    assert clips.mic.shape == (18, 5 * 12288) and clips.mfcc.shape == (18, 12, 36, 48, 12)
    assert clips.frames.shape == (18, 1, 24, 32, 3) and clips.frames.max() > 0
    assert set(clips.split) == {"train", "val", "test"}


def test_train_then_distill_then_export_from_the_command_line(dataset, tmp_path):
    teacher, student, models = tmp_path / "teacher", tmp_path / "student", tmp_path / "models"
    r = run_cli("train", "dualcamnet", "--data", str(dataset), "--out", str(teacher), *FAST)
    assert r.returncode == 0, r.stderr
    info = json.loads((teacher / "run.json").read_text())
    assert len(info["history"]) == 2 and 0 <= info["test"]["test_accuracy"] <= 1
    assert (teacher / "best.pt").is_file() and (teacher / "last.pt").is_file()
    r = run_cli(
        "distill",
        "hearnet",
        "--teacher",
        str(teacher),
        "--data",
        str(dataset),
        "--out",
        str(student),
        "--lambda",
        "0.5",
        "--temperature",
        "2",
        *FAST,
    )
    assert r.returncode == 0, r.stderr
    info = json.loads((student / "run.json").read_text())
    assert info["teacher_model"] == "dualcamnet" and info["config"]["lam"] == 0.5
    assert info["config"]["temperature"] == 2.0
    r = run_cli("export", str(student), "--out", str(models), "--reproduce", "dualcam-rt distill hearnet ...")
    assert r.returncode == 0, r.stderr
    card = json.loads((models / "hearnet.json").read_text())
    assert card["metrics"]["onnx_max_abs_diff"] < 1e-4
    assert card["training"]["supervision"] == "distilled" and card["reproduce"].startswith("dualcam-rt distill")
    r = run_cli("quantize", "--data", str(dataset), "--model", str(models / "hearnet.json"), "--out", str(models))
    assert r.returncode == 0, r.stderr
    card = json.loads((models / "hearnet_int8.json").read_text())
    measured = card["quantization"]["measured"]
    assert (models / card["file"]).is_file() and 0 <= measured["test_agreement_with_fp32"] <= 1
    assert card["name"] == "hearnet_int8" and "dualcam-rt quantize --data" in card["quantization"]["reproduce"]


def test_training_on_one_scenario_uses_only_that_scenarios_clips(dataset, tmp_path):
    r = run_cli(
        "train",
        "hearnet",
        "--data",
        str(dataset),
        "--out",
        str(tmp_path / "run"),
        "--scenarios",
        "2",
        "--split",
        "subject_split",
        *FAST,
    )
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["train_scenarios"] == [2] and info["clip_options"]["split_column"] == "subject_split"


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "hearnet", "--data", "/nonexistent", "--out", "/tmp/x"], "manifest.json"),
        (["train", "lenet", "--data", ".", "--out", "/tmp/x"], "unknown model"),
        (["train", "hearnet", "--data", ".", "--out", "/tmp/x", "--scenarios", "4"], "--scenarios"),
        (["distill", "dualcamnet", "--teacher", ".", "--data", ".", "--out", "/tmp/x"], "student must be"),
        (["export", "/nonexistent"], "not a finished training run"),
        (["quantize", "--data", ".", "--model", "/nonexistent.json"], "unreadable model card"),
        (["evaluate", "--data", ".", "--tables", "7"], "no recipe for table"),
        (["evaluate", "--data", ".", "--splits", "random"], "--splits must be"),
        (["evaluate", "--data", ".", "--teachers", "D,Q"], "unknown Table 1 columns ['Q']"),
        (["evaluate", "--data", ".", "--budget-hours", "-1"], "--budget-hours must be positive"),
        (["evaluate", "--data", ".", "--recipes", "/nonexistent"], "no table*.toml recipes"),
    ],
)
def test_bad_training_requests_give_one_line_errors(args, needle):
    r = run_cli(*args)
    assert r.returncode == 2
    assert needle in r.stderr and "Traceback" not in r.stderr


def test_without_torch_the_training_commands_say_how_to_install_it():
    code = (
        "import sys; sys.modules['torch'] = None; sys.argv = ['dualcam-rt', 'train', 'hearnet', '--data', '.', "
        "'--out', '/tmp/x']; from dualcam_rt.cli import main; main()"
    )
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "pip install -e .[train]" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_ddp_training_with_two_cpu_processes_matches_the_cli_contract(dataset, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        str(torchrun),
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
        "-m",
        "dualcam_rt",
        "train",
        "hearnet",
        "--data",
        str(dataset),
        "--out",
        str(tmp_path / "ddp"),
        *FAST,
    ]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    info = json.loads((tmp_path / "ddp" / "run.json").read_text())
    assert info["world_size"] == 2 and len(info["history"]) == 2


# -- losses -----------------------------------------------------------------------------------


def test_distillation_loss_with_a_temperature_matches_a_hand_computation():
    # teacher logits (2, 0, 0) at T = 2 give soft labels (e, 1, 1) / (e + 2); student logits
    # (ln 2, 0, 0) give probabilities (1/2, 1/4, 1/4); the label is class 0
    soft = soft_labels_from_logits(torch.tensor([[2.0, 0.0, 0.0]]), temperature=2.0)
    a, b = math.e / (math.e + 2), 1 / (math.e + 2)
    torch.testing.assert_close(soft, torch.tensor([[a, b, b]]))
    logits, label = torch.tensor([[math.log(2), 0.0, 0.0]]), torch.tensor([0])
    hard = math.log(2)  # -ln(1/2)
    imitation = -(a * math.log(0.5) + 2 * b * math.log(0.25))
    for lam in (0.0, 0.3, 1.0):
        got = float(distillation_loss(logits, label, soft, lam))
        assert got == pytest.approx((1 - lam) * hard + lam * imitation, rel=1e-6)


# -- recipes, cells, resume, the budget planner, the paired comparison -------------------------


def small_recipes(root: Path, epochs: int = 1) -> Path:
    """Two recipes in the shipped format: Table 1 with DualCamNet on all scenarios, Table 3 with
    HearNet G and D on scenario 1 and on all; one seed, one split (two for the planner)."""
    root.mkdir(parents=True, exist_ok=True)
    common = f"""protocol = "cross_scenario"
splits = ["subject_split", "chunk_split"]
seeds = [0, 1, 2]
epochs = {epochs}
patience = 10
batch_size = 8
"""
    (root / "table1.toml").write_text(f"""table = 1
title = "teachers"
{common}
[train_sets]
"All scenarios" = [1, 2, 3]

[[columns]]
name = "D"
model = "dualcamnet"
paper = 0.770
""")
    (root / "table3.toml").write_text(f"""table = 3
title = "HearNet"
{common}temperature = 1.0
paired = [["D", "G"]]

[train_sets]
"All scenarios" = [1, 2, 3]
"Scenario 1" = [1]

[[columns]]
name = "G"
model = "hearnet"

[[columns]]
name = "D"
model = "hearnet"
teacher = "D"
lam = 0.5
""")
    return root


EVAL_FAST = ["--mfcc-seconds", "1", "--video-frames", "1", "--frame-size", "32x24", "--threads", "1", "--quiet"]


def test_the_papers_recipes_run_through_the_engine_and_fill_every_table(dataset, tmp_path):
    from dataclasses import replace

    from dualcam_rt.training.evaluation import Evaluation, run_recipes
    from dualcam_rt.training.recipe import load_recipes, shrink
    from dualcam_rt.training.tables import write_tables

    every = load_recipes()
    assert set(every) == {1, 2, 3, 4} and every[3].paired == (("D", "G"), ("R", "G"))
    assert every[1].splits == ("subject_split", "chunk_split") and every[3].column("D").lam == 0.5
    recipes = shrink(
        every, epochs=1, batch_size=8, seeds=1, splits=("subject_split",), columns={1: ("D", "R"), 4: ("HearNet",)}
    )
    keep = ("All scenarios", "Scenarios 1+2")
    recipes = {
        t: replace(r, train_sets={k: v for k, v in r.train_sets.items() if k in keep}) for t, r in recipes.items()
    }
    options = ClipOptions(mfcc_seconds=1, video_frames=1, frame_size=(32, 24), split_column="subject_split")
    clips = load_clips(dataset, options)
    ev = Evaluation(clips, tmp_path / "out", tmp_path / "work", {"dataset": str(dataset)}, threads=1)
    done = run_recipes(recipes, ev)
    assert done == {"made": 2 + 3 + 3 + 1, "skipped": 0, "elsewhere": 0}
    cells = {
        p.relative_to(tmp_path / "out" / "cells").as_posix(): json.loads(p.read_text())
        for p in (tmp_path / "out" / "cells").rglob("*.json")
    }
    d = cells["subject_split/table2/all_scenarios_D_seed0.json"]
    assert d["model"] == "soundnet" and d["teacher"] == "D" and d["settings"]["run"]["lam"] == 0.5
    assert d["settings"]["run"]["teacher"]["model"] == "dualcamnet" and 0 <= d["results"]["All scenarios"] <= 1
    assert cells["subject_split/table3/all_scenarios_G_seed0.json"]["settings"]["run"]["lam"] == 0.0
    t4 = cells["subject_split/table4/scenarios_1_2_HearNet_seed0.json"]["results"]
    assert set(t4) == {"conv2", "conv3", "conv4", "conv5", "fc1"} and 0 <= t4["fc1"]["SVM"] <= 1
    written = {p.name for p in write_tables(tmp_path / "out", every, "header")}
    assert {"table1.md", "table2.md", "table3.md", "table4.md", "table3_paired.csv", "table1.png"} <= written
    md = (tmp_path / "out" / "subject_split" / "table3.md").read_text()
    assert "| Train set | Test set | G | D | R | D − G | R − G |" in md and "Paper, train all / test all: G 0.697" in md


def test_paired_comparison_over_seeds_matches_a_hand_computation(tmp_path):
    from dualcam_rt.training.recipe import load_recipes
    from dualcam_rt.training.tables import paired, read_cells, rows_of, write_tables

    g, d = [0.50, 0.60, 0.40], [0.60, 0.55, 0.70]  # per seed; D - G = 0.10, -0.05, 0.30
    for col, accs in (("G", g), ("D", d)):
        for seed, acc in enumerate(accs):
            path = tmp_path / "cells" / "subject_split" / "table3" / f"all_scenarios_{col}_seed{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                json.dumps(
                    {
                        "table": 3,
                        "column": col,
                        "train_set": "All scenarios",
                        "seed": seed,
                        "split": "subject_split",
                        "results": {"All scenarios": acc},
                    }
                )
            )
    diffs = [0.10, -0.05, 0.30]
    mean = sum(diffs) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 2)  # sample std, ddof 1
    got = paired(rows_of(read_cells(tmp_path)), "D", "G")[("All scenarios", "All scenarios")]
    assert got["mean"] == pytest.approx(mean) and got["std"] == pytest.approx(std)
    assert got["n"] == 3 and got["wins"] == 2
    assert write_tables(tmp_path, load_recipes(), "header", png=False, only={("subject_split", 1)}) == []
    write_tables(tmp_path, load_recipes(), "header", png=False)
    md = (tmp_path / "subject_split" / "table3.md").read_text()
    assert f"| {mean:+.3f} ± {std:.3f} (2/3) |" in md  # +0.117 ± 0.176
    assert f"{0.5:.3f} ± {np.std(g, ddof=1):.3f}" in md
    row = (tmp_path / "subject_split" / "table3_paired.csv").read_text().splitlines()[1].split(",")
    assert row[2:7] == ["D-G", f"{mean:.4f}", f"{std:.4f}", "3", "2"]


def _cells(out: Path) -> dict[str, tuple[float, str]]:
    files = (out / "cells").rglob("*.json")
    return {p.relative_to(out).as_posix(): (p.stat().st_mtime_ns, p.read_text()) for p in files}


@pytest.mark.slow
def test_a_killed_evaluation_resumes_and_never_retrains_a_finished_cell(dataset, tmp_path):
    recipes, out, work = small_recipes(tmp_path / "recipes"), tmp_path / "out", tmp_path / "work"
    args = [
        "evaluate",
        "--data",
        str(dataset),
        "--out",
        str(out),
        "--work",
        str(work),
        "--recipes",
        str(recipes),
        "--tables",
        "1,3",
        "--seeds",
        "1",
        "--splits",
        "chunk_split",
        "--measure-batches",
        "1",
        *EVAL_FAST,
    ]
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 200
    while not _cells(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill()  # a real interruption: SIGKILL right after the first cell was written
    _, err = proc.communicate()
    before = _cells(out)
    assert before, err[-2000:]
    assert len(before) < 5, "the evaluation finished before it could be interrupted"
    r = run_cli(*args, timeout=240)
    assert r.returncode == 2 and "--resume" in r.stderr  # never overwrites finished cells silently
    r = run_cli(*args, "--resume", timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"skipping {len(before)} finished cell(s) of 5" in r.stderr
    after = _cells(out)
    assert len(after) == 5
    assert {k: after[k] for k in before} == before  # same bytes, same mtime: not retrained
    md = (out / "chunk_split" / "table3.md").read_text()
    assert "| Scenario 1 | Scenario 2 |" in md and "D − G" in md
    r = run_cli(*args, "--resume", "--epochs", "2", timeout=240)
    assert r.returncode == 2 and "other settings" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_a_second_evaluation_process_leaves_a_claimed_group_to_its_owner(dataset, tmp_path):
    from dualcam_rt.training.evaluation import claim

    recipes, out, work = small_recipes(tmp_path / "recipes"), tmp_path / "out", tmp_path / "work"
    args = ["evaluate", "--data", str(dataset), "--out", str(out), "--work", str(work), "--recipes", str(recipes)]
    args += ["--tables", "1,3", "--seeds", "1", "--splits", "chunk_split", "--measure-batches", "1", "--resume"]
    lock = work / "claims" / "chunk_split_seed0_all_scenarios.lock"
    with claim(lock) as mine:  # this test process plays the other evaluate, busy with train all
        assert mine
        with claim(lock) as again:
            assert not again  # an exclusive lock: a second holder is refused, even in one process
        r = run_cli(*args, *EVAL_FAST, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "chunk_split/seed0/all_scenarios: another process has it" in r.stderr
    assert "2 cell(s) made, 0 skipped, 3 left to other processes" in r.stderr
    assert sorted(_cells(out)) == [f"cells/chunk_split/table3/scenario_1_{c}_seed0.json" for c in ("D", "G")]
    r = run_cli(*args, *EVAL_FAST, timeout=240)  # the lock is free again: the rest is made, once
    assert r.returncode == 0 and "3 cell(s) made, 2 skipped, 0 left to other processes" in r.stderr
    assert len(_cells(out)) == 5


def test_the_planner_prints_hours_and_a_smaller_budget_picks_a_smaller_setting(dataset, tmp_path):
    from dualcam_rt.training import planner
    from dualcam_rt.training.evaluation import Evaluation
    from dualcam_rt.training.recipe import load_recipes

    recipes_dir, out = small_recipes(tmp_path / "recipes", epochs=100), tmp_path / "out"
    r = run_cli(
        "evaluate",
        "--data",
        str(dataset),
        "--out",
        str(out),
        "--work",
        str(tmp_path / "work"),
        "--recipes",
        str(recipes_dir),
        "--tables",
        "1,3",
        "--plan-only",
        "--measure-batches",
        "1",
        "--budget-hours",
        "1000",
        *EVAL_FAST,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    plan = json.loads(r.stdout)
    assert "expected at most" in r.stderr and "hearnet" in r.stderr and "dualcamnet" in r.stderr
    assert "chosen for --budget-hours 1000" in r.stderr and "up to 100 epochs" in r.stderr
    assert plan["epoch_cap"] == 100 and plan["cells"] == 2 * 3 * (1 + 4) and plan["expected_hours_at_most"] > 0
    timings = json.loads((out / "timings.json").read_text())["seconds_per_clip"]
    assert set(timings) == {"dualcamnet", "hearnet"} and timings["hearnet"]["train_s_per_clip"] > 0

    recipes = load_recipes(recipes_dir)
    clips = load_clips(dataset, ClipOptions(mfcc_seconds=1, video_frames=0, frame_size=(32, 24)), need_video=False)
    ev = Evaluation(clips, tmp_path / "out2", tmp_path / "work2", {"dataset": str(dataset)})
    full = planner.estimate(recipes, ev, timings)
    assert full.hours == pytest.approx(plan["expected_hours_at_most"], rel=1e-6)
    setting, roomy = planner.choose(recipes, recipes, ev, timings, full.hours * 1.01)
    assert setting == planner.Setting(100, 4, 2, 3) and roomy.cells == full.cells  # the recipes as they are
    setting, small = planner.choose(recipes, recipes, ev, timings, full.hours / 2)
    assert small.hours <= full.hours / 2 and setting.epoch_cap < 100 and small.cells == full.cells
    _, tiny = planner.choose(recipes, recipes, ev, timings, full.hours / 12)  # below 20 epochs of everything
    assert tiny.cells < full.cells  # past the epoch floor, whole splits and seeds go
    with pytest.raises(BadInput, match="no honest setting fits"):
        planner.choose(recipes, recipes, ev, timings, 1e-9)


def test_the_planner_rescales_a_models_timings_by_what_its_finished_cells_took():
    from dualcam_rt.training import planner

    timings = {
        "hearnet": {"train_s_per_clip": 0.01, "eval_s_per_clip": 0.005},
        "soundnet": {"train_s_per_clip": 0.2, "eval_s_per_clip": 0.1},
    }

    def cell(model, train, val, seconds_per_epoch):
        run = {"train_clips": train, "val_clips": val, "seconds_per_epoch": seconds_per_epoch}
        return {"model": model, "run": run}

    # predicted epoch 100 x 0.01 + 20 x 0.005 = 1.1 s; these took 2x, 3x and 10x that: the median is 3x
    cells = [cell("hearnet", 100, 20, 2.2), cell("hearnet", 100, 20, 3.3), cell("hearnet", 100, 20, 11.0)]
    cells += [cell("resnet50", 100, 20, 50.0), {"model": "hearnet", "run": None}]  # no timings / no run
    got = planner.calibrate(timings, cells)
    assert got["hearnet"]["scale"] == pytest.approx(3.0) and got["hearnet"]["cells"] == 3
    assert got["hearnet"]["train_s_per_clip"] == pytest.approx(0.03)
    assert got["hearnet"]["eval_s_per_clip"] == pytest.approx(0.015)
    assert got["soundnet"] == timings["soundnet"] and "resnet50" not in got  # no cells: as measured
    assert timings["hearnet"]["train_s_per_clip"] == 0.01  # the measured timings are left as they were


def test_chunk_split_gives_every_clip_the_split_of_its_official_code_chunk(dataset):
    from dualcam_rt.sessions.manifest import chunk_split

    clips = load_clips(dataset, ClipOptions(mfcc_seconds=1, video_frames=1, frame_size=(32, 24)))
    assert set(clips.splits) == {"split", "subject_split", "chunk_split"}
    chunks = {c["id"]: c["split"] for c in chunk_split(json.loads((dataset / "manifest.json").read_text()))}
    by_chunk = clips.with_split("chunk_split")
    assert [chunks[s] for s in by_chunk.session] == list(by_chunk.split)
    assert by_chunk.options.split_column == "chunk_split" and list(clips.split) == list(clips.splits["split"])


@pytest.mark.parametrize(
    "edit,needle",
    [
        (('model = "dualcamnet"', 'model = "lenet"'), "unknown models ['lenet']"),
        (('splits = ["subject_split", "chunk_split"]', 'splits = ["random"]'), "unknown splits"),
        (("[[columns]]", "[[columns]"), "recipe"),
    ],
)
def test_a_malformed_recipe_is_refused_with_its_file_name(tmp_path, edit, needle):
    from dualcam_rt.errors import BadInput
    from dualcam_rt.training.recipe import load_recipes

    root = small_recipes(tmp_path / "recipes")
    path = root / "table1.toml"
    path.write_text(path.read_text().replace(*edit))
    with pytest.raises(BadInput, match="table1.toml") as err:
        load_recipes(root)
    assert needle in str(err.value)
