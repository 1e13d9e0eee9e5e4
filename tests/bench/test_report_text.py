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
