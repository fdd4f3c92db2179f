"""Commands of the training area: train, distill, evaluate, export, quantize (torch is imported lazily)."""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import typer

from . import app, console, fail

_SCENARIOS = typer.Option("all", help="Training scenarios: 'all' or a list like '1' or '1,2'")
_SPLIT = typer.Option(
    "split",
    help="Split: 'split' (whole sequences), 'subject_split' (whole subjects) or "
    "'chunk_split' (the official code's 10-s chunks)",
)
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
_FSIZE = typer.Option("160x120", help="Frame size WIDTHxHEIGHT of the visual teachers (whole frames; 640x480 on GPU)")
_MAXCLIPS = typer.Option(None, help="At most this many clips per session")
_QUIET = typer.Option(False, "--quiet", help="No progress bars or per-epoch lines")
_AUGMENT = typer.Option(
    False,
    "--augment/--no-augment",
    help="Students: train on fresh microphone-and-room "
    "augmentations (gain -30..+6 dB, EQ tilt, high-pass, clipping, rooms, real ambience, shifts)",
)
_BANK = typer.Option(
    None,
    "--bank",
    help="Sound bank whose ambience --augment and --background and whose takes --bank-clips use "
    "(default <cache_dir>/soundbank)",
)
_BANK_CLIPS = typer.Option(
    0,
    "--bank-clips",
    min=0,
    help="Students: add N clips per class made from the sound bank's train takes (rooms, levels, ambience, "
    "noise floors; training/bank_clips.py) and N/4 per class from its val takes for early stopping; with "
    "--background as many no-action clips",
)
_SPEC_AUGMENT = typer.Option(
    False,
    "--spec-augment/--no-spec-augment",
    help="HearNet: mask 2 random frequency bands (up to ~1 kHz) and 2 time spans (up to 0.4 s) of every "
    "training spectrogram (SpecAugment)",
)
_BACKGROUND = typer.Option(
    False,
    "--background/--no-background",
    help="Students: learn a 15th class, no_action, from clips of real ambience, quiet rooms, hum and noise at "
    "random levels",
)


def _torch() -> None:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        # "\\[" keeps rich from reading [train] as markup
        fail("the training module needs torch: install the train extra: pip install -e .\\[train]")


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


def _load(
    data: str,
    split: str,
    clip_seconds: float,
    mfcc_seconds: int,
    video_frames: int,
    frame_size: str,
    max_clips: int | None,
    need_mfcc: bool,
    need_video: bool,
):
    from ..training.data import ClipOptions, load_clips

    opts = ClipOptions(
        clip_seconds=clip_seconds,
        mfcc_seconds=mfcc_seconds,
        video_frames=video_frames,
        frame_size=_frame_size(frame_size),
        max_clips_per_session=max_clips,
        split_column=split,
    )
    return load_clips(data, opts, need_mfcc=need_mfcc, need_video=need_video)


def _needs(kind: str) -> tuple[bool, bool]:
    """(needs MFCC volumes, needs video) for a model input kind."""
    from ..frame import InputKind

    return InputKind(kind).uses_mfcc, InputKind(kind).uses_video


def _open_bank(bank: str | None, needed_by: str | None = None):
    """The sound bank at ``--bank`` (default ``<cache_dir>/soundbank``), or None with a warning when the
    default holds none; a one-line error when ``--bank`` names no bank or ``needed_by`` (an option) needs one."""
    from ..config import get_settings
    from ..errors import DualcamError, NotFound
    from ..sim.soundbank import SoundBank, default_bank_dir

    path = Path(bank) if bank else default_bank_dir(get_settings().cache_dir)
    try:
        return SoundBank.open(path)
    except NotFound as err:
        if needed_by:
            fail(f"{needed_by} needs a sound bank: {err}")
        if bank:
            fail(f"no sound bank in {path}: build one with `dualcam-rt soundbank build --out {path}`")
        console.print(
            f"[yellow]no sound bank in {path}: no real ambience in the augmentation or background; "
            "build one with `make soundbank`[/]"
        )
        return None
    except DualcamError as err:
        fail(str(err))


def _bank_for(bank: str | None, ambience_wanted: bool, bank_clips: int):
    """The sound bank --augment/--background (ambience, optional) and --bank-clips (required) use, or None."""
    if not (ambience_wanted or bank_clips):
        return None
    return _open_bank(bank, "--bank-clips" if bank_clips else None)


def _bank_ambience(sound_bank) -> dict[str, list]:
    """The sound bank's ambience recordings per split ({} without a bank)."""
    from ..sim.soundbank import SPLITS
    from ..training.augment import bank_ambience

    return {s: bank_ambience(sound_bank, s) for s in SPLITS} if sound_bank is not None else {}


def _augmenter(augment: bool, ambience: dict):
    """The training augmentation with the bank's train ambience (None without --augment)."""
    from ..config import get_settings
    from ..training.augment import Augmenter

    return Augmenter(ambience=ambience.get("train", []), cache_dir=get_settings().cache_dir) if augment else None


def _with_background(clips, ambience: dict, seed: int):
    """``clips`` plus background clips per split, as many as one action class has there."""
    from ..labels import CLASSES
    from ..training.augment import background_waves, with_background

    rng = np.random.default_rng([seed, 12])
    waves = {
        s: background_waves(
            max(1, int(np.sum(clips.split == s)) // len(CLASSES)), clips.mic.shape[1], rng, ambience.get(s, [])
        )
        for s in ("train", "val", "test")
    }
    return with_background(clips, waves)


def _with_bank_clips(clips, sound_bank, per_class: int, background: bool, seed: int):
    """``clips`` plus ``per_class`` sound-bank clips per class of the train takes and a quarter as
    many of the val takes; (clips, what was drawn per split)."""
    from ..config import get_settings
    from ..geometry import SAMPLE_RATE
    from ..training.bank_clips import BankClipConfig, bank_clips
    from .soundbank import _progress

    config = BankClipConfig(seconds=clips.mic.shape[1] / SAMPLE_RATE)  # as long as the dataset's clips
    drawn: dict[str, Any] = {}
    for split, n in (("train", per_class), ("val", max(1, per_class // 4))):
        with _progress(f"bank clips ({split})") as bar:
            task = bar.add_task("", total=None)

            def advance(done: int, total: int, task=task, bar=bar) -> None:
                bar.update(task, completed=done, total=total)

            made = bank_clips(
                sound_bank,
                split,
                config,
                seed=seed,
                clips_per_class=n,
                background=background,
                cache_dir=get_settings().cache_dir,
                progress=advance,
            )
        clips = clips.extended(made.waves, made.labels, np.full(len(made.labels), split), f"bank-{split}")
        drawn[split] = made.describe()
    drawn["bank"] = str(sound_bank.root)
    return clips, drawn


def _fit_and_test(cfg, clips, scen, out: str, resume: bool, quiet: bool, extra: dict, augmenter=None) -> dict:
    from ..training.distributed import init_distributed, is_main_process
    from ..training.engine import accuracy, fit, predict_logits
    from ..training.runs import write_run_info

    init_distributed(cfg.device)
    train, val = clips.select("train", scen), clips.select("val", scen)
    info = fit(
        cfg,
        train,
        val,
        out,
        soft=extra.pop("_soft", None),
        resume=resume,
        progress=not quiet,
        extra_info=extra,
        augmenter=augmenter,
    )
    model = info.pop("_model")
    if not is_main_process():
        return info
    test = clips.select("test")
    logits = predict_logits(model, test, info["input_kind"], device=info["device"])
    mine = np.isin(test.scenario, scen)
    info["test"] = {
        "test_accuracy": accuracy(logits[mine], test.label[mine]),
        **{
            f"test_accuracy_scenario_{k}": accuracy(logits[test.scenario == k], test.label[test.scenario == k])
            for k in (1, 2, 3)
        },
    }
    write_run_info(out, info)
    console.print(
        f"{cfg.model}: best val acc {info['best_val_accuracy']}, "
        f"test acc {info['test']['test_accuracy']:.3f} (epoch {info['best_epoch']} of "
        f"{info['epochs_run']}, {info['seconds_per_epoch']:.1f} s/epoch) -> {out}",
        highlight=False,
    )
    return info


@app.command()
def train(
    model: str = typer.Argument(..., help="dualcamnet|resnet50|temporal_resnet50|avnet|hearnet|soundnet"),
    data: str = typer.Option(..., help="Dataset directory (with manifest.json)"),
    out: str = typer.Option(..., help="Run directory (run.json, last.pt, best.pt)"),
    scenarios: str = _SCENARIOS,
    split: str = _SPLIT,
    epochs: int = _EPOCHS,
    batch_size: int = _BATCH,
    lr: float = _LR,
    weight_decay: float = _WD,
    patience: int = _PATIENCE,
    seed: int = _SEED,
    device: str = _DEVICE,
    threads: int = _THREADS,
    resume: bool = _RESUME,
    variant: str = typer.Option("code", help="DualCamNet: 'code' (official code) or 'paper' (the paper's text)"),
    weights: str = typer.Option(None, help="Local pretrained weights (state dict) for the visual teachers"),
    clip_seconds: float = _CLIP,
    mfcc_seconds: int = _MFCC_S,
    video_frames: int = _VFRAMES,
    frame_size: str = _FSIZE,
    max_clips_per_session: int = _MAXCLIPS,
    quiet: bool = _QUIET,
    augment: bool = _AUGMENT,
    bank: str = _BANK,
    background: bool = _BACKGROUND,
    bank_clips: int = _BANK_CLIPS,
    spec_augment: bool = _SPEC_AUGMENT,
):
    """Train a teacher (DualCamNet, ResNet-50, Temporal ResNet-50, AVNet) or a student on hard labels."""
    _torch()
    from ..training.engine import TrainConfig
    from ..training.models import input_kind

    if variant not in ("code", "paper"):
        fail(f"--variant must be 'code' or 'paper', got {variant!r}")
    if weights and not Path(weights).is_file():
        fail(f"weights file {weights} does not exist")
    cfg = TrainConfig(
        model,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        patience=patience,
        seed=seed,
        device=device,
        threads=threads,
        variant=variant,
        weights=weights,
        augment=augment,
        background=background,
        spec_augment=spec_augment,
    )
    if bank_clips:
        _student_only(model, "--bank-clips")
    scen = _scenarios(scenarios)
    clips = _load(
        data,
        split,
        clip_seconds,
        mfcc_seconds,
        video_frames,
        frame_size,
        max_clips_per_session,
        *_needs(input_kind(model)),
    )
    extra: dict = {"dataset": str(data), "command": _command()}
    sound_bank = _bank_for(bank, augment or background, bank_clips)
    ambience = _bank_ambience(sound_bank)
    if background:
        clips = _with_background(clips, ambience, seed)
    if bank_clips:
        clips, extra["bank_clips"] = _with_bank_clips(clips, sound_bank, bank_clips, background, seed)
    _fit_and_test(cfg, clips, scen, out, resume, quiet, extra, augmenter=_augmenter(augment, ambience))


def _student_only(model: str, option: str) -> None:
    from ..training.models import model_names

    if model not in model_names("student"):
        fail(f"{option} is for students ({', '.join(model_names('student'))}), not {model}")


@app.command()
def distill(
    student: str = typer.Argument(..., help="hearnet|soundnet"),
    teacher: str = typer.Option(..., help="Run directory of a trained teacher (e.g. DualCamNet)"),
    data: str = typer.Option(..., help="Dataset directory (with manifest.json)"),
    out: str = typer.Option(..., help="Run directory for the student"),
    lam: float = typer.Option(0.5, "--lambda", help="Imitation weight: (1-λ)·CE(y) + λ·CE(soft labels)"),
    temperature: float = typer.Option(1.0, help="Softmax temperature T of the teacher's soft labels"),
    scenarios: str = _SCENARIOS,
    split: str = _SPLIT,
    epochs: int = _EPOCHS,
    batch_size: int = _BATCH,
    lr: float = _LR,
    weight_decay: float = _WD,
    patience: int = _PATIENCE,
    seed: int = _SEED,
    device: str = _DEVICE,
    threads: int = _THREADS,
    resume: bool = _RESUME,
    clip_seconds: float = _CLIP,
    mfcc_seconds: int = _MFCC_S,
    video_frames: int = _VFRAMES,
    frame_size: str = _FSIZE,
    max_clips_per_session: int = _MAXCLIPS,
    quiet: bool = _QUIET,
    augment: bool = _AUGMENT,
    bank: str = _BANK,
    background: bool = _BACKGROUND,
    bank_clips: int = _BANK_CLIPS,
    spec_augment: bool = _SPEC_AUGMENT,
):
    """Distil a student (HearNet, OurSoundNet) from a teacher's soft labels softmax(f_t(x*)/T).

    Clips the teacher cannot see (--background, --bank-clips: one microphone only) are learned from
    their hard labels (their soft label is their one-hot label)."""
    _torch()
    from ..training.engine import TrainConfig, soft_labels
    from ..training.models import model_names
    from ..training.runs import load_run

    if student not in model_names("student"):
        fail(f"the student must be one of {', '.join(model_names('student'))}, got {student!r}")
    cfg = TrainConfig(
        student,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        patience=patience,
        seed=seed,
        device=device,
        threads=threads,
        lam=lam,
        temperature=temperature,
        teacher=str(teacher),
        augment=augment,
        background=background,
        spec_augment=spec_augment,
    )
    teacher_model, tinfo = load_run(teacher)
    need_mfcc, need_video = _needs(tinfo["input_kind"])
    scen = _scenarios(scenarios)
    clips = _load(
        data, split, clip_seconds, mfcc_seconds, video_frames, frame_size, max_clips_per_session, need_mfcc, need_video
    )
    soft = soft_labels(teacher_model, clips, tinfo["input_kind"], temperature)  # every clip; train rows below
    train = (clips.split == "train") & np.isin(clips.scenario, scen)
    teacher_acc = float(np.mean(soft[train].argmax(1) == clips.label[train])) if train.any() else float("nan")
    console.print(
        f"soft labels from {tinfo['model']} ({teacher}): {int(train.sum())} clips, teacher train acc {teacher_acc:.3f}",
        highlight=False,
    )
    extra: dict = {"dataset": str(data), "command": _command(), "teacher_model": tinfo["model"]}
    sound_bank = _bank_for(bank, augment or background, bank_clips)
    ambience = _bank_ambience(sound_bank)
    if background or bank_clips:
        from dataclasses import replace

        n_dataset = len(clips)
        clips = replace(clips, mfcc=None, frames=None)  # the teacher's inputs are done with
        if background:
            clips = _with_background(clips, ambience, seed)
        if bank_clips:
            clips, extra["bank_clips"] = _with_bank_clips(clips, sound_bank, bank_clips, background, seed)
        n_classes = len(cfg.classes)
        soft = np.concatenate(
            [np.pad(soft, ((0, 0), (0, n_classes - soft.shape[1]))), np.eye(n_classes)[clips.label[n_dataset:]]]
        ).astype(np.float32)
    train = (clips.split == "train") & np.isin(clips.scenario, scen)
    extra["_soft"] = soft[train]
    _fit_and_test(cfg, clips, scen, out, resume, quiet, extra, augmenter=_augmenter(augment, ambience))


@app.command()
def evaluate(
    data: str = typer.Option(..., help="Dataset directory (with manifest.json), all three scenarios"),
    out: str = typer.Option("docs/results", help="Results: cells/ (a JSON per cell), <split>/table<N>.md|csv|png"),
    recipes: str = typer.Option(None, help="Directory of table<N>.toml recipes (default: the paper's)"),
    tables: str = typer.Option("1,2,3,4", help="Which of the recipes' tables: a list of 1, 2, 3, 4"),
    seeds: int = typer.Option(None, help="Seeds per cell (default: the recipe's, 3)"),
    splits: str = typer.Option(None, help="Split columns, e.g. subject_split,chunk_split (default: the recipe's)"),
    teachers: str = typer.Option(None, help="Table 1 columns, e.g. D,R (default: all of the recipe's)"),
    transfer_students: str = typer.Option(None, help="Table 4 rows: hearnet, soundnet (default: both)"),
    epochs: int = typer.Option(None, help="Epoch cap of every run (default: the recipe's, 100)"),
    patience: int = typer.Option(None, help="Early-stopping patience (default: the recipe's, 10)"),
    batch_size: int = typer.Option(None, help="Batch size (default: the recipe's, 32)"),
    lam: float = typer.Option(None, "--lambda", help="Distillation imitation weight λ (default: the recipe's, 0.5)"),
    temperature: float = typer.Option(None, help="Distillation temperature T (default: the recipe's, 1)"),
    max_train_clips: int = typer.Option(None, help="Subsample every training set to this many clips (default: none)"),
    budget_hours: float = typer.Option(None, help="Cut the setting (epoch cap, cells, splits, seeds) to fit H hours"),
    plan_only: bool = typer.Option(False, "--plan-only", help="Print the budget plan and exit without training"),
    timings: str = typer.Option(None, help="Per-clip timings JSON of an earlier plan (default: measure now)"),
    measure_batches: int = typer.Option(2, help="Batches (of up to 16 clips) timed per model for the plan"),
    resume: bool = typer.Option(False, "--resume", help="Skip the finished cells in --out, continue unfinished runs"),
    work: str = typer.Option("runs/evaluate", help="Run directories (checkpoints) of every cell"),
    device: str = _DEVICE,
    threads: int = _THREADS,
    clip_seconds: float = _CLIP,
    mfcc_seconds: int = _MFCC_S,
    video_frames: int = _VFRAMES,
    frame_size: str = _FSIZE,
    max_clips_per_session: int = _MAXCLIPS,
    quiet: bool = _QUIET,
):
    """The paper's Tables 1-4 from their recipes, one JSON per finished cell, with a budget plan first.

    Run it once per core with the same arguments and --resume: the processes share the cells."""
    _torch()
    from ..training.data import SPLIT_COLUMNS, read_manifest  # no torch yet: bad options fail fast

    table_ids = _int_list(tables, "--tables")
    counts = {"--seeds": seeds, "--epochs": epochs, "--patience": patience, "--batch-size": batch_size}
    for name, value in counts.items():
        if value is not None and value < 1:
            fail(f"{name} must be at least 1")
    if budget_hours is not None and budget_hours <= 0:
        fail("--budget-hours must be positive")
    split_list = tuple(v.strip() for v in splits.split(",") if v.strip()) if splits else None
    if split_list is not None and (not split_list or not set(split_list) <= set(SPLIT_COLUMNS)):
        fail(f"--splits must be a list of {', '.join(SPLIT_COLUMNS)}, got {splits!r}")
    out_dir, work_dir = Path(out), Path(work)
    plan_file = out_dir / "plan.json"
    if any((out_dir / "cells").glob("*/table*/*.json")) and not (resume or plan_only):
        fail(f"{out_dir} holds finished cells: pass --resume to keep them and skip them, or choose another --out")

    from ..training import planner
    from ..training.evaluation import Evaluation, plan_cells, run_recipes
    from ..training.models import input_kind
    from ..training.recipe import RECIPES_DIR, load_recipes, shrink
    from ..training.runs import write_json_atomic
    from ..training.tables import read_cells, write_tables

    every = load_recipes(recipes or RECIPES_DIR)
    if unknown := [t for t in table_ids if t not in every]:
        fail(f"--tables: no recipe for table(s) {unknown}; the recipes have {sorted(every)}")
    pinned = resume and epochs is None and plan_file.is_file()
    if pinned:
        epochs = json.loads(plan_file.read_text())["epoch_cap"]  # a resumed run keeps its epoch cap
    base = shrink(
        every,
        epochs=epochs,
        patience=patience,
        batch_size=batch_size,
        temperature=temperature,
        lam=lam,
        seeds=seeds,
        splits=split_list,
    )
    columns = {}
    if teachers:
        columns[1] = tuple(t.strip().upper() for t in teachers.split(",") if t.strip())
        known = [c.name for c in every[1].columns] if 1 in every else []
        if bad := [t for t in columns[1] if t not in known]:
            fail(f"--teachers: unknown Table 1 columns {bad}; the recipe has {', '.join(known)}")
    if transfer_students:
        wanted = {t.strip().lower() for t in transfer_students.split(",") if t.strip()}
        rows = every[4].columns if 4 in every else ()
        columns[4] = tuple(c.name for c in rows if c.model in wanted or c.name.lower() in wanted)
    chosen = shrink(base, tables=table_ids, columns=columns)
    if not chosen:
        fail("nothing to run: the tables and columns asked for leave no cell")
    teacher_models = {c.model for c in base[1].columns} if 1 in base else set()
    kinds = {input_kind(c.model) for r in chosen.values() for c in r.columns} | {input_kind(m) for m in teacher_models}
    first_split = next(iter(chosen.values())).splits[0]
    clips = _load(
        data,
        first_split,
        clip_seconds,
        mfcc_seconds,
        video_frames,
        frame_size,
        max_clips_per_session,
        any(k.uses_mfcc for k in kinds),
        any(k.uses_video for k in kinds),
    )
    identity = {
        "dataset": str(Path(data).resolve()),
        "clip_options": clips.options.to_dict() | {"split_column": None},
        "max_train_clips": max_train_clips,
    }
    ev = Evaluation(
        clips,
        out_dir,
        work_dir,
        identity,
        resume=resume,
        device=device,
        threads=threads,
        max_train_clips=max_train_clips,
        progress=not quiet,
    )

    for p in plan_cells(chosen, base):
        ev.finished(p)  # refuses, before any measuring, a resume whose finished cells had other settings

    # the plan: measured per-clip times, the hours each model's runs take at most, the setting chosen
    setting = planner.Setting()
    models = sorted({c.model for r in chosen.values() for c in r.columns} | teacher_models)
    if timings:
        try:
            measured = json.loads(Path(timings).read_text())["seconds_per_clip"]
        except (OSError, ValueError, KeyError) as err:
            fail(f"--timings {timings}: {err}")
    else:
        console.print(f"measuring {measure_batches} batches of {', '.join(models)} here ...", highlight=False)
        batch = next(iter(chosen.values())).batch_size
        measured = planner.measure(models, clips, batch, measure_batches, device, threads)
    # what finished cells took per epoch corrects the few timed batches (timings.json keeps the raw ones)
    timing = planner.calibrate(measured, read_cells(out_dir))
    if budget_hours is not None:
        setting, estimate = planner.choose(chosen, base, ev, timing, budget_hours, epochs, pinned)
    else:
        estimate = planner.estimate(chosen, ev, timing, setting.teachers(base))
    cut = setting.apply(chosen)
    _print_plan(timing, estimate, threads)
    console.print(
        f"setting: {setting.describe(chosen)}"
        + (f" (chosen for --budget-hours {budget_hours:g})" if budget_hours is not None else ""),
        highlight=False,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = {
        "command": _command(),
        "epoch_cap": max(r.epochs for r in cut.values()),
        "setting": asdict(setting),
        "describe": setting.describe(chosen),
        "budget_hours": budget_hours,
        "expected_hours_at_most": estimate.hours,
        "runs": estimate.runs,
        "cells": estimate.cells,
        "by_model": estimate.by_model,
        "scale_from_cells": {m: t["scale"] for m, t in timing.items() if "scale" in t},
        "threads": threads,
    }
    write_json_atomic(out_dir / "timings.json", {"seconds_per_clip": measured, "threads": threads, "device": device})
    if plan_only:
        print(json.dumps(plan, indent=2))
        return
    write_json_atomic(plan_file, plan)

    preset = read_manifest(data).get("preset", "?")
    header = (
        f"Dataset: `{data}` (preset `{preset}`), {len(clips)} clips of {clip_seconds:g} s; teachers see "
        f"{mfcc_seconds} s of MFCC volumes and {video_frames} video frame(s) of {frame_size} per clip. "
        f"{setting.describe(chosen)}; patience {next(iter(cut.values())).patience}, Adam (lr 1e-3 teachers, "
        f"1e-4 students)"
        + (f", training sets subsampled to {max_train_clips} clips" if max_train_clips else ", whole training splits")
        + f".\n\nMade by: `{plan['command']}`"
    )
    t0 = time.perf_counter()
    ran = {(s, t) for t, r in cut.items() for s in r.splits}  # other tables keep the header of the run that made them
    done = run_recipes(
        cut,
        ev,
        teachers=setting.teachers(base),
        after_cell=lambda _: write_tables(out_dir, every, header, png=False, only=ran),
    )
    written = write_tables(out_dir, every, header, only=ran)
    console.print(
        f"{done['made']} cell(s) made, {done['skipped']} skipped, {done['elsewhere']} left to other processes; "
        f"{len(written)} table files under {out_dir} "
        f"in {time.perf_counter() - t0:.0f} s",
        highlight=False,
    )


def _int_list(text: str, name: str) -> tuple[int, ...]:
    parts = [t.strip() for t in text.split(",") if t.strip()]
    if not all(p.isdigit() for p in parts):
        fail(f"{name} must be a list like 1,2,3,4, got {text!r}")
    return tuple(sorted({int(p) for p in parts}))


def _print_plan(timing: dict, estimate, threads: int | None) -> None:
    """The planner's table: per model, runs to do, s per clip and epoch (calibrated), hours at most."""
    from rich.table import Table

    table = Table(title="budget plan (every run to its epoch cap; early stopping ends most sooner)")
    for col in ("model", "runs", "train clips/run", "train s/clip", "eval s/clip", "x from cells", "hours at most"):
        table.add_column(col, justify="left" if col == "model" else "right", no_wrap=col == "model")
    for model, m in sorted(estimate.by_model.items()):
        t = timing[model]
        table.add_row(
            model,
            str(m["runs"]),
            f"{m['train_clips']:.0f}",
            f"{t['train_s_per_clip']:.4f}",
            f"{t['eval_s_per_clip']:.4f}",
            f"{t['scale']:.2f} ({t['cells']})" if "scale" in t else "-",
            f"{m['hours']:.3f}",
        )
    console.print(table)
    from ..training.distributed import torch_threads

    cores = threads or torch_threads()
    console.print(
        f"expected at most {estimate.hours:.3f} h on this machine ({estimate.runs} runs, {estimate.cells} "
        f"cells to make; {cores} thread(s): {estimate.hours * cores:.3f} CPU-core hours)",
        highlight=False,
    )


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
    from ..training.runs import read_run_info, write_run_info

    if reproduce:
        info = read_run_info(run)
        info["reproduce"] = reproduce
        write_run_info(run, info)
    card = export_run(run, out, name)
    console.print(
        f"{card['name']}: {Path(out) / card['file']} (onnxruntime vs PyTorch max |diff| "
        f"{card['metrics']['onnx_max_abs_diff']:.2e})",
        highlight=False,
    )
    print(json.dumps(card, indent=2))


@app.command()
def quantize(
    data: str = typer.Option(..., help="Simulated dataset (dualcam-rt make-dataset): calibration and test clips"),
    model: str = typer.Option("models/hearnet.json", help="Card of the fp32 audio student"),
    out: str = typer.Option("models", help="Directory for <name>_int8.onnx and its card"),
    threads: int = typer.Option(1, help="onnxruntime threads for the accuracy and speed comparison"),
):
    """Statically quantize an audio student to int8 (onnxruntime QDQ) and compare it with fp32."""
    from ..pipelines.quantize import quantize_student

    measured = quantize_student(data, model, out, threads)
    console.print(
        f"int8 test accuracy {measured['test_accuracy']:.3f} (fp32 {measured['test_accuracy_fp32']:.3f}), "
        f"{measured['ms_per_item_int8'][1]} vs {measured['ms_per_item_fp32'][1]} ms per item",
        highlight=False,
    )
    print(json.dumps(measured, indent=2))
