"""Wire-protocol decode throughput as a multiple of the DualCam's data rate (one core)."""

import sys

from dualcam_rt.bench.decode import run

if __name__ == "__main__":
    run(as_json="--json" in sys.argv)
