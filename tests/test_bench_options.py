"""Benchmark options: ``dualcam-rt bench NAME --name value`` become ``run(name=value)``; bad ones are
one-line errors."""

from __future__ import annotations

import pytest
from conftest import run_cli

from dualcam_rt.bench import options
from dualcam_rt.bench.soak import run as soak
from dualcam_rt.errors import BadInput


def test_options_are_typed_like_the_run_defaults():
    assert options(["--clients", "50", "--live-minutes", "1.5"], soak) == {"clients": 50, "live_minutes": 1.5}
    assert options([], soak) == {}


@pytest.mark.parametrize(
    "args,message",
    [
        (["--clients", "many"], "--clients needs an integer, got 'many'"),
        (
            ["--minuets", "1"],
            "unknown option --minuets for this benchmark (it takes: --clients, --minutes, --live-minutes)",
        ),
        (["--minutes"], "benchmark options come as --name value pairs"),
        (["minutes", "1"], "benchmark options come as --name value pairs"),
    ],
)
def test_bad_options_name_what_is_wrong(args, message):
    with pytest.raises(BadInput, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        options(args, soak)


def test_the_cli_turns_a_bad_option_into_one_line_and_exit_2():
    r = run_cli("bench", "serve", "--clients", "3", timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == ["error: unknown option --clients for this benchmark (it takes: --mode)"]
    r = run_cli("bench", "serve", "--mode", "fast", timeout=60)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: --mode must be one of standard, realistic, both, got 'fast'"
    ]
    r = run_cli("bench", "soak", "--minutes", "0", "--live-minutes", "0", timeout=60)
    assert r.returncode == 2 and "not both 0" in r.stderr and len(r.stderr.strip().splitlines()) == 1
