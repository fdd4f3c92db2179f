"""A statically quantized int8 copy of an audio student, and its accuracy and speed against fp32.

``dualcam-rt quantize --data DATASET --model models/hearnet.json --out models`` calibrates
onnxruntime's static quantizer (QDQ, uint8 activations, per-channel int8 weights, MinMax
calibration) on the student inputs of training clips of a simulated dataset
(``dualcam-rt make-dataset``), then measures both models on the dataset's test clips and
onnxruntime's per-item time, and writes ``<name>_int8.onnx`` with its card (the fp32 card plus
what was done and measured).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..inference.models import open_session, read_card
from ..threads import cpu_budget
from ..training.data import ClipOptions, load_clips, read_manifest

CALIBRATION_CLIPS = 64


def quantize(fp32_path: Path, out_path: Path, calibration: np.ndarray, input_name: str) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration[i : i + 8] for i in range(0, len(calibration), 8))

        def get_next(self):
            batch = next(self.items, None)
            return None if batch is None else {input_name: batch}

    prepared = out_path.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32_path), str(prepared))
    try:
        quantize_static(
            str(prepared),
            str(out_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
    finally:
        prepared.unlink(missing_ok=True)


def predicted(session, x: np.ndarray) -> np.ndarray:
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i : i + 16]})[0] for i in range(0, len(x), 16)]).argmax(1)


def ms_per_item(session, x: np.ndarray, batch: int, repeats: int = 10) -> float:
    name = session.get_inputs()[0].name
    xb = np.ascontiguousarray(np.resize(x, (batch, *x.shape[1:])))
    session.run(None, {name: xb})
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, {name: xb})
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3 / batch


def _machine() -> str:
    """CPU model and whether it has the VNNI int8 instructions (what makes int8 fast on x86)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    vnni = "avx512_vnni" in info or "avx_vnni" in info
    return f"{model}, {cpu_budget()} CPU(s) usable, VNNI {'yes' if vnni else 'no'}"


def quantize_student(
    data: str | Path, model: str | Path = "models/hearnet.json", out: str | Path = "models", threads: int = 1
) -> dict:
    """Write ``<name>_int8.onnx`` and its card into ``out`` for the fp32 student whose card is
    ``model``, calibrated on ``data``'s train clips; returns what was measured on val and test."""
    card_path = Path(model)
    card = read_card(card_path)
    fp32_path = card_path.parent / card["file"]
    name = f"{card['name']}_int8"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    int8_path = out / f"{name}.onnx"
    split_column = card.get("training", {}).get("split_column", "split")  # the student's own val/test clips
    clips = load_clips(str(data), ClipOptions(split_column=split_column), need_mfcc=False, need_video=False)
    preset = read_manifest(str(data)).get("preset", "?")
    train = clips.select("train")
    pick = np.random.default_rng(0).choice(len(train), min(CALIBRATION_CLIPS, len(train)), replace=False)
    kind = card["input"]["kind"]  # the student's own input: spectrogram or waveform
    calibration = train.take(np.sort(pick)).student_features(kind)
    quantize(fp32_path, int8_path, calibration, card["input"].get("name", "input"))

    fp32, int8 = open_session(fp32_path, threads), open_session(int8_path, threads)
    measured: dict[str, Any] = {}
    for split in ("val", "test"):
        part = clips.select(split)
        x = part.student_features(kind)
        a, b = predicted(fp32, x), predicted(int8, x)
        measured.update(
            {
                f"{split}_clips": len(part),
                f"{split}_accuracy_fp32": float(np.mean(a == part.label)),
                f"{split}_accuracy": float(np.mean(b == part.label)),
                f"{split}_agreement_with_fp32": float(np.mean(a == b)),
            }
        )
    measured.update({"ms_per_item_fp32": {}, "ms_per_item_int8": {}})
    for batch in (1, 16):  # interleaved, so that both see the same machine load
        for _ in range(3):
            for key, session in (("ms_per_item_fp32", fp32), ("ms_per_item_int8", int8)):
                ms = round(ms_per_item(session, x, batch), 3)
                measured[key][batch] = min(ms, measured[key].get(batch, ms))
    new_card = {
        **card,
        "name": name,
        "file": int8_path.name,
        "quantization": {
            "of": card["file"],
            "tool": "onnxruntime.quantization.quantize_static",
            "format": "QDQ",
            "activations": "uint8",
            "weights": "int8 per channel",
            "calibration": f"MinMax on {len(calibration)} clips of the train split of the "
            f"simulated {preset} dataset (dualcam-rt make-dataset --preset {preset})",
            "measured": {**measured, "threads": threads, "machine": _machine()},
            "reproduce": f"dualcam-rt make-dataset --out data/{preset} --preset {preset} && "
            f"dualcam-rt quantize --data data/{preset} --model {model} "
            f"--out {out}",
        },
    }
    new_card["metrics"] = {
        k: measured[k] for k in ("val_accuracy", "test_accuracy", "test_accuracy_fp32", "test_agreement_with_fp32")
    }
    (out / f"{name}.json").write_text(json.dumps(new_card, indent=2) + "\n")
    return measured
