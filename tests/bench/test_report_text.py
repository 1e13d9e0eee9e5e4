"""How the report words a step's CPU in the targets' texts."""

from __future__ import annotations

from typing import Any

from bench import report
from bench.scenarios import Results


def test_a_step_names_the_generator_once_it_is_late_enough_to_reach_the_latency() -> None:
    step: dict[str, Any] = {"cpu": {"server": 0.7, "core": 0.7, "stolen": 0.0,
                                    "generator": 0.99}, "lag_p99": 2.34}
    assert report._cpu_text(step) == ("server 0.70 cores, its core 70% busy; "
                                      "the generator sent 2.3 ms late at p99")
    step["lag_p99"] = 0.4
    assert report._cpu_text(step) == "server 0.70 cores, its core 70% busy"


def test_a_core_reads_at_least_as_busy_as_the_server_pinned_to_it() -> None:
    step: dict[str, Any] = {"cpu": {"server": 0.79, "core": 0.47, "stolen": 0.0}}
    assert report._core_busy(step) == 0.79
    assert report._cpu_text(step) == "server 0.79 cores, its core 79% busy"
    step["cpu"]["core"] = 0.9
    assert report._core_busy(step) == 0.9


def _step(offered: float, p99: float, probe_us: float) -> dict[str, Any]:
    return {"offered": offered, "lat": {"cmd": {"p99": p99}}, "probe_us": probe_us,
            "cpu": {"server": 0.5, "core": 0.5, "stolen": 0.0, "others": 0.0}}


def test_the_worst_step_says_when_the_machine_was_slower_than_at_the_low_load_step() -> None:
    low = _step(100, 2.0, 10_000)
    steps = [low, _step(600, 6.2, 13_000)]
    worst, _, where = report._worst_ratio(steps, lambda d: d["lat"]["cmd"]["p99"])
    assert worst == 3.1
    assert where.endswith("; the machine 1.30x slower than at the low-load step")
    steps[1]["probe_us"] = 10_500
    assert "slower" not in report._worst_ratio(steps, lambda d: d["lat"]["cmd"]["p99"])[2]


def test_the_header_gives_how_far_the_machine_speed_moved_over_the_run() -> None:
    results = Results(plan={}, machine={}, systems={
        "relay": {"steady": [_step(1, 1.0, 9_000)], "saturation": {},
                  "shape": {"cmd": [_step(100, 1.0, 12_000)]}},
        "partsboard": {"steady": [], "saturation": {"cmd": {"steps": [_step(50, 1.0, 18_000)]}},
                       "shape": {}}})
    assert report.speed_text(results) == (
        " The machine's speed: a fixed piece of Python took 9,000 to 18,000 µs of CPU before "
        "the steps (2.00x from its fastest to its slowest).")
