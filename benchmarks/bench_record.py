"""Recording throughput as a multiple of the sensor's data rate (``--soak S``: S seconds at 1x)."""

import argparse

from dualcam_rt.bench.record import run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--soak", type=float, default=0.0, help="also record sim:// at real time for this many seconds")
    args = parser.parse_args()
    run(as_json=args.json, soak_s=args.soak)
