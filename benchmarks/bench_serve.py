"""Service benchmark: /v1/predict overhead, /v1/stream real-time capacity, /v1/live latency (loopback)."""

import sys

from dualcam_rt.bench.serve import run

if __name__ == "__main__":
    run(as_json="--json" in sys.argv)
