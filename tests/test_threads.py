"""The thread budget: BLAS, numba and onnxruntime never run more threads than the CPUs this process may use."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numba
import pytest
from threadpoolctl import threadpool_info

from dualcam_rt.threads import apply_cpu_budget, cpu_budget, limit_threads

# Run in a process pinned to one CPU: what every pool is sized to there, asked for nothing and for too much.
PINNED = """
import json, os, sys
import numpy, scipy.linalg  # both BLAS libraries loaded, as in the service
import numba
from threadpoolctl import threadpool_info
from dualcam_rt.threads import apply_cpu_budget, cpu_budget, limit_threads
from dualcam_rt.dsp.beamform import Beamformer

def blas():
    return sorted({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"})

figures = {"affinity": len(os.sched_getaffinity(0)), "budget": cpu_budget(), "applied": apply_cpu_budget(),
           "blas": blas(), "numba": numba.get_num_threads()}
with limit_threads(8) as n:  # more than the budget: held to it
    figures.update(limited=n, blas_limited=blas(), numba_limited=numba.get_num_threads())
bf = Beamformer(backend="numba", threads=None)  # the whole budget
with bf._thread_limit() as n:
    figures.update(beamformer=n, blas_beamformer=blas(), numba_beamformer=numba.get_num_threads())
print(json.dumps(figures))
"""


def blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_a_process_pinned_to_one_cpu_runs_one_blas_and_one_numba_thread():
    cpu = min(os.sched_getaffinity(0))
    done = subprocess.run(
        [sys.executable, "-c", PINNED],
        capture_output=True,
        text=True,
        timeout=240,
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["affinity"] == figures["budget"] == figures["applied"] == 1
    assert figures["blas"] == [1] and figures["numba"] == 1
    assert figures["limited"] == 1 and figures["blas_limited"] == [1] and figures["numba_limited"] == 1
    assert figures["beamformer"] == 1 and figures["blas_beamformer"] == [1] and figures["numba_beamformer"] == 1


def test_limits_hold_inside_the_block_and_are_undone_after_it():
    before_blas, before_numba = blas_threads(), numba.get_num_threads()
    with limit_threads(1) as n:
        assert n == 1 and blas_threads() == {1} and numba.get_num_threads() == 1
    assert blas_threads() == before_blas and numba.get_num_threads() == before_numba
    with limit_threads(10_000) as n:  # never more than the budget
        assert n == cpu_budget() and numba.get_num_threads() == min(n, numba.config.NUMBA_NUM_THREADS)


@pytest.mark.skipif(cpu_budget() < 2, reason="needs two usable CPUs to tell an applied count from the default")
def test_apply_cpu_budget_sets_the_pools_for_the_rest_of_the_process():
    before_numba = numba.get_num_threads()
    try:
        assert apply_cpu_budget(1) == 1 and blas_threads() == {1} and numba.get_num_threads() == 1
        assert apply_cpu_budget() == cpu_budget() and numba.get_num_threads() == min(
            cpu_budget(), numba.config.NUMBA_NUM_THREADS
        )
    finally:
        numba.set_num_threads(before_numba)
        apply_cpu_budget()
