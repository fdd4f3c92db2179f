"""Beamforming frames/s (NumPy, numba, CuPy on a GPU) against Acoular on the same map, with roofline ceilings.

python benchmarks/bench_beamform.py [--json] [--backend numpy|numba|cupy ...] [--no-baselines]
"""

import argparse

from dualcam_rt.bench.beamform import run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--backend",
        action="append",
        choices=["numpy", "numba", "cupy"],
        help="measure this backend (repeatable; default: every one that runs here)",
    )
    parser.add_argument("--no-baselines", action="store_true", help="skip the dense method and Acoular")
    args = parser.parse_args()
    run(as_json=args.json, backends=args.backend, baselines=not args.no_baselines)
