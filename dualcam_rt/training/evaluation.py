"""Runs the recipes (the paper's Tables 1-4, ``training/recipe.py``) with the one training engine.

A **cell** is one (table, column, train set, seed, split): one training run and its test
accuracies. Each cell is written to ``<out>/cells/<split>/table<N>/<train set>_<column>_seed<K>.json``
(atomically) the moment it ends; with ``resume`` the cells already there are skipped, so one
evaluation can span several working days. A cell records the settings it was made with (epoch
cap, patience, batch size, λ, T, dataset, clip options); resuming with other settings is refused
rather than mixing two protocols in one table.

Cross-scenario protocol (Tables 1-3): train on the train set's ``train`` clips (early stopping on
its ``val`` clips), test on the ``test`` clips of each scenario (or of all, for a train set of all
three). A distilled student of Tables 2-3 takes its soft labels from the Table-1 teacher of the
same split, seed and train set; teachers are trained once and reused (their run directories live
under ``work``, and ``resume`` reuses the finished ones).

Transfer protocol (Table 4 analogue): a student distilled on the source scenarios is frozen; each
layer's activations (averaged over time) of the held-out scenario's clips feed a kNN (k chosen on
a val third) and a linear SVM, trained on a train third and tested on a test third of them (in
turn within each class, as DCASE brings its own split).

Several ``evaluate`` processes with the same arguments share the work: each (split, seed, train
set) group, whose cells share their teacher runs, is claimed by one process through an exclusive
lock on ``<work>/claims/<group>.lock`` (released by the kernel if that process dies), and cells
finished by another process are skipped. One process per core fills a table that many times sooner.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from ..errors import BadInput
from .data import Clips
from .distributed import resolve_device
from .engine import ClipDataset, TrainConfig, accuracy, fit, predict_logits, soft_labels
from .models import input_kind
from .recipe import TEACHER_TABLE, Column, Recipe
from .runs import LAST_FILE, load_run, write_json_atomic

console = Console(stderr=True)
CELLS_DIR = "cells"
KNN_KS = (1, 3, 5, 7, 9, 15)


def plain(x):
    """``x`` as it reads back from JSON (tuples become lists), so that settings compare equal."""
    return json.loads(json.dumps(x, default=str))


def slug(name: str) -> str:
    return name.lower().replace(" ", "_").replace("+", "_")


@dataclass(frozen=True)
class Cell:
    """One cell of a table: which table, column, train set, seed and split."""

    table: int
    column: str
    train_set: str
    seed: int
    split: str

    def path(self, out: Path) -> Path:
        name = f"{slug(self.train_set)}_{self.column}_seed{self.seed}.json"
        return out / CELLS_DIR / self.split / f"table{self.table}" / name


@dataclass(frozen=True)
class RunSpec:
    """One training run: a model on a train set of one split and seed (a student: with its teacher)."""

    model: str
    train_set: str
    scenarios: tuple[int, ...]
    seed: int
    split: str
    epochs: int
    patience: int
    batch_size: int
    lam: float = 0.0
    temperature: float = 1.0
    teacher: RunSpec | None = None

    @property
    def name(self) -> str:
        if self.teacher is None:
            return self.model
        return f"{self.model}_from_{self.teacher.model}_lam{self.lam:g}_T{self.temperature:g}"

    def run_dir(self, work: Path) -> Path:
        return work / self.split / f"seed{self.seed}" / slug(self.train_set) / self.name

    def config(self, device: str, threads: int | None) -> TrainConfig:
        return TrainConfig(
            self.model,
            epochs=self.epochs,
            batch_size=self.batch_size,
            patience=self.patience,
            seed=self.seed,
            device=device,
            threads=threads,
            lam=self.lam if self.teacher else 0.0,
            temperature=self.temperature,
        )

    def settings(self) -> dict:
        """What decides this run's result, as recorded in its cell."""
        d = {k: v for k, v in asdict(self).items() if k not in ("teacher", "train_set", "split", "seed")}
        d["teacher"] = None if self.teacher is None else self.teacher.settings()
        return d


@dataclass(frozen=True)
class Planned:
    """A cell still to make (or made), the run that makes it, its recipe and column."""

    cell: Cell
    run: RunSpec
    recipe: Recipe
    column: Column


def teacher_run(
    recipes: dict[int, Recipe], column: str, train_set: str, scenarios: tuple[int, ...], seed: int, split: str
) -> RunSpec:
    """The Table-1 run of ``column`` (its model, epoch cap, patience, batch size) on this data."""
    r = recipes[TEACHER_TABLE]
    return RunSpec(r.column(column).model, train_set, scenarios, seed, split, r.epochs, r.patience, r.batch_size)


def plan_cells(recipes: dict[int, Recipe], teachers: dict[int, Recipe] | None = None) -> list[Planned]:
    """Every cell of the recipes with its run, grouped by split, seed and train set.

    ``teachers`` holds the Table-1 recipe the students' teachers come from (default: ``recipes``'
    own, which must then include table 1 even if only to name the teachers)."""
    teachers = teachers or recipes
    out = []
    for t, r in sorted(recipes.items()):
        for split in r.splits:
            for seed in r.seeds:
                for train_set, scen in r.train_sets.items():
                    for c in r.columns:
                        if t == TEACHER_TABLE:
                            run = RunSpec(c.model, train_set, scen, seed, split, r.epochs, r.patience, r.batch_size)
                        else:
                            teacher = (
                                teacher_run(teachers, c.teacher, train_set, scen, seed, split) if c.teacher else None
                            )
                            run = RunSpec(
                                c.model,
                                train_set,
                                scen,
                                seed,
                                split,
                                r.epochs,
                                r.patience,
                                r.batch_size,
                                c.lam if teacher else 0.0,
                                r.temperature,
                                teacher,
                            )
                        out.append(Planned(Cell(t, c.name, train_set, seed, split), run, r, c))
    return sorted(out, key=lambda p: (p.cell.split, p.cell.seed, p.cell.train_set, p.cell.table))


@dataclass
class Evaluation:
    """Where and how the cells are made (everything but the recipes)."""

    clips: Clips  # every clip of the dataset, every split column
    out: Path
    work: Path  # run directories (checkpoints), outside the results
    data_identity: dict  # dataset, clip options, training-set cap: recorded in every cell
    resume: bool = False
    device: str = "auto"
    threads: int | None = None
    max_train_clips: int | None = None  # None: the whole training split (the default)
    progress: bool = False

    def cell_settings(self, p: Planned) -> dict:
        return {"run": p.run.settings(), "data": self.data_identity}

    def finished(self, p: Planned) -> bool:
        """True when the cell is on disk with these settings (only when resuming)."""
        path = p.cell.path(self.out)
        if not self.resume or not path.is_file():
            return False
        old = json.loads(path.read_text())
        if old.get("settings") != plain(self.cell_settings(p)):
            raise BadInput(
                f"{path} was made with other settings (epoch cap, patience, λ, T, dataset or clips); "
                "resume with the same settings or choose another --out"
            )
        return True

    def data(self, split: str, scenarios: tuple[int, ...], seed: int) -> tuple[Clips, Clips, Clips]:
        """(train, val, test) clips of a split; train and val only of ``scenarios``."""
        clips = self.clips.with_split(split)
        train = clips.select("train", scenarios)
        if self.max_train_clips is not None and len(train) > self.max_train_clips:
            pick = np.random.default_rng(seed).choice(len(train), self.max_train_clips, replace=False)
            train = train.take(np.sort(pick))
        return train, clips.select("val", scenarios), clips.select("test")

    def obtain(self, run: RunSpec, soft_from: torch.nn.Module | None = None) -> tuple[torch.nn.Module, dict]:
        """The trained model of ``run``: a finished run under ``work`` with the same settings (when
        resuming), else trained (continuing its ``last.pt`` when resuming)."""
        out = run.run_dir(self.work)
        train, val, _ = self.data(run.split, run.scenarios, run.seed)
        want = plain({"settings": run.settings(), "data": self.data_identity})
        if self.resume and (out / "run.json").is_file() and not (out / LAST_FILE).is_file():
            try:
                model, info = load_run(out, device=resolve_device(self.device))
                if info.get("evaluation") == want:
                    return model, info
            except BadInput as err:  # weights of an older network: made again below
                console.print(f"{err}; training it again", highlight=False)
        soft = None
        if run.teacher is not None:
            if soft_from is None:
                raise BadInput(f"{run.name} is distilled: its teacher's model is needed")
            soft = soft_labels(soft_from, train, input_kind(run.teacher.model), run.temperature)
        t0 = time.perf_counter()
        info = fit(
            run.config(self.device, self.threads),
            train,
            val,
            out,
            soft=soft,
            resume=self.resume,
            progress=self.progress,
            extra_info={"evaluation": want, "dataset": self.data_identity["dataset"]},
        )
        (out / LAST_FILE).unlink(missing_ok=True)  # finished: best.pt is all a later step needs
        best = info["best_val_accuracy"]
        console.print(
            f"  {run.split}/seed{run.seed}/{slug(run.train_set)}/{run.name}: {info['epochs_run']} epochs "
            f"(best {info['best_epoch']}), val acc {best if best is not None else float('nan'):.3f}, "
            f"{time.perf_counter() - t0:.0f} s",
            highlight=False,
        )
        return info.pop("_model"), info

    def write_cell(self, p: Planned, info: dict, results: dict, seconds: float) -> Path:
        path = p.cell.path(self.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            path,
            {
                **asdict(p.cell),
                "model": p.run.model,
                "train_scenarios": list(p.run.scenarios),
                "teacher": p.column.teacher,
                "held_out_scenario": p.recipe.held_out_scenario,
                "results": results,
                "settings": self.cell_settings(p),
                "run": {
                    k: info.get(k)
                    for k in (
                        "train_clips",
                        "val_clips",
                        "epochs_run",
                        "best_epoch",
                        "best_val_accuracy",
                        "early_stopped",
                        "seconds_per_epoch",
                        "device",
                    )
                },
                "seconds_per_epoch_per_clip": (
                    info["seconds_per_epoch"] / max(info["train_clips"], 1) if info.get("seconds_per_epoch") else None
                ),
                "seconds": seconds,
                "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
        return path


@contextmanager
def claim(lock: Path) -> Iterator[bool]:
    """Yields True while this process holds the exclusive lock ``lock``, False when another does."""
    import fcntl  # POSIX; the lock lives as long as the open file, so a killed process frees it

    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def test_sets(scenarios: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    """Where a run trained on ``scenarios`` is tested: all together for all three, else each one."""
    if set(scenarios) == {1, 2, 3}:
        return [("All scenarios", (1, 2, 3))]
    return [(f"Scenario {k}", (k,)) for k in (1, 2, 3)]


def run_recipes(
    recipes: dict[int, Recipe], ev: Evaluation, teachers: dict[int, Recipe] | None = None, after_cell=None
) -> dict:
    """Make every cell of ``recipes`` not yet finished; ``after_cell(path)`` is called after each.
    Returns {"made": n, "skipped": n (finished before), "elsewhere": n (left to other processes)}."""
    planned = plan_cells(recipes, teachers)
    todo = [p for p in planned if not ev.finished(p)]
    skipped = len(planned) - len(todo)
    if skipped:
        console.print(f"resume: skipping {skipped} finished cell(s) of {len(planned)}", highlight=False)
    models: dict[RunSpec, tuple[torch.nn.Module, dict]] = {}  # the runs of the current split/seed/train set

    def model_of(run: RunSpec) -> tuple[torch.nn.Module, dict]:
        if run not in models:
            teacher = model_of(run.teacher)[0] if run.teacher is not None else None
            models[run] = ev.obtain(run, soft_from=teacher)
        return models[run]

    groups: dict[tuple, list[Planned]] = {}
    for p in todo:
        groups.setdefault((p.cell.split, p.cell.seed, p.cell.train_set), []).append(p)
    made = elsewhere = 0
    for (split, seed, train_set), cells in groups.items():
        group = f"{split}/seed{seed}/{slug(train_set)}"  # as its runs lie under ``work``
        with claim(ev.work / "claims" / f"{group.replace('/', '_')}.lock") as mine:
            if not mine:
                console.print(f"{group}: another process has it", highlight=False)
                elsewhere += len(cells)
                continue
            models.clear()
            for p in cells:
                if p.cell.path(ev.out).is_file():  # made by another process since the plan
                    elsewhere += 1
                    continue
                path = make_cell(p, ev, model_of)
                made += 1
                if after_cell:
                    after_cell(path)
    return {"made": made, "skipped": skipped, "elsewhere": elsewhere}


def make_cell(p: Planned, ev: Evaluation, model_of) -> Path:
    """Trains (or reuses) the cell's run, tests it and writes the cell."""
    t0 = time.perf_counter()
    model, info = model_of(p.run)
    if p.recipe.protocol == "transfer":
        results = transfer_results(model, p, ev)
    else:
        _, _, test = ev.data(p.run.split, p.run.scenarios, p.run.seed)
        logits = predict_logits(model, test, input_kind(p.run.model), device=next(model.parameters()).device)
        results = {
            name: accuracy(logits[np.isin(test.scenario, s)], test.label[np.isin(test.scenario, s)])
            for name, s in test_sets(p.run.scenarios)
        }
    path = ev.write_cell(p, info, results, time.perf_counter() - t0)
    console.print(
        f"cell {path.relative_to(ev.out)}: "
        + ", ".join(f"{k} {v:.3f}" for k, v in results.items() if isinstance(v, float)),
        highlight=False,
    )
    return path


# -- the transfer protocol --------------------------------------------------------------------


def layer_features(model, clips: Clips, kind, layers: tuple[str, ...], batch_size: int = 32) -> dict[str, np.ndarray]:
    """Each layer's activations averaged over time: {layer: (n, channels)} float32."""
    model.eval()
    device = next(model.parameters()).device
    ds = ClipDataset(clips, kind)
    out: dict[str, list] = {k: [] for k in layers}
    with torch.no_grad():
        for i in range(0, len(ds), batch_size):
            x = torch.stack([ds.inputs(j)[0] for j in range(i, min(i + batch_size, len(ds)))]).to(device)
            acts = model.layer_outputs(x)
            for k in layers:
                out[k].append(acts[k].mean(dim=2).cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def transfer_scores(train_x, train_y, val_x, val_y, test_x, test_y) -> tuple[float, float, int]:
    """Test accuracy of kNN (k chosen on val) and of a linear SVM; also the chosen k."""
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    ks = [k for k in KNN_KS if k <= len(train_y)] or [1]
    best_k = max(ks, key=lambda k: (KNeighborsClassifier(k).fit(train_x, train_y).score(val_x, val_y), -k))
    knn = KNeighborsClassifier(best_k).fit(np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y]))
    svm = make_pipeline(StandardScaler(), LinearSVC(C=1.0, max_iter=5000)).fit(train_x, train_y)
    return float(knn.score(test_x, test_y)), float(svm.score(test_x, test_y)), best_k


def domain_split(clips: Clips) -> dict[str, Clips]:
    """The held-out domain's own split: within each class, clips in turn to train, val, test."""
    rank = np.zeros(len(clips), dtype=int)
    for c in np.unique(clips.label):
        idx = np.flatnonzero(clips.label == c)
        rank[idx] = np.arange(len(idx))
    return {name: clips.take(rank % 3 == i) for i, name in enumerate(("train", "val", "test"))}


def transfer_results(model, p: Planned, ev: Evaluation) -> dict:
    """{layer: {"kNN": acc, "SVM": acc, "k": k}} on the held-out scenario (see the module docstring)."""
    held = p.recipe.held_out_scenario
    if held is None:
        raise BadInput(f"{p.recipe.source}: the transfer protocol needs held_out_scenario")
    parts = domain_split(ev.clips.select(scenarios=(held,)))
    if min(len(x) for x in parts.values()) == 0:
        raise BadInput(f"Table {p.cell.table} needs at least three clips of some class in scenario {held}")
    kind = input_kind(p.run.model)
    feats = {s: layer_features(model, x, kind, p.column.layers) for s, x in parts.items()}
    out = {}
    for layer in p.column.layers:
        knn, svm, k = transfer_scores(
            feats["train"][layer],
            parts["train"].label,
            feats["val"][layer],
            parts["val"].label,
            feats["test"][layer],
            parts["test"].label,
        )
        out[layer] = {"kNN": knn, "SVM": svm, "k": k}
    return out
