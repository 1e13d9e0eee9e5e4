"""How the report words a step's CPU in the targets' texts."""

from __future__ import annotations

from typing import Any

from bench import report


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
