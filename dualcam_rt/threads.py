"""One thread budget: the CPUs this process may use, and the BLAS, numba and onnxruntime pools held to it.

More threads than usable CPUs make every pool slower, not faster: with a one-CPU affinity mask
(a ``taskset``, a container's cpuset) OpenBLAS still started a thread per host core and batched
beamforming ran 85x slower than with one thread. So every pool is sized from ``cpu_budget()``:
onnxruntime sessions by ``inference.models.open_session``, BLAS and numba here.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from threadpoolctl import ThreadpoolController


def cpu_budget() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota when there is one."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            n = min(n, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return n


@lru_cache(maxsize=1)
def _blas_pools() -> ThreadpoolController:
    return ThreadpoolController()  # found once: limiting through it later costs ~50 us


def _set_numba_threads(numba, n: int) -> None:
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))  # its pool's size was fixed at import


def _bounded(threads: int | None) -> int:
    """``threads`` (None: the whole budget), never more than ``cpu_budget()`` and never under 1."""
    budget = cpu_budget()
    return max(1, min(threads or budget, budget))


def apply_cpu_budget(threads: int | None = None) -> int:
    """Hold BLAS (every loaded library, via threadpoolctl) and numba to ``threads`` (None: ``cpu_budget()``),
    never more than ``cpu_budget()``, for the rest of the process; returns the count applied.

    Call it once where a process starts (the CLI, the server); libraries loaded later take the same count
    from the environment (``OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS``, set for the whole budget unless
    already set).
    """
    n = _bounded(threads)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        # libraries loaded later read these (the whole budget only: child processes inherit them);
        # numba's pool is sized at import and set_num_threads below holds only the calling thread
        if threads is None:
            os.environ.setdefault(var, str(n))
    _blas_pools.cache_clear()  # BLAS libraries loaded since the last look count too
    _blas_pools().limit(limits=n, user_api="blas")
    try:
        import numba  # here, not at the top: importing it costs ~0.4 s that onnxruntime-only users skip
    except ImportError:  # a core dependency, but a bare GPU image may lack it
        return n
    _set_numba_threads(numba, n)
    return n


@contextlib.contextmanager
def limit_threads(threads: int | None) -> Iterator[int]:
    """Within the block, BLAS and numba run ``threads`` threads (None: ``cpu_budget()``), never more than
    ``cpu_budget()``; yields the count."""
    n = _bounded(threads)
    numba = sys.modules.get("numba")  # not imported: no numba kernel can run in the block
    before = numba.get_num_threads() if numba is not None else None
    with _blas_pools().limit(limits=n, user_api="blas"):
        if numba is not None:
            _set_numba_threads(numba, n)
        try:
            yield n
        finally:
            if numba is not None and before is not None:
                _set_numba_threads(numba, before)
