"""The paper's experiments as data: one recipe per table (``training/recipes/table<N>.toml``).

A recipe says which models fill a table's columns (a student column names the Table-1 column
whose run gives its soft labels), the training sets (scenarios), seeds, splits, the epoch cap,
patience, batch size, λ and T, and the paper's figures. ``evaluation.run_recipes`` runs them with
the one training engine; ``shrink`` is how the budget planner makes them smaller.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import BadInput
from .data import SPLIT_COLUMNS
from .models import MODELS

RECIPES_DIR = Path(__file__).with_name("recipes")
PROTOCOLS = ("cross_scenario", "transfer")
TEACHER_TABLE = 1  # the table whose columns are the teachers students are distilled from


@dataclass(frozen=True)
class Column:
    """One column of a table: a model, and for a distilled student its teacher and λ."""

    name: str
    model: str
    teacher: str | None = None  # a column of Table 1 (its run of the same split, seed and train set)
    lam: float = 0.0  # imitation weight λ (0: hard labels)
    paper: float | None = None  # the paper's train all / test all accuracy
    priority: int = 1  # --budget-hours keeps columns of priority <= its level (1: always)
    layers: tuple[str, ...] = ()  # transfer protocol: the layers whose features are scored


@dataclass(frozen=True)
class Recipe:
    """One of the paper's tables as configuration."""

    table: int
    title: str
    protocol: str
    columns: tuple[Column, ...]
    train_sets: dict[str, tuple[int, ...]]
    splits: tuple[str, ...] = ("subject_split", "chunk_split")
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 100
    patience: int = 10
    batch_size: int = 32
    temperature: float = 1.0
    paired: tuple[tuple[str, str], ...] = ()  # (A, B): per cell, A - B over seeds
    held_out_scenario: int | None = None  # transfer protocol only
    source: str = field(default="", compare=False)  # the file it came from

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def load_recipe(path: str | Path) -> Recipe:
    """A recipe from a TOML file (BadInput with the file's name when it is malformed)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
        columns = tuple(Column(**{**c, "layers": tuple(c.get("layers", ()))}) for c in raw.pop("columns"))
        recipe = Recipe(
            **{
                **raw,
                "columns": columns,
                "train_sets": {k: tuple(v) for k, v in raw.pop("train_sets").items()},
                "splits": tuple(raw.get("splits", Recipe.splits)),
                "seeds": tuple(raw.get("seeds", Recipe.seeds)),
                "paired": tuple(tuple(p) for p in raw.get("paired", ())),
                "source": str(path),
            }
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as err:
        raise BadInput(f"recipe {path}: {err}") from None
    _check(recipe)
    return recipe


def load_recipes(directory: str | Path = RECIPES_DIR) -> dict[int, Recipe]:
    """Every ``table*.toml`` recipe of a directory, by table number."""
    recipes = {r.table: r for r in map(load_recipe, sorted(Path(directory).glob("table*.toml")))}
    if not recipes:
        raise BadInput(f"no table*.toml recipes in {directory}")
    for r in recipes.values():
        for c in r.columns:
            if c.teacher and (
                TEACHER_TABLE not in recipes or c.teacher not in [t.name for t in recipes[TEACHER_TABLE].columns]
            ):
                raise BadInput(f"recipe {r.source}: column {c.name}'s teacher {c.teacher!r} is not a column of Table 1")
    return recipes


def _check(r: Recipe) -> None:
    where = f"recipe {r.source}"
    if r.protocol not in PROTOCOLS:
        raise BadInput(f"{where}: protocol must be one of {PROTOCOLS}, got {r.protocol!r}")
    bad = [c.model for c in r.columns if c.model not in MODELS]
    if bad:
        raise BadInput(f"{where}: unknown models {bad}; known: {', '.join(MODELS)}")
    bad = [s for s in r.splits if s not in SPLIT_COLUMNS]
    if bad:
        raise BadInput(f"{where}: unknown splits {bad}; known: {', '.join(SPLIT_COLUMNS)}")
    names = [c.name for c in r.columns]
    if len(set(names)) != len(names) or not names:
        raise BadInput(f"{where}: column names must be present and unique, got {names}")
    if any(a not in names or b not in names for a, b in r.paired):
        raise BadInput(f"{where}: paired comparisons {r.paired} name columns not in {names}")
    if any(not set(s) <= {1, 2, 3} or not s for s in r.train_sets.values()):
        raise BadInput(f"{where}: train sets must list scenarios 1, 2 or 3")
    if r.protocol == "transfer" and (r.held_out_scenario not in (1, 2, 3) or any(not c.layers for c in r.columns)):
        raise BadInput(f"{where}: the transfer protocol needs held_out_scenario and every column's layers")
    if min(r.epochs, r.patience, r.batch_size) < 1 or not r.seeds or not r.splits:
        raise BadInput(f"{where}: epochs, patience and batch size must be >= 1, seeds and splits non-empty")


def shrink(
    recipes: dict[int, Recipe],
    *,
    tables: tuple[int, ...] | None = None,
    epoch_cap: int | None = None,
    seeds: int | None = None,
    splits: tuple[str, ...] | None = None,
    priority: int | None = None,
    columns: dict[int, tuple[str, ...]] | None = None,
    **overrides,
) -> dict[int, Recipe]:
    """The recipes cut to a setting: only ``tables``, at most ``epochs`` epochs, the first ``seeds``
    seeds, only ``splits``, columns of at most ``priority`` (or named in ``columns[table]``);
    ``overrides`` (epochs, patience, batch_size, temperature, lam; None: the recipe's) replace
    recipe fields before the cap applies. A table left with no columns is dropped."""
    out = {}
    for t, r in recipes.items():
        if tables is not None and t not in tables:
            continue
        keep = tuple(
            c
            for c in r.columns
            if (priority is None or c.priority <= priority)
            and (columns is None or t not in columns or c.name in columns[t])
        )
        if not keep:
            continue
        lam = overrides.get("lam")
        keep = tuple(replace(c, lam=lam) if lam is not None and c.teacher else c for c in keep)
        names = {c.name for c in keep}
        r = replace(r, **{k: v for k, v in overrides.items() if k != "lam" and v is not None})
        out[t] = replace(
            r,
            columns=keep,
            epochs=min(r.epochs, epoch_cap or r.epochs),
            seeds=_first_seeds(r.seeds, seeds),
            splits=splits or r.splits,
            paired=tuple(p for p in r.paired if set(p) <= names),
        )
    return out


def _first_seeds(seeds: tuple[int, ...], n: int | None) -> tuple[int, ...]:
    """The recipe's first ``n`` seeds (continued 0, 1, 2, ... past its list); all when n is None."""
    if n is None:
        return seeds
    extra = [s for s in range(n + len(seeds)) if s not in seeds]
    return (tuple(seeds) + tuple(extra))[:n]
