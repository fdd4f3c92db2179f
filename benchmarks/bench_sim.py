"""Simulated-sensor throughput per scenario, as a multiple of real time (one core)."""

import sys

from dualcam_rt.bench.sim import run

if __name__ == "__main__":
    run(as_json="--json" in sys.argv)
