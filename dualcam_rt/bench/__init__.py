"""Benchmarks reached by ``dualcam-rt bench NAME``: each module has ``run(as_json=False) -> dict``."""

import os


def pin_to_one_cpu() -> set[int] | None:
    """Pin this process to one CPU (the goals say "on one core"); returns the old set to restore."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    return before


def report(results: dict, as_json: bool, print_table) -> dict:
    """Print a benchmark's figures as JSON or as its rich table; give them back."""
    if as_json:
        import json

        print(json.dumps(results, indent=2))
    else:
        print_table(results)
    return results
