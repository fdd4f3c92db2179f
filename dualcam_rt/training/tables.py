"""The paper's tables from the finished cells: Markdown, CSV and a PNG heat map per table and split.

Every figure is the mean ± sample standard deviation (ddof 1) over the seeds whose cell is
finished. Where a recipe pairs two columns (Tables 2-3: D vs G, R vs G), each row also gets the
paired comparison over seeds: the per-seed differences A - B (same seed, so the same data, split
and initial shuffle), their mean, their standard deviation and in how many seeds A beat B.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Collection
from pathlib import Path

import numpy as np

from .evaluation import CELLS_DIR
from .recipe import Recipe

ARCH_NAMES = {"hearnet": "HearNet", "soundnet": "OurSoundNet"}


def read_cells(out: Path) -> list[dict]:
    """Every finished cell under ``out/cells`` (sorted by path)."""
    return [json.loads(p.read_text()) for p in sorted((out / CELLS_DIR).glob("*/table*/*.json"))]


def rows_of(cells: list[dict]) -> list[dict]:
    """One row per (table, train set, test set, column, seed): accuracy. Table 4's rows are
    "<student>/<layer>" with columns kNN, SVM and k."""
    rows = []
    for c in cells:
        base = {"split": c["split"], "table": c["table"], "seed": c["seed"]}
        if any(isinstance(v, dict) for v in c["results"].values()):  # the transfer protocol: per layer
            for layer, scores in c["results"].items():
                for col, v in scores.items():
                    rows.append(
                        {
                            **base,
                            "train_set": f"{c['column']}/{layer}",
                            "test_set": f"Scenario {c.get('held_out_scenario')}",
                            "column": col,
                            "accuracy": float(v),
                        }
                    )
        else:
            for test_set, v in c["results"].items():
                rows.append(
                    {
                        **base,
                        "train_set": c["train_set"],
                        "test_set": test_set,
                        "column": c["column"],
                        "accuracy": float(v),
                    }
                )
    return rows


def mean_std(values) -> tuple[float, float, int]:
    """(mean, sample std with ddof 1 (NaN for one value), n) of the non-NaN values."""
    v = np.asarray([x for x in values if not np.isnan(x)], float)
    if not len(v):
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan"), len(v)


def paired(rows: list[dict], a: str, b: str) -> dict[tuple[str, str], dict]:
    """Per (train set, test set): the differences a - b of the seeds both columns finished, with
    their mean, std (ddof 1), n and how many seeds a was better (> b)."""
    by: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
    for r in rows:
        by.setdefault((r["train_set"], r["test_set"]), {}).setdefault(r["column"], {})[r["seed"]] = r["accuracy"]
    out = {}
    for key, cols in by.items():
        seeds = sorted(set(cols.get(a, {})) & set(cols.get(b, {})))
        diffs = [cols[a][s] - cols[b][s] for s in seeds if not np.isnan(cols[a][s] - cols[b][s])]
        if diffs:
            m, s, n = mean_std(diffs)
            out[key] = {"mean": m, "std": s, "n": n, "wins": int(sum(d > 0 for d in diffs)), "diffs": diffs}
    return out


def _in_recipe_order(recipe: Recipe | None, keys: list, cols: list) -> tuple[list, list]:
    """Rows and columns in the order the recipe lists them (train sets, columns, layers)."""
    if recipe is None:
        return keys, cols
    names = [c.name for c in recipe.columns]
    if recipe.protocol == "transfer":  # rows "<column>/<layer>", columns kNN, SVM, k

        def row(k):
            col, layer = k[0].split("/", 1)
            c = recipe.column(col) if col in names else None
            return (names.index(col) if c else len(names), c.layers.index(layer) if c and layer in c.layers else 99)

        return sorted(keys, key=row), cols
    sets = list(recipe.train_sets) + ["Scenario 1", "Scenario 2", "Scenario 3", "All scenarios"]

    def at(name: str) -> int:
        return sets.index(name) if name in sets else len(sets)

    keys = sorted(keys, key=lambda k: (at(k[0]), at(k[1])))
    return keys, sorted(cols, key=lambda c: names.index(c) if c in names else 99)


def _fmt(m: float, s: float, k: bool = False) -> str:
    if np.isnan(m):
        return "–"
    if k:
        return f"{m:.1f}"
    return f"{m:.3f}" if np.isnan(s) else f"{m:.3f} ± {s:.3f}"


def _fmt_diff(d: dict | None) -> str:
    if d is None:
        return "–"
    spread = "" if np.isnan(d["std"]) else f" ± {d['std']:.3f}"
    return f"{d['mean']:+.3f}{spread} ({d['wins']}/{d['n']})"


def write_tables(
    out: Path,
    recipes: dict[int, Recipe],
    header: str,
    png: bool = True,
    only: Collection[tuple[str, int]] | None = None,
) -> list[Path]:
    """``out/<split>/table<N>.md|.csv|.png`` (and ``table<N>_paired.csv``) from every finished cell;
    with ``only``, just those (split, table) pairs (the header describes the run that made them)."""
    rows = rows_of(read_cells(out))
    written = []
    for split in sorted({r["split"] for r in rows}):
        for table in sorted({r["table"] for r in rows if r["split"] == split}):
            if only is not None and (split, table) not in only:
                continue
            mine = [r for r in rows if r["split"] == split and r["table"] == table]
            written += _write_table(out / split, table, recipes.get(table), mine, split, header, png)
    return written


def _write_table(
    out: Path, table: int, recipe: Recipe | None, rows: list[dict], split: str, header: str, png: bool
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    keys, cols = _in_recipe_order(
        recipe,
        list(dict.fromkeys((r["train_set"], r["test_set"]) for r in rows)),
        list(dict.fromkeys(r["column"] for r in rows)),
    )
    values = {
        (k, c): [r["accuracy"] for r in rows if (r["train_set"], r["test_set"]) == k and r["column"] == c]
        for k in keys
        for c in cols
    }
    stats = {kc: mean_std(v) for kc, v in values.items()}
    pairs = {f"{a} − {b}": paired(rows, a, b) for a, b in (recipe.paired if recipe else ())}
    first = ("Features", "Test set") if table == 4 else ("Train set", "Test set")
    seeds = sorted({r["seed"] for r in rows})
    title = recipe.title if recipe else f"Table {table}"
    md = [
        f"# Table {table} (split `{split}`)",
        "",
        title,
        "",
        header,
        "",
        f"Seeds finished: {', '.join(map(str, seeds))}. Mean ± std (ddof 1) over seeds."
        + (
            " Paired columns: mean ± std of the per-seed difference (seeds where the first is better / seeds)."
            if pairs
            else ""
        ),
        "",
        "| " + " | ".join([*first, *cols, *pairs]) + " |",
        "| " + " | ".join(["---"] * (2 + len(cols) + len(pairs))) + " |",
    ]
    for key in keys:
        cells = [_fmt(*stats[key, c][:2], k=c == "k") for c in cols] + [_fmt_diff(p.get(key)) for p in pairs.values()]
        md.append("| " + " | ".join([*key, *cells]) + " |")
    papers = {c.name: c.paper for c in recipe.columns if c.paper is not None} if recipe else {}
    if papers:
        md += ["", "Paper, train all / test all: " + ", ".join(f"{c} {v:.3f}" for c, v in papers.items())]
    path_md, path_csv = out / f"table{table}.md", out / f"table{table}.csv"
    path_md.write_text("\n".join(md) + "\n")
    with path_csv.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([first[0].lower().replace(" ", "_"), "test_set", "column", "mean", "std", "n_seeds", "values"])
        for key in keys:
            for c in cols:
                m, s, n = stats[key, c]
                if n:
                    w.writerow(
                        [
                            *key,
                            c,
                            f"{m:.4f}",
                            "" if np.isnan(s) else f"{s:.4f}",
                            n,
                            " ".join(f"{v:.4f}" for v in values[key, c]),
                        ]
                    )
    written = [path_md, path_csv]
    if pairs:
        path_pairs = out / f"table{table}_paired.csv"
        with path_pairs.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(
                [
                    "train_set",
                    "test_set",
                    "comparison",
                    "mean_difference",
                    "std_difference",
                    "n_seeds",
                    "seeds_better",
                    "differences",
                ]
            )
            for name, p in pairs.items():
                for key, d in p.items():
                    w.writerow(
                        [
                            *key,
                            name.replace(" − ", "-"),
                            f"{d['mean']:.4f}",
                            "" if np.isnan(d["std"]) else f"{d['std']:.4f}",
                            d["n"],
                            d["wins"],
                            " ".join(f"{x:.4f}" for x in d["diffs"]),
                        ]
                    )
        written.append(path_pairs)
    if png:
        written.append(_heat_map(out / f"table{table}.png", table, split, keys, [c for c in cols if c != "k"], stats))
    return written


def _heat_map(path: Path, table: int, split: str, keys, cols, stats) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.array([[stats[k, c][0] for c in cols] for k in keys])
    fig, ax = plt.subplots(figsize=(1.4 * len(cols) + 3, 0.45 * len(keys) + 1.5))
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(keys)), [f"{a} → {b}" if table != 4 else a for a, b in keys])
    for i in range(len(keys)):
        for j in range(len(cols)):
            if not np.isnan(grid[i, j]):
                ax.text(
                    j,
                    i,
                    f"{grid[i, j]:.2f}",
                    ha="center",
                    va="center",
                    color="white" if grid[i, j] < 0.5 else "black",
                    fontsize=8,
                )
    ax.set_title(f"Table {table} ({split}): test accuracy (mean over seeds)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
