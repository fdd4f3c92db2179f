"""Offline training: teachers, students, distillation, resume, early stopping, DDP, the tables.

The CLI tests run through a real subprocess on a tiny dataset of real sessions written with the
sessions area's writer (tones instead of beamformed scenes, so that it takes a second to build
and the classes are learnable in two epochs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the train extra; always installed by `make test`

from conftest import free_port, run_cli  # noqa: E402
from dualcam_rt.training.data import ClipOptions, Clips, load_clips  # noqa: E402
from dualcam_rt.training.engine import TrainConfig, distillation_loss, fit, load_run  # noqa: E402
from dualcam_rt.training.models import build_model  # noqa: E402

CLASSES_USED = ("clapping", "whistling")
FAST = ["--epochs", "2", "--batch-size", "8", "--mfcc-seconds", "1", "--video-frames", "1", "--frame-size", "32x24",
        "--threads", "1", "--quiet"]


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
            video[100:200, 50 * k:50 * k + 100] = 255
            mfcc = rng.standard_normal((36, 48, 12)).astype(np.float32)
            mfcc[..., k % 12] += 3
            w.write(SensorFrame(index=t, first_sample=t * 1024, timestamp=t / 12, audio=audio.astype(np.float32),
                                video=video, video_timestamp=t / 12), mfcc=mfcc)
    return {"id": name, "path": name, "label": label, "class_index": k, "scenario": scenario, "subject": subject,
            "seconds": ticks / 12}


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """A ci-sized dataset of real sessions: 3 scenarios x 3 subjects x 2 classes of 1 s, with the
    manifest's two split columns assigned by the dataset code itself."""
    from dualcam_rt.sessions.dataset import assign_splits

    root = tmp_path_factory.mktemp("data") / "ci2"
    root.mkdir()
    entries = [tone_session(root, f"sc{sc}_s{su}_{label}", label, sc, su)
               for sc in (1, 2, 3) for su in range(3) for label in CLASSES_USED]
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
    return Clips(label=label, scenario=np.ones(n, int), subject=np.zeros(n, int), split=split,
                 session=np.array([f"s{i}" for i in range(n)]), mic=mic.astype(np.float32), mfcc=mfcc,
                 frames=rng.integers(0, 255, (n, 1, 24, 32, 3), dtype=np.uint8), options=ClipOptions(mfcc_seconds=1))


# -- models ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name,shapes,params_m", [
    ("dualcamnet", [(2, 24, 36, 48, 12)], 8.18), ("hearnet", [(2, 257, 500)], 3.86),
    ("soundnet", [(2, 110250)], 6.75), ("resnet50", [(2, 2, 3, 24, 32)], 23.54),
    ("temporal_resnet50", [(2, 3, 3, 24, 32)], None), ("avnet", [(2, 12, 36, 48, 12), (2, 1, 3, 24, 32)], None)])
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
    info = fit(TrainConfig("hearnet", epochs=4, batch_size=8, threads=1), clips.select("train"),
               clips.select("val"), tmp_path / "run", progress=False)  # the paper's student lr, 1e-4
    assert info["history"][-1]["loss"] < info["history"][0]["loss"]
    assert info["best_val_accuracy"] > 0.5  # chance is 1/14


def test_the_same_seed_trains_the_same_weights(tmp_path):
    clips = synthetic_clips()
    runs = [fit(TrainConfig("hearnet", epochs=1, batch_size=4, threads=1, seed=3), clips.select("train"),
                clips.select("val"), tmp_path / f"r{i}", progress=False)["_model"] for i in range(2)]
    for a, b in zip(runs[0].state_dict().values(), runs[1].state_dict().values()):
        torch.testing.assert_close(a, b)


def test_early_stopping_ends_a_run_that_stops_improving(tmp_path):
    clips = synthetic_clips()
    info = fit(TrainConfig("hearnet", epochs=10, batch_size=8, lr=0.0, patience=2, threads=1),
               clips.select("train"), clips.select("val"), tmp_path / "run", progress=False)
    assert info["epochs_run"] == 3 and info["best_epoch"] == 1  # lr 0: never better than epoch 1


def test_a_killed_run_resumes_where_its_checkpoint_left_off(tmp_path):
    clips = synthetic_clips()
    cfg = dict(batch_size=8, threads=1, seed=1)
    full = fit(TrainConfig("hearnet", epochs=3, **cfg), clips.select("train"), clips.select("val"), tmp_path / "a",
               progress=False)
    fit(TrainConfig("hearnet", epochs=1, **cfg), clips.select("train"), clips.select("val"), tmp_path / "b", progress=False)
    resumed = fit(TrainConfig("hearnet", epochs=3, **cfg), clips.select("train"), clips.select("val"), tmp_path / "b",
                  resume=True, progress=False)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert resumed["history"][0] == {**full["history"][0], "seconds": resumed["history"][0]["seconds"]}
    assert resumed["history"][-1]["loss"] == pytest.approx(full["history"][-1]["loss"], rel=1e-4)


def test_load_run_gives_back_the_best_weights(tmp_path):
    clips = synthetic_clips()
    info = fit(TrainConfig("dualcamnet", epochs=1, batch_size=8, threads=1), clips.select("train"),
               clips.select("val"), tmp_path / "run", progress=False)
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
    r = run_cli("distill", "hearnet", "--teacher", str(teacher), "--data", str(dataset), "--out", str(student),
                "--lambda", "0.5", "--temperature", "2", *FAST)
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
    r = run_cli("train", "hearnet", "--data", str(dataset), "--out", str(tmp_path / "run"), "--scenarios", "2",
                "--split", "subject_split", *FAST)
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["train_scenarios"] == [2] and info["clip_options"]["split_column"] == "subject_split"


@pytest.mark.parametrize("args,needle", [
    (["train", "hearnet", "--data", "/nonexistent", "--out", "/tmp/x"], "manifest.json"),
    (["train", "lenet", "--data", ".", "--out", "/tmp/x"], "unknown model"),
    (["train", "hearnet", "--data", ".", "--out", "/tmp/x", "--scenarios", "4"], "--scenarios"),
    (["distill", "dualcamnet", "--teacher", ".", "--data", ".", "--out", "/tmp/x"], "student must be"),
    (["export", "/nonexistent"], "not a finished training run"),
    (["quantize", "--data", ".", "--model", "/nonexistent.json"], "unreadable model card"),
])
def test_bad_training_requests_give_one_line_errors(args, needle):
    r = run_cli(*args)
    assert r.returncode == 2
    assert needle in r.stderr and "Traceback" not in r.stderr


def test_without_torch_the_training_commands_say_how_to_install_it():
    code = ("import sys; sys.modules['torch'] = None; sys.argv = ['dualcam-rt', 'train', 'hearnet', '--data', '.', "
            "'--out', '/tmp/x']; from dualcam_rt.cli import main; main()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "pip install -e .[train]" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_ddp_training_with_two_cpu_processes_matches_the_cli_contract(dataset, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "dualcam_rt", "train",
           "hearnet", "--data", str(dataset), "--out", str(tmp_path / "ddp"), *FAST]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    info = json.loads((tmp_path / "ddp" / "run.json").read_text())
    assert info["world_size"] == 2 and len(info["history"]) == 2


@pytest.mark.slow
def test_evaluate_writes_the_papers_tables_as_markdown_csv_and_png(dataset, tmp_path):
    out = tmp_path / "results"
    r = run_cli("evaluate", "--data", str(dataset), "--out", str(out), "--seeds", "1", "--teachers", "D,R",
                "--max-train-clips", "4", "--epochs", "1", "--batch-size", "8", "--mfcc-seconds", "1",
                "--video-frames", "1", "--frame-size", "32x24", "--threads", "1", timeout=280)
    assert r.returncode == 0, r.stderr[-2000:]
    for t in (1, 2, 3, 4):
        assert {p.name for p in out.glob(f"table{t}.*")} == {f"table{t}.md", f"table{t}.csv", f"table{t}.png"}
    md = (out / "table1.md").read_text()
    assert "| Scenario 1 | Scenario 2 |" in md and "| All scenarios | All scenarios |" in md and "Made by:" in md
    rows = (out / "table3.csv").read_text().splitlines()
    assert rows[0].startswith("train_set,test_set,column,mean,std,n_seeds")
    assert {r.split(",")[2] for r in rows[1:]} == {"G", "D", "R"}  # a cell without test clips is left out
    assert any(r.startswith("All scenarios,All scenarios,D,") for r in rows)
    assert "HearNet/conv2" in (out / "table4.md").read_text()
