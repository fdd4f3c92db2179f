"""Benchmarks reached by ``dualcam-rt bench NAME``: each module has ``run(as_json=False) -> dict``.

Benchmarks with parameters take them as keyword arguments of ``run`` (``soak``: ``clients``,
``minutes``, ``live_minutes``), given on the command line as ``--clients 50 --live-minutes 1``.
"""

import inspect
import os

from ..errors import BadInput


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


def options(args: list[str], run) -> dict:
    """``run``'s keyword arguments from ``--name value`` pairs, typed like their defaults; BadInput otherwise."""
    params = {name.replace("_", "-"): p for name, p in inspect.signature(run).parameters.items() if name != "as_json"}
    if len(args) % 2 or not all(a.startswith("--") for a in args[::2]):
        raise BadInput(f"benchmark options come as --name value pairs, got {' '.join(args)!r}")
    kwargs = {}
    for flag, value in zip(args[::2], args[1::2]):
        p = params.get(flag[2:])
        if p is None:
            known = ", ".join(f"--{n}" for n in params) or "none"
            raise BadInput(f"unknown option {flag} for this benchmark (it takes: {known})")
        try:
            kwargs[p.name] = type(p.default)(value)
        except ValueError:
            kind = {int: "an integer", float: "a number"}.get(type(p.default), type(p.default).__name__)
            raise BadInput(f"{flag} needs {kind}, got {value!r}") from None
    return kwargs
