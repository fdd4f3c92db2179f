"""One clip in, one prediction out: features, onnxruntime, softmax, top-k, and the "no action" gate."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial

import numpy as np

from .gate import Gate, level_db
from .models import Model, softmax


def prediction(probs: np.ndarray, classes: list[str], top_k: int = 3) -> dict:
    """JSON-ready prediction of one probability vector (n_classes,): top-k and every class, ungated
    (``Gate.decide`` gives the answer consumers see)."""
    order = np.argsort(probs)[::-1][:top_k]
    return {
        "label": classes[order[0]],
        "top_k": [{"label": classes[i], "probability": round(float(probs[i]), 6)} for i in order],
        "probabilities": {c: round(float(p), 6) for c, p in zip(classes, probs)},
    }


def predict_batch(
    model: Model, make_inputs: list[Callable[[], np.ndarray]], pool: Executor | None = None
) -> tuple[np.ndarray, dict]:
    """Probabilities (B, n_classes) of B model inputs, each computed by a call (in ``pool``'s threads
    when given), and stage timings in ms."""
    t0 = time.perf_counter()
    if pool is None or len(make_inputs) == 1:
        batch = np.stack([make() for make in make_inputs])
    else:
        batch = np.stack(list(pool.map(lambda make: make(), make_inputs)))
    t1 = time.perf_counter()
    probs = softmax(model.logits(batch))
    t2 = time.perf_counter()
    return probs, {"features_ms": (t1 - t0) * 1e3, "inference_ms": (t2 - t1) * 1e3}


def predict_waves(model: Model, waves: list[np.ndarray]) -> tuple[np.ndarray, dict]:
    """Probabilities (B, n_classes) of B mono clips at the model's rate, and stage timings in ms."""
    return predict_batch(model, [partial(model.features, w) for w in waves])


def gated_answers(
    model: Model, waves: list[np.ndarray], top_k: int = 3, pa_per_unit: float = 1.0
) -> tuple[list[dict], dict]:
    """The gated answers of B mono clips at the model's rate (in units of ``pa_per_unit`` Pa):
    ``Gate.decide`` or, below the level gate, ``Gate.silence_answer`` without running the student;
    each with its ``level_db``. Stage timings in ms come back too."""
    gate = Gate.of(model.card)
    levels = [level_db(w, pa_per_unit) for w in waves]
    loud = [i for i, lv in enumerate(levels) if not gate.silent(lv)]
    answers = [gate.silence_answer() for _ in waves]
    timing = {"features_ms": 0.0, "inference_ms": 0.0}
    if loud:
        probs, timing = predict_waves(model, [waves[i] for i in loud])
        for i, p in zip(loud, probs):
            answers[i] = gate.decide(p, model.classes, top_k)
    for a, lv in zip(answers, levels):
        a["level_db"] = round(lv, 2) if np.isfinite(lv) else None
    return answers, timing
