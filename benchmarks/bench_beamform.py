"""Beamforming frames/s (NumPy, CuPy on a GPU) against Acoular on the same map, with roofline ceilings."""

import sys

from dualcam_rt.bench.beamform import run

if __name__ == "__main__":
    run(as_json="--json" in sys.argv)
