"""The paper's experiments: cross-scenario Tables 1-3 and the feature-transfer Table 4 analogue.

Cross-scenario protocol (Tables 1-3): for each seed and each training set (scenario 1, 2, 3 or
all), train on that set's ``train`` split (early stopping on its ``val`` split) and test on the
``test`` split of every scenario (or of all, for "all"). Table 1 has the teachers (D DualCamNet,
R ResNet-50, T Temporal ResNet-50, AV AVNet); Tables 2 and 3 OurSoundNet and HearNet trained
on hard labels (G) or distilled from D or R of the same seed and training set.

Table 4 analogue: the held-out domain is scenario 3 (an unseen outdoor room with background
noise), never seen in training. Students distilled from DualCamNet on scenarios 1 and 2 are
frozen; each layer's activations (averaged over time) of scenario-3 clips feed a kNN (k validated
on a val third) and a linear SVM, trained on a train third and tested on a test third of the
scenario-3 clips (split in turn within each class, as DCASE brings its own split).

Results are mean ± std over seeds, written as Markdown, CSV and a PNG heat map per table.
"""

from __future__ import annotations

import csv
import json
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from ..errors import BadInput
from .data import Clips
from .engine import TrainConfig, accuracy, fit, predict_logits, soft_labels

console = Console(stderr=True)

TRAIN_SETS = {"Scenario 1": (1,), "Scenario 2": (2,), "Scenario 3": (3,), "All scenarios": (1, 2, 3)}
TEACHERS = {"D": "dualcamnet", "R": "resnet50", "T": "temporal_resnet50", "AV": "avnet"}
STUDENT_TABLES = {2: "soundnet", 3: "hearnet"}
TITLES = {1: "Test accuracy of the teachers. D: DualCamNet, R: ResNet-50, T: Temporal ResNet-50, AV: AVNet.",
          2: "Test accuracy of OurSoundNet. G: hard labels, D: DualCamNet soft labels, R: ResNet-50 soft labels.",
          3: "Test accuracy of HearNet. G: hard labels, D: DualCamNet soft labels, R: ResNet-50 soft labels.",
          4: "Feature transfer to a held-out domain (scenario 3): kNN (k validated) and linear SVM on frozen "
             "features of students distilled from DualCamNet on scenarios 1+2."}
TABLE4_LAYERS = {"hearnet": ("conv2", "conv3", "conv4", "conv5", "fc1"),
                 "soundnet": ("conv2", "conv3", "conv4", "conv5", "conv6", "fc1")}
KNN_KS = (1, 3, 5, 7, 9, 15)
ARCH_NAMES = {"hearnet": "HearNet", "soundnet": "OurSoundNet"}

# The paper's figures (train all / test all and same-scenario), for the notes beside our tables.
PAPER = {1: {"D": 0.7702, "R": 0.6335, "T": 0.6393, "AV": 0.8412},
         2: {"G": 0.4102, "D": 0.5299, "R": 0.4145}, 3: {"G": 0.6966, "D": 0.7009, "R": 0.6282}}


@dataclass
class EvalPlan:
    """What ``evaluate`` runs; sized by the caller to the machine (the paper: 100 epochs)."""

    tables: tuple[int, ...] = (1, 2, 3, 4)
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 100
    student_epochs: int | None = None  # None: same as epochs
    batch_size: int = 32
    patience: int = 10
    lam: float = 0.5
    temperature: float = 1.0
    device: str = "auto"
    threads: int | None = None
    max_train_clips: int | None = None  # subsample each training set (CPU budgets)
    teachers: tuple[str, ...] = tuple(TEACHERS)
    transfer_students: tuple[str, ...] = tuple(TABLE4_LAYERS)

    def __post_init__(self):
        bad = [t for t in self.tables if t not in (1, 2, 3, 4)]
        if bad:
            raise BadInput(f"unknown tables {bad}; the paper has tables 1-4")
        unknown = [t for t in self.teachers if t not in TEACHERS]
        if unknown:
            raise BadInput(f"unknown teacher columns {unknown}; known: {', '.join(TEACHERS)}")
        if not self.seeds:
            raise BadInput("at least one seed is needed")
        unknown = [s for s in self.transfer_students if s not in TABLE4_LAYERS]
        if unknown:
            raise BadInput(f"unknown Table 4 students {unknown}; known: {', '.join(TABLE4_LAYERS)}")


@dataclass
class Results:
    rows: list[dict] = field(default_factory=list)  # table, train_set, test_set, column, seed, accuracy
    seconds_per_epoch: dict[str, list[float]] = field(default_factory=dict)

    def add(self, table: int, train_set: str, test_set: str, column: str, seed: int, acc: float) -> None:
        self.rows.append({"table": table, "train_set": train_set, "test_set": test_set, "column": column,
                          "seed": seed, "accuracy": acc})

    def timing(self, model: str, info: dict) -> None:
        if info.get("seconds_per_epoch") is not None:
            self.seconds_per_epoch.setdefault(model, []).append(info["seconds_per_epoch"] / max(info["train_clips"], 1))


def _test_sets(train_set: str) -> list[tuple[str, tuple[int, ...]]]:
    if train_set == "All scenarios":
        return [("All scenarios", (1, 2, 3))]
    return [(f"Scenario {k}", (k,)) for k in (1, 2, 3)]


def _subsample(clips: Clips, n: int | None, seed: int) -> Clips:
    if n is None or len(clips) <= n:
        return clips
    return clips.take(np.sort(np.random.default_rng(seed).choice(len(clips), n, replace=False)))


def _test(results: Results, table: int, train_set: str, column: str, seed: int, model, kind: str,
          clips: Clips, device) -> None:
    test = clips.select("test")
    logits = predict_logits(model, test, kind, device=device)
    for name, scen in _test_sets(train_set):
        mask = np.isin(test.scenario, scen)
        results.add(table, train_set, name, column, seed, accuracy(logits[mask], test.label[mask]))


def run_cross_scenario(clips: Clips, plan: EvalPlan, work_dir: Path, results: Results) -> None:
    """Tables 1-3: every training set, seed and column; teachers are trained once and reused."""
    want_students = [t for t in (2, 3) if t in plan.tables]
    need = set(plan.teachers) if 1 in plan.tables else set()
    if want_students:
        need |= {"D", "R"}
    for seed in plan.seeds:
        for train_set, scen in TRAIN_SETS.items():
            train = _subsample(clips.select("train", scen), plan.max_train_clips, seed)
            val = clips.select("val", scen)
            teachers = {}
            for col in [c for c in TEACHERS if c in need]:
                model_name = TEACHERS[col]
                cfg = TrainConfig(model_name, epochs=plan.epochs, batch_size=plan.batch_size, patience=plan.patience,
                                  seed=seed, device=plan.device, threads=plan.threads)
                info = _fit_logged(cfg, train, val, work_dir / f"seed{seed}" / _slug(train_set) / model_name)
                results.timing(model_name, info)
                teachers[col] = info["_model"]
                if 1 in plan.tables and col in plan.teachers:
                    _test(results, 1, train_set, col, seed, teachers[col], info["input_kind"], clips, info["device"])
            for table in want_students:
                student = STUDENT_TABLES[table]
                for col, teacher_col in (("G", None), ("D", "D"), ("R", "R")):
                    soft, lam = None, 0.0
                    if teacher_col:
                        kind = TEACHERS[teacher_col]
                        from .models import input_kind
                        soft = soft_labels(teachers[teacher_col], train, input_kind(kind), plan.temperature,
                                           device=next(teachers[teacher_col].parameters()).device)
                        lam = plan.lam
                    cfg = TrainConfig(student, epochs=plan.student_epochs or plan.epochs, batch_size=plan.batch_size,
                                      patience=plan.patience, seed=seed, device=plan.device, threads=plan.threads,
                                      lam=lam, temperature=plan.temperature)
                    info = _fit_logged(cfg, train, val, work_dir / f"seed{seed}" / _slug(train_set) / f"{student}_{col}",
                                       soft=soft)
                    results.timing(student, info)
                    _test(results, table, train_set, col, seed, info["_model"], info["input_kind"], clips, info["device"])


def layer_features(model, clips: Clips, kind: str, layers: tuple[str, ...], batch_size: int = 32) -> dict[str, np.ndarray]:
    """Each layer's activations averaged over time: {layer: (n, channels)} float32."""
    from .engine import ClipDataset

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


def run_transfer(clips: Clips, plan: EvalPlan, work_dir: Path, results: Results) -> None:
    """Table 4 analogue (see the module docstring)."""
    source = (1, 2)
    held = clips.select(scenarios=(3,))
    parts = domain_split(held)
    if min(len(p) for p in parts.values()) == 0:
        raise BadInput("Table 4 needs at least three scenario-3 clips of some class")
    for seed in plan.seeds:
        train = _subsample(clips.select("train", source), plan.max_train_clips, seed)
        val = clips.select("val", source)
        cfg = TrainConfig("dualcamnet", epochs=plan.epochs, batch_size=plan.batch_size, patience=plan.patience,
                          seed=seed, device=plan.device, threads=plan.threads)
        teacher = _fit_logged(cfg, train, val, work_dir / f"seed{seed}" / "transfer" / "dualcamnet")["_model"]
        soft = soft_labels(teacher, train, "mfcc_volume", plan.temperature, device=next(teacher.parameters()).device)
        for student in plan.transfer_students:
            layers = TABLE4_LAYERS[student]
            cfg = TrainConfig(student, epochs=plan.student_epochs or plan.epochs, batch_size=plan.batch_size,
                              patience=plan.patience, seed=seed, device=plan.device, threads=plan.threads,
                              lam=plan.lam, temperature=plan.temperature)
            model = _fit_logged(cfg, train, val, work_dir / f"seed{seed}" / "transfer" / student, soft=soft)["_model"]
            feats = {s: layer_features(model, p, cfg_kind(student), layers) for s, p in parts.items()}
            for layer in layers:
                knn, svm, k = transfer_scores(feats["train"][layer], parts["train"].label, feats["val"][layer],
                                              parts["val"].label, feats["test"][layer], parts["test"].label)
                name = f"{ARCH_NAMES[student]}/{layer}"
                results.add(4, name, "Scenario 3", "kNN", seed, knn)
                results.add(4, name, "Scenario 3", "SVM", seed, svm)
                results.add(4, name, "Scenario 3", "k", seed, float(k))


def cfg_kind(model: str) -> str:
    from .models import input_kind

    return input_kind(model)


def _fit_logged(cfg: TrainConfig, train: Clips, val: Clips, out: Path, soft=None) -> dict:
    t0 = time.perf_counter()
    info = fit(cfg, train, val, out, soft=soft, progress=False)
    console.print(f"  {out.parent.parent.name}/{out.parent.name}/{out.name}: {info['epochs_run']} epochs, "
                  f"val acc {info['best_val_accuracy'] if info['best_val_accuracy'] is not None else float('nan'):.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", highlight=False)
    return info


def _slug(name: str) -> str:
    return name.lower().replace(" ", "_")


# -- reporting --------------------------------------------------------------------------------

def summarise(results: Results, table: int) -> tuple[list[tuple[str, str]], list[str], dict]:
    """Row keys (train, test), column names and {(row, col): (mean, std, n)} of one table."""
    rows = [r for r in results.rows if r["table"] == table]
    keys = list(dict.fromkeys((r["train_set"], r["test_set"]) for r in rows))
    cols = list(dict.fromkeys(r["column"] for r in rows))
    stats = {}
    for key in keys:
        for col in cols:
            vals = np.array([r["accuracy"] for r in rows if (r["train_set"], r["test_set"]) == key and r["column"] == col])
            vals = vals[~np.isnan(vals)]
            if len(vals):
                stats[key, col] = (float(vals.mean()), float(vals.std()), len(vals))
    return keys, cols, stats


def write_tables(results: Results, out_dir: Path, header: str) -> list[Path]:
    """Markdown + CSV + PNG per table under ``out_dir``; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for table in sorted({r["table"] for r in results.rows}):
        keys, cols, stats = summarise(results, table)
        first = ("Features", "Test set") if table == 4 else ("Train set", "Test set")
        md = [f"# Table {table}", "", TITLES[table], "", header, "",
              "| " + " | ".join([*first, *cols]) + " |", "| " + " | ".join(["---"] * (2 + len(cols))) + " |"]
        for key in keys:
            cells = []
            for col in cols:
                m = stats.get((key, col))
                cells.append("–" if m is None else (f"{m[0]:.1f}" if col == "k" else f"{m[0]:.3f} ± {m[1]:.3f}"))
            md.append("| " + " | ".join([*key, *cells]) + " |")
        if table in PAPER:
            md += ["", "Paper, train all / test all: " + ", ".join(f"{c} {v:.3f}" for c, v in PAPER[table].items())]
        path_md = out_dir / f"table{table}.md"
        path_md.write_text("\n".join(md) + "\n")
        path_csv = out_dir / f"table{table}.csv"
        with path_csv.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow([first[0].lower().replace(" ", "_"), "test_set", "column", "mean", "std", "n_seeds", "values"])
            for key in keys:
                for col in cols:
                    vals = [r["accuracy"] for r in results.rows if r["table"] == table
                            and (r["train_set"], r["test_set"]) == key and r["column"] == col]
                    if (key, col) in stats:
                        m, s, n = stats[key, col]
                        w.writerow([*key, col, f"{m:.4f}", f"{s:.4f}", n, " ".join(f"{v:.4f}" for v in vals)])
        acc_cols = [c for c in cols if c != "k"]
        grid = np.array([[stats.get((k, c), (np.nan,))[0] for c in acc_cols] for k in keys])
        fig, ax = plt.subplots(figsize=(1.4 * len(acc_cols) + 3, 0.45 * len(keys) + 1.5))
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(acc_cols)), acc_cols)
        ax.set_yticks(range(len(keys)), [f"{a} → {b}" if table != 4 else a for a, b in keys])
        for i in range(len(keys)):
            for j in range(len(acc_cols)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center",
                            color="white" if grid[i, j] < 0.5 else "black", fontsize=8)
        ax.set_title(f"Table {table}: test accuracy (mean over seeds)", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.04)
        fig.tight_layout()
        path_png = out_dir / f"table{table}.png"
        fig.savefig(path_png, dpi=110)
        plt.close(fig)
        written += [path_md, path_csv, path_png]
    return written


def run_evaluation(clips: Clips, plan: EvalPlan, out_dir: str | Path, header: str,
                   work_dir: str | Path | None = None) -> dict:
    """Run the planned tables seed by seed, rewriting them under ``out_dir`` after each seed (so an
    interrupted evaluation leaves the seeds it finished); returns a summary dict."""
    out = Path(out_dir)
    results = Results()
    t0 = time.perf_counter()
    tag = "".join(str(t) for t in plan.tables)
    summary: dict = {}
    with tempfile.TemporaryDirectory(prefix="dualcam-eval-") as tmp:
        work = Path(work_dir) if work_dir else Path(tmp)
        for i, seed in enumerate(plan.seeds):
            one = replace(plan, seeds=(seed,))
            if any(t in plan.tables for t in (1, 2, 3)):
                run_cross_scenario(clips, one, work, results)
            if 4 in plan.tables:
                run_transfer(clips, one, work, results)
            timing = {m: float(np.mean(v)) for m, v in results.seconds_per_epoch.items()}
            done = (f"\n\nSeeds finished: {i + 1} of {len(plan.seeds)}. CPU training time per epoch and training "
                    "clip (s): " + ", ".join(f"{m} {v:.3f}" for m, v in sorted(timing.items())))
            written = write_tables(results, out, header + done)
            summary = {"plan": asdict(plan), "seeds_finished": i + 1, "rows": results.rows,
                       "seconds_per_epoch_per_clip": timing, "wall_seconds": time.perf_counter() - t0,
                       "files": [str(p) for p in written]}
            (out / f"results_tables{tag}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
