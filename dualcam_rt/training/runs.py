"""A run directory on disk: ``run.json`` (configuration, data, history, metrics), ``last.pt``
(everything needed to resume) and ``best.pt`` (the weights with the best validation accuracy).

Every file is written atomically (temporary file + rename), so a kill never leaves a torn one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import BadInput, NotFound
from .models import build_model

RUN_FILE, BEST_FILE, LAST_FILE = "run.json", "best.pt", "last.pt"


def save_atomic(obj, path: Path) -> None:
    """``torch.save`` through a temporary file and a rename."""
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: dict) -> None:
    """JSON (numpy scalars, tuples and paths allowed) through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def write_run_info(run_dir: str | Path, info: dict) -> None:
    """Write ``run.json`` (keys starting with ``_`` hold in-memory objects and are left out)."""
    write_json_atomic(Path(run_dir) / RUN_FILE, {k: v for k, v in info.items() if not k.startswith("_")})


def read_run_info(run_dir: str | Path) -> dict:
    """A run's ``run.json`` (NotFound if the directory holds no finished run)."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file() or not (Path(run_dir) / BEST_FILE).is_file():
        raise NotFound(f"{run_dir} is not a finished training run (no run.json / best.pt)")
    return json.loads(path.read_text())


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The best model of a finished run (eval mode) and its ``run.json``."""
    info = read_run_info(run_dir)
    model = build_model(
        info["model"],
        variant=info["config"].get("variant"),
        weights=None,
        n_classes=len(info.get("classes", ())) or None,
    )
    state = torch.load(Path(run_dir) / BEST_FILE, map_location=device, weights_only=True)["model"]
    if not fits(model, state):
        raise BadInput(
            f"{run_dir}: its weights do not fit today's {info['model']} network (trained by an older "
            "dualcam-rt?): train it again, or remove the run directory"
        )
    model.load_state_dict(state)
    return model.to(device).eval(), info


def fits(model: nn.Module, state: dict) -> bool:
    """True when ``state`` has exactly ``model``'s tensors, shape for shape (load_state_dict would
    otherwise copy the tensors that fit before it fails)."""
    own = model.state_dict()
    return own.keys() == state.keys() and all(own[k].shape == state[k].shape for k in own)


def _json_default(x):
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, tuple):
        return list(x)
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
