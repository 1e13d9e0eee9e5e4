"""How the report words a step's CPU in the targets' texts."""

from __future__ import annotations

from bench import report


def test_a_step_names_the_generator_once_it_is_busy_enough_to_be_late_itself() -> None:
    step = {"cpu": {"server": 0.7, "core": 0.7, "stolen": 0.0, "generator": 0.93}}
    assert report._cpu_text(step) == ("server 0.70 cores, its core 70% busy; "
                                      "the generator 0.93 cores")
    step["cpu"]["generator"] = 0.2
    assert report._cpu_text(step) == "server 0.70 cores, its core 70% busy"
