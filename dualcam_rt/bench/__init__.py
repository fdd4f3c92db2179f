"""Benchmarks reached by ``dualcam-rt bench NAME``: each module has ``run(as_json=False) -> dict``."""
