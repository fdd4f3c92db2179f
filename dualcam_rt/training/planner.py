"""The budget planner: expected hours of an evaluation from measured per-clip times, and the
largest honest setting that fits a budget.

``measure`` times a few training batches (forward, backward, Adam step) and a few evaluation
batches of each model on this machine, on real clips of the dataset, with the threads and device
the run will use. A run's hours are then, at most (every run reaching its epoch cap):

    epochs x (train clips x train s/clip + val clips x eval s/clip)
    + teacher's soft labels (train clips x the teacher's eval s/clip) + test clips x eval s/clip

``choose`` walks the settings from the largest down and takes the first that fits. The epoch cap
falls first (100, 60, 40, 30, 20; never below 20, which early stopping at patience 10 needs to
mean anything), then the cells (the recipes' priorities: 4 Table 4, 3 Table 1's T and AV, 2
Table 2; Table 3 and Table 1's D and R always stay), then the second split, then the third seed
(never below two: a paired comparison needs a spread); each step down starts the epoch ladder
again from the top. It never subsamples a training split. Finished cells and finished runs
(``resume``) cost nothing.

A few timed batches can misjudge a whole epoch (timed next to another job on this project's
2-core machine, they overstated every model's by about 5x), so ``calibrate`` rescales each
model's timings by what its finished cells took per epoch, once an evaluation has some.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..errors import BadInput
from .data import Clips
from .distributed import resolve_device
from .engine import (
    ClipDataset,
    TrainConfig,
    predict_logits,
    seed_everything,
    set_input_stats,
)
from .evaluation import Evaluation, RunSpec, plan_cells
from .losses import distillation_loss
from .models import build_model, input_kind
from .recipe import Recipe, shrink

EPOCH_LADDER = (100, 60, 40, 30, 20)
PRIORITY_LADDER = (4, 3, 2, 1)
MIN_SEEDS = 2


MEASURE_BATCH = 16  # clips per timed batch: per-clip CPU cost is flat from ~8 up; 32 would double the wait


def measure(
    models: list[str],
    clips: Clips,
    batch_size: int = 32,
    batches: int = 2,
    device: str = "auto",
    threads: int | None = None,
) -> dict[str, dict[str, float]]:
    """{model: {"train_s_per_clip", "eval_s_per_clip"}} from ``batches`` timed batches (of at most
    MEASURE_BATCH clips) after one warm-up."""
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    out = {}
    for name in models:
        seed_everything(0)
        n = min(batch_size, MEASURE_BATCH, len(clips))
        sample = clips.take(np.arange(n))
        kind = input_kind(name)
        ds = ClipDataset(sample, kind, train=True)
        model = build_model(name)
        set_input_stats(model, ds)
        model.to(dev).train()
        opt = torch.optim.Adam(model.parameters(), lr=TrainConfig(name).learning_rate)
        batch = [torch.stack([ds.inputs(i)[k] for i in range(n)]).to(dev) for k in range(len(ds.inputs(0)))]
        labels = torch.as_tensor(sample.label).to(dev)
        timed = []
        for step in range(batches + 1):
            t0 = time.perf_counter()
            loss = distillation_loss(model(*batch), labels, torch.zeros(n, 14, device=dev), 0.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step:  # the first is a warm-up
                timed.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(batches):
            predict_logits(model, sample, kind, batch_size=n, device=dev)
        out[name] = {
            "train_s_per_clip": float(np.median(timed)) / n,
            "eval_s_per_clip": (time.perf_counter() - t0) / (batches * n),
        }
    return out


def calibrate(timings: dict[str, dict[str, float]], cells: list[dict]) -> dict[str, dict]:
    """``timings`` scaled per model by the median of (measured seconds per epoch) / (predicted
    seconds per epoch) over the finished ``cells`` that ran that model; each entry gains "scale"
    and "cells" (how many cells it rests on). Models without such cells keep their timings."""
    ratios: dict[str, list[float]] = {}
    for c in cells:
        run, t = c.get("run") or {}, timings.get(c.get("model", ""))
        if t is None or not run.get("seconds_per_epoch") or not run.get("train_clips"):
            continue
        predicted = run["train_clips"] * t["train_s_per_clip"] + (run.get("val_clips") or 0) * t["eval_s_per_clip"]
        ratios.setdefault(c["model"], []).append(run["seconds_per_epoch"] / predicted)
    out = {}
    for model, t in timings.items():
        if model not in ratios:
            out[model] = dict(t)
            continue
        k = float(np.median(ratios[model]))
        out[model] = {
            "train_s_per_clip": t["train_s_per_clip"] * k,
            "eval_s_per_clip": t["eval_s_per_clip"] * k,
            "scale": k,
            "cells": len(ratios[model]),
        }
    return out


@dataclass(frozen=True)
class Setting:
    """How far the recipes were cut to fit a budget (None: as the recipes say)."""

    epoch_cap: int | None = None
    priority: int | None = None
    splits: int | None = None  # the first N splits of each recipe
    seeds: int | None = None  # the first N seeds

    def apply(self, recipes: dict[int, Recipe]) -> dict[int, Recipe]:
        cut = shrink(recipes, epoch_cap=self.epoch_cap, priority=self.priority, seeds=self.seeds)
        if self.splits:
            cut = {t: replace(r, splits=r.splits[: self.splits]) for t, r in cut.items()}
        return cut

    def teachers(self, base: dict[int, Recipe]) -> dict[int, Recipe]:
        """The Table-1 recipe the students' teachers come from, at this setting's epoch cap."""
        return shrink(base, epoch_cap=self.epoch_cap)

    def describe(self, recipes: dict[int, Recipe]) -> str:
        cut = self.apply(recipes)
        parts = []
        for t, r in sorted(cut.items()):
            parts.append(
                f"Table {t} [{', '.join(c.name for c in r.columns)}] up to {r.epochs} epochs, "
                f"{len(r.seeds)} seed(s), split(s) {', '.join(r.splits)}"
            )
        return "; ".join(parts) or "nothing"


@dataclass
class Estimate:
    hours: float  # at most, on this machine, wall clock
    runs: int  # training runs still to do
    cells: int  # cells still to make
    by_model: dict[str, dict]  # model -> {"runs", "hours", "train_clips" (mean)}


def estimate(
    recipes: dict[int, Recipe],
    ev: Evaluation,
    timings: dict[str, dict[str, float]],
    teachers: dict[int, Recipe] | None = None,
) -> Estimate:
    """The hours the unfinished cells of ``recipes`` take at most (see the module docstring)."""
    todo = [p for p in plan_cells(recipes, teachers) if not ev.finished(p)]
    runs: dict[RunSpec, None] = {}
    for p in todo:
        for run in (p.run.teacher, p.run):
            if run is not None and not _run_finished(run, ev):
                runs[run] = None
    missing = sorted({r.model for r in runs} - set(timings))
    if missing:
        raise BadInput(f"no timings for {', '.join(missing)} (measure them: leave out --timings)")
    counts: dict[tuple, tuple[int, int, int]] = {}
    by_model: dict[str, dict] = {}
    total = 0.0
    for run in runs:
        key = (run.split, run.scenarios, run.seed)
        if key not in counts:
            train, val, test = ev.data(run.split, run.scenarios, run.seed)
            counts[key] = (len(train), len(val), len(test))
        n_train, n_val, n_test = counts[key]
        t = timings[run.model]
        epoch = n_train * t["train_s_per_clip"] + n_val * t["eval_s_per_clip"]
        seconds = run.epochs * epoch + n_test * t["eval_s_per_clip"]
        if run.teacher is not None:
            seconds += n_train * timings[run.teacher.model]["eval_s_per_clip"]
        m = by_model.setdefault(run.model, {"runs": 0, "hours": 0.0, "train_clips": 0})
        m["runs"] += 1
        m["hours"] += seconds / 3600
        m["train_clips"] += n_train
        total += seconds / 3600
    for m in by_model.values():
        m["train_clips"] = m["train_clips"] / m["runs"]
    return Estimate(total, len(runs), len(todo), by_model)


def _run_finished(run: RunSpec, ev: Evaluation) -> bool:
    out = run.run_dir(ev.work)
    return ev.resume and (out / "run.json").is_file() and not (out / "last.pt").is_file()


def ladder(recipes: dict[int, Recipe], epoch_cap: int | None = None, pinned: bool = False) -> list[Setting]:
    """The settings ``choose`` tries, largest first (see the module docstring); ``pinned`` keeps
    the epoch cap (a resumed evaluation must not mix two caps in one table)."""
    top = max(r.epochs for r in recipes.values())
    cap = min(top, epoch_cap or top)
    epochs = [cap] + ([] if pinned else [e for e in EPOCH_LADDER if e < cap])
    n_splits = max(len(r.splits) for r in recipes.values())
    n_seeds = max(len(r.seeds) for r in recipes.values())
    seeds = [n_seeds] + ([n_seeds - 1] if n_seeds - 1 >= MIN_SEEDS else [])
    splits = [n_splits] + ([1] if n_splits > 1 else [])
    return [Setting(e, p, sp, se) for se in seeds for sp in splits for p in PRIORITY_LADDER for e in epochs]


def choose(
    recipes: dict[int, Recipe],
    base: dict[int, Recipe],
    ev: Evaluation,
    timings: dict,
    budget_hours: float,
    epoch_cap: int | None = None,
    pinned: bool = False,
) -> tuple[Setting, Estimate]:
    """The largest setting whose estimate fits ``budget_hours`` (BadInput when none does);
    ``base`` holds the Table-1 recipe of the teachers."""
    settings = ladder(recipes, epoch_cap, pinned)
    for setting in settings:
        cut = setting.apply(recipes)
        if not cut:
            continue
        est = estimate(cut, ev, timings, setting.teachers(base))
        if est.hours <= budget_hours:
            return setting, est
    smallest = settings[-1]
    need = estimate(smallest.apply(recipes), ev, timings, smallest.teachers(base)).hours
    raise BadInput(
        f"no honest setting fits {budget_hours:g} h: the smallest ({smallest.describe(recipes)}) needs {need:.2f} h"
    )
