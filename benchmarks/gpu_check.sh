#!/usr/bin/env bash
# The GPU check of issue 13, for the borrowed H200 machine: CuPy parity tests, `bench beamform` on
# CuPy (CUDA events), onnxruntime's CUDA provider when it has one; figures as JSON. Under 6 minutes.
#
#   benchmarks/gpu_check.sh [--backend cupy|numpy] [OUT_DIR]    (OUT_DIR: default $OUT, else ./gpu-check)
#
# On the device machine (one call; the wheels folder only if `make gpu-check-wheels` filled it):
#   run(command="bash benchmarks/gpu_check.sh", timeout_s=420, carry=["benchmarks/gpu_wheels"])
# Without a usable GPU: one line on stderr, exit status 1. `--backend numpy`: a dry run on the CPU.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
python=${PYTHON:-python3}
wheels=(benchmarks/gpu_wheels/*.whl)
if [[ -e ${wheels[0]} ]]; then  # carried wheels: installed beside the image's packages, not over them
    site=${TMPDIR:-/tmp}/gpu-check-site
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
        "${wheels[@]}" || { echo "gpu_check: could not install benchmarks/gpu_wheels/*.whl" >&2; exit 1; }
    export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
exec "$python" benchmarks/gpu_check.py "$@"
