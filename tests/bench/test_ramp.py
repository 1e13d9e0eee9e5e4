"""A ramp's step is run again when it did not measure the server."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace
from typing import Any

from bench import report, scenarios


class ScriptedBench(scenarios.Bench):
    """A Bench whose steps return the results given, in order, with no servers."""

    def __init__(self, results: list[tuple[float, float, bool]]) -> None:
        self.out = {"shape": {}}
        self.results = results
        self.calls: list[str] = []

    def settle(self, quiet: float = 0.1, most: float = 30.0) -> float:
        self.calls.append("settle")
        return 0.0

    def shape_step(self, what: str, rate: float, label: str, seconds: float | None = None,
                   drain: float | None = None) -> dict[str, Any]:
        self.calls.append(f"step {rate:.0f}")
        p99, lag_p99, ok = self.results.pop(0)
        d = {"offered": rate, "lat": {what: {"p50": p99 / 2, "p99": p99}}, "ok": ok,
             "lag_p99": lag_p99, "cpu": {"server": 0.5, "core": 0.5}}
        self.out["shape"].setdefault(label, []).append(d)
        return d


def test_a_step_where_the_generator_sent_late_is_run_again_and_the_second_counts() -> None:
    bench = ScriptedBench([(10.9, 19.7, True), (0.5, 0.2, True)])
    bench.ramp_step("drag", 10000)
    [step] = bench.out["shape"]["drag"]
    assert step["lat"]["drag"]["p99"] == 0.5
    assert step["first_try"]["lag_p99"] == 19.7
    assert bench.calls == ["step 10000", "settle", "step 10000"]  # not on the first's backlog
    assert "(2nd try; 1st 10.9, the generator 19.7 ms late)" in report._shape_cell(step, "drag")


def test_a_step_that_failed_is_run_again_and_one_on_time_that_passed_is_not() -> None:
    bench = ScriptedBench([(0.5, 0.2, True), (150.0, 0.3, False), (90.0, 0.3, True)])
    bench.ramp_step("cmd", 1000)
    bench.ramp_step("cmd", 2000)
    assert not bench.results
    first, second = bench.out["shape"]["cmd"]
    assert "first_try" not in first
    assert second["lat"]["cmd"]["p99"] == 90.0
    assert "(2nd try; 1st 150)" in report._shape_cell(second, "cmd")


def test_settling_waits_while_the_server_is_busy_and_no_longer() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "import time\nend = time.monotonic() + 1.5\n"
                             "while time.monotonic() < end: pass\ntime.sleep(60)"])
    try:
        bench = object.__new__(scenarios.Bench)
        bench.kind, bench.log = "relay", lambda line: None
        bench.service = SimpleNamespace(pids=lambda: [busy.pid])  # type: ignore[assignment]
        waited = bench.settle(most=30.0)
        assert 0.5 <= waited < 30.0  # one busy half second at least; then quiet, not the cap
        assert bench.settle(most=30.0) < 10.0  # already quiet: a look or two, not the cap
    finally:
        busy.kill()
        busy.wait()
