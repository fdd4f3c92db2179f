"""The GPU check (issue 13): CuPy parity tests, ``bench beamform`` on CuPy, onnxruntime's CUDA provider; JSON out.

    benchmarks/gpu_check.sh [--backend cupy|numpy] [OUT_DIR]     (OUT_DIR: default $OUT, else ./gpu-check)

Written for the borrowed H200 machine (its Python 3.12 image: CuPy, numba, numpy, scipy, onnxruntime
for the CPU, pytest, rich, OpenCV; no pydantic, fastapi, soundfile or pyroomacoustics, and no
package registry). Everything it imports is on that image, so no wheels need to travel; any
``benchmarks/gpu_wheels/*.whl`` that do (``make gpu-check-wheels``) are installed first by the
shell wrapper. It finishes in well under 6 minutes and writes ``OUT_DIR/gpu_check.json``.

Without a usable GPU it stops with one line and exit status 1. ``--backend numpy`` is the dry
run: the same steps on the CPU reference, with short timings, so that the writer, the bench
plumbing and the provider probe are exercised where no GPU exists (the CUDA-event timer itself
can only run on a GPU).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"single_fps": 5_000, "batched_fps": 30_000}  # issue 13, H200, 36 x 48 x 512 maps of 128 mics
PYTEST_TIMEOUT_S = 180


def gpu_description() -> dict:
    import cupy

    device = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(device.id)
    return {
        "name": props["name"].decode(),
        "memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
        "compute_capability": device.compute_capability,
        "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "cupy": cupy.__version__,
    }


def parity_tests() -> dict:
    """The tests marked gpu (CuPy against the NumPy reference); where no GPU exists they report as skipped."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "gpu",
        "-q",
        "-rs",
        "-p",
        "no:cacheprovider",
        "tests/test_beamform.py",
    ]
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=PYTEST_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"passed": False, "summary": f"timed out after {PYTEST_TIMEOUT_S} s"}
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return {
        "passed": done.returncode == 0,
        "returncode": done.returncode,
        "summary": lines[-1] if lines else "",
        "output_tail": "\n".join(lines[-15:]),
    }


def bench(backend: str) -> dict:
    from dualcam_rt.bench.beamform import run

    dry = backend != "cupy"
    figures = run(backends=[backend], baselines=False, arrays=False, single_seconds=0.5 if dry else 4.0)
    f = figures[backend]
    figures["targets"] = {
        **TARGETS,
        "single_of_target": f["single_fps"] / TARGETS["single_fps"],
        "batched_of_target": f["batched_fps"] / TARGETS["batched_fps"],
    }
    return figures


def onnxruntime_cuda(batch: int = 32, repeats: int = 10) -> dict:
    """The shipped students' batch latency on the CUDA execution provider against the CPU, when this
    onnxruntime has that provider (the CPU build of the H200 image does not; a CUDA build is far over
    the 64 MiB that may travel)."""
    import numpy as np
    import onnxruntime as ort

    available = ort.get_available_providers()
    result: dict = {"onnxruntime": ort.__version__, "providers": available}
    if "CUDAExecutionProvider" not in available:
        result["cuda"] = "not available: this onnxruntime is a CPU build"
        return result
    timings = {}
    for onnx_path in sorted((REPO / "models").glob("*.onnx")):
        per_provider = {}
        for provider in ("CUDAExecutionProvider", "CPUExecutionProvider"):
            session = ort.InferenceSession(str(onnx_path), providers=[provider])
            spec = session.get_inputs()[0]
            shape = [d if isinstance(d, int) else batch for d in spec.shape]
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            session.run(None, {spec.name: x})  # warm-up
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                session.run(None, {spec.name: x})
                times.append(time.perf_counter() - t)
            per_provider[provider] = {"batch": shape[0], "median_ms": float(np.median(times)) * 1e3}
        timings[onnx_path.stem] = per_provider
    result["cuda"] = timings
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend",
        choices=["cupy", "numpy"],
        default="cupy",
        help="cupy (the check) or numpy (a dry run of the same steps on the CPU)",
    )
    parser.add_argument("out_dir", nargs="?", default=os.environ.get("OUT") or "gpu-check")
    args = parser.parse_args(argv)
    started = time.monotonic()
    sys.path.insert(0, str(REPO))
    from dualcam_rt.dsp.beamform import resolve_backend
    from dualcam_rt.errors import BadInput

    result: dict = {
        "started_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "backend": args.backend,
        "host": platform.node(),
        "python": platform.python_version(),
    }
    if args.backend == "cupy":
        try:
            resolve_backend("cupy")
        except BadInput as err:
            print(f"gpu_check: no usable GPU here ({err}); nothing was measured", file=sys.stderr)
            return 1
    steps = {"gpu": gpu_description} if args.backend == "cupy" else {}
    steps.update(parity_tests=parity_tests, bench_beamform=lambda: bench(args.backend), onnxruntime=onnxruntime_cuda)
    failed = []
    for name, step in steps.items():
        try:  # the CuPy path has never run before: keep whatever the other steps measured
            result[name] = step()
        except Exception as err:
            result[name] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
            failed.append(name)
    if not result["parity_tests"].get("passed"):
        failed.append("parity_tests")
    result.update(failed=failed, seconds=time.monotonic() - started)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str))
    print(
        f"gpu_check: wrote {out / 'gpu_check.json'} in {result['seconds']:.0f} s; parity tests: "
        f"{result['parity_tests'].get('summary', 'did not run')}; failed: {', '.join(failed) or 'none'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
