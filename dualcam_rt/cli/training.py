"""Commands of the training area: train, distill, evaluate, export, quantize (torch is imported lazily)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import typer

from . import app, console, fail

_SCENARIOS = typer.Option("all", help="Training scenarios: 'all' or a list like '1' or '1,2'")
_SPLIT = typer.Option("split", help="Manifest split column: 'split' (as the official code) or 'subject_split'")
_EPOCHS = typer.Option(100, help="Maximum epochs (the paper: 100)")
_BATCH = typer.Option(32, help="Batch size")
_LR = typer.Option(None, help="Learning rate (default 1e-3 teachers, 1e-4 students)")
_WD = typer.Option(0.0, help="L2 weight decay (the official HearNet: 5e-4)")
_PATIENCE = typer.Option(10, help="Early stopping: epochs without a better validation accuracy")
_SEED = typer.Option(0, help="Random seed")
_DEVICE = typer.Option("auto", help="auto|cpu|cuda")
_THREADS = typer.Option(None, help="Torch CPU threads (default: torch's choice)")
_RESUME = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint")
_CLIP = typer.Option(5.0, help="Clip length, seconds (students take 5 s)")
_MFCC_S = typer.Option(5, help="Seconds of MFCC volumes per clip the acoustic teacher sees")
_VFRAMES = typer.Option(2, help="Video frames per clip for the visual teachers")
_FSIZE = typer.Option("64x48", help="Frame size WIDTHxHEIGHT for the visual teachers (640x480 on a GPU)")
_MAXCLIPS = typer.Option(None, help="At most this many clips per session")
_QUIET = typer.Option(False, "--quiet", help="No progress bars or per-epoch lines")


def _torch() -> None:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        fail("the training module needs torch: install the train extra: pip install -e .\\[train]")  # "\\[" keeps rich from reading [train] as markup


def _scenarios(text: str) -> tuple[int, ...]:
    if text.strip().lower() == "all":
        return (1, 2, 3)
    try:
        vals = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        fail(f"--scenarios must be 'all' or a list like '1,2', got {text!r}")
    if not vals or any(v not in (1, 2, 3) for v in vals):
        fail(f"--scenarios must name scenarios 1, 2 or 3, got {text!r}")
    return vals


def _frame_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        assert w > 0 and h > 0
    except (ValueError, AssertionError):
        fail(f"--frame-size must look like 64x48, got {text!r}")
    return w, h


def _command() -> str:
    return "dualcam-rt " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _load(data: str, split: str, clip_seconds: float, mfcc_seconds: int, video_frames: int, frame_size: str,
          max_clips: int | None, need_mfcc: bool, need_video: bool):
    from ..training.data import ClipOptions, load_clips

    opts = ClipOptions(clip_seconds=clip_seconds, mfcc_seconds=mfcc_seconds, video_frames=video_frames,
                       frame_size=_frame_size(frame_size), max_clips_per_session=max_clips, split_column=split)
    return load_clips(data, opts, need_mfcc=need_mfcc, need_video=need_video)


def _needs(kind: str) -> tuple[bool, bool]:
    """(needs MFCC volumes, needs video) for a model input kind."""
    return kind in ("mfcc_volume", "audio_visual"), kind in ("video", "audio_visual")


def _fit_and_test(cfg, clips, scen, out: str, resume: bool, quiet: bool, extra: dict) -> dict:
    from ..training.engine import accuracy, fit, init_distributed, is_main_process, predict_logits, write_run_info

    init_distributed(cfg.device)
    train, val = clips.select("train", scen), clips.select("val", scen)
    info = fit(cfg, train, val, out, soft=extra.pop("_soft", None), resume=resume, progress=not quiet, extra_info=extra)
    model = info.pop("_model")
    if not is_main_process():
        return info
    test = clips.select("test")
    logits = predict_logits(model, test, info["input_kind"], device=info["device"])
    mine = np.isin(test.scenario, scen)
    info["test"] = {"test_accuracy": accuracy(logits[mine], test.label[mine]),
                    **{f"test_accuracy_scenario_{k}": accuracy(logits[test.scenario == k], test.label[test.scenario == k])
                       for k in (1, 2, 3)}}
    write_run_info(out, info)
    console.print(f"{cfg.model}: best val acc {info['best_val_accuracy']}, test acc {info['test']['test_accuracy']:.3f} "
                  f"(epoch {info['best_epoch']} of {info['epochs_run']}, {info['seconds_per_epoch']:.1f} s/epoch) -> {out}",
                  highlight=False)
    return info


@app.command()
def train(
    model: str = typer.Argument(..., help="dualcamnet|resnet50|temporal_resnet50|avnet|hearnet|soundnet"),
    data: str = typer.Option(..., help="Dataset directory (with manifest.json)"),
    out: str = typer.Option(..., help="Run directory (run.json, last.pt, best.pt)"),
    scenarios: str = _SCENARIOS, split: str = _SPLIT, epochs: int = _EPOCHS, batch_size: int = _BATCH,
    lr: float = _LR, weight_decay: float = _WD, patience: int = _PATIENCE, seed: int = _SEED,
    device: str = _DEVICE, threads: int = _THREADS, resume: bool = _RESUME,
    variant: str = typer.Option("code", help="DualCamNet: 'code' (official code) or 'paper' (the paper's text)"),
    weights: str = typer.Option(None, help="Local pretrained weights (state dict) for the visual teachers"),
    clip_seconds: float = _CLIP, mfcc_seconds: int = _MFCC_S, video_frames: int = _VFRAMES,
    frame_size: str = _FSIZE, max_clips_per_session: int = _MAXCLIPS, quiet: bool = _QUIET,
):
    """Train a teacher (DualCamNet, ResNet-50, Temporal ResNet-50, AVNet) or a student on hard labels."""
    _torch()
    from ..training.engine import TrainConfig
    from ..training.models import input_kind

    if variant not in ("code", "paper"):
        fail(f"--variant must be 'code' or 'paper', got {variant!r}")
    if weights and not Path(weights).is_file():
        fail(f"weights file {weights} does not exist")
    cfg = TrainConfig(model, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, patience=patience,
                      seed=seed, device=device, threads=threads, variant=variant, weights=weights)
    scen = _scenarios(scenarios)
    clips = _load(data, split, clip_seconds, mfcc_seconds, video_frames, frame_size, max_clips_per_session,
                  *_needs(input_kind(model)))
    _fit_and_test(cfg, clips, scen, out, resume, quiet, {"dataset": str(data), "command": _command()})


@app.command()
def distill(
    student: str = typer.Argument(..., help="hearnet|soundnet"),
    teacher: str = typer.Option(..., help="Run directory of a trained teacher (e.g. DualCamNet)"),
    data: str = typer.Option(..., help="Dataset directory (with manifest.json)"),
    out: str = typer.Option(..., help="Run directory for the student"),
    lam: float = typer.Option(0.5, "--lambda", help="Imitation weight: (1-λ)·CE(y) + λ·CE(soft labels)"),
    temperature: float = typer.Option(1.0, help="Softmax temperature T of the teacher's soft labels"),
    scenarios: str = _SCENARIOS, split: str = _SPLIT, epochs: int = _EPOCHS, batch_size: int = _BATCH,
    lr: float = _LR, weight_decay: float = _WD, patience: int = _PATIENCE, seed: int = _SEED,
    device: str = _DEVICE, threads: int = _THREADS, resume: bool = _RESUME,
    clip_seconds: float = _CLIP, mfcc_seconds: int = _MFCC_S, video_frames: int = _VFRAMES,
    frame_size: str = _FSIZE, max_clips_per_session: int = _MAXCLIPS, quiet: bool = _QUIET,
):
    """Distil a student (HearNet, OurSoundNet) from a teacher's soft labels softmax(f_t(x*)/T)."""
    _torch()
    from ..training.engine import TrainConfig, load_run, soft_labels
    from ..training.models import model_names

    if student not in model_names("student"):
        fail(f"the student must be one of {', '.join(model_names('student'))}, got {student!r}")
    cfg = TrainConfig(student, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                      patience=patience, seed=seed, device=device, threads=threads, lam=lam,
                      temperature=temperature, teacher=str(teacher))
    teacher_model, tinfo = load_run(teacher)
    need_mfcc, need_video = _needs(tinfo["input_kind"])
    scen = _scenarios(scenarios)
    clips = _load(data, split, clip_seconds, mfcc_seconds, video_frames, frame_size, max_clips_per_session,
                  need_mfcc, need_video)
    train_clips = clips.select("train", scen)
    soft = soft_labels(teacher_model, train_clips, tinfo["input_kind"], temperature)
    teacher_acc = float(np.mean(soft.argmax(1) == train_clips.label)) if len(train_clips) else float("nan")
    console.print(f"soft labels from {tinfo['model']} ({teacher}): {len(soft)} clips, teacher train acc {teacher_acc:.3f}",
                  highlight=False)
    _fit_and_test(cfg, clips, scen, out, resume, quiet,
                  {"dataset": str(data), "command": _command(), "teacher_model": tinfo["model"], "_soft": soft})


@app.command()
def evaluate(
    data: str = typer.Option(..., help="Dataset directory (with manifest.json), all three scenarios"),
    out: str = typer.Option("docs/results", help="Where the tables go (Markdown, CSV, PNG, results.json)"),
    tables: str = typer.Option("1,2,3,4", help="Which of the paper's tables: a list of 1, 2, 3, 4"),
    seeds: int = typer.Option(3, help="Seeds per configuration (mean ± std)"),
    teachers: str = typer.Option("D,R,T,AV", help="Table 1 columns: D, R, T, AV"),
    transfer_students: str = typer.Option("hearnet,soundnet", help="Table 4 rows: hearnet, soundnet"),
    epochs: int = _EPOCHS,
    student_epochs: int = typer.Option(None, help="Epochs of the students (default: --epochs)"),
    batch_size: int = _BATCH, patience: int = _PATIENCE,
    lam: float = typer.Option(0.5, "--lambda", help="Distillation imitation weight λ"),
    temperature: float = typer.Option(1.0, help="Distillation temperature T"),
    max_train_clips: int = typer.Option(None, help="Subsample every training set to this many clips (CPU budgets)"),
    split: str = _SPLIT, device: str = _DEVICE, threads: int = _THREADS,
    clip_seconds: float = _CLIP, mfcc_seconds: int = _MFCC_S, video_frames: int = _VFRAMES,
    frame_size: str = _FSIZE, max_clips_per_session: int = _MAXCLIPS,
    work: str = typer.Option(None, help="Keep every run's directory here (default: a temporary directory)"),
):
    """Cross-scenario evaluation: the paper's Tables 1-3 and the Table 4 transfer analogue."""
    _torch()
    from ..training.evaluation import EvalPlan, run_evaluation
    from ..training.data import read_manifest

    try:
        table_ids = tuple(sorted({int(t) for t in tables.split(",") if t.strip()}))
    except ValueError:
        fail(f"--tables must be a list like 1,2,3,4, got {tables!r}")
    if seeds < 1:
        fail("--seeds must be at least 1")
    plan = EvalPlan(tables=table_ids, seeds=tuple(range(seeds)), epochs=epochs, student_epochs=student_epochs,
                    batch_size=batch_size, patience=patience, lam=lam, temperature=temperature, device=device,
                    threads=threads, max_train_clips=max_train_clips,
                    teachers=tuple(t.strip().upper() for t in teachers.split(",") if t.strip()),
                    transfer_students=tuple(t.strip() for t in transfer_students.split(",") if t.strip()))
    need_mfcc = bool(set(table_ids) & {1, 2, 3, 4})
    need_video = bool(set(table_ids) & {1, 2, 3})
    clips = _load(data, split, clip_seconds, mfcc_seconds, video_frames, frame_size, max_clips_per_session,
                  need_mfcc, need_video)
    preset = read_manifest(data).get("preset", "?")
    counts = {s: int((clips.split == s).sum()) for s in ("train", "val", "test")}
    header = (f"Dataset: `{data}` (preset `{preset}`, split column `{split}`), {len(clips)} clips of {clip_seconds:g} s "
              f"({counts['train']} train / {counts['val']} val / {counts['test']} test); teachers see {mfcc_seconds} s of "
              f"MFCC volumes and {video_frames} video frame(s) of {frame_size} per clip. "
              f"Up to {epochs} epochs (students {student_epochs or epochs}), patience {patience}, batch {batch_size}, "
              f"{seeds} seed(s), λ = {lam}, T = {temperature}"
              + (f", training sets subsampled to {max_train_clips} clips" if max_train_clips else "") + ".\n\n"
              f"Made by: `{_command()}`")
    summary = run_evaluation(clips, plan, out, header, work_dir=work)
    console.print(f"wrote {len(summary['files'])} files to {out} in {summary['wall_seconds']:.0f} s", highlight=False)


@app.command()
def export(
    run: str = typer.Argument(..., help="Run directory of a trained HearNet, OurSoundNet or DualCamNet"),
    out: str = typer.Option("models", help="Directory for <name>.onnx and <name>.json"),
    name: str = typer.Option(None, help="Model name (default: the architecture's, e.g. hearnet)"),
    reproduce: str = typer.Option(None, help="Command(s) that reproduce the run, for the model card"),
):
    """Export a trained student (or DualCamNet) to ONNX with a dynamic batch axis and a model card."""
    _torch()
    from ..training.export import export_run
    from ..training.engine import read_run_info, write_run_info

    if reproduce:
        info = read_run_info(run)
        info["reproduce"] = reproduce
        write_run_info(run, info)
    card = export_run(run, out, name)
    console.print(f"{card['name']}: {Path(out) / card['file']} (onnxruntime vs PyTorch max |diff| "
                  f"{card['metrics']['onnx_max_abs_diff']:.2e})", highlight=False)
    print(json.dumps(card, indent=2))


@app.command()
def quantize(
    data: str = typer.Option(..., help="Simulated dataset (dualcam-rt make-dataset): calibration and test clips"),
    model: str = typer.Option("models/hearnet.json", help="Card of the fp32 audio student"),
    out: str = typer.Option("models", help="Directory for <name>_int8.onnx and its card"),
    threads: int = typer.Option(1, help="onnxruntime threads for the accuracy and speed comparison"),
):
    """Statically quantize an audio student to int8 (onnxruntime QDQ) and compare it with fp32."""
    from ..inference.quantize import quantize_student

    measured = quantize_student(data, model, out, threads)
    console.print(f"int8 test accuracy {measured['test_accuracy']:.3f} (fp32 {measured['test_accuracy_fp32']:.3f}), "
                  f"{measured['ms_per_item_int8'][1]} vs {measured['ms_per_item_fp32'][1]} ms per item", highlight=False)
    print(json.dumps(measured, indent=2))
